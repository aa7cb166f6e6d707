//! `ApiToken.spec.validity`: a duration such as `30d`, `720h`, or `Never`.

use std::time::Duration;

/// How long a token key stays valid after issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Validity {
    /// Does not expire.
    Never,
    /// Expires this long after issue.
    For(Duration),
}

impl Validity {
    /// Parses `Never` or a positive duration (`30d`, `720h`, `90m`, `1d 12h`).
    pub fn parse(s: &str) -> Result<Validity, String> {
        let s = s.trim();
        if s == "Never" {
            return Ok(Validity::Never);
        }
        match humantime::parse_duration(s) {
            Ok(d) if d.as_secs() >= 60 => Ok(Validity::For(d)),
            Ok(_) => Err(format!("validity {s:?} is shorter than one minute")),
            Err(e) => Err(format!(
                "validity {s:?} is not a duration such as 30d or 720h, or Never: {e}"
            )),
        }
    }

    /// The duration, `None` for Never.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Validity::Never => None,
            Validity::For(d) => Some(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_days_hours_and_never() {
        assert_eq!(
            Validity::parse("30d"),
            Ok(Validity::For(Duration::from_secs(30 * 86400)))
        );
        assert_eq!(
            Validity::parse("720h"),
            Ok(Validity::For(Duration::from_secs(720 * 3600)))
        );
        assert_eq!(Validity::parse("Never"), Ok(Validity::Never));
        assert!(Validity::parse("forever").is_err());
        assert!(Validity::parse("30").is_err());
        assert!(Validity::parse("10s").is_err());
    }
}
