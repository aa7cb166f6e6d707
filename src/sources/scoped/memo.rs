//! Scoped rounds: a small change planned from the rows it touches.
//!
//! A full round plans all declarations against the whole store state (at 10,000
//! users: one ~0.6 s read and a ~0.5 s plan of 67,000 objects). When only a few
//! files changed since the last round, the daemon runs the very same
//! `plan` + `apply` on a *scope*: the declarations of those files, widened to
//! everything their outcome depends on, against a partial read of the rows
//! those declarations touch ([`Store::load_partial`]). What it keeps between
//! rounds to know this is the [`Memo`]: the store's token after the last
//! round, the next expiry, each file's object keys (hashed) and the last
//! outcomes.
//!
//! Why the scoped plan equals the full one: after a round whose apply did what its plan
//! said (no delivery failed), with no invalid declaration and
//! no broken file, and while nothing else wrote to the store and nothing expired,
//! planning again changes nothing for an object whose declaration did not change
//! and whose inputs did not change. A plan's inputs of one object are its own
//! declaration and rows, its status, and (for bindings and tokens) whether their
//! user exists and is active, (for a user) its username's claim; the scope takes
//! every User of every username involved with that user's row, all its bindings (which the
//! session-ending check of apply reads too) and every token it owns (whose outcome
//! reads its owner's state: a User revoked, removed or declared anew is planned with
//! them), and the rows of declarations gone from the changed files (pruned as the full
//! round prunes them). A stage request's inputs are its own record when it is decided
//! (a decided request is a record: its status is the record's, whatever its file says
//! now), else, a new one, its model's row, its requester's User and bindings (the
//! principal the policy decides with) and the new requests of the same model before it,
//! which are all in the changed files (the memo's round decided every other); the scope
//! plans the edited requests of the changed files with those, and a request gone from them
//! is planned as a removal (its status goes, its record stays: deleting a request does
//! not undo it). A declaration whose only change is its line (lines added or
//! removed above it in its file; [`Part::moved`]) is no edit: nothing planned for another
//! declaration reads it, so it widens nothing, and it is planned for its status alone
//! (its stored status with the new source, [`Snapshot::moved`]). It refuses (falls back
//! to the full round) a User whose username is held by another row, a declaration that
//! disappeared when the round does not know which (only a part, [`Part::removed`], names
//! it: the memo keeps hashes), a new or renamed User without a part (a renamed one's old
//! username is unknown; a part covers it, and the scope then holds both usernames' rows
//! and declarations), a new request whose requester the part does not cover, or rows
//! owned by declarations outside the scope. The
//! property test in `reconciler_tests.rs` checks the equivalence on random edit
//! sequences: plan, store and statuses.

use crate::apply::Outcome;
use crate::plan::{Change, Op};
use crate::snapshot::{ObjectKey, Snapshot, Source};
use crate::store::{StateKeys, StateToken, Store, StoreError, StoreState};
use jiff::Timestamp;
use kube::ResourceExt;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// What a round leaves for the next one to plan a small change alone.
#[derive(Debug)]
pub struct Memo {
    /// The store's token once the round (the bootstrap step included) was done.
    pub token: StateToken,
    /// The first token-key or invitation expiry after the round (None: none pending).
    pub until: Option<Timestamp>,
    /// Per manifest file: the hashes of the keys it declared, sorted.
    files: HashMap<String, Vec<u64>>,
    /// Every declared object's outcome, sorted by key.
    pub outcomes: Arc<Vec<Outcome>>,
    hasher: RandomState,
    /// The label of a declaration's source file: what `files` and a round's changed
    /// files are keyed by ([`by_file`] in directory mode; the controller groups its
    /// objects into a fixed number of buckets, see `sources::kube::scoped`).
    label: Label,
}

/// Maps a declaration's source file (`Source::file`) to the label a [`Memo`] and a
/// [`super::Kept`] keep its declarations under: the "file" a change names.
pub type Label = fn(&str) -> Cow<'_, str>;

/// Directory mode's [`Label`]: each manifest file is its own label.
pub fn by_file(file: &str) -> Cow<'_, str> {
    Cow::Borrowed(file)
}

