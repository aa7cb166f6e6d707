//! A second apply with nothing changed writes nothing: no audit rows, no status rewrites, no Secret files.

use super::{audit_count, mtime, Env};
use crate::stores::{on_both_stores, StoreKind};
use stagegate::store::Store;

on_both_stores!(second_apply_writes_nothing);
fn second_apply_writes_nothing(kind: StoreKind) {
    let env = Env::from_examples().on(kind);
    let (code, _, _) = env.apply();
    assert_eq!(
        code, 1,
        "maria's passwordSecretRef Secret is absent in this test"
    );
    let store = env.open();
    let audit = audit_count(&store);
    let statuses = store.statuses().unwrap();
    drop(store);
    let files: Vec<_> = std::fs::read_dir(env.secrets.join("ml-platform"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 8, "seven passwords and tokens, one invitation");
    let times: Vec<_> = files.iter().map(|f| mtime(f)).collect();
    // SQLite: the file's bytes; PostgreSQL: the revision every commit bumps.
    let db = match kind {
        StoreKind::Sqlite => std::fs::read(&env.store).unwrap(),
        StoreKind::Postgres => env
            .open()
            .current_revision()
            .unwrap()
            .to_le_bytes()
            .to_vec(),
    };

    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, _, _) = env.apply();
    assert_eq!(code, 1);
    let plan = env.run("plan", &[]);
    assert!(
        crate::support::stdout(&plan).starts_with("No changes"),
        "{}",
        crate::support::stdout(&plan)
    );

    let store = env.open();
    assert_eq!(audit_count(&store), audit);
    assert_eq!(store.statuses().unwrap(), statuses);
    let after: Vec<_> = files.iter().map(|f| mtime(f)).collect();
    assert_eq!(times, after);
    // Not a byte of the database changed (the WAL is checkpointed and removed on close).
    let after = match kind {
        StoreKind::Sqlite => std::fs::read(&env.store).unwrap(),
        StoreKind::Postgres => env
            .open()
            .current_revision()
            .unwrap()
            .to_le_bytes()
            .to_vec(),
    };
    assert!(after == db, "the store was written");
}

on_both_stores!(plan_is_deterministic_and_changes_nothing);
fn plan_is_deterministic_and_changes_nothing(store: StoreKind) {
    let env = Env::from_examples().on(store);
    let a = env.run("plan", &["--output", "json"]);
    let b = env.run("plan", &["--output", "json"]);
    assert!(a.status.success(), "{}", crate::support::stderr(&a));
    // Only the decision time of not-yet-decided requests depends on the clock.
    let strip = |o: &std::process::Output| -> String {
        crate::support::stdout(o)
            .lines()
            .filter(|l| !l.contains("decidedAt"))
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(!env.store.exists(), "plan must not create the store");
    assert!(!env.secrets.exists(), "plan must not deliver secrets");
    let md = env.run("plan", &["--output", "markdown"]);
    assert!(crate::support::stdout(&md).contains("| + | User ml-platform/ada |"));
}
