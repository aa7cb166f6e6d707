//! What the last validation of the whole directory leaves for validating a part of it.
//!
//! A small change's round validates only the changed files and the files its
//! widened plan reads (see `Daemon`'s partial round), with the rules
//! `validate` runs on the whole organization (`validate::validate_part`).
//! Those rules look across objects by kind/namespace/name, username, token
//! name, Secret and stage request (its model); [`Kept`] answers, for every file *outside*
//! the part, what it declares under each of them ([`Outside`]), and which
//! files declare a User, an AccessBinding or an owned ApiToken of a username
//! (the files a change to that user's declarations must bring into the part).
//!
//! It is built only from a validation with no error and no broken file (an
//! organization where each key, username, token name and written Secret is
//! declared once), and each answer that could be wrong errs on the side of
//! "declared elsewhere", which makes the round validate everything: keys,
//! token names and Secrets are held as 64-bit hashes (a collision reads as a
//! conflict), usernames as text (a reference to a username must be answered
//! exactly). At 10,000 users and 67,000 objects it is a few MiB.

use super::memo::{by_file, Label};
use crate::snapshot::{ObjectKey, Snapshot};
use crate::validate::{secret_claims, Elsewhere};
use kube::ResourceExt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, RandomState};

/// A hash maps to this when two files' declarations share it (never after a valid round,
/// but a hash can collide): every file is then "elsewhere" for it.
const SHARED: u32 = u32::MAX;

/// What one file contributed, to take it out again when the file changes.
#[derive(Debug, Default)]
struct FileKept {
    /// Hashes of its objects' keys, token names and claimed Secrets.
    hashes: Vec<u64>,
    /// Usernames (ids) its Users claim.
    claims: Vec<u32>,
    /// Usernames (ids) its AccessBindings grant to.
    binds: Vec<u32>,
    /// Usernames (ids) its ApiTokens name as owner.
    owns: Vec<u32>,
    /// Usernames (ids) its stage requests name as requester, once per request.
    requesters: Vec<u32>,
    /// Hashes of the models its stage requests name, once per request.
    models: Vec<u64>,
}

/// Which files declare a User, an AccessBinding or an owned ApiToken of one username, and
/// how many stage requests name it as requester.
#[derive(Debug, Default)]
struct Who {
    claimed_in: Vec<u32>,
    bound_in: Vec<u32>,
    owned_in: Vec<u32>,
    requested: usize,
}

/// The index of the last valid whole-directory validation (see the module documentation).
#[derive(Debug)]
pub struct Kept {
    hasher: RandomState,
    /// File label → id, and each id's label and contribution.
    ids: HashMap<String, u32>,
    files: Vec<(String, FileKept)>,
    /// Key, token-name and Secret hashes → the file declaring them.
    hashes: HashMap<u64, u32>,
    /// Username → id; by id, which files name it.
    names: HashMap<String, u32>,
    who: Vec<Who>,
    /// Model hash → the files declaring a stage request of it (requests of one model at
    /// one instant warn: the rule looks across the requests of a model).
    models: HashMap<u64, Vec<u32>>,
    /// The label ("file") of a declaration's source (see [`Label`]).
    label: Label,
}

