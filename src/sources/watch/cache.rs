//! A per-file cache of a manifest directory: each file's last parse and last
//! good parse, refreshed from the file system, merged into one [`Snapshot`].
//!
//! Why a cache: an editor saving a file, or a `git checkout` in progress, can
//! leave a file half-written for a moment. A file that fails to parse as a
//! whole keeps the objects of its last good parse (and stays in
//! `broken_files`, so plan never prunes what it declared); a deleted file's
//! objects disappear; unchanged files are not re-read or re-parsed.
//!
//! What it holds is what the idle daemon holds, so it is kept small: per file
//! a stamp, the content's SHA-256 and the typed objects packed (see
//! [`super::packed`]), not the documents' texts (see [`Snapshot::reread`]).

use super::packed::Parse;
use crate::snapshot::{Declared, ObjectKey, Snapshot};
use crate::sources::files::{
    file_problem, is_manifest, load_bytes, manifest_files, read_listed, Listed,
};
use kube::Resource;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What happened to one file in a refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileEvent {
    /// A new file parsed (fully or with per-object errors).
    Added,
    /// Its content changed and it parsed.
    Modified,
    /// It is gone: its objects are no longer declared.
    Removed,
    /// It failed to parse as a whole: its last good objects are kept.
    Broken,
}

impl FileEvent {
    /// Lowercase name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FileEvent::Added => "added",
            FileEvent::Modified => "modified",
            FileEvent::Removed => "removed",
            FileEvent::Broken => "broken",
        }
    }
}

/// The outcome of one refresh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Files whose declarations changed (or broke), by label.
    pub changed: Vec<(String, FileEvent)>,
    /// Files that were still being written: refresh again shortly.
    pub unsettled: Vec<String>,
    /// The changed files' declarations, object by object; None when that is not known:
    /// a file removed or broken, an access-domain object changed, or a file whose last
    /// parse was broken.
    pub edits: Option<Edits>,
}

/// What changed in the changed files, object by object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edits {
    /// Users, bindings, tokens and stage requests added or whose content changed.
    pub objects: BTreeSet<ObjectKey>,
    /// Users, bindings and tokens whose only change is their line (an edit above them in
    /// their file added or removed lines): only their status's source changes, and they
    /// name no username for the part (see `sources::scoped::Part::moved`). A stage request
    /// that moved counts as changed (`objects`): nothing of a part plans one alone.
    pub moved: BTreeSet<ObjectKey>,
    /// Declarations gone from the changed files (deleted, renamed or moved to another
    /// file: a moved one is also in `objects`).
    pub removed: BTreeSet<ObjectKey>,
    /// The usernames those declarations name, before and after the change: a User's
    /// username, a binding's user, a token's owner, a stage request's requester (of a
    /// removed one too).
    pub usernames: BTreeSet<String>,
}

impl Edits {
    /// Adds the declarations of `new` that `old` (the file's last parse, None for a new
    /// file) did not have as they are, and those of `old` that `new` has not, with the
    /// usernames both versions name; false when an access-domain object changed.
    pub(super) fn add(&mut self, old: Option<&Snapshot>, new: &Snapshot) -> bool {
        if let Some(old) = old {
            let domains = |s: &Snapshot| format!("{:?}{:?}", s.domains.pins, s.domains.delegations);
            if domains(old) != domains(new) {
                return false;
            }
        }
        let empty = Snapshot::default();
        let old = old.unwrap_or(&empty);
        self.kind(&old.users, &new.users, true, |u| vec![u.username()]);
        self.kind(&old.bindings, &new.bindings, true, |b| {
            vec![b.spec.user.clone()]
        });
        self.kind(&old.tokens, &new.tokens, true, |t| {
            t.spec.owner.iter().cloned().collect()
        });
        // A new request is decided with its requester's rights: the part holds them.
        self.kind(&old.requests, &new.requests, false, |r| {
            vec![r.spec.requested_by.clone()]
        });
        true
    }

    /// One kind of [`Edits::add`]; `names` gives the usernames an object names; `moves`:
    /// an object whose only change is its line goes to `moved` (else to `objects`).
    fn kind<K>(
        &mut self,
        old: &[Declared<K>],
        new: &[Declared<K>],
        moves: bool,
        names: impl Fn(&K) -> Vec<String>,
    ) where
        K: Resource<DynamicType = ()> + serde::Serialize,
    {
        let content = |d: &Declared<K>| serde_json::to_value(&d.object).ok();
        let before: BTreeMap<ObjectKey, &Declared<K>> = old.iter().map(|d| (d.key(), d)).collect();
        let now: BTreeSet<ObjectKey> = new.iter().map(Declared::key).collect();
        for (key, gone) in before.iter().filter(|(k, _)| !now.contains(*k)) {
            self.usernames.extend(names(&gone.object));
            self.removed.insert(key.clone());
        }
        for d in new {
            let key = d.key();
            let was = before.get(&key);
            let same = was.is_some_and(|w| {
                let c = content(d);
                c.is_some() && content(w) == c && w.source.file == d.source.file
            });
            if same && was.is_some_and(|w| w.source.line == d.source.line) {
                continue;
            }
            if same && moves {
                self.moved.insert(key);
                continue;
            }
            // A stage request whose only change is its line names no username: the round
            // that decided it left a record, and nothing of the plan reads its requester.
            if !same {
                self.usernames.extend(names(&d.object));
                if let Some(w) = was {
                    self.usernames.extend(names(&w.object));
                }
            }
            self.objects.insert(key);
        }
    }
}

