//! A per-file cache of the secrets directory, so a round that changes nothing
//! reads no Secret file, and the daemon's own deliveries are not news.
//!
//! Why: at 5,000 tokens and 10,000 users the directory holds 15,000 files the
//! daemon wrote itself. Reading all of them every round (for `passwordSecretRef`
//! and to see whether each delivered Secret is still there) was most of a
//! no-op reconcile; and treating its own writes as changes made every apply
//! schedule another reconcile. Each file is read again only when its stamp
//! (inode, size, modification and change time) differs from the one cached;
//! files this process has just written are re-read at once and not reported.
//!
//! Only the data of the Secrets a `passwordSecretRef` named in the last round is
//! kept: the rest (the passwords and token keys this process delivered, 11.5 MiB
//! at that scale) is a digest and a state here, and is read again from disk if a
//! declaration comes to name it.

use crate::secrets::{
    list_secret_files, read_secret_file, Delivery, DirSecretSink, FileStamp, OutgoingSecret,
    SecretFile, SecretFileName, SecretSink, SecretState, SinkError,
};
use crate::snapshot::{Diagnostic, SecretData};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A Secret by (namespace, name).
pub type SecretKey = (String, String);

#[derive(Clone, Debug)]
struct Cached {
    /// None when the file changed while it was read: read it again next time.
    stamp: Option<FileStamp>,
    /// What was read; its `data` only while the Secret is wanted (see `dropped`).
    file: SecretFile,
    /// Its data was read and not kept (no `passwordSecretRef` named it).
    dropped: bool,
}

/// The cached Secret files of one secrets directory.
#[derive(Debug)]
pub struct SecretsCache {
    sink: DirSecretSink,
    files: BTreeMap<SecretKey, Cached>,
    /// Problems of the listing itself (a linked namespace directory).
    listing: Vec<Diagnostic>,
    /// Files read from disk since the cache was made (a figure for tests and logs).
    reads: u64,
    /// The Secrets `passwordSecretRef`s named in the last round: their data is kept.
    wanted: BTreeSet<SecretKey>,
}