/// What a hash stands for: the three namespaces of names the rules compare.
#[derive(Hash)]
enum Named<'a> {
    Key(&'a ObjectKey),
    Token(&'a str),
    Secret(&'a str, &'a str),
    Model(&'a crate::policy::Scope, &'a str),
}

/// Every declaration of `snap` by file: its hashes, claimed and granted usernames, requests.
fn contributions(
    snap: &Snapshot,
    hasher: &RandomState,
    label: Label,
    mut add: impl FnMut(&str, Contribution),
) {
    // Borrowed in directory mode: no allocation per declaration.
    fn labelled(label: Label, s: &crate::snapshot::Source) -> std::borrow::Cow<'_, str> {
        label(s.file.as_deref().unwrap_or(""))
    }
    for d in &snap.users {
        add(
            &labelled(label, &d.source),
            Contribution::Hash(hasher.hash_one(Named::Key(&d.key()))),
        );
        add(
            &labelled(label, &d.source),
            Contribution::Claims(d.object.username()),
        );
    }
    for d in &snap.bindings {
        add(
            &labelled(label, &d.source),
            Contribution::Hash(hasher.hash_one(Named::Key(&d.key()))),
        );
        add(
            &labelled(label, &d.source),
            Contribution::Binds(d.object.spec.user.clone()),
        );
    }
    for d in &snap.tokens {
        let name = d.object.name_any();
        add(
            &labelled(label, &d.source),
            Contribution::Hash(hasher.hash_one(Named::Key(&d.key()))),
        );
        add(
            &labelled(label, &d.source),
            Contribution::Hash(hasher.hash_one(Named::Token(&name))),
        );
        if let Some(owner) = &d.object.spec.owner {
            add(
                &labelled(label, &d.source),
                Contribution::Owns(owner.clone()),
            );
        }
    }
    for d in &snap.requests {
        add(
            &labelled(label, &d.source),
            Contribution::Hash(hasher.hash_one(Named::Key(&d.key()))),
        );
        let spec = &d.object.spec;
        add(
            &labelled(label, &d.source),
            Contribution::Model(hasher.hash_one(Named::Model(&spec.scope(), &spec.model))),
        );
        add(
            &labelled(label, &d.source),
            Contribution::Requests(d.object.spec.requested_by.clone()),
        );
    }
    for c in secret_claims(snap) {
        let h = hasher.hash_one(Named::Secret(&c.namespace, &c.secret));
        add(&labelled(label, &c.source), Contribution::Hash(h));
    }
}

/// One thing a declaration contributes to the index.
enum Contribution {
    Hash(u64),
    Claims(String),
    Binds(String),
    Owns(String),
    Requests(String),
    Model(u64),
}

impl Kept {
    /// The index of `snap`, validated as a whole; None when it has an error or a broken
    /// file (a part of it is then never validated alone).
    pub fn new(snap: &Snapshot) -> Option<Kept> {
        Kept::labelled(snap, by_file)
    }

    /// [`Kept::new`] with the declarations kept under `label` of their source file.
    pub fn labelled(snap: &Snapshot, label: Label) -> Option<Kept> {
        if !snap.broken_files.is_empty() || snap.has_errors() {
            return None;
        }
        let mut kept = Kept {
            hasher: RandomState::new(),
            ids: HashMap::new(),
            files: Vec::new(),
            hashes: HashMap::new(),
            names: HashMap::new(),
            who: Vec::new(),
            models: HashMap::new(),
            label,
        };
        kept.add(snap, |_| true);
        kept.shrink();
        Some(kept)
    }

    /// Gives back what the vectors and maps grew beyond their contents while being built:
    /// the index lives as long as the process idles.
    fn shrink(&mut self) {
        for (_, f) in &mut self.files {
            f.hashes.shrink_to_fit();
            f.claims.shrink_to_fit();
            f.binds.shrink_to_fit();
            f.owns.shrink_to_fit();
            f.requesters.shrink_to_fit();
            f.models.shrink_to_fit();
        }
        for w in &mut self.who {
            w.claimed_in.shrink_to_fit();
            w.bound_in.shrink_to_fit();
            w.owned_in.shrink_to_fit();
        }
        self.files.shrink_to_fit();
        self.who.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.names.shrink_to_fit();
        self.hashes.shrink_to_fit();
        self.models.shrink_to_fit();
    }

    /// After a round that validated `part`: the files of `changed` now declare what `part`
    /// holds of them (the part's other files did not change).
    pub fn update(&mut self, part: &Snapshot, changed: &BTreeSet<String>) {
        for f in changed {
            self.remove(f);
        }
        self.add(part, |file| changed.contains(file));
    }

    /// Adds the declarations of `snap` in the files `take` accepts.
    fn add(&mut self, snap: &Snapshot, take: impl Fn(&str) -> bool) {
        let hasher = self.hasher.clone();
        contributions(snap, &hasher, self.label, |file, c| {
            if take(file) {
                self.insert(file, c);
            }
        });
    }

