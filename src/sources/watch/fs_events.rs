//! File-system notifications, debounced, delivered to an async channel.

use notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// One debounced batch: the paths that changed, or a watcher error.
pub type Batch = Result<Vec<PathBuf>, String>;

/// Keeps the OS watches alive; dropping it stops them.
pub struct FsWatch {
    _debouncer: Debouncer<notify::RecommendedWatcher>,
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
    let mut debouncer = new_debouncer(debounce, move |res: DebounceEventResult| {
        let batch = res
            .map(|evs| evs.into_iter().map(|e| e.path).collect())
            .map_err(|e| e.to_string());
        // The receiver is gone only when the daemon is stopping.
        let _ = tx.send(batch);
    })
    .map_err(err(paths.first().copied().unwrap_or(Path::new("."))))?;
    for p in paths {
        debouncer
            .watcher()
            .watch(p, RecursiveMode::Recursive)
            .map_err(err(p))?;
    }
    Ok(FsWatch {
        _debouncer: debouncer,
    })
}
