//! The in-memory index the hot path reads: users with their grants and
//! password hashes, token keys by key id, and models. Built from a
//! [`StoreState`] after each apply and swapped in whole; no SQL per request.

use crate::plan::{answer_among, ModelId, Models, Question, QuestionError};
use crate::policy::{
    decide, Action, Decision, Grant, Label, ModelRef, ModelState, PackedModel, Principal, Request,
    Stage,
};
use crate::resources::UserState;
use crate::secrets::{parse_token_parts, verify_parts, HashValue, ServerKey, TokenFormatError};
use crate::store::{KeyState, ModelRow, StoreState, TokenKeyRow, UserRow};
use jiff::Timestamp;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// A user as login and session checks need it.
#[derive(Clone, Debug)]
pub struct UserEntry {
    /// Active or Revoked.
    pub state: UserState,
    /// argon2id PHC string of the current password (none = cannot log in).
    pub password_hash: Option<HashValue>,
    /// Grants from the user's bindings, sorted, roles allowed at their scope only.
    pub grants: Vec<Grant>,
    /// The bootstrap administrator (issue 8), not a declared user.
    pub bootstrap: bool,
    /// When the person chose the password in force (self-service); none for a declared one.
    pub password_chosen_at: Option<Timestamp>,
}

impl UserEntry {
    /// Whether the user may log in and keep its sessions.
    pub fn active(&self) -> bool {
        self.state == UserState::Active
    }
}

/// A token key as verification needs it.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    /// Token name: the API principal.
    pub name: String,
    /// HMAC of the secret (server key).
    pub secret_hmac: HashValue,
    /// The same HMAC's bytes, decoded once here (none when the stored text is not 32 bytes of
    /// hex: such a key never verifies).
    pub secret_mac: Option<[u8; 32]>,
    /// The token's role and scope.
    pub grant: Grant,
    /// Issued (delivered) and not revoked.
    pub live: bool,
    /// End of validity; none = never.
    pub expires_at: Option<Timestamp>,
    /// Accountable user, if any.
    pub owner_user: Option<String>,
    /// The token as a principal, built once: each request shares it instead of copying it.
    pub principal: Arc<Principal>,
}

/// Why a presented API token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenCheckError {
    /// Malformed or bad checksum: refused without a lookup.
    #[error(transparent)]
    Format(#[from] TokenFormatError),
    /// Unknown key id, wrong secret, pending, revoked, expired, or owner revoked.
    #[error("invalid or inactive token")]
    Rejected,
}

/// A verified token: who it is and until when it is valid.
#[derive(Clone, Debug)]
pub struct TokenIdentity {
    /// Public key id.
    pub key_id: String,
    /// The principal (token name and its one grant).
    pub principal: Arc<Principal>,
    /// End of validity; none = never.
    pub expires_at: Option<Timestamp>,
}

/// Everything the hot path reads, built in one go from the store.
///
/// A clone shares every entry with the original (users and token keys in [`Shards`], the
/// models behind an `Arc`), so [`Index::patched`] copies only what a commit touched and a
/// reader's index never changes under it.
#[derive(Clone, Debug)]
pub struct Index {
    users: Shards<UserEntry>,
    tokens: Shards<TokenEntry>,
    models: Arc<Models>,
    /// Models by name: a question names one model, so only that name's entries (usually one)
    /// are resolved and handed to the policy.
    by_name: Arc<ByName>,
    /// Never matches: verified against when a key id is unknown, so timing does not reveal which exist.
    dummy_mac: [u8; 32],
}

impl Default for Index {
    fn default() -> Self {
        Index::build(&StoreState::default())
    }
}

impl Index {
    /// Builds the index from a store read.
    pub fn build(state: &StoreState) -> Self {
        let mut users: HashMap<String, UserEntry> = state
            .users
            .values()
            .map(|u| (u.username.clone(), user_entry(u)))
            .collect();
        for b in &state.bindings {
            if !b.role.allowed_at(&b.scope) {
                continue;
            }
            if let Some(u) = users.get_mut(&b.username) {
                u.grants.push(Grant {
                    role: b.role,
                    scope: b.scope.clone(),
                });
            }
        }
        for u in users.values_mut() {
            u.grants.sort();
            u.grants.dedup();
        }
        let tokens = state
            .token_keys
            .values()
            .map(|t| (t.key_id.clone(), token_entry(t)))
            .collect();
        let models: Models = state
            .models
            .values()
            .map(|m| (model_id(m), m.state()))
            .collect();
        let by_name = ByName::new(&models);
        Index {
            users: users.into_iter().collect(),
            tokens,
            models: Arc::new(models),
            by_name: Arc::new(by_name),
            dummy_mac: [0; 32],
        }
    }

