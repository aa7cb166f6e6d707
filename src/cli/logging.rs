//! The daemon's log: `tracing` lines (text or JSON) written by a background
//! thread, so that a request's access line costs the request its formatting
//! and a copy into a shared buffer, not a `write` system call.
//!
//! ```text
//!  request threads ──format──► shared buffer ──(wake once per batch)──► writer thread ──► stderr
//! ```
//!
//! Nothing is dropped: past [`MAX_PENDING`] bytes a writer waits for the
//! thread to catch up, as a blocking `write` to a slow stderr did. The
//! thread writes what is pending, then waits [`BATCH`] before looking again,
//! so under load it wakes about a thousand times a second whatever the
//! request rate, and an idle daemon's line is written within about a
//! millisecond. [`LogGuard`] (dropped when `run` returns) and [`flush`]
//! write out what is pending before the process ends.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Most bytes waiting to be written before a logging thread waits for the writer.
pub const MAX_PENDING: usize = 4 << 20;
/// How long the writer thread lets lines gather after writing a batch.
pub const BATCH: Duration = Duration::from_millis(1);

#[derive(Default)]
struct Pending {
    /// Bytes not yet handed to the writer thread.
    bytes: Vec<u8>,
    /// Bytes ever appended, and ever written: a flush waits until `written` reaches its mark.
    appended: u64,
    written: u64,
    /// The writer thread is asleep waiting for bytes.
    idle: bool,
    /// The writer thread has stopped (its output failed): lines are discarded.
    gone: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when bytes arrive while the writer thread is idle.
    arrived: Condvar,
    /// Signalled after each batch is written.
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until every byte appended so far is written (or the writer thread is gone).
    fn flush(&self) {
        let mut p = self.lock();
        let mark = p.appended;
        while p.written < mark && !p.gone {
            p = self.written.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The process's background log writer, for [`flush`] before an abrupt exit.
static PROCESS_LOG: OnceLock<Arc<Shared>> = OnceLock::new();

/// A `MakeWriter` whose lines a background thread writes; clones share the thread.
#[derive(Clone)]
pub struct BackgroundWriter {
    shared: Arc<Shared>,
}

/// Flushes the background writer when dropped.
pub struct LogGuard {
    shared: Arc<Shared>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.flush();
    }
}

impl BackgroundWriter {
    /// Starts the writer thread on `out`; the guard writes out what is pending when dropped.
    pub fn spawn<W: Write + Send + 'static>(out: W) -> std::io::Result<(Self, LogGuard)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            arrived: Condvar::new(),
            written: Condvar::new(),
        });
        let thread = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_batches(&thread, out))?;
        Ok((
            BackgroundWriter {
                shared: shared.clone(),
            },
            LogGuard { shared },
        ))
    }

    /// Waits until every line logged so far is written.
    pub fn flush(&self) {
        self.shared.flush();
    }
}

/// The writer thread: takes everything pending, writes it with one `write_all` and a flush,
/// lets the next lines gather for [`BATCH`], and sleeps while there are none.
fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let mut p = shared.lock();
        while p.bytes.is_empty() {
            p.idle = true;
            p = shared.arrived.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        p.idle = false;
        // Swapped: the request threads append into last batch's (cleared) allocation.
        std::mem::swap(&mut p.bytes, &mut batch);
        let mark = p.appended;
        drop(p);
        let ok = out.write_all(&batch).and_then(|()| out.flush()).is_ok();
        batch.clear();
        let mut p = shared.lock();
        p.written = mark;
        p.gone = !ok;
        drop(p);
        shared.written.notify_all();
        if !ok {
            // Like a failed write to stderr before: the lines are lost, the process goes on.
            return;
        }
        std::thread::sleep(BATCH);
    }
}

impl Write for &BackgroundWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shared = &self.shared;
        let mut p = shared.lock();
        while p.bytes.len() >= MAX_PENDING && !p.gone {
            p = shared.written.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        if p.gone {
            return Ok(buf.len());
        }
        p.bytes.extend_from_slice(buf);
        p.appended += buf.len() as u64;
        let wake = p.idle;
        p.idle = false;
        drop(p);
        if wake {
            shared.arrived.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Lines are flushed by the writer thread; `flush()` of the process log waits for it.
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BackgroundWriter {
    type Writer = &'a BackgroundWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
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

/// Logging to stderr through a background writer (see the module doc), as text or JSON.
/// Keep the guard until the process ends: dropping it writes out the pending lines.
pub fn init(json: bool) -> Option<LogGuard> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = match BackgroundWriter::spawn(std::io::stderr()) {
        Ok(w) => w,
        Err(_) => {
            // No thread to write with: write each line from the logging thread, as before.
            let _ = log_dispatch(json, ansi, std::io::stderr).try_init();
            return None;
        }
    };
    let shared = writer.shared.clone();
    // A subscriber already set (tests in one process) stays, and so does its writer.
    if log_dispatch(json, ansi, writer).try_init().is_err() {
        return None;
    }
    let _ = PROCESS_LOG.set(shared);
    Some(guard)
}

/// Writes out the pending log lines of the process log (before `std::process::exit`).
pub fn flush() {
    if let Some(shared) = PROCESS_LOG.get() {
        shared.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records its writes and can be told to fail.
    #[derive(Clone, Default)]
    struct Sink {
        out: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        fail: bool,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.fail {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            *self.writes.lock().unwrap() += 1;
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_flush_returns() {
        let sink = Sink::default();
        let (writer, guard) = BackgroundWriter::spawn(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        (&w).write_all(format!("t{t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let out = String::from_utf8(sink.out.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 8000);
        for t in 0..4 {
            let mine: Vec<usize> = out
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2000).collect::<Vec<_>>(), "thread {t}");
        }
        // Batched: fewer writes than lines.
        assert!(*sink.writes.lock().unwrap() < 8000);
        // Lines logged after a flush are written too.
        (&writer).write_all(b"late\n").unwrap();
        writer.flush();
        assert!(sink.out.lock().unwrap().ends_with(b"late\n"));
    }

    #[test]
    fn a_failed_output_neither_blocks_nor_fails_the_logging_threads() {
        let sink = Sink {
            fail: true,
            ..Sink::default()
        };
        let (writer, guard) = BackgroundWriter::spawn(sink).unwrap();
        // More than MAX_PENDING: would wait forever if the writer thread's end were not seen.
        let line = vec![b'x'; 64 * 1024];
        for _ in 0..(2 * MAX_PENDING / line.len()) {
            (&writer).write_all(&line).unwrap();
        }
        drop(guard);
    }
}