impl Refresh {
    /// Whether any file's declarations changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }
}

/// Size, modification time and inode: cheap evidence that a file did not change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode,
        })
    }
}

#[derive(Clone, Debug)]
struct Entry {
    stamp: Stamp,
    digest: [u8; 32],
    /// The latest parse (its diagnostics are reported).
    current: Parse,
    /// While `current` is broken as a whole: the latest parse that was not. (When
    /// `current` is good it is its own last good parse; a second copy would double
    /// the memory the cache holds.)
    good: Option<Parse>,
}

impl Entry {
    /// The latest parse that was not broken as a whole.
    fn last_good(&self) -> Option<&Parse> {
        if self.current.rest().broken_files.is_empty() {
            Some(&self.current)
        } else {
            self.good.as_ref()
        }
    }
}

/// The cached declarations of one directory.
#[derive(Debug)]
pub struct DirCache {
    root: PathBuf,
    files: BTreeMap<PathBuf, Entry>,
    /// Files parsed since the cache was made (unchanged content is never parsed again).
    parsed: u64,
    /// The last listing had a symbolic link or a refused file: a file's content may show
    /// under another path than the one an event names, so only a full refresh will do.
    links: bool,
}

/// How often a file that changes while it is read is re-read before giving up for this round.
const SETTLE_ATTEMPTS: usize = 3;

enum Read {
    Bytes(Stamp, Vec<u8>),
    Gone,
    Unsettled,
    Failed(String),
}

fn read_settled(file: &Listed) -> Read {
    for _ in 0..SETTLE_ATTEMPTS {
        let before = match Stamp::of(&file.open) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Gone,
            Err(e) => return Read::Failed(format!("cannot read the file: {e}")),
        };
        let bytes = match read_listed(file) {
            Ok(b) => b,
            Err(_) if !file.open.exists() => return Read::Gone,
            Err(why) => return Read::Failed(why),
        };
        // A writer still at work changes size or mtime under us: read again.
        if Stamp::of(&file.open).ok() != Some(before) {
            continue;
        }
        return Read::Bytes(before, bytes);
    }
    Read::Unsettled
}

