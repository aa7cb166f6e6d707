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
use crate::snapshot::{Declared, Snapshot};
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
        let mut out = Refresh::default();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !listed.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            self.files.remove(&path);
            out.changed.push((label(&path), FileEvent::Removed));
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
            match read {
                Read::Gone => {
                    if self.files.remove(&path).is_some() {
                        out.changed.push((label(&path), FileEvent::Removed));
                    }
                }
                Read::Unsettled => out.unsettled.push(label(&path)),
                Read::Bytes(stamp, bytes) => {
                    if let Some(ev) = self.update(&path, stamp, bytes) {
                        out.changed.push((label(&path), ev));
                    }
                }
                Read::Failed(why) => {
                    let stamp = Stamp::of(&file.open).unwrap_or(Stamp {
                        len: 0,
                        modified: None,
                        inode: 0,
                    });
                    // The same refusal again is no news.
                    let digest: [u8; 32] = Sha256::digest(why.as_bytes()).into();
                    if self.files.get(&path).is_some_and(|e| e.digest == digest) {
                        continue;
                    }
                    let file = label(&path);
                    let snap = file_problem(
                        &file,
                        None,
                        format!("{why}; its last good declarations are kept"),
                    );
                    self.store(&path, stamp, digest, snap);
                    out.changed.push((file, FileEvent::Broken));
                }
            }
        }
        Ok(out)
    }

    /// Parses `bytes` into the entry of `path`; returns what happened, or None when the content is unchanged.
    fn update(&mut self, path: &Path, stamp: Stamp, bytes: Vec<u8>) -> Option<FileEvent> {
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
        snap.reread.insert(file, digest);
        let broken = !snap.broken_files.is_empty();
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
            out.extend(snap);
        }
        // Its `access-domains.yaml` pins folders, as `load_paths` reads them.
        out.domains.roots = vec![crate::sources::files::root_label(&self.root)];
        out
    }
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
