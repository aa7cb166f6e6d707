//! Scoped rounds in Kubernetes mode: one edited object is validated, planned and
//! applied with the objects it touches, not the whole organization, by the very
//! machinery directory mode uses for a few changed files ([`Kept`],
//! [`Memo::scope`], `validate::validate_part`, `Store::load_partial`).
//!
//! Directory mode keeps its memo and its validation index per manifest file. A
//! cluster has no files: each object is its own source (`User ns/name`), and one
//! entry per object (67,000 at 10,000 users) would cost the idle process tens of
//! MiB. So objects are grouped into *buckets*, the "files" of Kubernetes mode: the
//! label of an object is its kind, its namespace and a hash of its name into
//! [`BUCKETS`] buckets ([`bucket`]). The memo and the index then hold one entry per
//! bucket, and a change to an object is a change to its bucket: every object of the
//! changed buckets is read again, as directory mode reads every declaration of a
//! changed file.
//!
//! The cache records which objects changed since the last round
//! ([`Changes`]); a round whose changes are few and describable builds a part
//! ([`Scoper::part`]): every object of the changed buckets and of the buckets
//! declaring a User, an AccessBinding or an owned ApiToken of a username the
//! changes name, validated alone. [`super::pipeline::run_scoped`] then plans the
//! scope [`Memo::scope`] widens it to, or refuses (the round then reads
//! everything). Any doubt is a whole round: a change to another kind, an object
//! that does not convert, a change to a Secret of ours no object writes, a watch
//! restart, too many changes, a failed round or a failed request. (A Secret change that
//! matters to objects, a password reset or a delivered Secret someone replaced or
//! deleted, is a change of the objects that read or write it: their bucket is read
//! again, and the plan observes the Secret as a whole round would.)

use super::cache::{Cache, Changes, Compact};
use super::pipeline::PartInput;
use super::snapshot::{self, Built};
use crate::resources::{AccessBinding, ApiToken, ModelStageRequest, User};
use crate::snapshot::{ObjectKey, Snapshot};
use crate::sources::scoped::{Kept, Memo, Part};
use crate::validate::validate_part;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How many buckets the objects of one kind in one namespace are hashed into.
///
/// More buckets make a part smaller (at 50,000 bindings in one namespace, 1024 buckets
/// hold ~49 each, and a binding's part reads its bucket and those of its user's
/// declarations: a few hundred objects) and the memo and index larger (one entry per
/// bucket, a few thousand at most, well under a MiB; one entry per object was 60 MiB
/// more in the idle process).
pub const BUCKETS: u64 = 1024;

/// The bucket of the object `kind` `namespace/name`: its label in the [`Memo`] and the
/// [`Kept`] index (the standard library's unkeyed SipHash of the name, as the cache's
/// status digest uses: the same in every round of the process).
pub fn label_of(kind: &str, namespace: &str, name: &str) -> String {
    label_in::<BUCKETS>(kind, namespace, name)
}

/// [`label_of`] with `N` buckets (the benchmark compares bucket counts).
pub fn label_in<const N: u64>(kind: &str, namespace: &str, name: &str) -> String {
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(name, &mut h);
    format!("{kind} {namespace} #{}", std::hash::Hasher::finish(&h) % N)
}

/// The [`crate::sources::scoped::Label`] of Kubernetes mode: the bucket of the object
/// whose source is `file` (`Kind namespace/name`, as [`snapshot::source_of`] writes it).
pub fn bucket(file: &str) -> Cow<'_, str> {
    bucket_in::<BUCKETS>(file)
}

/// [`bucket`] with `N` buckets (the benchmark compares bucket counts).
pub fn bucket_in<const N: u64>(file: &str) -> Cow<'_, str> {
    let (kind, rest) = file.split_once(' ').unwrap_or(("", file));
    let (namespace, name) = rest.split_once('/').unwrap_or(("", rest));
    Cow::Owned(label_in::<N>(kind, namespace, name))
}

/// What the controller keeps between rounds to scope the next one: the validation index
/// of the last whole validation, kept up to date by each part, and the last round's memo.
#[derive(Debug, Default)]
pub struct Scoper {
    kept: Option<Kept>,
    memo: Option<Memo>,
}

/// A part of the objects, validated alone, and what a scoped round needs besides.
#[derive(Debug)]
pub struct PartRound {
    /// The part's snapshot (validated), with the objects left out as deleting.
    pub built: Built,
    /// The changed buckets.
    pub changed: BTreeSet<String>,
    /// Changed objects that are declared now.
    pub edited: BTreeSet<ObjectKey>,
    /// Changed objects that are gone or being deleted.
    pub removed: BTreeSet<ObjectKey>,
    /// Every username the changed objects name, before and after.
    pub covered: BTreeSet<String>,
    /// Objects whose status someone else rewrote.
    pub restatus: BTreeSet<ObjectKey>,
    /// A copy of the part's objects (and of `restatus`'s) for the report phase.
    pub objects: BTreeMap<ObjectKey, Arc<Compact>>,
    /// The memo of the last round (taken: a scoped round gives back the next one).
    pub memo: Option<Memo>,
    /// Nothing moves line in a cluster: always empty.
    moved: BTreeSet<ObjectKey>,
}

impl PartRound {
    /// What [`super::pipeline::run_scoped`] reads.
    pub fn input(&self) -> PartInput<'_> {
        PartInput {
            snapshot: &self.built.snapshot,
            changed: &self.changed,
            part: Part {
                edited: &self.edited,
                moved: &self.moved,
                removed: &self.removed,
                covered: &self.covered,
            },
            restatus: &self.restatus,
        }
    }
}

