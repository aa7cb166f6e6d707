//! Login sessions: random 256-bit ids handed to the client once, stored and
//! cached only as an HMAC under the server key, with the grants held at login.

use crate::policy::{Grant, Principal};
use crate::secrets::{HashValue, SecretValue, ServerKey};
use crate::store::SessionRow;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Arc;

/// Prefix of session ids, so they are told apart from API tokens and found by secret scanners.
pub const SESSION_PREFIX: &str = "sgs_";
const SESSION_DOMAIN: &str = "stagegate session v1";

/// A fresh session id (`sgs_` + 64 hex characters = 256 random bits).
pub fn new_session_id() -> SecretValue {
    let bytes: [u8; 32] = rand::random();
    SecretValue::from_string(format!("{SESSION_PREFIX}{}", hex::encode(bytes)))
}

/// Whether a bearer value looks like a session id (shape only).
pub fn looks_like_session(s: &str) -> bool {
    s.strip_prefix(SESSION_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The stored form of a session id: HMAC-SHA-256 under the server key, hex.
pub fn session_hash(key: &ServerKey, id: &str) -> HashValue {
    HashValue::new(key.mac_hex(SESSION_DOMAIN, id.as_bytes()))
}

/// A cached session.
#[derive(Clone, Debug)]
pub struct SessionEntry {
    /// Who logged in.
    pub username: String,
    /// Grants held at login (a role change takes effect at the next login).
    pub grants: Vec<Grant>,
    /// Expiry.
    pub expires_at: Timestamp,
    /// The user with those grants, built once: each request shares it instead of copying it.
    pub principal: Arc<Principal>,
}

impl From<&SessionRow> for SessionEntry {
    fn from(r: &SessionRow) -> Self {
        SessionEntry {
            username: r.username.clone(),
            grants: r.grants.clone(),
            expires_at: r.expires_at,
            principal: Arc::new(Principal::user(&r.username, r.grants.clone())),
        }
    }
}

/// Every live session by the hash of its id: a copy of the store's `sessions` table.
#[derive(Debug, Default)]
pub struct SessionCache {
    by_hash: HashMap<String, SessionEntry>,
}

impl SessionCache {
    /// A cache holding `rows`.
    pub fn from_rows(rows: &[SessionRow]) -> Self {
        SessionCache {
            by_hash: rows
                .iter()
                .map(|r| (r.id_hash.expose().to_string(), SessionEntry::from(r)))
                .collect(),
        }
    }

    /// The session with this id hash.
    pub fn get(&self, hash: &HashValue) -> Option<&SessionEntry> {
        self.by_hash.get(hash.expose())
    }

    /// Adds a session.
    pub fn insert(&mut self, hash: &HashValue, entry: SessionEntry) {
        self.by_hash.insert(hash.expose().to_string(), entry);
    }

    /// Removes a session.
    pub fn remove(&mut self, hash: &HashValue) -> Option<SessionEntry> {
        self.by_hash.remove(hash.expose())
    }

    /// Number of sessions.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Hashes of sessions expired at `now` or that `ended` says must end.
    pub fn doomed(&self, now: Timestamp, ended: impl Fn(&SessionEntry) -> bool) -> Vec<HashValue> {
        self.by_hash
            .iter()
            .filter(|(_, s)| s.expires_at <= now || ended(s))
            .map(|(h, _)| HashValue::new(h.clone()))
            .collect()
    }
}
