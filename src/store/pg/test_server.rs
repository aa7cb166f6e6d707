//! A throw-away PostgreSQL server for tests: started once per test process from the
//! distribution's binaries, in a temporary directory, on a free loopback port, as a
//! non-root user (initdb refuses root), and removed when the test process exits.
//!
//! The server runs under a small shell that holds a pipe from the test process: when
//! the test process ends (however it ends) the pipe closes, and the shell stops the
//! server and deletes its directory. Each caller gets a database of its own.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Server {
    port: u16,
    /// Closing this pipe (at process exit) stops the server.
    _keep: Mutex<(Child, ChildStdin)>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Where the server binaries are: `$STAGEGATE_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("STAGEGATE_PG_BIN") {
        return dir.into();
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d).unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install the \
             `postgresql` package (`make test-deps` does) or set STAGEGATE_PG_BIN"
        )
    })
}

/// The shell that owns the server: creates its directory, runs initdb and postgres,
/// reports `started`, waits for its stdin to close, then stops the server and cleans up.
const SCRIPT: &str = r#"
set -e
d=$(mktemp -d "${TMPDIR:-/tmp}/stagegate-pg.XXXXXX")
trap 'rm -rf "$d"' EXIT
"$BIN/initdb" -D "$d/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$d/initdb.log" 2>&1 \
  || { cat "$d/initdb.log" >&2; exit 1; }
"$BIN/postgres" -D "$d/data" -h 127.0.0.1 -p "$PORT" -k "$d" -F \
  -c max_connections=300 -c shared_buffers=32MB >"$d/server.log" 2>&1 &
pid=$!
echo started
cat >/dev/null || true
kill -INT "$pid" 2>/dev/null || true
wait "$pid" || true
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn start() -> Server {
    let port = free_port();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if root {
        // initdb and postgres refuse to run as root: the whole server runs as `nobody`.
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "sh", "-c", SCRIPT]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", SCRIPT]);
        c
    };
    let mut child = cmd
        .env("BIN", bin_dir())
        .env("PORT", port.to_string())
        .env_remove("TMPDIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the PostgreSQL test server");
    let stdin = child.stdin.take().expect("piped stdin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read from the PostgreSQL test server shell");
    assert_eq!(
        line.trim(),
        "started",
        "the PostgreSQL test server did not start (initdb output is above)"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match postgres::Client::connect(&admin_url(port), postgres::NoTls) {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("the PostgreSQL test server never accepted connections: {e}"),
        }
    }
    Server {
        port,
        _keep: Mutex::new((child, stdin)),
    }
}

fn admin_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// The URL of a new, empty database on this process's test server (started on first use).
pub fn database() -> String {
    let server = SERVER.get_or_init(|| {
        // Off the caller's thread: the sync client cannot run inside an async runtime.
        std::thread::spawn(start)
            .join()
            .expect("start the PostgreSQL test server")
    });
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    // CREATE DATABASE cannot run in the caller's runtime context: a thread of its own.
    let admin = admin_url(server.port);
    let create = name.clone();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect as admin");
        c.batch_execute(&format!("CREATE DATABASE {create}"))
            .expect("create a test database");
    })
    .join()
    .expect("create a test database");
    format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
}
