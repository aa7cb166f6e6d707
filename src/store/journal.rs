//! A journal of what this process's commits wrote, by key, so the HTTP API can update its
//! index from the rows a commit touched instead of reading the whole store again.
//!
//! A store with a journal ([`super::SqliteStore::record_commits`]) pushes one
//! [`Committed`] per successful commit: the store revision the commit produced (read in
//! its own transaction) and the keys it wrote ([`Touched`]). The old username of every
//! binding a commit replaces or deletes is read in the same transaction, before the write,
//! so a binding moved to another user (or deleted) names both users. A reader that finds
//! an unbroken run of entries from the revision it last read up to the store's current
//! one knows every key that changed in between; any gap (a commit by another process or
//! connection, the API's own self-service writes, a full journal) sends it back to a full
//! read. Likewise each status a small commit writes or deletes is read before the write,
//! so the entry says how the number of statuses per kind and readiness moved (the API's
//! gauges follow it without counting every row).

use super::model::StoreOp;
use crate::snapshot::{ObjectKey, FILE_KIND};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Commits touching more keys than this are journaled as [`Committed::touched`] `None`
/// (too large to patch: a reader reads everything, which is then cheaper per key).
pub const MAX_TOUCHED: usize = 2_000;
/// Entries kept unread; older ones are dropped (the reader then finds a gap).
const CAPACITY: usize = 256;

/// The keys one commit wrote, as far as a reader of users, bindings, token keys, models
/// and statuses cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Users written or deleted, and every user that gained or lost a binding (both the old
    /// and the new user of a binding that moved).
    pub usernames: BTreeSet<String>,
    /// Token keys written or deleted, by key id.
    pub token_keys: BTreeSet<String>,
    /// Whether any model was written.
    pub models: bool,
    /// Whether any object status was written or deleted.
    pub statuses: bool,
    /// When `statuses`: how the number of statuses per kind and readiness moved (see
    /// [`Touched::count_statuses`]); `None` when not known (the reader counts them all).
    pub status_counts: Option<StatusCounts>,
    /// Whether a manifest file's status (kind [`FILE_KIND`]) was written or deleted.
    pub files: bool,
}

/// Numbers of object statuses, or changes to them, per kind and readiness.
pub type StatusCounts = BTreeMap<(String, bool), i64>;

impl Touched {
    /// The keys `ops` write, without the old users of replaced or deleted bindings (see
    /// [`Touched::binding_owners`]); `None` when more than [`MAX_TOUCHED`].
    pub fn of(ops: &[StoreOp]) -> Option<Touched> {
        let mut t = Touched::default();
        for op in ops {
            match op {
                StoreOp::UpsertUser(u) => {
                    t.usernames.insert(u.username.clone());
                }
                StoreOp::DeleteUser(name) => {
                    t.usernames.insert(name.clone());
                }
                StoreOp::UpsertBinding(b) => {
                    t.usernames.insert(b.username.clone());
                }
                StoreOp::UpsertTokenKey(k) => {
                    t.token_keys.insert(k.key_id.clone());
                }
                StoreOp::DeleteTokenKey(id) => {
                    t.token_keys.insert(id.clone());
                }
                StoreOp::UpsertModel(_) => t.models = true,
                StoreOp::SetStatus(s) => t.status(&s.key),
                StoreOp::DeleteStatus(k) => t.status(k),
                // Sessions, decided requests, the audit log and the revision check change
                // nothing a reader of the index reads (sessions are read whole).
                StoreOp::EndSessions(_)
                | StoreOp::DeleteBinding(_)
                | StoreOp::InsertRequest(_)
                | StoreOp::Audit(_)
                | StoreOp::ExpectRevision(_) => {}
            }
            if t.len() > MAX_TOUCHED {
                return None;
            }
        }
        (Self::binding_owners(ops).len() + t.len() <= MAX_TOUCHED).then_some(t)
    }

    /// The owners (namespace, name) of the binding rows `ops` replace or delete: their
    /// current users must be read before the write and added to [`Touched::usernames`].
    pub fn binding_owners(ops: &[StoreOp]) -> BTreeSet<(&str, &str)> {
        ops.iter()
            .filter_map(|op| match op {
                StoreOp::UpsertBinding(b) => b.owner.as_ref().map(|o| &o.key),
                StoreOp::DeleteBinding(k) => Some(k),
                _ => None,
            })
            .map(|k| (k.namespace.as_str(), k.name.as_str()))
            .collect()
    }

    fn status(&mut self, key: &ObjectKey) {
        self.statuses = true;
        self.files |= key.kind == FILE_KIND;
    }

    /// The statuses `ops` write or delete, when at most [`MAX_TOUCHED`]: their readiness
    /// before the write (`None`: no row) is read in the commit's transaction and handed to
    /// [`Touched::count_statuses`].
    pub fn status_keys(ops: &[StoreOp]) -> Option<BTreeSet<&ObjectKey>> {
        let keys: BTreeSet<&ObjectKey> = ops
            .iter()
            .filter_map(|op| match op {
                StoreOp::SetStatus(s) => Some(&s.key),
                StoreOp::DeleteStatus(k) => Some(k),
                _ => None,
            })
            .collect();
        (keys.len() <= MAX_TOUCHED).then_some(keys)
    }

