//! Wrappers that keep secret values and hashes out of Debug, Display and logs.

use std::fmt;

/// A secret value (password, token secret, server key): Debug and Display print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    /// Wraps raw bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(bytes)
    }

    /// Wraps a string.
    pub fn from_string(s: String) -> Self {
        SecretValue(s.into_bytes())
    }

    /// The bytes; callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8, when it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A stored hash (PHC string or HMAC hex): not secret by itself, but kept out of logs and audit rows.
#[derive(Clone, PartialEq, Eq)]
pub struct HashValue(String);

impl HashValue {
    /// Wraps a hash string.
    pub fn new(s: String) -> Self {
        HashValue(s)
    }

    /// The hash string, for storage and verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HashValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashValue(<omitted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = SecretValue::from_string("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        let h = HashValue::new("$argon2id$abc".into());
        assert!(!format!("{h:?}").contains("argon2id"));
    }
}
