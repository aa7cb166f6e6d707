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
    /// The longest finite validity: ten years (`10y`, as humantime counts a year of 365.25
    /// days: 87,660 hours). Anything longer is refused rather than silently never expiring;
    /// `Never` is the only way to say never.
    pub const MAX: Duration = Duration::from_secs(10 * 31_557_600);
    /// The shortest validity: one minute.
    pub const MIN: Duration = Duration::from_secs(60);

    /// Parses `Never` or a duration from one minute to [`Validity::MAX`] (`30d`, `720h`,
    /// `90m`, `1d 12h`, `10y`).
    pub fn parse(s: &str) -> Result<Validity, String> {
        Validity::parse_at_least(s, Validity::MIN)
    }

    /// An invitation's validity: a duration from one second to [`Validity::MAX`]; `Never` is
    /// refused (a code that never expires is a standing password nobody chose).
    pub fn parse_invitation(s: &str) -> Result<std::time::Duration, String> {
        match Validity::parse_at_least(s, Duration::from_secs(1))? {
            Validity::For(d) => Ok(d),
            Validity::Never => Err(format!(
                "validity {:?}: an invitation must expire; use a duration such as 7d or 48h",
                s.trim()
            )),
        }
    }

    fn parse_at_least(s: &str, min: Duration) -> Result<Validity, String> {
        let s = s.trim();
        if s == "Never" {
            return Ok(Validity::Never);
        }
        let shortest = humantime::format_duration(min);
        match humantime::parse_duration(s) {
            Ok(d) if d < min => Err(format!("validity {s:?} is shorter than {shortest}")),
            Ok(d) if d > Validity::MAX => Err(format!(
                "validity {s:?} is longer than the maximum of 10y (87660h); use Never for a key that does not expire"
            )),
            Ok(d) => Ok(Validity::For(d)),
            Err(humantime::DurationError::NumberOverflow) => Err(format!(
                "validity {s:?} is longer than the maximum of 10y (87660h); use Never for a key that does not expire"
            )),
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

    #[test]
    fn bounded_by_ten_years() {
        assert_eq!(Validity::parse("10y"), Ok(Validity::For(Validity::MAX)));
        assert_eq!(Validity::parse("87660h"), Ok(Validity::For(Validity::MAX)));
        for long in [
            "87661h",
            "3653d",
            "11y",
            "10000y",
            "99999999999d",
            "18446744073709551615s",
            "999999999999999999999999y",
            "10y 1s",
        ] {
            let e = Validity::parse(long).unwrap_err();
            assert!(e.contains("maximum"), "{long}: {e}");
        }
        assert!(Validity::parse("never").is_err());
        assert!(Validity::parse("0d").is_err());
    }
}
