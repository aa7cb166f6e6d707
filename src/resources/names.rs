//! The syntax of every name stagegate accepts, defined once.
//!
//! A name in a declaration becomes something else downstream: a namespace and
//! a Secret name become directory and file names in directory mode and
//! Kubernetes object names in the cluster; a username is what a login and
//! every reference must match byte for byte. Each syntax is given twice in
//! this file only, as a pattern the generated CRD schema carries (so the API
//! server and `validate` enforce the same rule) and as a function the Rust
//! code calls; a test checks that the two agree.

use std::fmt;

/// A Kubernetes DNS-1123 label: namespaces, scope customers and projects.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest DNS-1123 label.
pub const DNS_LABEL_MAX: usize = 63;
/// A Kubernetes DNS-1123 subdomain: object names and Secret names.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Longest DNS-1123 subdomain.
pub const DNS_SUBDOMAIN_MAX: usize = 253;
/// A login name: lowercase letters, digits, `-`, `.`, `_` and `@`, starting and
/// ending with a letter or digit. Every DNS subdomain is one, so a User's
/// `metadata.name` is always a valid default username.
pub const USERNAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9._@]*[a-z0-9])?$";
/// Longest username.
pub const USERNAME_MAX: usize = 253;
/// A key in a Secret's data (Kubernetes config-map key syntax).
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// Longest Secret key.
pub const SECRET_KEY_MAX: usize = 253;

/// Suffix of the Secret a User's generated password is delivered to.
pub const PASSWORD_SECRET_SUFFIX: &str = "-password";
/// Suffix of an ApiToken's default Secret.
pub const TOKEN_SECRET_SUFFIX: &str = "-token";
/// Suffix of the Secret an invitation code is delivered to.
pub const INVITATION_SECRET_SUFFIX: &str = "-invitation";

/// Which syntax a name failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// DNS-1123 label.
    DnsLabel,
    /// DNS-1123 subdomain.
    DnsSubdomain,
    /// Username.
    Username,
    /// Secret data key.
    SecretKey,
}

/// Why a name is refused. The message states the rule, never the value: a
/// secret pasted into the wrong field must not reach a diagnostic or a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than its limit.
    #[error("must be at most {max} characters long")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The name has a character or shape the syntax does not allow.
    #[error("{}", describe(*.0))]
    Syntax(NameKind),
}

fn describe(kind: NameKind) -> &'static str {
    match kind {
        NameKind::DnsLabel => "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
        NameKind::DnsSubdomain => "must be a DNS subdomain: lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit",
        NameKind::Username => "must be a username: lowercase letters, digits, '-', '.', '_' and '@', starting and ending with a letter or digit",
        NameKind::SecretKey => "must be a Secret key: letters, digits, '-', '.' and '_'",
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::DnsLabel => "DNS label",
            NameKind::DnsSubdomain => "DNS subdomain",
            NameKind::Username => "username",
            NameKind::SecretKey => "Secret key",
        })
    }
}

fn lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `s` is non-empty, at most `max` bytes, made of `inner` bytes and starts and ends with `edge` bytes.
fn shaped(
    s: &str,
    max: usize,
    kind: NameKind,
    edge: fn(u8) -> bool,
    inner: fn(u8) -> bool,
) -> Result<(), NameError> {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (None, _) | (_, None) => Err(NameError::Empty),
        _ if b.len() > max => Err(NameError::TooLong { max }),
        (Some(&first), Some(&last)) if edge(first) && edge(last) && b.iter().all(|&c| inner(c)) => {
            Ok(())
        }
        _ => Err(NameError::Syntax(kind)),
    }
}

/// Checks a DNS-1123 label (namespace, scope customer or project).
pub fn dns_label(s: &str) -> Result<(), NameError> {
    shaped(s, DNS_LABEL_MAX, NameKind::DnsLabel, lower_alnum, |c| {
        lower_alnum(c) || c == b'-'
    })
}

/// Checks a DNS-1123 subdomain (object name, Secret name).
pub fn dns_subdomain(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > DNS_SUBDOMAIN_MAX {
        return Err(NameError::TooLong {
            max: DNS_SUBDOMAIN_MAX,
        });
    }
    // Each dot-separated part is a label (of any length up to the whole).
    s.split('.')
        .try_for_each(|part| {
            shaped(part, usize::MAX, NameKind::DnsSubdomain, lower_alnum, |c| {
                lower_alnum(c) || c == b'-'
            })
        })
        .map_err(|_| NameError::Syntax(NameKind::DnsSubdomain))
}

