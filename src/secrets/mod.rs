//! Secrets: passwords (argon2id), API token keys (HMAC-SHA-256), the server
//! key, and write-once delivery through a [`SecretSink`].
//!
//! No secret value leaves this module except through a sink or to the caller
//! who asked for it; every secret travels as a [`SecretValue`], whose Debug and
//! Display print `<redacted>`.

mod redact;

pub use redact::{HashValue, SecretValue};
mod invitation;
mod password;
mod server_key;
mod token;

pub use invitation::{generate_invitation, parse_invitation, verify_invitation, INVITATION_PREFIX};

pub use password::{
    generate_password, hash_many, hash_password, verify_password, PasswordError, PasswordParams,
    PasswordPolicy, PasswordRule, GENERATED_PASSWORD_CHARS, MAX_PASSWORD_BYTES,
    MIN_PASSWORD_CHARS_FLOOR,
};
pub use server_key::{ServerKey, ServerKeyError};
pub use token::{
    authenticate, format_token, generate_key, new_key_id, parse_token, parse_token_parts,
    secret_hmac, verify, verify_parts, NewKey, ParsedToken, TokenAuthError, TokenFormatError,
    TokenParts, TOKEN_PREFIX,
};
mod dir_sink;
mod modes;
mod secret_files;
mod sink;

pub use dir_sink::{
    check_secrets_dir, classify_bytes, classify_manifest, private_dir, DirSecretSink,
};
pub use modes::{create_private_file, tighten, tighten_secrets_dir};
pub use secret_files::{
    list_secret_files, load_secrets_dir, parse_secret_manifest, read_secret_file, FileStamp,
    LoadedSecrets, SecretFile, SecretFileName,
};
pub use sink::{
    observe, Delivery, MemorySink, OutgoingSecret, SecretInventory, SecretSink, SecretState,
    SinkError, EXPIRES_AT_ANNOTATION, KEY_ID_ANNOTATION, MANAGED_BY_ANNOTATION, OWNER_ANNOTATION,
};
