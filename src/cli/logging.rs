//! The daemon's log: `tracing` lines (text or JSON) written to stderr by a
//! background thread (`tracing-appender`'s non-blocking writer), so that a
//! request's access line costs the request its formatting and a hand-over to
//! a channel, not a `write` system call.
//!
//! Nothing is dropped (`lossy(false)`): when the writer thread falls behind
//! by [`MAX_PENDING_LINES`] lines, a logging thread waits, as a blocking
//! `write` to a slow stderr did. The thread writes every line waiting in the
//! channel through one buffer and flushes it once the channel is empty, so a
//! burst of lines is one `write`. [`LogGuard`] (dropped when `run` returns)
//! and [`flush`] write out what is pending before the process ends.

use std::sync::Mutex;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Most lines waiting for the writer thread before a logging thread waits for it.
pub const MAX_PENDING_LINES: usize = 16_384;

/// The process log's writer thread, ended (its lines written out) by [`flush`].
static PROCESS_LOG: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Writes out the process log's pending lines when dropped; keep it until `run` returns.
pub struct LogGuard(());

impl Drop for LogGuard {
    fn drop(&mut self) {
        flush();
    }
}

/// A writer whose lines a background thread writes to `out`, batched through one buffer,
/// never dropped; dropping the guard writes out what is pending and ends the thread.
pub fn background<W: std::io::Write + Send + 'static>(out: W) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(MAX_PENDING_LINES)
        .thread_name("stagegate-log")
        .finish(std::io::BufWriter::new(out))
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
    use std::io::Write;
    use std::sync::Arc;

    /// An output that records its writes and can be told to fail.
    #[derive(Clone, Default)]
    struct Sink {
        out: Arc<Mutex<Vec<u8>>>,
        fail: bool,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.fail {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
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

    /// Lines from several threads, more than the channel holds, are all written, each thread's
    /// in order, by the time the guard is dropped.
    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let sink = Sink::default();
        let (writer, guard) = background(sink.clone());
        let per_thread = MAX_PENDING_LINES;
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
    /// channel's limit.
    #[test]
    fn a_failed_output_neither_blocks_nor_fails_the_logging_threads() {
        let sink = Sink {
            fail: true,
            ..Sink::default()
        };
        let (mut writer, guard) = background(sink.clone());
        for i in 0..2 * MAX_PENDING_LINES {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        drop(guard);
        assert!(sink.out.lock().unwrap().is_empty());
    }
}