/// What a round that read only a part of the declarations tells [`Memo::scope`].
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// The changed files' declarations that changed (added, or changed content).
    pub edited: &'a BTreeSet<ObjectKey>,
    /// The changed files' Users, bindings and tokens whose only change is their line: each
    /// is planned for its status alone ([`Snapshot::moved`]) unless the scope widens to it.
    pub moved: &'a BTreeSet<ObjectKey>,
    /// The declarations gone from the changed files.
    pub removed: &'a BTreeSet<ObjectKey>,
    /// The usernames whose every User, AccessBinding and owned ApiToken the part holds
    /// (every username the edited and removed declarations name, before and after).
    pub covered: &'a BTreeSet<String>,
}

impl<'a> Part<'a> {
    /// The part a refresh's object-by-object edits describe.
    pub fn of(edits: &'a crate::sources::watch::Edits) -> Part<'a> {
        Part {
            edited: &edits.objects,
            moved: &edits.moved,
            removed: &edits.removed,
            covered: &edits.usernames,
        }
    }
}

/// A scope: the declarations to plan and the rows to read for them.
#[derive(Debug)]
pub struct Scope {
    /// The declarations (of the changed files, widened to their dependencies).
    pub snapshot: Snapshot,
    /// The rows they touch (and the rows of the removed declarations).
    pub keys: StateKeys,
    /// Declarations gone from the changed files (their rows are pruned).
    pub removed: BTreeSet<ObjectKey>,
}

fn outcome_key(o: &Outcome) -> (&str, &str, &str) {
    (&o.kind, &o.namespace, &o.name)
}

/// Every declaration of `snap` as (source, key).
fn declared_at(snap: &Snapshot) -> impl Iterator<Item = (&Source, ObjectKey)> {
    snap.users
        .iter()
        .map(|d| (&d.source, d.key()))
        .chain(snap.bindings.iter().map(|d| (&d.source, d.key())))
        .chain(snap.tokens.iter().map(|d| (&d.source, d.key())))
        .chain(snap.requests.iter().map(|d| (&d.source, d.key())))
}

/// Every declaration of `snap` as (label of its file, key).
fn declared(snap: &Snapshot, label: Label) -> impl Iterator<Item = (Cow<'_, str>, ObjectKey)> {
    declared_at(snap).map(move |(s, k)| (label(s.file.as_deref().unwrap_or("")), k))
}

/// Whether a round's apply did what its plan said: every outcome apply changed from the
/// plan's status (a delivered Secret's key or password now in force) is Ready. A failed
/// or refused delivery leaves an object not ready, and the next round must plan it again
/// (a full round: the plan of its inputs alone would not show it).
pub fn outcomes_as_planned(plan: &crate::plan::Plan, outcomes: &[Outcome]) -> bool {
    plan.objects.len() == outcomes.len()
        && plan
            .objects
            .iter()
            .zip(outcomes)
            .all(|(s, o)| o.ready || Outcome::from(s) == *o)
}

/// Whether a plan's changes can only remove or keep expiries (no key issued or moved,
/// no invitation or password issued): the next expiry known before it still bounds.
pub fn adds_no_expiry(changes: &[Change]) -> bool {
    changes.iter().all(|c| {
        matches!(
            c.op,
            Op::UpdateUser { .. }
                | Op::DeleteUser { .. }
                | Op::Bind { .. }
                | Op::UpdateBinding { .. }
                | Op::Unbind { .. }
                | Op::RevokeToken { .. }
                | Op::ExpireToken { .. }
                | Op::DeleteToken { .. }
                | Op::SetStatus { .. }
                | Op::DeleteStatus
        )
    })
}

/// Whether the snapshot's problems leave a round's inputs unbounded: an invalid
/// declaration (its rows are kept or withdrawn by rules that look across objects) or a
/// broken file (its old rows are kept).
fn unbounded(snap: &Snapshot) -> bool {
    !snap.broken_files.is_empty() || snap.diagnostics.iter().any(|d| d.is_error())
}

impl Memo {
    /// The memo of a round that planned `snap` and ended with `outcomes` (sorted by key,
    /// as `plan` gives them), or None when the next round must be a full one.
    pub fn new(
        snap: &Snapshot,
        outcomes: Arc<Vec<Outcome>>,
        token: StateToken,
        until: Option<Timestamp>,
    ) -> Option<Memo> {
        Memo::labelled(snap, outcomes, token, until, by_file)
    }