impl DirCache {
    /// An empty cache of `root`; call [`DirCache::refresh`] to load it.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirCache {
            root: root.into(),
            files: BTreeMap::new(),
            parsed: 0,
            links: false,
        }
    }

    /// How many times a file has been parsed since the cache was made.
    pub fn parsed(&self) -> u64 {
        self.parsed
    }

    /// The watched directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `path` could be a manifest this cache loads (not hidden, `.yaml`/`.yml`, under root).
    pub fn is_relevant(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            // Events may carry absolute paths while root is relative: compare by file name only.
            return is_manifest(path) && !hidden(path);
        };
        is_manifest(rel)
            && !rel
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    }

    /// Re-reads the directory: files whose stamp changed (all files when `force`) are
    /// re-read, and re-parsed when their content changed.
    pub fn refresh(&mut self, force: bool) -> Result<Refresh, crate::sources::files::LoadError> {
        let listed: BTreeMap<PathBuf, Listed> = manifest_files(std::slice::from_ref(&self.root))?
            .into_iter()
            .map(|l| (l.path.clone(), l))
            .collect();
        self.links = listed
            .values()
            .any(|l| l.refused.is_some() || l.open != l.path);
        // The first refresh adds every file: nothing to tell object by object.
        let mut out = Refresh {
            edits: (!self.files.is_empty()).then(Edits::default),
            ..Refresh::default()
        };
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !listed.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            self.files.remove(&path);
            out.changed.push((label(&path), FileEvent::Removed));
            out.edits = None;
        }
        for (path, file) in listed {
            if file.refused.is_none() && !force {
                let stamp = Stamp::of(&file.open).ok();
                if stamp.is_some() && self.files.get(&path).map(|e| e.stamp) == stamp {
                    continue;
                }
            }
            let read = match &file.refused {
                Some(why) => Read::Failed(why.clone()),
                None => read_settled(&file),
            };
            self.reread(&path, read, &mut out);
        }
        Ok(out)
    }

    /// Takes in what reading the listed file `path` gave.
    fn reread(&mut self, path: &Path, read: Read, out: &mut Refresh) {
        let path = path.to_path_buf();
        {
            match read {
                Read::Gone => {
                    if self.files.remove(&path).is_some() {
                        out.changed.push((label(&path), FileEvent::Removed));
                        out.edits = None;
                    }
                }
                Read::Unsettled => out.unsettled.push(label(&path)),
                Read::Bytes(stamp, bytes) => {
                    if let Some(ev) = self.update(&path, stamp, bytes, &mut out.edits) {
                        out.changed.push((label(&path), ev));
                    }
                }
                Read::Failed(why) => {
                    let stamp = Stamp::of(&path).unwrap_or(Stamp {
                        len: 0,
                        modified: None,
                        inode: 0,
                    });
                    // The same refusal again is no news.
                    let digest: [u8; 32] = Sha256::digest(why.as_bytes()).into();
                    if self.files.get(&path).is_some_and(|e| e.digest == digest) {
                        return;
                    }
                    let file = label(&path);
                    let snap = file_problem(
                        &file,
                        None,
                        format!("{why}; its last good declarations are kept"),
                    );
                    self.store(&path, stamp, digest, snap);
                    out.changed.push((file, FileEvent::Broken));
                    out.edits = None;
                }
            }
        }
    }

    /// Re-reads only the files `paths` name (what the file watcher reported changed), as
    /// [`DirCache::refresh`] would find them; None when a path may stand for other files
    /// than itself (the root, a directory, a symbolic link, a path outside the root, a
    /// gone path the cache holds files below, or any path while the directory has links):
    /// refresh the whole directory then. Paths that are no manifest are no news.
    pub fn refresh_paths(&mut self, paths: &[PathBuf]) -> Option<Refresh> {
        if self.links {
            return None;
        }
        let canonical = self.root.canonicalize().ok()?;
        // First every path is checked, then read: a refusal must leave the cache as it was.
        let mut reads: Vec<(PathBuf, bool)> = Vec::new();
        for p in paths {
            let rel = p
                .strip_prefix(&self.root)
                .or_else(|_| p.strip_prefix(&canonical))
                .ok()?;
            if rel.as_os_str().is_empty() {
                return None;
            }
            // The listing skips hidden entries at every level (editors' temp files).
            if rel
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let path = self.root.join(rel);
            // Every folder between the root and the file must be one the listing descends.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| d.starts_with(&self.root) && *d != self.root) {
                if !std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
                    return None;
                }
                dir = d.parent();
            }
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => {
                    if is_manifest(&path) {
                        reads.push((path, true));
                    }
                }
                Ok(_) => return None,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if self
                        .files
                        .keys()
                        .any(|k| k.starts_with(&path) && *k != path)
                    {
                        return None;
                    }
                    reads.push((path, false));
                }
                Err(_) => return None,
            }
        }
        let mut out = Refresh {
            edits: (!self.files.is_empty()).then(Edits::default),
            ..Refresh::default()
        };
        for (path, exists) in reads {
            if !exists {
                self.reread(&path, Read::Gone, &mut out);
                continue;
            }
            // Read even when the stamp looks unchanged: the event says it changed, and a
            // rewrite can keep size, inode and (coarse) modification time; the digest decides.
            let listed = Listed {
                path: path.clone(),
                open: path.clone(),
                refused: None,
            };
            self.reread(&path, read_settled(&listed), &mut out);
        }
        Some(out)
    }

    /// Parses `bytes` into the entry of `path`; returns what happened, or None when the content is unchanged.
    /// What changed object by object goes to `edits` (None when that is not known).
    fn update(
        &mut self,
        path: &Path,
        stamp: Stamp,
        bytes: Vec<u8>,
        edits: &mut Option<Edits>,
    ) -> Option<FileEvent> {
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(e) = self.files.get_mut(path) {
            if e.digest == digest {
                e.stamp = stamp;
                return None;
            }
        }
        let existed = self.files.contains_key(path);
        let file = label(path);
        let mut snap = load_bytes(&file, bytes);
        self.parsed += 1;
        // Only the typed objects are kept: a field's line is found by reading the file
        // again, while it still has this content, when a problem needs it.
        snap.documents = Default::default();
        snap.reread.insert(file.clone(), digest);
        let broken = !snap.broken_files.is_empty();
        if let Some(e) = edits.as_mut() {
            let old = self.files.get(path).map(|e| &e.current);
            let known = !broken
                && match old {
                    None => e.add(None, &snap),
                    Some(p) if p.rest().broken_files.is_empty() => {
                        e.add(Some(&p.snapshot(&file)), &snap)
                    }
                    Some(_) => false,
                };
            if !known {
                *edits = None;
            }
        }
        self.store(path, stamp, digest, snap);
        Some(match (broken, existed) {
            (true, _) => FileEvent::Broken,
            (false, true) => FileEvent::Modified,
            (false, false) => FileEvent::Added,
        })
    }

    /// Holds `snap`, the parse of `path`, packed (see [`Parse`]).
    fn store(&mut self, path: &Path, stamp: Stamp, digest: [u8; 32], snap: Snapshot) {
        let broken = !snap.broken_files.is_empty();
        let snap = Parse::pack(&label(path), snap);
        let good = if broken {
            // Moved, not cloned: the entry is replaced below.
            self.files.remove(path).and_then(|e| {
                if e.current.rest().broken_files.is_empty() {
                    Some(e.current)
                } else {
                    e.good
                }
            })
        } else {
            None
        };
        self.files.insert(
            path.to_path_buf(),
            Entry {
                stamp,
                digest,
                current: snap,
                good,
            },
        );
    }

    /// Files currently broken as a whole (their last good objects are in the snapshot).
    pub fn broken(&self) -> Vec<String> {
        self.files
            .values()
            .flat_map(|e| e.current.rest().broken_files.iter().cloned())
            .collect()
    }

    /// Number of manifest files cached.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Files whose parse is held as parsed, not packed (see [`Parse::pack`]).
    #[cfg(test)]
    fn plain_files(&self) -> usize {
        self.files
            .values()
            .flat_map(|e| std::iter::once(&e.current).chain(&e.good))
            .filter(|p| matches!(p, Parse::Plain(_)))
            .count()
    }

    /// Whether no manifest file is cached.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every file's declarations merged (schema layer only: run `validate` on the result).
    ///
    /// A broken file contributes what parsed now plus each object of its last
    /// good parse that did not parse now, so nothing it declared disappears.
    pub fn snapshot(&self) -> Snapshot {
        let mut out = Snapshot::default();
        for (path, e) in &self.files {
            out.extend(file_snapshot(path, e));
        }
        self.rooted(out)
    }

    /// The declarations of the files `part` (labels) only, with the access-domain objects
    /// of every file (which place every declaration): what a round validating a part of
    /// the directory reads (see `validate::validate_part`). Of the files not in `changed`
    /// it keeps no stage request (nothing of a part plans them).
    pub fn snapshot_of(&self, part: &BTreeSet<String>, changed: &BTreeSet<String>) -> Snapshot {
        let mut out = Snapshot::default();
        for (path, e) in &self.files {
            let file = label(path);
            if part.contains(&file) {
                let mut snap = file_snapshot(path, e);
                if !changed.contains(&file) {
                    snap.requests = Vec::new();
                }
                out.extend(snap);
            } else {
                let rest = e.current.rest();
                out.domains.pins.extend(rest.domains.pins.iter().cloned());
                out.domains
                    .delegations
                    .extend(rest.domains.delegations.iter().cloned());
            }
        }
        self.rooted(out)
    }

    /// `snap` placed in this cache's root: its `access-domains.yaml` pins folders, as
    /// `load_paths` reads them.
    fn rooted(&self, mut snap: Snapshot) -> Snapshot {
        snap.domains.roots = vec![crate::sources::files::root_label(&self.root)];
        snap
    }
}

