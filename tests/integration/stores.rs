//! The two stores the daemon and API suites run against (issue 13): each such test is a
//! `fn NAME(store: StoreKind)`, and [`on_both_stores!`] turns it into the tests
//! `NAME::sqlite` and `NAME::postgres`, so a failure names the store it happened on.

use std::path::{Path, PathBuf};

/// Which store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// A SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database on this process's PostgreSQL test server (one server, a database per test).
    Postgres,
}

impl StoreKind {
    /// A new, empty store location as `--store` takes it: `sqlite_path` (created on first
    /// open) for SQLite, or the `postgres://` URL of a new database.
    pub fn location(self, sqlite_path: &Path) -> PathBuf {
        match self {
            StoreKind::Sqlite => sqlite_path.to_path_buf(),
            StoreKind::Postgres => stagegate::store::pg::test_server::database().into(),
        }
    }
}

/// For each `fn NAME(store: StoreKind)` named, the tests `NAME::sqlite` and `NAME::postgres`
/// (a module of the function's name: functions and modules have separate namespaces).
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::stores::StoreKind::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name($crate::stores::StoreKind::Postgres)
                }
            }
        )+
    };
}
pub(crate) use on_both_stores;