    /// Records how `ops` move the number of statuses per kind and readiness, given each
    /// written status's readiness before them (`before`, from [`Touched::status_keys`]).
    pub fn count_statuses(&mut self, ops: &[StoreOp], before: &BTreeMap<&ObjectKey, Option<bool>>) {
        let mut after = before.clone();
        for op in ops {
            match op {
                StoreOp::SetStatus(s) => after.insert(&s.key, Some(s.ready)),
                StoreOp::DeleteStatus(k) => after.insert(k, None),
                _ => None,
            };
        }
        let mut counts = StatusCounts::new();
        let changes = before
            .iter()
            .map(|(k, r)| (k, r, -1))
            .chain(after.iter().map(|(k, r)| (k, r, 1)));
        for (key, ready, n) in changes {
            if let Some(ready) = ready {
                *counts.entry((key.kind.clone(), *ready)).or_default() += n;
            }
        }
        counts.retain(|_, n| *n != 0);
        self.status_counts = Some(counts);
    }

    /// Completes what [`Touched::of`] found in `ops` with what only the store knows, read in
    /// the commit's transaction before its writes: the users of the bindings it replaces or
    /// deletes (`users_of`: binding owner namespace and name → usernames) and, for the
    /// status counts, the readiness of each status it writes (`ready_of`: `None`, no row).
    pub fn read_before<E>(
        &mut self,
        ops: &[StoreOp],
        mut users_of: impl FnMut(&str, &str) -> Result<Vec<String>, E>,
        mut ready_of: impl FnMut(&ObjectKey) -> Result<Option<bool>, E>,
    ) -> Result<(), E> {
        for (namespace, name) in Touched::binding_owners(ops) {
            self.usernames.extend(users_of(namespace, name)?);
        }
        if let Some(keys) = Touched::status_keys(ops).filter(|_| self.statuses) {
            let mut before = BTreeMap::new();
            for key in keys {
                before.insert(key, ready_of(key)?);
            }
            self.count_statuses(ops, &before);
        }
        Ok(())
    }

    /// Number of keys named.
    pub fn len(&self) -> usize {
        self.usernames.len() + self.token_keys.len()
    }

    /// Whether no key is named and no model or status was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && !self.models && !self.statuses
    }

    /// Adds what `other` names (status counts add up; one unknown makes the sum unknown).
    pub fn extend(&mut self, other: Touched) {
        self.usernames.extend(other.usernames);
        self.token_keys.extend(other.token_keys);
        self.models |= other.models;
        if other.statuses {
            self.status_counts = match (
                self.statuses,
                self.status_counts.take(),
                other.status_counts,
            ) {
                (false, _, counts) => counts,
                (true, Some(mut mine), Some(theirs)) => {
                    for (k, n) in theirs {
                        *mine.entry(k).or_default() += n;
                    }
                    mine.retain(|_, n| *n != 0);
                    Some(mine)
                }
                _ => None,
            };
        }
        self.statuses |= other.statuses;
        self.files |= other.files;
    }
}

/// One commit, as journaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The store revision right after the commit.
    pub revision: i64,
    /// What it wrote; `None` when too much to name (see [`MAX_TOUCHED`]).
    pub touched: Option<Touched>,
}

/// A shared, bounded journal of commits (cheap to clone: one journal, many handles).
#[derive(Clone, Debug, Default)]
pub struct CommitJournal(Arc<Mutex<VecDeque<Committed>>>);

impl CommitJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, VecDeque<Committed>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one commit (the oldest entry goes when the journal is full).
    pub fn push(&self, entry: Committed) {
        let mut entries = self.entries();
        if entries.len() == CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// What changed from revision `from` to revision `to`: the union of the entries of
    /// revisions `from + 1 ..= to`, when the journal holds every one of them and each names
    /// its keys; `None` otherwise (a commit it did not see, or one too large). Entries up to
    /// `to` are consumed either way.
    pub fn between(&self, from: i64, to: i64) -> Option<Touched> {
        let mut entries = self.entries();
        let mut all = Touched::default();
        let mut next = from + 1;
        let mut complete = to >= from;
        while entries.front().is_some_and(|e| e.revision <= to) {
            let e = entries.pop_front().expect("checked above");
            if e.revision <= from {
                continue;
            }
            match e.touched {
                Some(t) if e.revision == next => all.extend(t),
                _ => complete = false,
            }
            next = e.revision + 1;
        }
        (complete && next == to + 1).then_some(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(revision: i64, user: &str) -> Committed {
        Committed {
            revision,
            touched: Some(Touched {
                usernames: [user.to_string()].into(),
                ..Touched::default()
            }),
        }
    }

    #[test]
    fn a_run_of_entries_gives_their_union_and_a_gap_gives_none() {
        let j = CommitJournal::new();
        for (r, u) in [(3, "a"), (4, "b"), (5, "c")] {
            j.push(entry(r, u));
        }
        // Revisions 4 and 5 after 3 (3 itself is already read).
        let t = j.between(3, 5).expect("complete");
        assert_eq!(t.usernames, ["b", "c"].map(String::from).into());
        assert_eq!(j.between(5, 5), Some(Touched::default()));

        j.push(entry(7, "d"));
        assert_eq!(j.between(5, 7), None, "revision 6 was not journaled");

        j.push(entry(8, "e"));
        j.push(Committed {
            revision: 9,
            touched: None,
        });
        assert_eq!(j.between(7, 9), None, "revision 9 was too large to name");
        assert_eq!(j.between(9, 10), None, "revision 10 not journaled yet");
        assert_eq!(j.between(4, 3), None, "the store went back");
    }
}