    /// This index with some rows replaced by what the store holds now: each user of
    /// `users` with its current row (`None`: gone) and the grants of its current bindings
    /// (as [`crate::store::Store::grants`] gives them), each token key of `tokens` by key
    /// id (`None`: gone), and, when given, every model. Everything else is shared with
    /// `self` (only the shards holding a replaced user or key are copied, and the models
    /// only when given), so the cost follows the number of rows, not the index's size; the
    /// result is what [`Index::build`] gives for the store's state when those are all the
    /// rows that changed (a property test checks it).
    pub fn patched(
        &self,
        users: Vec<(String, Option<UserRow>, Vec<Grant>)>,
        tokens: Vec<(String, Option<TokenKeyRow>)>,
        models: Option<Vec<ModelRow>>,
    ) -> Self {
        let mut next = self.clone();
        for (name, row, grants) in users {
            match row {
                Some(row) => {
                    let mut entry = user_entry(&row);
                    // `grants` is sorted and distinct; keeping the allowed ones keeps it so.
                    entry.grants = grants
                        .into_iter()
                        .filter(|g| g.role.allowed_at(&g.scope))
                        .collect();
                    next.users.insert(name, entry);
                }
                None => {
                    next.users.remove(&name);
                }
            }
        }
        for (key_id, row) in tokens {
            match row {
                Some(row) => next.tokens.insert(key_id, token_entry(&row)),
                None => next.tokens.remove(&key_id),
            };
        }
        if let Some(models) = models {
            let models: Models = models.iter().map(|m| (model_id(m), m.state())).collect();
            next.by_name = Arc::new(ByName::new(&models));
            next.models = Arc::new(models);
        }
        next
    }

    /// Everything this index holds, as one text in a fixed order (tests compare indexes
    /// with it; hashes are written out, so it is never logged).
    #[cfg(test)]
    pub(crate) fn contents(&self) -> String {
        use std::collections::BTreeMap;
        use std::fmt::Write;
        let mut out = String::new();
        for (name, u) in self.users.iter().collect::<BTreeMap<_, _>>() {
            let hash = u.password_hash.as_ref().map(HashValue::expose);
            let _ = writeln!(
                out,
                "user {name} {:?} {hash:?} {:?} {} {:?}",
                u.state, u.grants, u.bootstrap, u.password_chosen_at
            );
        }
        for (id, t) in self.tokens.iter().collect::<BTreeMap<_, _>>() {
            let _ = writeln!(
                out,
                "token {id} {} {} {:?} {:?} {} {:?} {:?} {:?} {:?}",
                t.name,
                t.secret_hmac.expose(),
                t.secret_mac,
                t.grant,
                t.live,
                t.expires_at,
                t.owner_user,
                t.principal.name,
                t.principal.grants()
            );
        }
        let _ = writeln!(out, "models {:?}", self.models);
        let mut named: Vec<&[Entry]> = self
            .by_name
            .slots
            .iter()
            .map(|slot| self.by_name.models(slot))
            .collect();
        named.sort_by(|a, b| {
            a.first()
                .map(|e| &e.state.name)
                .cmp(&b.first().map(|e| &e.state.name))
        });
        for models in named {
            let name = models.first().map_or("", |e| e.state.name.as_str());
            let _ = writeln!(out, "named {name} {models:?}");
        }
        out
    }

    /// A user by username.
    pub fn user(&self, username: &str) -> Option<&UserEntry> {
        self.users.get(username)
    }

