//! Helpers shared by the integration tests: the binary, the repository root, temp dirs.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command for the built `stagegate` binary, run from the repository root.
pub fn stagegate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stagegate"));
    // `run` serves the API: an ephemeral port keeps parallel tests apart.
    c.current_dir(root()).env("STAGEGATE_LISTEN", "127.0.0.1:0");
    c
}

/// Runs `stagegate ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    stagegate().args(args).output().expect("stagegate runs")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Copies a directory tree (tests that edit a copy of `examples/`).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
