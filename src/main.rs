//! The `stagegate` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    stagegate::cli::main()
}