    /// Number of users, token keys and models.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.users.len(), self.tokens.len(), self.models.len())
    }

    /// The models, as the policy sees them.
    pub fn models(&self) -> &Models {
        &self.models
    }

    /// Live token keys expiring after `now` and within `window` of it.
    pub fn tokens_expiring_within(&self, now: Timestamp, window: std::time::Duration) -> usize {
        let Ok(span) = jiff::SignedDuration::try_from(window) else {
            return 0;
        };
        let Ok(until) = now.checked_add(span) else {
            return 0;
        };
        self.tokens
            .values()
            .filter(|t| t.live && t.expires_at.is_some_and(|e| e > now && e <= until))
            .count()
    }

    /// Verifies a presented API token: checksum (no lookup), then one map lookup and a constant-time HMAC check.
    pub fn verify_token(
        &self,
        key: &ServerKey,
        presented: &str,
        now: Timestamp,
    ) -> Result<TokenIdentity, TokenCheckError> {
        let parsed = parse_token_parts(presented)?;
        let entry = self.tokens.get(parsed.key_id());
        // Always compute one HMAC so an unknown key id costs what a known one does.
        let stored = entry
            .and_then(|e| e.secret_mac.as_ref())
            .unwrap_or(&self.dummy_mac);
        let matches = verify_parts(&parsed, stored, key);
        let Some(entry) = entry.filter(|e| matches && e.secret_mac.is_some()) else {
            return Err(TokenCheckError::Rejected);
        };
        if !self.token_usable(entry, now) {
            return Err(TokenCheckError::Rejected);
        }
        Ok(TokenIdentity {
            key_id: parsed.key_id().to_string(),
            principal: entry.principal.clone(),
            expires_at: entry.expires_at,
        })
    }

    /// The principal called `name` at `now`: an active user with its grants, else a usable token of that name.
    pub fn principal(&self, name: &str, now: Timestamp) -> Option<Principal> {
        if let Some(user) = self.users.get(name).filter(|u| u.active()) {
            return Some(Principal::user(name, user.grants.clone()));
        }
        self.tokens
            .values()
            .find(|t| t.name == name && self.token_usable(t, now))
            .map(|t| Principal::token(&t.name, t.grant.clone()))
    }

    /// Whether a token key works at `now`: issued, not revoked, unexpired, and its owner (if any) active.
    fn token_usable(&self, entry: &TokenEntry, now: Timestamp) -> bool {
        let unexpired = entry.expires_at.is_none_or(|e| now < e);
        // Defence in depth: apply revokes an owner's tokens, but a revoked owner is also refused here.
        let owner_ok = entry
            .owner_user
            .as_deref()
            .and_then(|o| self.users.get(o))
            .is_none_or(UserEntry::active);
        entry.live && unexpired && owner_ok
    }

    /// Answers an authorization question for `principal` with the policy module.
    pub fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        q: &'a Question,
    ) -> Result<Decision<'a>, QuestionError> {
        // `answer_among` resolves the model by name (and scope) among the models it is given;
        // handing it only the models of that name gives the same answer without a scan. The
        // one model of a name is handed as its slot holds it (packed scope and owner, stage),
        // named by the question's own string, which the lookup has just matched.
        let name = q.model.as_deref().unwrap_or_default();
        match self.by_name.find(name) {
            Some(slot) if slot.count == 1 => {
                let one = ModelRef {
                    name,
                    scope: &self.by_name.entries[slot.first].state.scope,
                    owner: slot.owner.as_deref(),
                    stage: slot.stage,
                    packed: slot.packed.as_ref(),
                };
                answer_among(principal, std::iter::once(one), q)
            }
            found => {
                let models = found.map_or(&[][..], |slot| self.by_name.models(slot));
                let candidates = models
                    .iter()
                    .map(|e| ModelRef::packed(name, &e.state, e.packed.as_ref()));
                answer_among(principal, candidates, q)
            }
        }
    }

    /// The models `principal` may see (DESIGN §3), sorted by scope and name.
    pub fn visible_models<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> impl Iterator<Item = (&'a ModelId, &'a crate::policy::ModelState)> + 'a {
        self.models.iter().filter(move |(_, m)| {
            decide(
                principal,
                &Request {
                    action: Action::ModelsView,
                    scope: None,
                    model: Some((*m).into()),
                    to: None,
                },
            )
            .allowed
        })
    }
}

/// How many shards a [`Shards`] map has: patching a key copies its shard (about 40 of
/// 10,000 users), cloning the map copies this many pointers.
const SHARDS: usize = 256;