    /// Adds one contribution of `file`.
    fn insert(&mut self, file: &str, c: Contribution) {
        let id = self.id(file);
        match c {
            Contribution::Hash(h) => {
                let at = self.hashes.entry(h).or_insert(id);
                if *at != id {
                    *at = SHARED;
                }
                self.files[id as usize].1.hashes.push(h);
            }
            Contribution::Claims(u) => {
                let n = self.name(u);
                push_once(&mut self.who[n as usize].claimed_in, id);
                push_once(&mut self.files[id as usize].1.claims, n);
            }
            Contribution::Binds(u) => {
                let n = self.name(u);
                push_once(&mut self.who[n as usize].bound_in, id);
                push_once(&mut self.files[id as usize].1.binds, n);
            }
            Contribution::Owns(u) => {
                let n = self.name(u);
                push_once(&mut self.who[n as usize].owned_in, id);
                push_once(&mut self.files[id as usize].1.owns, n);
            }
            Contribution::Requests(u) => {
                let n = self.name(u);
                self.who[n as usize].requested += 1;
                self.files[id as usize].1.requesters.push(n);
            }
            Contribution::Model(h) => {
                push_once(self.models.entry(h).or_default(), id);
                self.files[id as usize].1.models.push(h);
            }
        }
    }

    /// Takes out what `file` contributed.
    fn remove(&mut self, file: &str) {
        let Some(&id) = self.ids.get(file) else {
            return;
        };
        let kept = std::mem::take(&mut self.files[id as usize].1);
        for h in kept.hashes {
            // A shared hash stays shared: answering "elsewhere" is always safe.
            if self.hashes.get(&h) == Some(&id) {
                self.hashes.remove(&h);
            }
        }
        for n in kept.claims {
            self.who[n as usize].claimed_in.retain(|f| *f != id);
        }
        for n in kept.binds {
            self.who[n as usize].bound_in.retain(|f| *f != id);
        }
        for n in kept.owns {
            self.who[n as usize].owned_in.retain(|f| *f != id);
        }
        for n in kept.requesters {
            self.who[n as usize].requested -= 1;
        }
        for h in kept.models {
            if let Some(files) = self.models.get_mut(&h) {
                files.retain(|f| *f != id);
                if files.is_empty() {
                    self.models.remove(&h);
                }
            }
        }
    }

    fn id(&mut self, file: &str) -> u32 {
        if let Some(&id) = self.ids.get(file) {
            return id;
        }
        let id = self.files.len() as u32;
        self.ids.insert(file.to_string(), id);
        self.files.push((file.to_string(), FileKept::default()));
        id
    }

    fn name(&mut self, username: String) -> u32 {
        if let Some(&n) = self.names.get(&username) {
            return n;
        }
        let n = self.who.len() as u32;
        self.names.insert(username, n);
        self.who.push(Who::default());
        n
    }

    /// The label of the file whose declaration claims the Secret `namespace/name` (reads
    /// it through `passwordSecretRef` or writes it), when one file does. The index keeps
    /// hashes: the caller confirms the claim in that file's declarations.
    pub fn claimant_of_secret(&self, namespace: &str, name: &str) -> Option<&str> {
        let id = *self
            .hashes
            .get(&self.hasher.hash_one(Named::Secret(namespace, name)))?;
        (id != SHARED).then(|| self.files[id as usize].0.as_str())
    }

