//! API token keys: generation, the token string format, and verification.
//!
//! # Format
//!
//! ```text
//! sgt_<key id>_<secret><checksum>
//! sgt_k7d2qmx4ab3z_<64 lowercase hex = 256-bit secret><8 lowercase hex = CRC32>
//! ```
//!
//! * `sgt_` — fixed prefix, so secret scanners can find leaked tokens
//!   (regex `sgt_[a-z2-7]{12}_[0-9a-f]{72}`).
//! * key id — 12 characters of RFC 4648 base32, lower case (`a-z`, `2-7`), 60
//!   random bits: public, shown in status, used to find the stored hash.
//! * secret — 32 random bytes (256 bits) as 64 lowercase hex characters.
//! * checksum — CRC-32 (IEEE) of the ASCII text `sgt_<key id>_<secret>`, as 8
//!   lowercase hex characters, big-endian. It catches typos and truncation
//!   without a store lookup; it is not a security measure.
//!
//! The store keeps only `HMAC-SHA-256(server key, "stagegate token v1" || 0x00
//! || key id || ":" || secret)`: verifying costs microseconds (no argon2, so
//! tokens cannot be used to exhaust the CPU) and the comparison is constant
//! time. Binding the key id into the MAC means a secret only verifies under
//! the key id it was issued with.

use super::{HashValue, SecretValue, ServerKey};
use crate::store::{Store, StoreError, TokenKeyRow};
use jiff::Timestamp;
use rand::Rng;
use std::fmt;
use subtle::ConstantTimeEq;

/// The fixed prefix of every token.
pub const TOKEN_PREFIX: &str = "sgt_";
const KEY_ID_LEN: usize = 12;
const SECRET_HEX_LEN: usize = 64;
const CHECKSUM_LEN: usize = 8;
const MAC_DOMAIN: &str = "stagegate token v1";
const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Why a string is not a well-formed token (no store lookup involved).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    /// Does not start with `sgt_`.
    #[error("not a stagegate token (expected prefix sgt_)")]
    Prefix,
    /// Wrong length or separator.
    #[error("malformed token (expected sgt_<12-char key id>_<72 hex characters>)")]
    Shape,
    /// A character outside the alphabet.
    #[error("malformed token (invalid character)")]
    Character,
    /// The CRC-32 does not match: a typo or truncation.
    #[error("token checksum mismatch (typo or truncated token)")]
    Checksum,
}

/// A syntactically valid token: its key id and secret (Debug redacts the secret).
#[derive(Clone)]
pub struct ParsedToken {
    /// Public key id.
    pub key_id: String,
    /// The secret part (64 hex characters).
    pub secret: SecretValue,
}

impl fmt::Debug for ParsedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedToken")
            .field("key_id", &self.key_id)
            .field("secret", &self.secret)
            .finish()
    }
}

/// A freshly generated key: what is delivered once, and the hash that is stored.
pub struct NewKey {
    /// Public key id.
    pub key_id: String,
    /// The secret (64 hex characters).
    pub secret: SecretValue,
    /// The full token string.
    pub token: SecretValue,
    /// HMAC of the secret, for the store.
    pub secret_hmac: HashValue,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A random 12-character base32 id (also used for generated passwords).
pub fn new_key_id() -> String {
    let mut rng = rand::rng();
    (0..KEY_ID_LEN)
        .map(|_| BASE32[rng.random_range(0..BASE32.len())] as char)
        .collect()
}

fn checksum(body: &str) -> String {
    String::from_utf8_lossy(&checksum_hex(body)).into_owned()
}

fn mac_input(key_id: &str, secret: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key_id.len() + 1 + secret.len());
    v.extend_from_slice(key_id.as_bytes());
    v.push(b':');
    v.extend_from_slice(secret);
    v
}

/// HMAC of a token secret under `key`, hex.
pub fn secret_hmac(key: &ServerKey, key_id: &str, secret: &SecretValue) -> HashValue {
    HashValue::new(key.mac_hex(MAC_DOMAIN, &mac_input(key_id, secret.expose())))
}

/// Generates a key id and a 256-bit secret, and hashes it under `key`.
pub fn generate_key(key: &ServerKey) -> NewKey {
    generate_with(key, TOKEN_PREFIX, MAC_DOMAIN)
}

