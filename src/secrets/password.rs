//! Passwords: argon2id PHC hashes with OWASP parameters, random generation,
//! and hashing many at once over all cores.

use super::{HashValue, SecretValue};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for PasswordParams {
    /// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        PasswordParams {
            m_cost: 19456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl PasswordParams {
    /// The cheapest parameters argon2 accepts: for tests only, never for real passwords.
    pub fn insecure_fast_for_tests() -> Self {
        PasswordParams {
            m_cost: 8,
            t_cost: 1,
            p_cost: 1,
        }
    }
}

/// Errors of password hashing (never carry the password).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Invalid parameters or an argon2 failure.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn hasher(params: PasswordParams) -> Result<Argon2<'static>, PasswordError> {
    let p = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

/// argon2id PHC string of `password` with a random salt.
pub fn hash_password(
    params: PasswordParams,
    password: &SecretValue,
) -> Result<HashValue, PasswordError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let phc = hasher(params)?
        .hash_password(password.expose(), &salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(HashValue::new(phc.to_string()))
}

/// Whether `password` matches the PHC string (parameters are read from the string).
pub fn verify_password(phc: &HashValue, password: &[u8]) -> bool {
    match argon2::password_hash::PasswordHash::new(phc.expose()) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A random password: 24 characters from a 62-letter alphabet (about 143 bits).
pub fn generate_password() -> SecretValue {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let s: Vec<u8> = (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect();
    SecretValue::new(s)
}

/// Hashes every password, spread over all cores; results in input order.
pub fn hash_many(
    params: PasswordParams,
    passwords: &[&SecretValue],
) -> Result<Vec<HashValue>, PasswordError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(passwords.len().max(1));
    let chunk = passwords.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<HashValue>, PasswordError>> = std::thread::scope(|s| {
        let handles: Vec<_> = passwords
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| hash_password(params, p))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(PasswordError::Hash("hashing thread panicked".into())))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(passwords.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let pw = generate_password();
        assert_eq!(pw.expose().len(), 24);
        let h = hash_password(PasswordParams::insecure_fast_for_tests(), &pw).unwrap();
        assert!(h.expose().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(verify_password(&h, pw.expose()));
        assert!(!verify_password(&h, b"wrong"));
    }

    #[test]
    fn default_params_are_owasp() {
        let h = hash_password(PasswordParams::default(), &SecretValue::new(b"x".to_vec())).unwrap();
        assert!(h.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[test]
    fn hash_many_keeps_order() {
        let pws: Vec<SecretValue> = (0..5).map(|_| generate_password()).collect();
        let refs: Vec<&SecretValue> = pws.iter().collect();
        let hs = hash_many(PasswordParams::insecure_fast_for_tests(), &refs).unwrap();
        for (p, h) in pws.iter().zip(&hs) {
            assert!(verify_password(h, p.expose()));
        }
        assert!(hash_many(PasswordParams::default(), &[])
            .unwrap()
            .is_empty());
    }
}
