//! Secrets: passwords (argon2id), API token keys (HMAC-SHA-256), the server
//! key, and write-once delivery through a [`SecretSink`].
//!
//! No secret value leaves this module except through a sink or to the caller
//! who asked for it; every secret travels as a [`SecretValue`], whose Debug and
//! Display print `<redacted>`.

mod redact;

pub use redact::{HashValue, SecretValue};