/// A map from names to entries split by hash into [`SHARDS`] maps behind `Arc`s: a clone
/// shares every shard, and a change copies only the shard of the key it changes (copy on
/// write), so an index that readers still hold is patched without copying it whole, and
/// an entry of one index version never changes under another.
#[derive(Clone, Debug)]
struct Shards<V> {
    shards: Vec<Arc<HashMap<String, V>>>,
    /// Picks a key's shard; each shard's map hashes keys with its own `HashMap` keys.
    hasher: foldhash::fast::RandomState,
    /// Number of entries in all shards.
    len: usize,
}

impl<V> Default for Shards<V> {
    fn default() -> Self {
        Shards {
            shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect(),
            hasher: Default::default(),
            len: 0,
        }
    }
}

impl<V: Clone> Shards<V> {
    /// The shard `key` lives in.
    #[inline]
    fn shard(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % SHARDS
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    /// Sets `key`'s entry, copying its shard if another index shares it.
    fn insert(&mut self, key: String, value: V) {
        let i = self.shard(&key);
        if Arc::make_mut(&mut self.shards[i])
            .insert(key, value)
            .is_none()
        {
            self.len += 1;
        }
    }

    /// Removes `key`'s entry, copying its shard if another index shares it (not when absent).
    fn remove(&mut self, key: &str) {
        let i = self.shard(key);
        if self.shards[i].contains_key(key) {
            Arc::make_mut(&mut self.shards[i]).remove(key);
            self.len -= 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }
}

impl<V: Clone> FromIterator<(String, V)> for Shards<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(entries: I) -> Self {
        let mut all = Shards::default();
        for (key, value) in entries {
            all.insert(key, value);
        }
        all
    }
}

/// One model as the hot path reads it: its state, and its scope and owner packed.
#[derive(Clone, Debug)]
struct Entry {
    packed: Option<PackedModel>,
    state: ModelState,
}

/// The models by name: one slot per name in a hash table, each holding inline what a question
/// about the name's one model reads (the name to match, the stage, the packed scope and owner),
/// so that a lookup reads the table's control bytes and one slot, two cache lines, and follows
/// no pointer. The models themselves, grouped by name, are behind it.
#[derive(Clone, Debug, Default)]
struct ByName {
    slots: hashbrown::HashTable<Slot>,
    /// Every model, those of one name next to each other (a slot names its range).
    entries: Vec<Entry>,
    hasher: foldhash::fast::RandomState,
}

/// The models of one name.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct Slot {
    /// The name inline, matched without reading it elsewhere (`None`: too long, and matched
    /// against the first model's name).
    name: Option<Label>,
    /// The name's hash, so the table grows without hashing again.
    hash: u64,
    /// The name's models: `entries[first..first + count]`.
    first: usize,
    count: usize,
    /// The one model's stage, packed scope and owner, and owner (when `count` is 1).
    stage: Option<Stage>,
    packed: Option<PackedModel>,
    owner: Option<Box<str>>,
}

impl ByName {
    fn new(models: &Models) -> ByName {
        let mut named: HashMap<&str, Vec<&ModelState>> = HashMap::new();
        for (id, m) in models {
            named.entry(id.name.as_str()).or_default().push(m);
        }
        let mut by_name = ByName {
            slots: hashbrown::HashTable::with_capacity(named.len()),
            entries: Vec::with_capacity(models.len()),
            hasher: Default::default(),
        };
        for (name, all) in named {
            let first = by_name.entries.len();
            by_name.entries.extend(all.iter().map(|m| Entry {
                packed: PackedModel::new(m),
                state: (*m).clone(),
            }));
            let one = match all.as_slice() {
                [one] => Some(*one),
                _ => None,
            };
            let hash = by_name.hasher.hash_one(name);
            let slot = Slot {
                name: Label::new(name),
                hash,
                first,
                count: all.len(),
                stage: one.and_then(|m| m.stage),
                packed: one.and_then(PackedModel::new),
                owner: one.and_then(|m| m.owner.as_deref()).map(Into::into),
            };
            by_name.slots.insert_unique(hash, slot, |s| s.hash);
        }
        by_name
    }

    /// The slot of the models named `name`.
    #[inline]
    fn find(&self, name: &str) -> Option<&Slot> {
        let label = Label::new(name);
        self.slots
            .find(self.hasher.hash_one(name), |s| match (&s.name, &label) {
                (Some(mine), Some(theirs)) => mine == theirs,
                (None, None) => self
                    .entries
                    .get(s.first)
                    .is_some_and(|e| e.state.name == name),
                _ => false,
            })
    }

