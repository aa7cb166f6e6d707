//! Passwords: argon2id PHC hashes with OWASP parameters, random generation,
//! and hashing many at once over all cores.

use super::{HashValue, SecretValue};
use argon2::password_hash::{Output, ParamsString, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version, ARGON2ID_IDENT};
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

fn hash_error(e: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hash(e.to_string())
}

/// Salt length in bytes (argon2's recommendation).
const SALT_LEN: usize = 16;

/// One hashing thread's argon2id state: the parameters and the working
/// memory (`m_cost` KiB), allocated once and reused for every hash. A fresh
/// 19 MiB buffer per hash is what glibc's per-thread arenas kept resident.
struct Hasher {
    argon2: Argon2<'static>,
    blocks: Vec<Block>,
}

impl Hasher {
    fn new(params: PasswordParams) -> Result<Self, PasswordError> {
        let p =
            Params::new(params.m_cost, params.t_cost, params.p_cost, None).map_err(hash_error)?;
        let blocks = vec![Block::default(); p.block_count()];
        Ok(Hasher {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, p),
            blocks,
        })
    }

    /// argon2id PHC string of `password` with a random salt.
    fn hash(&mut self, password: &SecretValue) -> Result<HashValue, PasswordError> {
        let salt: [u8; SALT_LEN] = rand::random();
        self.hash_with_salt(password.expose(), &salt)
    }

    /// The PHC string `$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>`, the same
    /// as argon2's `PasswordHasher::hash_password` produces.
    fn hash_with_salt(&mut self, password: &[u8], salt: &[u8]) -> Result<HashValue, PasswordError> {
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.argon2
            .hash_password_into_with_memory(password, salt, &mut out, self.blocks.as_mut_slice())
            .map_err(hash_error)?;
        let salt = SaltString::encode_b64(salt).map_err(hash_error)?;
        let phc = PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params()).map_err(hash_error)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(hash_error)?),
        };
        Ok(HashValue::new(phc.to_string()))
    }
}

/// argon2id PHC string of `password` with a random salt.
pub fn hash_password(
    params: PasswordParams,
    password: &SecretValue,
) -> Result<HashValue, PasswordError> {
    Hasher::new(params)?.hash(password)
}

/// Whether `password` matches the PHC string (parameters are read from the string).
pub fn verify_password(phc: &HashValue, password: &[u8]) -> bool {
    match PasswordHash::new(phc.expose()) {
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

/// Hashes every password, spread over all cores (each thread reusing one
/// argon2 working memory); results in input order.
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
                    let mut hasher = Hasher::new(params)?;
                    part.iter()
                        .map(|p| hasher.hash(p))
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

    #[test]
    fn reused_memory_gives_standard_phc() {
        let params = PasswordParams {
            m_cost: 64,
            t_cost: 2,
            p_cost: 2,
        };
        let mut hasher = Hasher::new(params).unwrap();
        let pw = SecretValue::new(b"correct horse".to_vec());
        // The same buffer, reused: every hash verifies, wrong passwords fail.
        let h1 = hasher.hash(&pw).unwrap();
        let h2 = hasher.hash(&pw).unwrap();
        assert_ne!(h1.expose(), h2.expose(), "random salt");
        for h in [&h1, &h2] {
            assert!(verify_password(h, b"correct horse"));
            assert!(!verify_password(h, b"correct horsf"));
            let parsed = PasswordHash::new(h.expose()).unwrap();
            assert_eq!(parsed.algorithm, ARGON2ID_IDENT);
            assert_eq!(parsed.version, Some(0x13));
            assert_eq!(parsed.params.get_decimal("m"), Some(64));
            assert_eq!(parsed.params.get_decimal("t"), Some(2));
            assert_eq!(parsed.params.get_decimal("p"), Some(2));
            assert_eq!(parsed.salt.unwrap().len(), 22, "16 bytes, B64");
            assert_eq!(parsed.hash.unwrap().len(), 32);
        }
        // Byte for byte what argon2's own allocating PasswordHasher gives,
        // also after the buffer held another hash.
        use argon2::password_hash::PasswordHasher;
        let salt = [7u8; SALT_LEN];
        let ours = hasher.hash_with_salt(b"other", &salt).unwrap();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 2, 2, None).unwrap(),
        )
        .hash_password(b"other", &SaltString::encode_b64(&salt).unwrap())
        .unwrap()
        .to_string();
        assert_eq!(ours.expose(), reference);
    }

    #[test]
    fn hash_many_shares_one_hasher_per_thread() {
        let pws: Vec<SecretValue> = (0..7).map(|_| generate_password()).collect();
        let refs: Vec<&SecretValue> = pws.iter().collect();
        let hs = hash_many(PasswordParams::insecure_fast_for_tests(), &refs).unwrap();
        assert_eq!(hs.len(), 7);
        for (i, h) in hs.iter().enumerate() {
            assert!(h.expose().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
            for (j, p) in pws.iter().enumerate() {
                assert_eq!(verify_password(h, p.expose()), i == j);
            }
        }
        let bad = PasswordParams {
            m_cost: 1,
            ..PasswordParams::insecure_fast_for_tests()
        };
        assert!(hash_many(bad, &refs).is_err());
        assert!(hash_password(bad, &pws[0]).is_err());
    }
}
