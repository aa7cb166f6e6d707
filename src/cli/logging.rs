//! The daemon's log: `tracing` lines (text or JSON) written to stderr by a
//! background thread, so that a request's access line costs the request its
//! formatting and a copy into a shared buffer, not a `write` system call.
//!
//! Why not `tracing-appender`'s non-blocking writer (used before): it hands
//! each line over as its own allocation through a channel and wakes its
//! writer thread for nearly every line. With one access line per request,
//! those wakes took the logged `/v1/authorize` server from 79 % to 54 % of a
//! bare axum handler's rate on an otherwise quiet 2-core VM (`cargo bench
//! --bench api`). Here the writer thread is woken once per batch: by the line
//! that finds the buffer empty. It then lets lines gather for [`BATCH_WINDOW`]
//! and writes them with one `write`, the way nginx's buffered access log
//! (`access_log ... buffer= flush=`) does. An idle daemon's writer sleeps.
//!
//! Nothing is dropped: when [`MAX_PENDING_BYTES`] are waiting, a logging
//! thread waits for the writer, as a blocking `write` to a slow stderr did.
//! [`LogGuard`] (dropped when `run` returns) and [`flush`] write out what is
//! pending before the process ends.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Most bytes of lines waiting for the writer thread before a logging thread waits for it
/// (4 MiB: about 20,000 access lines).
pub const MAX_PENDING_BYTES: usize = 4 << 20;

/// How long the writer thread lets lines gather after the first one of a batch: the most a
/// line waits before it is written while the output keeps up.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// The process log's writer thread, ended (its lines written out) by [`flush`].
static PROCESS_LOG: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Writes out the process log's pending lines when dropped; keep it until `run` returns.
pub struct LogGuard(());

impl Drop for LogGuard {
    fn drop(&mut self) {
        flush();
    }
}

/// Lines waiting to be written, and the writer thread's state.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// The writer thread waits for a first line (a logging thread that finds the buffer
    /// empty wakes it).
    idle: bool,
    /// The guard was dropped: the writer writes what is pending and ends; later lines are
    /// not written.
    closed: bool,
}

/// What the logging threads and the writer thread share.
#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer: a first line, a full buffer, or the guard dropped.
    wake_writer: Condvar,
    /// Wakes logging threads waiting for room.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves bytes, never a broken invariant.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A [`MakeWriter`] whose lines a background thread writes in batches (see the module
/// documentation). Cheap to clone; every clone writes to the same thread.
#[derive(Clone)]
pub struct Background(Arc<Shared>);

impl Write for Background {
    /// Appends `buf` (a whole line, as the subscriber writes each event) to the pending
    /// lines; waits while [`MAX_PENDING_BYTES`] are pending. Never fails.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shared = &*self.0;
        let mut pending = shared.lock();
        while pending.lines.len() >= MAX_PENDING_BYTES && !pending.closed {
            shared.wake_writer.notify_one();
            pending = shared.room.wait(pending).unwrap_or_else(|p| p.into_inner());
        }
        if pending.closed {
            return Ok(buf.len());
        }
        pending.lines.extend_from_slice(buf);
        if pending.idle {
            pending.idle = false;
            shared.wake_writer.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Background {
    type Writer = Background;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Ends the writer thread when dropped, once it has written every pending line.
pub struct WorkerGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake_writer.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread only writes; a panic there has nothing left to report.
            thread.join().ok();
        }
    }
}

/// The writer thread: waits for a first line, lets a batch gather, writes it with one
/// `write`, until the guard is dropped and nothing is pending. A failing `out` loses its
/// lines but blocks no one.
fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.lines.is_empty() && !pending.closed {
            pending.idle = true;
            pending = shared
                .wake_writer
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
        pending.idle = false;
        if pending.lines.is_empty() {
            return;
        }
        if !pending.closed && pending.lines.len() < MAX_PENDING_BYTES {
            // Woken early by a full buffer or the guard; otherwise the window ends it.
            pending = shared
                .wake_writer
                .wait_timeout(pending, BATCH_WINDOW)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        std::mem::swap(&mut pending.lines, &mut batch);
        drop(pending);
        shared.room.notify_all();
        out.write_all(&batch).and_then(|()| out.flush()).ok();
        batch.clear();
        // Keep the buffer for the next batch unless one burst made it large.
        if batch.capacity() > MAX_PENDING_BYTES {
            batch = Vec::new();
        }
    }
}