    /// The files declaring a User, an AccessBinding or an owned ApiToken of any of
    /// `usernames`.
    pub fn files_of<'a>(
        &self,
        usernames: impl IntoIterator<Item = &'a String>,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for u in usernames {
            let Some(&n) = self.names.get(u) else {
                continue;
            };
            let who = &self.who[n as usize];
            for id in who
                .claimed_in
                .iter()
                .chain(&who.bound_in)
                .chain(&who.owned_in)
            {
                out.insert(self.files[*id as usize].0.clone());
            }
        }
        out
    }

    /// The files whose stage requests a part for a change to the files `changed` holds:
    /// those files, and every file declaring a request of a model their requests name now
    /// (`models`: (scope, model) of each) or named before. Requests of one model at one
    /// instant warn, so the rule reads every request of a model: with these, a change to a
    /// request (added, edited, removed) moves no warning of a request outside the part.
    pub fn with_requests<'a>(
        &self,
        models: impl IntoIterator<Item = (crate::policy::Scope, &'a str)>,
        changed: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut hashes: HashSet<u64> = models
            .into_iter()
            .map(|(scope, model)| self.hasher.hash_one(Named::Model(&scope, model)))
            .collect();
        for f in changed {
            if let Some(id) = self.ids.get(f) {
                hashes.extend(self.files[*id as usize].1.models.iter().copied());
            }
        }
        let mut out = changed.clone();
        for h in hashes {
            for id in self.models.get(&h).into_iter().flatten() {
                out.insert(self.files[*id as usize].0.clone());
            }
        }
        out
    }

    /// Whether `part`, the new declarations of the files `changed` (and others), claims a
    /// username those files did not claim before, or no longer claims one they did, that a
    /// stage request names as requester. Such a request's `UnknownUser` warning comes or
    /// goes, and a part holds no request of an unchanged file: validate the whole then.
    pub fn moves_a_requester_claim(&self, part: &Snapshot, changed: &BTreeSet<String>) -> bool {
        let before: BTreeSet<u32> = changed
            .iter()
            .filter_map(|f| self.ids.get(f))
            .flat_map(|id| self.files[*id as usize].1.claims.iter().copied())
            .collect();
        let mut after: BTreeSet<u32> = BTreeSet::new();
        for u in &part.users {
            if u.source
                .file
                .as_deref()
                .is_some_and(|f| changed.contains((self.label)(f).as_ref()))
            {
                match self.names.get(&u.object.username()) {
                    Some(n) => {
                        after.insert(*n);
                    }
                    // A username nobody named before: no request names it.
                    None => continue,
                }
            }
        }
        before
            .symmetric_difference(&after)
            .any(|n| self.who[*n as usize].requested > 0)
    }

    /// The rest of the directory, seen from a part made of the files `part` (whose stage
    /// requests are those of `with_requests` only: the part leaves the others out).
    pub fn outside<'a>(
        &'a self,
        part: &BTreeSet<String>,
        with_requests: &BTreeSet<String>,
    ) -> Outside<'a> {
        let ids = |files: &BTreeSet<String>| -> HashSet<u32> {
            files
                .iter()
                .filter_map(|f| self.ids.get(f).copied())
                .collect()
        };
        Outside {
            kept: self,
            part: ids(part),
            requests_in: ids(with_requests),
        }
    }
}

fn push_once(v: &mut Vec<u32>, x: u32) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The declarations of every file but a part's, as [`Elsewhere`] asks about them.
#[derive(Debug)]
pub struct Outside<'a> {
    kept: &'a Kept,
    part: HashSet<u32>,
    /// The part's files whose stage requests it holds.
    requests_in: HashSet<u32>,
}

impl Outside<'_> {
    fn hash_elsewhere(&self, named: Named, inside: &HashSet<u32>) -> bool {
        let h = self.kept.hasher.hash_one(named);
        self.kept
            .hashes
            .get(&h)
            .is_some_and(|id| !inside.contains(id))
    }
}

impl Elsewhere for Outside<'_> {
    fn declares(&self, key: &ObjectKey) -> bool {
        // The part leaves out the stage requests of the files it reads only for users
        // and bindings: for requests those files are elsewhere.
        let inside = if key.kind == "ModelStageRequest" {
            &self.requests_in
        } else {
            &self.part
        };
        self.hash_elsewhere(Named::Key(key), inside)
    }

    fn claims_username(&self, username: &str) -> bool {
        self.kept.names.get(username).is_some_and(|n| {
            self.kept.who[*n as usize]
                .claimed_in
                .iter()
                .any(|f| !self.part.contains(f))
        })
    }

    fn names_token(&self, name: &str) -> bool {
        self.hash_elsewhere(Named::Token(name), &self.part)
    }

    fn claims_secret(&self, namespace: &str, name: &str) -> bool {
        self.hash_elsewhere(Named::Secret(namespace, name), &self.part)
    }

    fn requests_of(&self, scope: &crate::policy::Scope, model: &str) -> bool {
        let h = self.kept.hasher.hash_one(Named::Model(scope, model));
        self.kept
            .models
            .get(&h)
            .is_some_and(|files| files.iter().any(|f| !self.requests_in.contains(f)))
    }
}

#[cfg(test)]
#[path = "kept_tests.rs"]
mod tests;