/// Checks a username (User login name, and every reference to one).
pub fn username(s: &str) -> Result<(), NameError> {
    shaped(s, USERNAME_MAX, NameKind::Username, lower_alnum, |c| {
        lower_alnum(c) || matches!(c, b'-' | b'.' | b'_' | b'@')
    })
}

/// Checks a key in a Secret's data.
pub fn secret_key(s: &str) -> Result<(), NameError> {
    let ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
    shaped(s, SECRET_KEY_MAX, NameKind::SecretKey, ok, ok)
}

/// The longest `metadata.name` whose derived Secret name `<name><suffix>` is still a valid
/// Kubernetes name.
pub fn max_name_with_suffix(suffix: &str) -> usize {
    DNS_SUBDOMAIN_MAX - suffix.len()
}

/// The Secret a generated password of the User named `name` goes to.
pub fn password_secret_name(name: &str) -> String {
    format!("{name}{PASSWORD_SECRET_SUFFIX}")
}

/// The Secret an invitation of the User named `name` goes to.
pub fn invitation_secret_name(name: &str) -> String {
    format!("{name}{INVITATION_SECRET_SUFFIX}")
}

/// The default Secret of the ApiToken named `name`.
pub fn token_secret_name(name: &str) -> String {
    format!("{name}{TOKEN_SECRET_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The pattern and limit as the CRD schema states them, checked by the same JSON-schema
    /// engine `validate` uses.
    fn schema_accepts(pattern: &str, max: usize, s: &str) -> bool {
        let schema = json!({"type": "string", "pattern": pattern, "maxLength": max});
        jsonschema::options()
            .build(&schema)
            .unwrap()
            .is_valid(&json!(s))
    }

    fn samples() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "a",
            "A",
            "ab",
            "a-b",
            "-a",
            "a-",
            "a.b",
            "a..b",
            "a.-b",
            "a-.b",
            ".a",
            "a.",
            "a_b",
            "a@b",
            "_a",
            "a_",
            "@a",
            "a b",
            "a/b",
            "../m",
            "/abs",
            "ä",
            "a\u{0}",
            "alice ",
            "Alice",
            "x/../y",
            "0",
            "9-9",
            "a.b.c",
            "ada@example.com",
            "a..",
            "a~b",
            "A-b",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [62, 63, 64, 252, 253, 254] {
            out.push("a".repeat(n));
            out.push(format!("{}.b", "a".repeat(n.saturating_sub(2))));
        }
        // Every two-byte string over a small alphabet that exercises each rule.
        let alphabet = b"aZ0-._@/ ";
        for &x in alphabet {
            for &y in alphabet {
                out.push(String::from_utf8(vec![x, y]).unwrap());
                out.push(String::from_utf8(vec![b'a', x, y, b'b']).unwrap());
            }
        }
        out
    }

    #[test]
    fn functions_and_schema_patterns_agree() {
        type Check = fn(&str) -> Result<(), NameError>;
        let syntaxes: [(&str, usize, Check); 4] = [
            (DNS_LABEL_PATTERN, DNS_LABEL_MAX, dns_label),
            (DNS_SUBDOMAIN_PATTERN, DNS_SUBDOMAIN_MAX, dns_subdomain),
            (USERNAME_PATTERN, USERNAME_MAX, username),
            (SECRET_KEY_PATTERN, SECRET_KEY_MAX, secret_key),
        ];
        for (pattern, max, check) in syntaxes {
            for s in samples() {
                assert_eq!(
                    check(&s).is_ok(),
                    schema_accepts(pattern, max, &s),
                    "{pattern} disagrees on {s:?}"
                );
            }
        }
    }

    #[test]
    fn every_object_name_is_a_valid_default_username() {
        for s in samples().iter().filter(|s| dns_subdomain(s).is_ok()) {
            assert_eq!(username(s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn paths_are_never_names() {
        for s in ["../m", "/abs", "a/b", "..", ".", "a\\b"] {
            assert!(dns_label(s).is_err(), "{s:?}");
            assert!(dns_subdomain(s).is_err(), "{s:?}");
        }
        assert_eq!(dns_label(""), Err(NameError::Empty));
        assert_eq!(
            dns_label(&"a".repeat(64)),
            Err(NameError::TooLong { max: 63 })
        );
    }
}