/// A new id and 256-bit secret in the format of `prefix` (tokens, invitation codes), MAC'd in `domain`.
pub(super) fn generate_with(key: &ServerKey, prefix: &str, domain: &str) -> NewKey {
    let key_id = new_key_id();
    let bytes: [u8; 32] = rand::random();
    let secret = SecretValue::from_string(hex::encode(bytes));
    let token = format_with(prefix, &key_id, &secret);
    let secret_hmac = HashValue::new(key.mac_hex(domain, &mac_input(&key_id, secret.expose())));
    NewKey {
        key_id,
        secret,
        token,
        secret_hmac,
    }
}

/// The token string `sgt_<key id>_<secret><checksum>`.
pub fn format_token(key_id: &str, secret: &SecretValue) -> SecretValue {
    format_with(TOKEN_PREFIX, key_id, secret)
}

fn format_with(prefix: &str, key_id: &str, secret: &SecretValue) -> SecretValue {
    let body = format!(
        "{prefix}{key_id}_{}",
        secret.expose_str().unwrap_or_default()
    );
    let sum = checksum(&body);
    SecretValue::from_string(body + &sum)
}

/// Checks prefix, shape, alphabet and checksum; no store lookup.
pub fn parse_token(s: &str) -> Result<ParsedToken, TokenFormatError> {
    parse_with(TOKEN_PREFIX, s)
}

/// [`parse_token`] for the format of `prefix`.
pub(super) fn parse_with(prefix: &str, s: &str) -> Result<ParsedToken, TokenFormatError> {
    let parts = parts_with(prefix, s)?;
    Ok(ParsedToken {
        key_id: parts.key_id.to_string(),
        secret: SecretValue::from_string(parts.secret.to_string()),
    })
}

/// A syntactically valid token, borrowed from the presented string: what the API's hot path
/// checks, without copying the secret anywhere.
#[derive(Clone, Copy)]
pub struct TokenParts<'a> {
    key_id: &'a str,
    secret: &'a str,
}

impl<'a> TokenParts<'a> {
    /// Public key id.
    pub fn key_id(&self) -> &'a str {
        self.key_id
    }
}

impl fmt::Debug for TokenParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenParts")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// [`parse_token`], borrowing the key id and secret from `s` (allocates nothing).
pub fn parse_token_parts(s: &str) -> Result<TokenParts<'_>, TokenFormatError> {
    parts_with(TOKEN_PREFIX, s)
}

/// Checks the format of `prefix` and borrows the parts of `s`.
fn parts_with<'a>(prefix: &str, s: &'a str) -> Result<TokenParts<'a>, TokenFormatError> {
    let rest = s.strip_prefix(prefix).ok_or(TokenFormatError::Prefix)?;
    if rest.len() != KEY_ID_LEN + 1 + SECRET_HEX_LEN + CHECKSUM_LEN
        || rest.as_bytes()[KEY_ID_LEN] != b'_'
    {
        return Err(TokenFormatError::Shape);
    }
    let (key_id, tail) = rest.split_at(KEY_ID_LEN);
    let tail = &tail[1..];
    if !key_id.bytes().all(|b| BASE32.contains(&b))
        || !tail
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(TokenFormatError::Character);
    }
    let (secret, sum) = tail.split_at(SECRET_HEX_LEN);
    let body_len = s.len() - CHECKSUM_LEN;
    if checksum_hex(&s[..body_len])
        .ct_eq(sum.as_bytes())
        .unwrap_u8()
        != 1
    {
        return Err(TokenFormatError::Checksum);
    }
    Ok(TokenParts { key_id, secret })
}