/// The usernames a declared object names: a User's username, a binding's user, a token's
/// owner, a stage request's requester (decided with that user's rights). None: it does
/// not convert (the round reads everything).
fn names(kind: &str, value: &Value) -> Option<Vec<String>> {
    Some(match kind {
        "User" => vec![serde_json::from_value::<User>(value.clone())
            .ok()?
            .username()],
        "AccessBinding" => vec![
            serde_json::from_value::<AccessBinding>(value.clone())
                .ok()?
                .spec
                .user,
        ],
        "ApiToken" => serde_json::from_value::<ApiToken>(value.clone())
            .ok()?
            .spec
            .owner
            .into_iter()
            .collect(),
        "ModelStageRequest" => vec![
            serde_json::from_value::<ModelStageRequest>(value.clone())
                .ok()?
                .spec
                .requested_by,
        ],
        _ => return None,
    })
}

impl Scoper {
    /// After a whole round's validation of `snap`: the index a part is validated against.
    pub fn validated(&mut self, snap: &Snapshot) {
        self.kept = Kept::labelled(snap, bucket);
    }

    /// What the round leaves for the next (None: the next round reads everything).
    pub fn keep(&mut self, memo: Option<Memo>) {
        self.memo = memo;
    }

    /// Whether the kept memo still describes the store: nothing wrote to it since the
    /// last round (its token is `token`) and nothing expired by `now`. With no change
    /// in the cache either, a round would plan nothing.
    pub fn holds(&self, token: &crate::store::StateToken, now: jiff::Timestamp) -> bool {
        self.memo
            .as_ref()
            .is_some_and(|m| m.token == *token && m.until.is_none_or(|u| now < u))
    }

    /// Whether a memo is kept (the next round may be scoped).
    pub fn has_memo(&self) -> bool {
        self.memo.is_some()
    }

    /// The part of `cache` a round whose news is `changes` validates and plans, or None
    /// when the round must read everything (see the module documentation). Call it with
    /// the cache locked, right after [`Cache::take_changes`]. On Some, the memo goes with
    /// the part; the index already holds the part's declarations.
    pub fn part(&mut self, cache: &Cache, changes: Changes) -> Option<PartRound> {
        if !changes.known || changes.objects.is_empty() || self.memo.is_none() {
            return None;
        }
        let kept = self.kept.as_mut()?;
        let mut changed = BTreeSet::new();
        let (mut edited, mut removed, mut covered) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        // The models the changed stage requests name now: the part holds every request of
        // them (and of those the changed buckets' requests named before, see
        // `Kept::with_requests`).
        let mut models: Vec<(crate::policy::Scope, String)> = Vec::new();
        for (key, old) in &changes.objects {
            if !matches!(
                key.kind.as_str(),
                "User" | "AccessBinding" | "ApiToken" | "ModelStageRequest"
            ) {
                return None;
            }
            let declared = |c: &Compact| (!c.deleting()).then(|| c.declared());
            if let Some(old) = old.as_ref().and_then(declared) {
                covered.extend(names(&key.kind, &old)?);
            }
            match cache.object(key).and_then(declared) {
                Some(now) => {
                    covered.extend(names(&key.kind, &now)?);
                    if key.kind == "ModelStageRequest" {
                        let spec = serde_json::from_value::<ModelStageRequest>(now).ok()?.spec;
                        models.push((spec.scope(), spec.model));
                    }
                    edited.insert(key.clone());
                }
                None => {
                    removed.insert(key.clone());
                }
            }
            changed.insert(label_of(&key.kind, &key.namespace, &key.name));
        }
        let with_requests = kept.with_requests(
            models.iter().map(|(s, m)| (s.clone(), m.as_str())),
            &changed,
        );
        let mut files = kept.files_of(&covered);
        files.extend(with_requests.iter().cloned());
        let picked: Vec<(ObjectKey, &Compact)> = cache
            .objects_where(|kind, namespace, name| match kind {
                // Domain objects place every declaration: every part reads them all.
                "AccessDomain" | "AccessDelegation" => true,
                "User" | "AccessBinding" | "ApiToken" => {
                    files.contains(&label_of(kind, namespace, name))
                }
                // The stage requests of the changed buckets and of those `with_requests` adds
                // (validated with them; a part plans only the changed buckets').
                "ModelStageRequest" => with_requests.contains(&label_of(kind, namespace, name)),
                _ => false,
            })
            .collect();
        let mut built =
            snapshot::convert_from(cache, picked.iter().map(|(k, c)| (k.clone(), c.declared())));
        let started = std::time::Instant::now();
        let closed = built.malformed.is_empty()
            && !kept.moves_a_requester_claim(&built.snapshot, &changed)
            && validate_part(&mut built.snapshot, &kept.outside(&files, &with_requests));
        built.validated_in = started.elapsed();
        if !closed || built.snapshot.has_errors() || !built.snapshot.broken_files.is_empty() {
            tracing::debug!(
                closed,
                "a part cannot be validated alone; reading everything"
            );
            return None;
        }
        // Whatever the round does with the part, the changed buckets now declare this.
        kept.update(&built.snapshot, &changed);
        let mut objects: BTreeMap<ObjectKey, Arc<Compact>> = picked
            .into_iter()
            .map(|(k, c)| (k, Arc::new(c.clone())))
            .collect();
        for key in &changes.restatus {
            if let Some(c) = cache.object(key) {
                objects.insert(key.clone(), Arc::new(c.clone()));
            }
        }
        Some(PartRound {
            built,
            changed,
            edited,
            removed,
            covered,
            restatus: changes.restatus,
            objects,
            memo: self.memo.take(),
            moved: BTreeSet::new(),
        })
    }
}

#[cfg(test)]
#[path = "scoped_tests.rs"]
mod tests;