    /// The models of `slot`.
    fn models(&self, slot: &Slot) -> &[Entry] {
        self.entries
            .get(slot.first..slot.first + slot.count)
            .unwrap_or_default()
    }
}

/// A user's entry without its grants (the caller adds them).
fn user_entry(u: &UserRow) -> UserEntry {
    UserEntry {
        state: u.state,
        password_hash: u.password_hash.clone(),
        grants: Vec::new(),
        bootstrap: u.bootstrap,
        password_chosen_at: u.password_chosen_at,
    }
}

/// A token key's entry.
fn token_entry(t: &TokenKeyRow) -> TokenEntry {
    TokenEntry {
        name: t.token_name.clone(),
        secret_hmac: t.secret_hmac.clone(),
        secret_mac: decode_mac(&t.secret_hmac),
        grant: t.grant(),
        live: t.state == KeyState::Issued && t.revoked_at.is_none(),
        expires_at: t.expires_at,
        owner_user: t.owner_user.clone(),
        principal: Arc::new(Principal::token(&t.token_name, t.grant())),
    }
}

/// The bytes of a stored HMAC (64 hex digits).
fn decode_mac(hmac: &HashValue) -> Option<[u8; 32]> {
    let mut mac = [0u8; 32];
    hex::decode_to_slice(hmac.expose(), &mut mac).ok()?;
    Some(mac)
}