    /// [`Memo::new`] with the declarations kept under `label` of their source file.
    pub fn labelled(
        snap: &Snapshot,
        outcomes: Arc<Vec<Outcome>>,
        token: StateToken,
        until: Option<Timestamp>,
        label: Label,
    ) -> Option<Memo> {
        if unbounded(snap)
            || !outcomes
                .windows(2)
                .all(|w| outcome_key(&w[0]) < outcome_key(&w[1]))
        {
            return None;
        }
        let hasher = RandomState::new();
        let mut files: HashMap<String, Vec<u64>> = HashMap::new();
        for (file, key) in declared(snap, label) {
            match files.get_mut(file.as_ref()) {
                Some(v) => v.push(hasher.hash_one(&key)),
                None => {
                    files.insert(file.into_owned(), vec![hasher.hash_one(&key)]);
                }
            }
        }
        for v in files.values_mut() {
            v.sort_unstable();
            // Kept while the process idles: no room to grow.
            v.shrink_to_fit();
        }
        files.shrink_to_fit();
        Some(Memo {
            token,
            until,
            files,
            outcomes,
            hasher,
            label,
        })
    }

    /// The memo after a scoped round of `scope` that applied as planned: the changed
    /// files' keys and the scope's outcomes replace the old ones.
    pub fn advance(
        mut self,
        snap: &Snapshot,
        changed: &BTreeSet<String>,
        removed: &BTreeSet<ObjectKey>,
        scoped: &[Outcome],
        token: StateToken,
        until: Option<Timestamp>,
    ) -> Memo {
        for f in changed {
            self.files.remove(f);
        }
        for (file, key) in declared(snap, self.label).filter(|(f, _)| changed.contains(f.as_ref()))
        {
            let h = self.hasher.hash_one(&key);
            self.files.entry(file.into_owned()).or_default().push(h);
        }
        for f in changed {
            if let Some(v) = self.files.get_mut(f) {
                v.sort_unstable();
            }
        }
        let outcomes = Arc::make_mut(&mut self.outcomes);
        // A removed declaration has no outcome any more (one moved to another changed file
        // gets its new one below).
        for k in removed {
            let key = (k.kind.as_str(), k.namespace.as_str(), k.name.as_str());
            if let Ok(i) = outcomes.binary_search_by(|x| outcome_key(x).cmp(&key)) {
                outcomes.remove(i);
            }
        }
        for o in scoped {
            match outcomes.binary_search_by(|x| outcome_key(x).cmp(&outcome_key(o))) {
                Ok(i) => outcomes[i] = o.clone(),
                Err(i) => outcomes.insert(i, o.clone()),
            }
        }
        self.token = token;
        self.until = until;
        self
    }

    /// The next expiry after a scoped round this memo allowed, of the rows `keys`: the
    /// memo's, or earlier when the round's apply wrote (`applied`) and one of the scope's
    /// rows now expires first (a key just issued); every other row is as the memo's round
    /// left it. Reads the scope's rows from `store` only when `applied`.
    pub fn until_after(
        &self,
        applied: bool,
        keys: &StateKeys,
        store: &dyn Store,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        if !applied {
            return Ok(self.until);
        }
        let after = store.load_partial(keys)?;
        Ok(earlier(self.until, after.next_expiry(now)))
    }

