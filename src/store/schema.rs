//! Versioned, forward-only schema migrations, applied at open (`PRAGMA user_version`).

use rusqlite::Connection;

/// Migrations in order; index + 1 is the schema version after running it. Never edit a shipped one.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    username              TEXT PRIMARY KEY,
    display_name          TEXT,
    email                 TEXT,
    state                 TEXT NOT NULL CHECK (state IN ('Active', 'Revoked')),
    password_hash         TEXT,
    password_source       TEXT CHECK (password_source IN ('ref', 'generated')),
    password_fingerprint  TEXT,
    password_id           TEXT,
    password_rotation     INTEGER NOT NULL DEFAULT 0,
    pending_password_id   TEXT,
    pending_password_hash TEXT,
    pending_rotation      INTEGER,
    first_login           TEXT,
    last_login            TEXT,
    bootstrap             INTEGER NOT NULL DEFAULT 0,
    owner_kind            TEXT,
    owner_namespace       TEXT,
    owner_name            TEXT,
    owner_source          TEXT
) STRICT;

CREATE TABLE bindings (
    id              INTEGER PRIMARY KEY,
    username        TEXT NOT NULL,
    role            TEXT NOT NULL,
    scope_customer  TEXT NOT NULL DEFAULT '',
    scope_project   TEXT NOT NULL DEFAULT '',
    owner_kind      TEXT,
    owner_namespace TEXT,
    owner_name      TEXT,
    owner_source    TEXT
) STRICT;
CREATE UNIQUE INDEX bindings_owner ON bindings (owner_namespace, owner_name) WHERE owner_name IS NOT NULL;
CREATE INDEX bindings_username ON bindings (username);

CREATE TABLE token_keys (
    key_id          TEXT PRIMARY KEY,
    token_name      TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    secret_hmac     TEXT NOT NULL,
    role            TEXT NOT NULL,
    scope_customer  TEXT NOT NULL DEFAULT '',
    scope_project   TEXT NOT NULL DEFAULT '',
    owner_user      TEXT,
    issued_at       TEXT NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    revoked_reason  TEXT,
    rotation        INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'issued')),
    secret_name     TEXT NOT NULL,
    owner_kind      TEXT,
    owner_namespace TEXT,
    owner_name      TEXT,
    owner_source    TEXT
) STRICT;
CREATE INDEX token_keys_token ON token_keys (namespace, token_name);

CREATE TABLE models (
    name            TEXT NOT NULL,
    scope_customer  TEXT NOT NULL DEFAULT '',
    scope_project   TEXT NOT NULL DEFAULT '',
    owner           TEXT,
    stage           TEXT NOT NULL CHECK (stage IN ('Dev', 'Staging', 'Production')),
    PRIMARY KEY (scope_customer, scope_project, name)
) STRICT;

CREATE TABLE stage_requests (
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    model           TEXT NOT NULL,
    scope_customer  TEXT NOT NULL DEFAULT '',
    scope_project   TEXT NOT NULL DEFAULT '',
    from_stage      TEXT NOT NULL,
    to_stage        TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    phase           TEXT NOT NULL CHECK (phase IN ('Applied', 'Denied', 'Conflict')),
    message         TEXT NOT NULL,
    decided_at      TEXT NOT NULL,
    source          TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT;

CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE ON UPDATE CASCADE,
    grants_json TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_username ON sessions (username);

CREATE TABLE object_status (
    kind                TEXT NOT NULL,
    namespace           TEXT NOT NULL,
    name                TEXT NOT NULL,
    ready               INTEGER NOT NULL,
    reason              TEXT NOT NULL,
    message             TEXT NOT NULL,
    phase               TEXT,
    observed_generation INTEGER,
    extra_json          TEXT NOT NULL DEFAULT '{}',
    source              TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) STRICT;

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    action    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    source    TEXT NOT NULL,
    old_json  TEXT,
    new_json  TEXT
) STRICT;
-- Append-only: the database refuses edits and deletions of audit rows.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"#,
    // 2: a revision counter, bumped by every commit, so a plan made from an older state is refused.
    r#"
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO store_meta (key, value) VALUES ('revision', 0);
"#,
    // 3: invitations (a keyed hash of a one-time code, never the code) and passwords people choose.
    r#"
ALTER TABLE users ADD COLUMN password_chosen_at TEXT;
ALTER TABLE users ADD COLUMN invitation_id TEXT;
ALTER TABLE users ADD COLUMN invitation_hmac TEXT;
ALTER TABLE users ADD COLUMN invitation_rotation INTEGER;
ALTER TABLE users ADD COLUMN invitation_issued_at TEXT;
ALTER TABLE users ADD COLUMN invitation_expires_at TEXT;
ALTER TABLE users ADD COLUMN invitation_state TEXT
    CHECK (invitation_state IN ('pending', 'issued', 'accepted'));
CREATE UNIQUE INDEX users_invitation ON users (invitation_id) WHERE invitation_id IS NOT NULL;
"#,
    // 4: failed-login counters, shared by every process using the store (see `throttle.rs`).
    // Keys are keyed hashes; times are milliseconds since the epoch.
    r#"
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    last_at      INTEGER NOT NULL,
    locked_until INTEGER,
    forget_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX login_failures_forget ON login_failures (forget_at);
"#,
    // 5: token keys by owning declaration, so a partial read of a few tokens' keys
    // (`load_partial`, a scoped round) looks them up instead of scanning the table.
    r#"
CREATE INDEX token_keys_owner ON token_keys (owner_namespace, owner_name);
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to `SCHEMA_VERSION`; refuses a database from a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), super::StoreError> {
    // Each step reads the version inside an IMMEDIATE (write-locked) transaction: two
    // processes opening a fresh store at once (the daemon starting, `status` run beside
    // it) take turns, and the second finds the first's work done instead of redoing it.
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current > SCHEMA_VERSION {
            return Err(super::StoreError::NewerSchema {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(sql) = MIGRATIONS.get(current as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
        tracing::info!(version = current + 1, "store schema migrated");
    }
}
