//! Passwords: argon2id PHC hashes with OWASP parameters, random generation,
//! and hashing many at once over all cores.

use super::{HashValue, SecretValue};
use argon2::password_hash::{Output, ParamsString, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version, ARGON2ID_IDENT};
use rand::Rng;

/// How passwords are accepted and hashed: the acceptance policy and the argon2id cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
    /// What a password must satisfy before it is hashed.
    pub policy: PasswordPolicy,
}

impl Default for PasswordParams {
    /// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane; the default policy.
    fn default() -> Self {
        PasswordParams {
            m_cost: 19456,
            t_cost: 2,
            p_cost: 1,
            policy: PasswordPolicy::default(),
        }
    }
}

/// Longest password accepted anywhere, in bytes: login refuses longer ones,
/// so a longer password could never be used (and argon2's input stays bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Length of a generated password, in characters.
pub const GENERATED_PASSWORD_CHARS: usize = 24;

/// The password policy every password passes before it is hashed, whatever
/// its source (a referenced Secret today; any later way of setting one).
///
/// After NIST SP 800-63B §5.1.1.2 and OWASP's Authentication Cheat Sheet: a
/// minimum length counted in Unicode scalar values, a maximum that login
/// accepts ([`MAX_PASSWORD_BYTES`]), no composition rules, and a check
/// against a short built-in list of the most common passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) a password may have.
    pub min_chars: usize,
}

/// Smallest `min_chars` that may be configured (NIST SP 800-63B's floor).
pub const MIN_PASSWORD_CHARS_FLOOR: usize = 8;

impl Default for PasswordPolicy {
    /// At least 12 characters.
    fn default() -> Self {
        PasswordPolicy { min_chars: 12 }
    }
}

/// The rule of the password policy a password breaks. Carries no part of the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    /// Empty, or only whitespace and invisible characters.
    #[error("the password is empty or only whitespace or invisible characters")]
    Blank,
    /// Holds a control character (NUL, a newline, ...): no one types it at a login
    /// form; a trailing newline is the usual mistake of `echo … | base64`.
    #[error("the password contains a control character (a trailing newline, say)")]
    ControlCharacter,
    /// Not valid UTF-8: it could not be typed into a login form.
    #[error("the password is not valid UTF-8")]
    NotUtf8,
    /// Fewer characters than the policy's minimum.
    #[error("the password has fewer than {min} characters")]
    TooShort {
        /// The minimum, in Unicode scalar values.
        min: usize,
    },
    /// More bytes than login accepts.
    #[error("the password is longer than {max} bytes, which login refuses")]
    TooLong {
        /// [`MAX_PASSWORD_BYTES`].
        max: usize,
    },
    /// On the built-in list of the most common passwords.
    #[error("the password is one of the most common passwords")]
    TooCommon,
}

impl PasswordRule {
    /// The stable reason of a User refused for this rule (status and outcomes).
    pub fn reason(self) -> &'static str {
        match self {
            PasswordRule::Blank => "PasswordBlank",
            PasswordRule::ControlCharacter => "PasswordControlCharacter",
            PasswordRule::NotUtf8 => "PasswordNotUtf8",
            PasswordRule::TooShort { .. } => "PasswordTooShort",
            PasswordRule::TooLong { .. } => "PasswordTooLong",
            PasswordRule::TooCommon => "PasswordTooCommon",
        }
    }
}

/// Passwords that every password-guessing list tries first (from the public
/// top-password lists that NCSC and SecLists publish), lower-cased. Those
/// shorter than the minimum length are refused by it already; these are the
/// long ones and the ones a lowered minimum would let through.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "password12345",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "123456789012",
    "1234567890123",
    "11111111",
    "111111111111",
    "00000000",
    "000000000000",
    "87654321",
    "987654321",
    "0987654321",
    "qwertyui",
    "qwertyuiop",
    "qwertyuiop123",
    "qwerty123456",
    "1qaz2wsx",
    "1qaz2wsx3edc",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "zaq12wsx",
    "asdfghjkl",
    "asdfghjkl123",
    "zxcvbnm123",
    "iloveyou",
    "iloveyou123",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "trustno1",
    "whatever",
    "starwars",
    "computer",
    "michelle",
    "jennifer",
    "corvette",
    "mercedes",
    "welcome1",
    "welcome123",
    "letmein123",
    "changeme",
    "changeme123",
    "administrator",
    "admin12345",
    "admin123456",
    "adminadmin",
    "rootroot",
    "qazwsxedc",
    "abcd1234",
    "abcdefgh",
    "abcdefghijkl",
    "abc123456789",
    "aa12345678",
    "password!",
    "password123!",
];