fn model_id(m: &ModelRow) -> ModelId {
    ModelId {
        scope: m.scope.clone(),
        name: m.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PrincipalKind, Role, Scope};
    use crate::store::BindingRow;

    fn key(id: &str, name: &str, owner: Option<&str>) -> TokenKeyRow {
        TokenKeyRow {
            key_id: id.into(),
            token_name: name.into(),
            namespace: "ns".into(),
            secret_hmac: HashValue::new("11".repeat(32)),
            role: Role::Deployer,
            scope: Scope::customer("acme"),
            owner_user: owner.map(str::to_string),
            issued_at: Timestamp::UNIX_EPOCH,
            expires_at: None,
            revoked_at: None,
            revoked_reason: None,
            rotation: 0,
            state: KeyState::Issued,
            secret_name: format!("{name}-token"),
            owner: None,
        }
    }

    /// can-i --store: users with their allowed grants, then usable tokens by name.
    #[test]
    fn principal_is_an_active_user_or_a_usable_token() {
        let mut state = StoreState::default();
        let mut gone = UserRow::new("gone", None);
        gone.state = UserState::Revoked;
        for u in [UserRow::new("dan", None), gone] {
            state.users.insert(u.username.clone(), u);
        }
        for (role, scope) in [
            (Role::Developer, Scope::customer("acme")),
            // Not allowed globally: left out, as the API leaves it out.
            (Role::Developer, Scope::global()),
        ] {
            state.bindings.push(BindingRow {
                username: "dan".into(),
                role,
                scope,
                owner: None,
            });
        }
        let now = Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(1);
        let mut expired = key("k2", "old", None);
        expired.expires_at = Some(Timestamp::UNIX_EPOCH);
        let mut pending = key("k3", "new", None);
        pending.state = KeyState::Pending;
        for k in [
            key("k1", "ci", Some("dan")),
            expired,
            pending,
            key("k4", "orphan", Some("gone")),
        ] {
            state.token_keys.insert(k.key_id.clone(), k);
        }
        let index = Index::build(&state);

        let dan = index.principal("dan", now).expect("dan is active");
        assert_eq!(dan.kind, PrincipalKind::User);
        assert_eq!(
            dan.grants(),
            [Grant {
                role: Role::Developer,
                scope: Scope::customer("acme")
            }]
        );
        let ci = index.principal("ci", now).expect("ci is a live token");
        assert_eq!((ci.kind, ci.grants().len()), (PrincipalKind::Token, 1));
        for nobody in ["gone", "old", "new", "orphan", "unknown"] {
            assert!(index.principal(nobody, now).is_none(), "{nobody}");
        }
    }

    /// The index answers every question as the policy does over all models (`plan::answer`):
    /// random organizations (model names shared across scopes, names and scope parts too long
    /// to pack), users and tokens, and random questions of every action, with and without a
    /// scope, about existing and unknown models.
    mod same_answers {
        use super::*;
        use crate::plan::answer;
        use crate::policy::Stage;
        use proptest::prelude::*;

        const PARTS: [&str; 5] = [
            "acme",
            "globex",
            "initech-holdings-worldwide",
            "p1",
            "sixteen-byte-cus",
        ];
        // Names held inline up to 16 bytes: two that differ in their last byte, and two
        // just too long, matched against the models' own names.
        const NAMES: [&str; 9] = [
            "m0",
            "m1",
            "fraud",
            "a-model-name-too-long-to-pack",
            "x",
            "sixteen-byte-mod",
            "sixteen-byte-moe",
            "seventeen-byte-md",
            "seventeen-byte-me",
        ];
        const PEOPLE: [&str; 4] = [
            "alan",
            "maria",
            "a-user-name-too-long-to-pack",
            "sixteen-byte-usr",
        ];

        fn scope() -> impl Strategy<Value = Scope> {
            prop_oneof![
                Just(Scope::global()),
                (0..PARTS.len()).prop_map(|c| Scope::customer(PARTS[c])),
                (0..PARTS.len(), 0..PARTS.len())
                    .prop_map(|(c, p)| Scope::project(PARTS[c], PARTS[p])),
            ]
        }

        fn stage() -> impl Strategy<Value = Stage> {
            prop_oneof![
                Just(Stage::Dev),
                Just(Stage::Staging),
                Just(Stage::Production)
            ]
        }

        fn question() -> impl Strategy<Value = Question> {
            (
                proptest::option::of(0..Action::ALL.len()),
                proptest::option::of(0..NAMES.len()),
                proptest::option::of(scope()),
                proptest::option::of(stage()),
            )
                .prop_map(|(a, m, scope, to)| Question {
                    action: a.map(|a| Action::ALL[a]),
                    model: m.map(|m| NAMES[m].to_string()),
                    scope,
                    to,
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]
            #[test]
            fn index_answers_as_the_policy_over_all_models(
                models in proptest::collection::vec(
                    (0..NAMES.len(), scope(), proptest::option::of(0..PEOPLE.len()), stage()),
                    0..12,
                ),
                bindings in proptest::collection::vec(
                    (0..PEOPLE.len(), 0..Role::ALL.len(), scope()),
                    0..10,
                ),
                token in (0..Role::ALL.len(), scope()),
                questions in proptest::collection::vec(question(), 1..40),
            ) {
                let mut state = StoreState::default();
                for who in PEOPLE {
                    let u = UserRow::new(who, None);
                    state.users.insert(u.username.clone(), u);
                }
                for (who, role, scope) in bindings {
                    state.bindings.push(BindingRow {
                        username: PEOPLE[who].into(),
                        role: Role::ALL[role],
                        scope,
                        owner: None,
                    });
                }
                for (name, scope, owner, stage) in models {
                    let row = ModelRow {
                        name: NAMES[name].into(),
                        scope,
                        owner: owner.map(|o| PEOPLE[o].to_string()),
                        stage,
                    };
                    state.models.insert((row.scope.clone(), row.name.clone()), row);
                }
                let index = Index::build(&state);
                let now = Timestamp::UNIX_EPOCH;
                let mut principals: Vec<Principal> =
                    PEOPLE.iter().filter_map(|p| index.principal(p, now)).collect();
                // A token named like a user: it owns no model of that user's.
                principals.push(Principal::token(
                    "alan",
                    Grant {
                        role: Role::ALL[token.0],
                        scope: token.1,
                    },
                ));
                for q in &questions {
                    for p in &principals {
                        let fast = index.authorize(p, q);
                        let slow = answer(p, index.models(), q);
                        match (fast, slow) {
                            (Ok(f), Ok(s)) => prop_assert_eq!(
                                (f.allowed, f.code, f.reason()),
                                (s.allowed, s.code, s.reason()),
                                "{:?} asks {:?}", p.name, q
                            ),
                            (f, s) => prop_assert_eq!(f.err(), s.err(), "{:?} asks {:?}", p.name, q),
                        }
                    }
                }
            }
        }
    }
}