/// The checksum of `body` as 8 lowercase hex digits, on the stack.
fn checksum_hex(body: &str) -> [u8; CHECKSUM_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let sum = crc32fast::hash(body.as_bytes());
    let mut out = [0u8; CHECKSUM_LEN];
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = HEX[((sum >> (28 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// Whether the parsed token's secret matches the stored HMAC (constant-time).
pub fn verify(token: &ParsedToken, stored_hmac: &HashValue, key: &ServerKey) -> bool {
    verify_in(MAC_DOMAIN, token, stored_hmac, key)
}

/// [`verify`] for secrets MAC'd in `domain`.
pub(super) fn verify_in(
    domain: &str,
    token: &ParsedToken,
    stored_hmac: &HashValue,
    key: &ServerKey,
) -> bool {
    let expected = key.mac(domain, &mac_input(&token.key_id, token.secret.expose()));
    match hex::decode(stored_hmac.expose()) {
        Ok(stored) => stored.ct_eq(&expected).into(),
        Err(_) => false,
    }
}

/// [`verify`] for a borrowed token against the stored HMAC's bytes (decoded once, when the
/// caller loads it): no allocation; the comparison is constant-time.
pub fn verify_parts(token: &TokenParts<'_>, stored_mac: &[u8; 32], key: &ServerKey) -> bool {
    let mut input = [0u8; KEY_ID_LEN + 1 + SECRET_HEX_LEN];
    input[..KEY_ID_LEN].copy_from_slice(token.key_id.as_bytes());
    input[KEY_ID_LEN] = b':';
    input[KEY_ID_LEN + 1..].copy_from_slice(token.secret.as_bytes());
    let expected = key.mac(MAC_DOMAIN, &input);
    stored_mac.ct_eq(&expected).into()
}

/// Why a presented token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenAuthError {
    /// Malformed.
    #[error(transparent)]
    Format(#[from] TokenFormatError),
    /// Unknown key id, wrong secret, pending, revoked or expired (not distinguished to callers).
    #[error("invalid or inactive token")]
    Rejected,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Authenticates a presented token string against the store: the HTTP API's entry point.
pub fn authenticate(
    store: &dyn Store,
    key: &ServerKey,
    presented: &str,
    now: Timestamp,
) -> Result<TokenKeyRow, TokenAuthError> {
    let parsed = parse_token(presented.trim())?;
    let row = store
        .token_key(&parsed.key_id)?
        .ok_or(TokenAuthError::Rejected)?;
    // Check the secret before the state so timing does not reveal which keys exist but are inactive.
    let ok = verify(&parsed, &row.secret_hmac, key);
    if ok && row.usable_at(now) {
        Ok(row)
    } else {
        Err(TokenAuthError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_verify() {
        let k = ServerKey::generate();
        let nk = generate_key(&k);
        let s = nk.token.expose_str().unwrap();
        assert!(s.starts_with("sgt_"));
        assert_eq!(s.len(), 4 + 12 + 1 + 64 + 8);
        let p = parse_token(s).unwrap();
        assert_eq!(p.key_id, nk.key_id);
        assert!(verify(&p, &nk.secret_hmac, &k));
        assert!(!verify(&p, &nk.secret_hmac, &ServerKey::generate()));
        assert!(!format!("{p:?} {nk:?}").contains(nk.secret.expose_str().unwrap()));
    }

    /// The borrowed check (the API's hot path) answers what the owned one answers, and its
    /// checksum is the one tokens are issued with.
    #[test]
    fn borrowed_parts_verify_as_the_owned_token_does() {
        let k = ServerKey::generate();
        let nk = generate_key(&k);
        let s = nk.token.expose_str().unwrap();
        let parts = parse_token_parts(s).unwrap();
        assert_eq!(parts.key_id(), nk.key_id);
        let mut mac = [0u8; 32];
        hex::decode_to_slice(nk.secret_hmac.expose(), &mut mac).unwrap();
        assert!(verify_parts(&parts, &mac, &k));
        assert!(!verify_parts(&parts, &mac, &ServerKey::generate()));
        mac[31] ^= 1;
        assert!(!verify_parts(&parts, &mac, &k));
        // Another token's secret under this key id: refused, as `verify` refuses it.
        let other = generate_key(&k);
        let forged = format_token(&nk.key_id, &other.secret);
        let forged = parse_token_parts(forged.expose_str().unwrap()).unwrap();
        hex::decode_to_slice(nk.secret_hmac.expose(), &mut mac).unwrap();
        assert!(!verify_parts(&forged, &mac, &k));
        assert!(!format!("{parts:?}").contains(nk.secret.expose_str().unwrap()));
    }

    #[test]
    fn typos_are_rejected_without_lookup() {
        let nk = generate_key(&ServerKey::generate());
        let s = nk.token.expose_str().unwrap().to_string();
        let mut typo = s.clone().into_bytes();
        let i = 30;
        typo[i] = if typo[i] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            parse_token(std::str::from_utf8(&typo).unwrap()).unwrap_err(),
            TokenFormatError::Checksum
        );
        assert_eq!(
            parse_token(&s[..s.len() - 1]).unwrap_err(),
            TokenFormatError::Shape
        );
        assert_eq!(
            parse_token("ghp_abc").unwrap_err(),
            TokenFormatError::Prefix
        );
        assert_eq!(
            parse_token(&s.to_uppercase().replacen("SGT_", "sgt_", 1)).unwrap_err(),
            TokenFormatError::Character
        );
    }

    #[test]
    fn secret_does_not_verify_under_another_key_id() {
        let k = ServerKey::generate();
        let nk = generate_key(&k);
        let other = ParsedToken {
            key_id: new_key_id(),
            secret: nk.secret.clone(),
        };
        assert!(!verify(&other, &nk.secret_hmac, &k));
    }
}