    /// The scope of a round whose only news is `changed` (manifest files), or None when
    /// the change is not provably local (see the module documentation). Reads the store.
    ///
    /// With `part`, `snap` holds only a part of the declarations, and the part says which
    /// of the changed files' declarations changed (`Part::edited`; the others are as the
    /// last round planned them, and their inputs change only through the edited ones, which
    /// the scope widens to), which are gone (`Part::removed`) and for which usernames `snap`
    /// holds every User, binding and owned token (`Part::covered`): a scope that needs
    /// another's is refused. Without a part (`snap` holds every declaration) a removed
    /// declaration or a new User is refused: the memo keeps keys only as hashes, so neither
    /// the removed key nor a renamed User's old username is known.
    pub fn scope(
        &self,
        snap: &Snapshot,
        changed: &BTreeSet<String>,
        part: Option<Part>,
        store: &dyn Store,
    ) -> Result<Option<(Scope, StoreState)>, StoreError> {
        if unbounded(snap) {
            return Ok(None);
        }
        let label = self.label;
        let in_changed = |s: &crate::snapshot::Source| {
            s.file
                .as_deref()
                .is_some_and(|f| changed.contains(label(f).as_ref()))
        };
        // A declaration gone from a changed file (deleted, renamed or moved) is planned as
        // a removal only when the part names it (a stage request's removal undoes nothing:
        // its status goes, its record stays).
        let mut now: HashMap<Cow<str>, HashSet<u64>> = HashMap::new();
        for (file, key) in declared(snap, label).filter(|(f, _)| changed.contains(f.as_ref())) {
            now.entry(file)
                .or_default()
                .insert(self.hasher.hash_one(&key));
        }
        let declared_now: HashSet<ObjectKey> = match part {
            Some(p) if !p.removed.is_empty() => declared(snap, label)
                .filter(|(f, _)| changed.contains(f.as_ref()))
                .map(|(_, k)| k)
                .collect(),
            _ => HashSet::new(),
        };
        let removed: BTreeSet<ObjectKey> = part
            .map(|p| {
                p.removed
                    .iter()
                    .filter(|k| !declared_now.contains(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let removed_hashes: HashSet<u64> = part
            .map(|p| p.removed.iter().map(|k| self.hasher.hash_one(k)).collect())
            .unwrap_or_default();
        for f in changed {
            let before = self.files.get(f).map(Vec::as_slice).unwrap_or_default();
            let after = now.get(f.as_str());
            let gone = |h: &u64| !after.is_some_and(|a| a.contains(h));
            if before
                .iter()
                .any(|h| gone(h) && !removed_hashes.contains(h))
            {
                return Ok(None);
            }
        }
        let edited = |s: &crate::snapshot::Source, k: ObjectKey| {
            in_changed(s) && part.is_none_or(|p| p.edited.contains(&k))
        };
        let users: Vec<_> = snap
            .users
            .iter()
            .filter(|d| edited(&d.source, d.key()))
            .collect();
        let bindings: Vec<_> = snap
            .bindings
            .iter()
            .filter(|d| edited(&d.source, d.key()))
            .collect();
        let tokens: Vec<_> = snap
            .tokens
            .iter()
            .filter(|d| edited(&d.source, d.key()))
            .collect();
        // The edited stage requests of the changed files (with a part, a request whose line
        // moved is edited; one neither changed nor moved keeps its status, which reads only
        // its record): planning a decided one again reads only its record (its status is
        // the record's, or `Immutable` when its spec was edited), and a new one is decided
        // below.
        let requests: Vec<_> = snap
            .requests
            .iter()
            .filter(|d| edited(&d.source, d.key()))
            .collect();
        // First read, what the checks below need: the rows of the changed Users' usernames
        // (with a part, when a User changed or a declaration is gone: of every username they
        // name, before and after), the rows the changed bindings own (their old users) and
        // the records of the requests (which of them are decided). Token keys wait for the
        // scope's read.
        let mut first = StateKeys {
            usernames: users.iter().map(|u| u.object.username()).collect(),
            objects: bindings
                .iter()
                .map(|d| d.key())
                .chain(requests.iter().map(|d| d.key()))
                .collect(),
            ..StateKeys::default()
        };
        if let Some(p) = part.filter(|_| !users.is_empty() || !removed.is_empty()) {
            first.usernames.extend(p.covered.iter().cloned());
        }
        let before = store.load_partial(&first)?;
        // A User may change its state (every binding and owned token of its username is in
        // the scope) but not take a username another row holds. A new User (no row claims
        // its username) or a renamed one (its row is under its old username) is scoped
        // only with a part: the part's usernames, read above, include the old username (it
        // covers every username the edited declarations name, before and after), so the
        // row it leaves, the old name's bindings and tokens, and any other User waiting
        // for the freed username are all in the scope. Without a part the old username is
        // unknown (the memo keeps hashes).
        for u in &users {
            let key = u.key();
            let owned = |r: &crate::store::UserRow| r.owner.as_ref().is_some_and(|o| o.key == key);
            let ok = match before.users.get(&u.object.username()) {
                Some(r) => owned(r),
                None => part.is_some(),
            };
            if !ok {
                return Ok(None);
            }
        }
        // A request without a record is new (after the memo's round every declared request
        // was decided, so the new ones are all in the changed files): `plan` decides them,
        // in request order, against their models' rows and their requesters' Users and
        // bindings (`replay::user_principals`). Nothing else of the plan reads a request.
        let new_requests: Vec<_> = requests
            .iter()
            .filter(|r| {
                let k = r.key();
                !before.requests.contains_key(&(k.namespace, k.name))
            })
            .collect();
        let models: BTreeSet<(crate::policy::Scope, String)> = new_requests
            .iter()
            .map(|r| (r.object.spec.scope(), r.object.spec.model.clone()))
            .collect();
        let mut usernames: BTreeSet<String> = first.usernames;
        usernames.extend(bindings.iter().map(|b| b.object.spec.user.clone()));
        usernames.extend(before.bindings.iter().map(|b| b.username.clone()));
        usernames.extend(tokens.iter().filter_map(|t| t.object.spec.owner.clone()));
        usernames.extend(
            new_requests
                .iter()
                .map(|r| r.object.spec.requested_by.clone()),
        );
        if part.is_some_and(|p| !usernames.is_subset(p.covered)) {
            return Ok(None);
        }
        let changed_bindings: BTreeSet<ObjectKey> = bindings.iter().map(|d| d.key()).collect();
        let changed_tokens: BTreeSet<ObjectKey> = tokens.iter().map(|d| d.key()).collect();
        let owners_move = !users.is_empty() || removed.iter().any(|k| k.kind == "User");
        let mut scoped = Snapshot {
            users: snap
                .users
                .iter()
                .filter(|u| usernames.contains(&u.object.username()))
                .cloned()
                .collect(),
            bindings: snap
                .bindings
                .iter()
                .filter(|b| {
                    usernames.contains(&b.object.spec.user) || changed_bindings.contains(&b.key())
                })
                .cloned()
                .collect(),
            // A token's outcome reads its owner's state and existence: when a User changed
            // or is gone, every token of a username in scope. (Otherwise each user in scope
            // keeps its row and state, and reading every token key for them would cost a
            // scan of the token keys for nothing.)
            tokens: snap
                .tokens
                .iter()
                .filter(|t| {
                    changed_tokens.contains(&t.key())
                        || owners_move
                            && t.object
                                .spec
                                .owner
                                .as_ref()
                                .is_some_and(|o| usernames.contains(o))
                })
                .cloned()
                .collect(),
            requests: requests.iter().map(|&r| r.clone()).collect(),
            ..Snapshot::default()
        };
        let referenced: BTreeSet<(String, String)> = scoped
            .users
            .iter()
            .filter_map(|u| {
                let r = u.object.spec.password_secret_ref.as_ref()?;
                Some((u.object.namespace().unwrap_or_default(), r.name.clone()))
            })
            .collect();
        scoped.secrets = snap
            .secrets
            .iter()
            .filter(|(k, _)| referenced.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        scoped.diagnostics = Vec::new();
        let objects: BTreeSet<ObjectKey> = scoped
            .users
            .iter()
            .map(|d| d.key())
            .chain(scoped.bindings.iter().map(|d| d.key()))
            .chain(scoped.tokens.iter().map(|d| d.key()))
            .chain(scoped.requests.iter().map(|d| d.key()))
            .chain(removed.iter().cloned())
            .collect();
        // A declaration whose only change is its line (`Part::moved`) and that the scope does
        // not plan in full is planned for its status alone: the stored one with its new
        // source (see `plan`'s `moved_statuses` for why that is what the full round plans).
        // It changes no input of another declaration, so it widens nothing.
        scoped.moved = match part {
            Some(p) if !p.moved.is_empty() => declared_at(snap)
                .filter(|(s, k)| in_changed(s) && p.moved.contains(k) && !objects.contains(k))
                .map(|(s, k)| (k, s.clone()))
                .collect(),
            _ => BTreeMap::new(),
        };
        let keys = StateKeys {
            usernames,
            objects,
            statuses: scoped.moved.keys().cloned().collect(),
            models,
        };
        let state = store.load_partial(&keys)?;
        // Every row read must be one a declaration in scope owns (or no declaration's), and
        // each declaration planned for its status alone must have one.
        let owned_in_scope = |o: &Option<crate::store::Owner>| {
            o.as_ref().is_none_or(|o| keys.objects.contains(&o.key))
        };
        let closed = state.users.values().all(|u| owned_in_scope(&u.owner))
            && state.bindings.iter().all(|b| owned_in_scope(&b.owner))
            && keys.statuses.iter().all(|k| state.statuses.contains_key(k))
            && state.revision == before.revision;
        if !closed {
            return Ok(None);
        }
        Ok(Some((
            Scope {
                snapshot: scoped,
                keys,
                removed,
            },
            state,
        )))
    }
}

/// The earlier of two next expiries (None: none pending).
fn earlier(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