/// One file's declarations: its latest parse, and while that is broken as a whole,
/// each object of its last good parse that did not parse now (so nothing it declared
/// disappears).
fn file_snapshot(path: &Path, e: &Entry) -> Snapshot {
    let file = label(path);
    let mut snap = e.current.snapshot(&file);
    if !snap.broken_files.is_empty() {
        if let Some(good) = e.last_good().map(|g| g.snapshot(&file)) {
            keep_missing(&mut snap.users, &good.users);
            keep_missing(&mut snap.bindings, &good.bindings);
            keep_missing(&mut snap.tokens, &good.tokens);
            keep_missing(&mut snap.requests, &good.requests);
            keep_missing(&mut snap.domains.pins, &good.domains.pins);
            keep_missing(&mut snap.domains.delegations, &good.domains.delegations);
            for (k, v) in &good.documents {
                snap.documents.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    snap
}

fn keep_missing<K>(now: &mut Vec<Declared<K>>, before: &[Declared<K>])
where
    K: Resource<DynamicType = ()> + Clone,
{
    let present: BTreeSet<_> = now.iter().map(Declared::key).collect();
    now.extend(
        before
            .iter()
            .filter(|d| !present.contains(&d.key()))
            .cloned(),
    );
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The label a file's objects carry: the path as `load_paths` would print it, so
/// `stagegate apply --dir D` and `stagegate run --dir D` attribute rows alike.
fn label(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
