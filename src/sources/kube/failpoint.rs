//! Crash injection for restart tests: `STAGEGATE_FAILPOINT=<name>` aborts the
//! process when the named point is reached. Documented points:
//!
//! * `before-secret-create` — a key or password is pending in the store and
//!   its Secret is not created yet;
//! * `after-secret-create` — the Secret is created and the store does not
//!   know yet that it was delivered.
//!
//! Unset (the default) it does nothing. It is generic: nothing here knows
//! which API server the controller talks to.

/// Environment variable naming the failpoint to hit.
pub const ENV: &str = "STAGEGATE_FAILPOINT";

/// Aborts the process (no cleanup, like a crash) when `name` is the configured failpoint.
pub fn hit(name: &str) {
    if std::env::var(ENV).is_ok_and(|v| v == name) {
        eprintln!("{ENV}={name}: aborting as requested");
        std::process::abort();
    }
}
