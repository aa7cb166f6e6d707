//! Invitation codes: one-time codes a person accepts to choose their own password.
//!
//! The format is the token format (see [`super::token`]) with its own prefix,
//! `sgi_<invitation id>_<64 hex = 256-bit secret><8 hex CRC-32>`, so secret
//! scanners find leaked codes and typos are refused without a store lookup.
//! The store keeps only `HMAC-SHA-256(server key, "stagegate invitation v1"
//! || 0x00 || id || ":" || secret)`, compared in constant time; the MAC
//! domain differs from tokens', so a code never verifies as a token or back.

use super::token::{generate_with, parse_with, verify_in, NewKey, ParsedToken, TokenFormatError};
use super::{HashValue, ServerKey};

/// The fixed prefix of every invitation code.
pub const INVITATION_PREFIX: &str = "sgi_";
const MAC_DOMAIN: &str = "stagegate invitation v1";

/// Generates an invitation id and code, and the code's keyed hash for the store.
pub fn generate_invitation(key: &ServerKey) -> NewKey {
    generate_with(key, INVITATION_PREFIX, MAC_DOMAIN)
}

/// Checks prefix, shape, alphabet and checksum of a presented code; no store lookup.
pub fn parse_invitation(code: &str) -> Result<ParsedToken, TokenFormatError> {
    parse_with(INVITATION_PREFIX, code.trim())
}

/// Whether a parsed code matches the stored HMAC (constant time).
pub fn verify_invitation(code: &ParsedToken, stored: &HashValue, key: &ServerKey) -> bool {
    verify_in(MAC_DOMAIN, code, stored, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{parse_token, verify};

    #[test]
    fn round_trip_and_not_a_token() {
        let k = ServerKey::generate();
        let inv = generate_invitation(&k);
        let code = inv.token.expose_str().unwrap();
        assert!(code.starts_with("sgi_"));
        let p = parse_invitation(code).unwrap();
        assert_eq!(p.key_id, inv.key_id);
        assert!(verify_invitation(&p, &inv.secret_hmac, &k));
        assert!(!verify_invitation(
            &p,
            &inv.secret_hmac,
            &ServerKey::generate()
        ));
        // Another MAC domain: the same secret never verifies as a token key.
        assert!(!verify(&p, &inv.secret_hmac, &k));
        assert_eq!(parse_token(code).unwrap_err(), TokenFormatError::Prefix);
        let mut typo = code.to_string().into_bytes();
        typo[20] = if typo[20] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            parse_invitation(std::str::from_utf8(&typo).unwrap()).unwrap_err(),
            TokenFormatError::Checksum
        );
    }
}
