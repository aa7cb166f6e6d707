//! Device tokens (OWASP's "device cookies"): a successful login hands the
//! client a token that says "this device has logged in to this account
//! before". Presented at a later login to the same account, it gives the
//! client its own failed-login budget, so failures from other clients (an
//! attack spread over many addresses) cannot lock the account's owner out.
//!
//! A token is `sgd_<device id>.<expiry>.<mac>`: a random 128-bit device id,
//! the expiry in Unix seconds, and an HMAC under the server key over the
//! account, id and expiry. Nothing is stored; the token grants no access by
//! itself (the password is still checked), only a separate budget.

use crate::secrets::ServerKey;
use jiff::Timestamp;
use subtle::ConstantTimeEq;

/// Prefix of device tokens, so they are told apart from sessions and API tokens.
pub const DEVICE_PREFIX: &str = "sgd_";
const DEVICE_DOMAIN: &str = "stagegate device v1";

fn mac(key: &ServerKey, account: &str, id: &str, expires: i64) -> String {
    let data = format!("{account}\0{id}\0{expires}");
    key.mac_hex(DEVICE_DOMAIN, data.as_bytes())
}

/// A device token for `account`: the device `id` (a fresh one when `None`), valid until `expires`.
pub fn issue(key: &ServerKey, account: &str, id: Option<&str>, expires: Timestamp) -> String {
    let id = id.map_or_else(|| hex::encode(rand::random::<[u8; 16]>()), str::to_string);
    let exp = expires.as_second();
    format!("{DEVICE_PREFIX}{id}.{exp}.{}", mac(key, account, &id, exp))
}

/// The device id of `token` when it is well-formed, unexpired at `now`, and was issued for
/// `account` under `key`; anything else (another account's token, a forgery) is `None`.
pub fn verify(key: &ServerKey, account: &str, token: &str, now: Timestamp) -> Option<String> {
    let rest = token.strip_prefix(DEVICE_PREFIX)?;
    let mut parts = rest.splitn(3, '.');
    let (id, exp, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let exp: i64 = exp.parse().ok()?;
    if exp <= now.as_second() {
        return None;
    }
    let want = mac(key, account, id, exp);
    bool::from(want.as_bytes().ct_eq(tag.as_bytes())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_account_key_and_expiry() {
        let key = ServerKey::generate();
        let now = Timestamp::from_second(1_000_000).unwrap();
        let later = Timestamp::from_second(2_000_000).unwrap();
        let t = issue(&key, "ann", None, later);
        let id = verify(&key, "ann", &t, now).expect("valid");
        assert_eq!(
            verify(&key, "ann", &issue(&key, "ann", Some(&id), later), now),
            Some(id)
        );
        assert_eq!(verify(&key, "bob", &t, now), None);
        assert_eq!(verify(&ServerKey::generate(), "ann", &t, now), None);
        assert_eq!(verify(&key, "ann", &t, later), None);
        let forged = t.replace(".2000000.", ".3000000.");
        assert_eq!(verify(&key, "ann", &forged, now), None);
        assert_eq!(verify(&key, "ann", "sgd_x", now), None);
    }
}
