//! Where a PostgreSQL store lives: a `postgres://` URL, with the password kept out of
//! argv and logs.
//!
//! The password comes, in this order, from the URL itself when the URL was not given
//! on the command line (the `STAGEGATE_STORE` variable, which the Helm chart fills from
//! a Secret's `uri` key), from `STAGEGATE_STORE_PASSWORD`, or from the file named by
//! `STAGEGATE_STORE_PASSWORD_FILE`. Everything that prints a target prints it redacted.

use crate::store::StoreError;
use std::path::Path;
use std::str::FromStr;

/// Environment variable holding the password.
pub const PASSWORD_ENV: &str = "STAGEGATE_STORE_PASSWORD";
/// Environment variable naming a file that holds the password (a mounted Secret).
pub const PASSWORD_FILE_ENV: &str = "STAGEGATE_STORE_PASSWORD_FILE";

/// Whether a `--store` value names a PostgreSQL database rather than a SQLite file.
pub fn is_url(store: &Path) -> bool {
    let s = store.to_string_lossy();
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// A PostgreSQL connection target; `Display` never shows the password.
#[derive(Clone)]
pub struct PgTarget {
    config: postgres::Config,
    redacted: String,
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl PgTarget {
    /// Parses `url`; `on_command_line` refuses a password inside it (argv is visible to
    /// every local user through /proc). A missing password is read from the environment.
    pub fn parse(url: &str, on_command_line: bool) -> Result<Self, StoreError> {
        let redacted = redact(url);
        let bad = |why: String| StoreError::BadTarget(format!("{redacted}: {why}"));
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| bad(format!("not a PostgreSQL URL ({e})")))?;
        if config.get_password().is_some() {
            if on_command_line {
                return Err(bad(format!(
                    "a password in --store would be visible in the process list; pass the URL in \
                     STAGEGATE_STORE, or the password in {PASSWORD_ENV} or a file named by {PASSWORD_FILE_ENV}"
                )));
            }
        } else if let Ok(p) = std::env::var(PASSWORD_ENV) {
            config.password(p);
        } else if let Ok(file) = std::env::var(PASSWORD_FILE_ENV) {
            let p = std::fs::read_to_string(&file)
                .map_err(|e| bad(format!("cannot read the password file {file}: {e}")))?;
            config.password(p.trim_end_matches(['\n', '\r']));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("stagegate");
        }
        Ok(PgTarget { config, redacted })
    }

    /// The connection settings (holds the password: never print it).
    pub(crate) fn config(&self) -> &postgres::Config {
        &self.config
    }
}

/// `url` with any password replaced by `***` (in the authority and in a `password=` parameter).
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_they_are() {
        assert_eq!(
            redact("postgresql://app:s3cr%40t@db.ns:5432/app?sslmode=prefer"),
            "postgresql://app:***@db.ns:5432/app?sslmode=prefer"
        );
        assert_eq!(
            redact("postgres://app@db/app?password=hunter2&x=1"),
            "postgres://app@db/app?password=***&x=1"
        );
        assert_eq!(redact("postgres://db/app"), "postgres://db/app");
    }

    #[test]
    fn a_password_on_the_command_line_is_refused_without_echoing_it() {
        let e = PgTarget::parse("postgres://app:hunter2@db/app", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("STAGEGATE_STORE"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let t = PgTarget::parse("postgres://app:hunter2@db/app", false).unwrap();
        assert!(!format!("{t} {t:?}").contains("hunter2"));
    }
}