/// A writer whose lines a background thread writes to `out` in batches, never dropped;
/// dropping the guard writes out what is pending and ends the thread.
pub fn background<W: Write + Send + 'static>(out: W) -> (Background, WorkerGuard) {
    let shared = Arc::new(Shared::default());
    let writer = shared.clone();
    let thread = std::thread::Builder::new()
        .name("stagegate-log".into())
        .spawn(move || write_batches(&writer, out))
        .expect("spawning the log writer thread");
    let guard = WorkerGuard {
        shared: shared.clone(),
        thread: Some(thread),
    };
    (Background(shared), guard)
}

/// The daemon's log subscriber: `RUST_LOG` or `info` (each change, and each API request, is one
/// line), text or JSON, written through `writer`.
pub fn log_dispatch<W>(json: bool, ansi: bool, writer: W) -> tracing::Dispatch
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(super::log_filter("info"))
        .with_ansi(ansi)
        .with_writer(writer);
    if json {
        tracing::Dispatch::new(builder.json().flatten_event(true).finish())
    } else {
        tracing::Dispatch::new(builder.finish())
    }
}

/// Logging to stderr through the background writer, as text or JSON. None when a subscriber
/// was already set (tests in one process): that one stays, with its writer.
pub fn init(json: bool) -> Option<LogGuard> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, worker) = background(std::io::stderr());
    if log_dispatch(json, ansi, writer).try_init().is_err() {
        return None;
    }
    *PROCESS_LOG.lock().unwrap_or_else(|p| p.into_inner()) = Some(worker);
    Some(LogGuard(()))
}

/// Writes out the process log's pending lines and ends its writer thread (before
/// `std::process::exit`, and when `run` returns); later lines are not written.
pub fn flush() {
    let worker = PROCESS_LOG.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(worker);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records its writes (and how many) and can be told to fail.
    #[derive(Clone, Default)]
    struct Sink {
        out: Arc<Mutex<Vec<u8>>>,
        writes: Arc<std::sync::atomic::AtomicUsize>,
        fail: bool,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.fail {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            if self.fail {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            Ok(())
        }
    }

    /// Lines from several threads, three times what may wait, are all written, each thread's
    /// in order, by the time the guard is dropped.
    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let sink = Sink::default();
        let (writer, guard) = background(sink.clone());
        // About 12 bytes a line: 3 MiB per thread.
        let per_thread = MAX_PENDING_BYTES / 16;
        std::thread::scope(|s| {
            for t in 0..4 {
                let mut w = writer.clone();
                s.spawn(move || {
                    // One `write` per line, as the subscriber writes each formatted line.
                    for i in 0..per_thread {
                        w.write_all(format!("t{t} {i}\n").as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(sink.out.lock().unwrap().clone()).unwrap();
        for t in 0..4 {
            let seen: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(seen, (0..per_thread).collect::<Vec<_>>(), "thread {t}");
        }
    }

    /// An output that fails neither blocks nor fails the threads that log, even past the
    /// limit of what may wait.
    #[test]
    fn a_failed_output_neither_blocks_nor_fails_the_logging_threads() {
        let sink = Sink {
            fail: true,
            ..Sink::default()
        };
        let (mut writer, guard) = background(sink.clone());
        for i in 0..MAX_PENDING_BYTES / 4 {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        drop(guard);
        assert!(sink.out.lock().unwrap().is_empty());
    }

    /// A line is written while the guard is still held (the first line of a batch wakes the
    /// writer), and a burst of lines is written with far fewer `write`s than lines.
    #[test]
    fn lines_are_written_in_batches_without_waiting_for_the_guard() {
        let sink = Sink::default();
        let (mut writer, guard) = background(sink.clone());
        writer.write_all(b"first\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sink.out.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first line was never written"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let lines = 10_000;
        for i in 0..lines {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        drop(guard);
        let writes = sink.writes.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            sink.out
                .lock()
                .unwrap()
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            lines + 1
        );
        assert!(writes < lines / 10, "{writes} writes for {lines} lines");
    }
}
