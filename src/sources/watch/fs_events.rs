//! File-system notifications, debounced, delivered to an async channel.
//!
//! Only events that can change what a file holds count: creation, removal,
//! renames, writes and attribute changes. Reads do not. inotify reports every
//! open and every close of a file as well, and the daemon itself opens files
//! (each manifest it parses, each Secret file it reads); counting those would
//! make every reconcile schedule the next one, for ever.

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One debounced batch: the paths that changed, or a watcher error.
pub type Batch = Result<Vec<PathBuf>, String>;

/// Keeps the OS watches alive; dropping it stops them (and the debounce thread).
pub struct FsWatch {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for FsWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsWatch")
    }
}

/// Errors starting a watch.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    /// The path.
    pub path: String,
    /// Cause.
    #[source]
    pub source: notify::Error,
}

/// Whether an event can mean that a file's content, existence or mode changed.
///
/// Opening, reading and closing a file without writing it cannot; closing after a
/// write can (some writers' last event), as can everything else, including kinds
/// the back end could not classify.
pub fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// A burst of events that never pauses is still delivered after this many debounce periods.
const MAX_DELAY_PERIODS: u32 = 10;

/// Watches each of `paths` recursively; every `debounce` quiet period yields one batch on `tx`.
pub fn watch(
    paths: &[&Path],
    debounce: Duration,
    tx: mpsc::UnboundedSender<Batch>,
) -> Result<FsWatch, WatchError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| WatchError { path, source }
    };
    let (raw_tx, raw_rx) = std_mpsc::channel::<notify::Result<Event>>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
        // Filtered here, on the watcher's thread, so reads never even wake the debouncer.
        if res.as_ref().is_ok_and(|e| !changes_content(&e.kind)) {
            return;
        }
        // The receiver is gone only when the watch is being dropped.
        let _ = raw_tx.send(res);
    })
    .map_err(err(paths.first().copied().unwrap_or(Path::new("."))))?;
    for p in paths {
        watcher.watch(p, RecursiveMode::Recursive).map_err(err(p))?;
    }
    std::thread::Builder::new()
        .name("stagegate-fs-debounce".into())
        .spawn(move || debounce_loop(&raw_rx, debounce, &tx))
        .map_err(|e| WatchError {
            path: "(debounce thread)".into(),
            source: notify::Error::io(e),
        })?;
    Ok(FsWatch { _watcher: watcher })
}

/// Collects events until `debounce` passes without one, then sends the batch; ends with the watcher.
fn debounce_loop(
    rx: &std_mpsc::Receiver<notify::Result<Event>>,
    debounce: Duration,
    tx: &mpsc::UnboundedSender<Batch>,
) {
    // Blocks without a timeout while nothing happens: an idle daemon's watch costs no CPU.
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let mut paths = BTreeSet::new();
        let mut errors = Vec::new();
        let mut add = |res: notify::Result<Event>| match res {
            Ok(e) => paths.extend(e.paths),
            Err(e) => errors.push(e.to_string()),
        };
        add(first);
        let mut open = true;
        while started.elapsed() < debounce * MAX_DELAY_PERIODS {
            match rx.recv_timeout(debounce) {
                Ok(res) => add(res),
                Err(std_mpsc::RecvTimeoutError::Timeout) => break,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let sent = if errors.is_empty() {
            tx.send(Ok(paths.into_iter().collect()))
        } else {
            tx.send(Err(errors.join("; ")))
        };
        if sent.is_err() || !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind};

    #[test]
    fn reads_do_not_count_writes_do() {
        for quiet in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Any),
        ] {
            assert!(!changes_content(&quiet), "{quiet:?}");
        }
        for loud in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
            EventKind::Other,
        ] {
            assert!(changes_content(&loud), "{loud:?}");
        }
    }
}