impl SecretsCache {
    /// An empty cache of `dir`; [`SecretsCache::refresh`] fills it.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SecretsCache {
            sink: DirSecretSink::new(dir),
            files: BTreeMap::new(),
            listing: Vec::new(),
            reads: 0,
            wanted: BTreeSet::new(),
        }
    }

    /// The secrets directory.
    pub fn root(&self) -> &Path {
        self.sink.root()
    }

    /// How many Secret files have been read from disk so far.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Re-lists the directory and reads the files whose stamp changed; returns the Secrets
    /// that appeared, disappeared or changed content since the last refresh or absorb.
    pub fn refresh(&mut self) -> BTreeSet<SecretKey> {
        let (listed, listing) = list_secret_files(self.sink.root());
        let mut changed = BTreeSet::new();
        if listing != self.listing {
            // A namespace directory that became (or stopped being) a link: its files' fate
            // changed. Reported under an empty key, which no Secret file can have.
            changed.insert((String::new(), String::new()));
            self.listing = listing;
        }
        let present: BTreeSet<SecretKey> = listed
            .iter()
            .map(|f| (f.namespace.clone(), f.name.clone()))
            .collect();
        let gone: Vec<SecretKey> = self
            .files
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            self.files.remove(&k);
            changed.insert(k);
        }
        for f in listed {
            let key = (f.namespace.clone(), f.name.clone());
            let stamp = FileStamp::of(&f.path);
            if stamp.is_some() && self.files.get(&key).is_some_and(|c| c.stamp == stamp) {
                continue;
            }
            if self.read(&f, key.clone()) {
                changed.insert(key);
            }
        }
        changed
    }

    /// Re-reads only the Secret files `paths` name (what the file watcher reported
    /// changed), as [`SecretsCache::refresh`] would find them; None when a path may stand
    /// for more than one file (the root, a namespace directory, a path outside the
    /// directory, a namespace that is not a plain directory): refresh it all then.
    pub fn refresh_paths(&mut self, paths: &[PathBuf]) -> Option<BTreeSet<SecretKey>> {
        let root = self.sink.root().to_path_buf();
        let canonical = root.canonicalize().ok()?;
        // First every path is checked, then read: a refusal must leave the cache as it was.
        let mut reads = Vec::new();
        for p in paths {
            let rel = p
                .strip_prefix(&root)
                .or_else(|_| p.strip_prefix(&canonical))
                .ok()?;
            let parts: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            // Hidden entries (temp files, swap files) are never listed, nor anything deeper.
            if parts.iter().any(|c| c.starts_with('.')) || parts.len() > 2 {
                continue;
            }
            let [ns, file] = parts.as_slice() else {
                return None;
            };
            let Some(name) = file.strip_suffix(".yaml") else {
                continue;
            };
            let ns_dir = root.join(ns);
            if !std::fs::symlink_metadata(&ns_dir).is_ok_and(|m| m.is_dir()) {
                return None;
            }
            reads.push(SecretFileName {
                namespace: ns.clone(),
                name: name.to_string(),
                path: ns_dir.join(file),
            });
        }
        let mut changed = BTreeSet::new();
        for f in reads {
            let key = (f.namespace.clone(), f.name.clone());
            let stamp = FileStamp::of(&f.path);
            let cached = self.files.get(&key);
            // Read even when the stamp looks unchanged: the event says it changed (a rewrite
            // can keep size, inode and coarse times); `read` compares digests.
            if stamp.is_none() && cached.is_none() {
                continue;
            }
            if self.read(&f, key.clone()) {
                changed.insert(key);
            }
        }
        Some(changed)
    }

    /// Re-reads `keys` (Secrets this process has just written or removed) so that the
    /// file-system events of those writes find nothing new. Somebody else's edit of one of
    /// these very files in the instant between the write and this read would be taken for
    /// ours; the next resync plans with what the file then holds.
    pub fn absorb<'a>(&mut self, keys: impl IntoIterator<Item = &'a SecretKey>) {
        for (ns, name) in keys {
            let f = SecretFileName {
                namespace: ns.clone(),
                name: name.clone(),
                path: self.sink.path_of(ns, name),
            };
            self.read(&f, (ns.clone(), name.clone()));
        }
    }

    /// Reads one file into the cache; true when what it holds changed.
    fn read(&mut self, f: &SecretFileName, key: SecretKey) -> bool {
        let before = FileStamp::of(&f.path);
        self.reads += 1;
        let Some(mut file) = read_secret_file(&self.sink, f) else {
            return self.files.remove(&key).is_some();
        };
        let dropped = !self.wanted.contains(&key) && file.data.take().is_some();
        // A writer at work changes the stamp under us: read again at the next refresh.
        let stamp = before.filter(|b| FileStamp::of(&f.path).as_ref() == Some(b));
        let changed = self
            .files
            .get(&key)
            .is_none_or(|c| c.file.digest != file.digest);
        self.files.insert(
            key,
            Cached {
                stamp,
                file,
                dropped,
            },
        );
        changed
    }

    /// The data of the Secrets in `wanted` (those `passwordSecretRef`s name) and every
    /// file's warning, as `load_secrets_dir` reports them. From now on the data of these
    /// Secrets is kept, and of no other: a wanted file whose data was not kept is read
    /// again (what it holds now is what this round plans with).
    pub fn loaded<'a>(
        &mut self,
        wanted: impl IntoIterator<Item = &'a SecretKey>,
    ) -> (BTreeMap<SecretKey, SecretData>, Vec<Diagnostic>) {
        self.wanted = wanted.into_iter().cloned().collect();
        self.load_wanted()
    }

    /// As [`SecretsCache::loaded`] for a round that reads a part of the declarations:
    /// `wanted` is added to the Secrets whose data is kept, and only its data is returned.
    pub fn loaded_also<'a>(
        &mut self,
        wanted: impl IntoIterator<Item = &'a SecretKey>,
    ) -> (BTreeMap<SecretKey, SecretData>, Vec<Diagnostic>) {
        let part: BTreeSet<SecretKey> = wanted.into_iter().cloned().collect();
        self.wanted.extend(part.iter().cloned());
        let (mut secrets, diags) = self.load_wanted();
        secrets.retain(|k, _| part.contains(k));
        (secrets, diags)
    }

    /// The data of the wanted Secrets (read again where it was not kept) and every file's warning.
    fn load_wanted(&mut self) -> (BTreeMap<SecretKey, SecretData>, Vec<Diagnostic>) {
        for c in self
            .files
            .iter_mut()
            .filter(|(k, _)| !self.wanted.contains(*k))
        {
            c.1.dropped |= c.1.file.data.take().is_some();
        }
        let reread: Vec<SecretKey> = self
            .wanted
            .iter()
            .filter(|k| self.files.get(*k).is_some_and(|c| c.dropped))
            .cloned()
            .collect();
        for (ns, name) in reread {
            let f = SecretFileName {
                path: self.sink.path_of(&ns, &name),
                namespace: ns.clone(),
                name: name.clone(),
            };
            self.read(&f, (ns, name));
        }
        let secrets = self
            .wanted
            .iter()
            .filter_map(|k| {
                let data = self.files.get(k)?.file.data.clone()?;
                Some((k.clone(), data))
            })
            .collect();
        let mut diags = self.listing.clone();
        diags.extend(
            self.files
                .values()
                .filter_map(|c| c.file.warning.as_deref().cloned()),
        );
        (secrets, diags)
    }

    /// What a sink would find under `namespace/name` at the last refresh; None when unknown.
    fn state(&self, namespace: &str, name: &str) -> Option<SecretState> {
        match self.files.get(&(namespace.to_string(), name.to_string())) {
            None => Some(SecretState::Absent),
            Some(c) => c.file.state.clone(),
        }
    }

    /// A sink that answers `state` from this cache and records what it writes.
    pub fn sink(&self) -> CachedSink<'_> {
        CachedSink {
            inner: DirSecretSink::new(self.sink.root()),
            cache: self,
            written: Mutex::new(BTreeSet::new()),
        }
    }
}