/// Format characters that render as nothing (Unicode category Cf, the ones seen in
/// pasted text): zero-width spaces and joiners, word joiners, the byte-order mark,
/// the soft hyphen.
fn invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

impl PasswordPolicy {
    /// Checks `password` (the bytes a Secret or request holds) against the
    /// policy; `Err` names the first rule it breaks. Whitespace is kept as
    /// typed (NIST: no truncation or normalisation beyond what login does).
    pub fn check(&self, password: &[u8]) -> Result<(), PasswordRule> {
        // Decoded after the byte limit, so a hostile value costs at most 1 KiB of work.
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordRule::TooLong {
                max: MAX_PASSWORD_BYTES,
            });
        }
        let text = std::str::from_utf8(password).map_err(|_| PasswordRule::NotUtf8)?;
        if text.chars().all(|c| c.is_whitespace() || invisible(c)) {
            return Err(PasswordRule::Blank);
        }
        if text.chars().any(char::is_control) {
            return Err(PasswordRule::ControlCharacter);
        }
        if text.chars().count() < self.min_chars {
            return Err(PasswordRule::TooShort {
                min: self.min_chars,
            });
        }
        // A common password padded with spaces is as guessable as the common one.
        let lower = text.trim().to_lowercase();
        if COMMON_PASSWORDS.contains(&lower.as_str()) {
            return Err(PasswordRule::TooCommon);
        }
        Ok(())
    }
}

impl PasswordParams {
    /// The cheapest parameters argon2 accepts: for tests only, never for real passwords.
    pub fn insecure_fast_for_tests() -> Self {
        PasswordParams {
            m_cost: 8,
            t_cost: 1,
            p_cost: 1,
            policy: PasswordPolicy::default(),
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

/// A random password: [`GENERATED_PASSWORD_CHARS`] characters from a
/// 62-letter alphabet (about 143 bits); it always passes the policy, whose
/// minimum may not be set above that length.
pub fn generate_password() -> SecretValue {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let s: Vec<u8> = (0..GENERATED_PASSWORD_CHARS)
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
    fn the_policy_names_the_rule_a_password_breaks() {
        let p = PasswordPolicy::default();
        let check = |pw: &[u8]| p.check(pw).map_err(PasswordRule::reason);
        assert_eq!(check(b""), Err("PasswordBlank"));
        assert_eq!(check(b" \t\n  \r "), Err("PasswordBlank"));
        // U+3000 (ideographic space) is whitespace too.
        assert_eq!(check("\u{3000}\u{3000}".as_bytes()), Err("PasswordBlank"));
        assert_eq!(check(b"short-pw"), Err("PasswordTooShort"));
        // Eleven scalar values but 33 bytes: counted as characters, not bytes.
        assert_eq!(check("ééééééééééé".as_bytes()), Err("PasswordTooShort"));
        assert_eq!(check("éééééééééééé".as_bytes()), Ok(()));
        assert_eq!(check(&[b'a'; MAX_PASSWORD_BYTES]), Ok(()));
        assert_eq!(
            check(&[b'a'; MAX_PASSWORD_BYTES + 1]),
            Err("PasswordTooLong")
        );
        assert_eq!(
            check(b"\xff\xfe correct horse battery"),
            Err("PasswordNotUtf8")
        );
        assert_eq!(check(b"Password1234"), Err("PasswordTooCommon"));
        assert_eq!(check(b"password1234  "), Err("PasswordTooCommon"));
        assert_eq!(
            check("\u{200B}".repeat(12).as_bytes()),
            Err("PasswordBlank")
        );
        assert_eq!(
            check("\u{FEFF}\u{2060} \u{00AD}".repeat(4).as_bytes()),
            Err("PasswordBlank")
        );
        assert_eq!(
            check(b"correct horse battery\n"),
            Err("PasswordControlCharacter")
        );
        assert_eq!(check(&[0u8; 12]), Err("PasswordControlCharacter"));
        assert_eq!(
            check(b"tab\tseparated words"),
            Err("PasswordControlCharacter")
        );
        assert_eq!(check(b"correct horse battery staple"), Ok(()));
        let lowered = PasswordPolicy { min_chars: 8 };
        assert_eq!(lowered.check(b"sunshine"), Err(PasswordRule::TooCommon));
        assert_eq!(lowered.check(b"Xk4!pq9z"), Ok(()));
    }

    #[test]
    fn generated_passwords_pass_the_strictest_policy() {
        let p = PasswordPolicy {
            min_chars: GENERATED_PASSWORD_CHARS,
        };
        for _ in 0..20 {
            assert_eq!(p.check(generate_password().expose()), Ok(()));
        }
    }

    #[test]
    fn the_rule_never_carries_the_password() {
        let msg = PasswordPolicy::default()
            .check(b"hunter2")
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
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
            policy: PasswordPolicy::default(),
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