/// The directory sink, with `state` answered from a [`SecretsCache`] refreshed at the
/// start of the round; deliveries and removals go to the directory and are recorded.
#[derive(Debug)]
pub struct CachedSink<'a> {
    inner: DirSecretSink,
    cache: &'a SecretsCache,
    written: Mutex<BTreeSet<SecretKey>>,
}

impl CachedSink<'_> {
    /// The Secrets this sink wrote or removed (or tried to).
    pub fn written(&self) -> BTreeSet<SecretKey> {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn record(&self, namespace: &str, name: &str) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_string(), name.to_string()));
    }
}

impl SecretSink for CachedSink<'_> {
    fn state(&self, namespace: &str, name: &str) -> Result<SecretState, SinkError> {
        match self.cache.state(namespace, name) {
            Some(s) => Ok(s),
            None => self.inner.state(namespace, name),
        }
    }

    fn deliver(&self, secret: &OutgoingSecret) -> Result<Delivery, SinkError> {
        let result = self.inner.deliver(secret);
        self.record(&secret.namespace, &secret.name);
        result
    }

    fn flush(&self) -> BTreeMap<String, SinkError> {
        self.inner.flush()
    }

    fn retire(&self, namespace: &str, name: &str, key_id: &str) -> Result<bool, SinkError> {
        let result = self.inner.retire(namespace, name, key_id);
        self.record(namespace, name);
        result
    }
}

#[cfg(test)]
#[path = "secrets_cache_tests.rs"]
mod tests;
