//! The failed-login counters of both stores: the back-off arithmetic, forgetting, and one
//! atomic check-and-count however many connections race for the same counter.

use super::tests::both_stores;
use super::throttle::tests_policy as policy;
use super::*;
use std::time::Duration;

fn counter(key: &str) -> Counter {
    Counter {
        key: key.into(),
        policy: policy(),
    }
}

fn at(t: Timestamp, secs: i64) -> Timestamp {
    t + jiff::SignedDuration::from_secs(secs)
}

fn reserve(s: &mut AnyStore, key: &str, now: Timestamp) -> Attempt {
    s.reserve_attempt(&[counter(key)], now).unwrap()
}

fn reserved(lock: Option<u64>) -> Attempt {
    Attempt::Reserved {
        lock: lock.map(Duration::from_secs),
    }
}

/// Rows of the counters table (not in `TABLES`: `store copy` leaves counters behind).
fn rows(s: &AnyStore) -> i64 {
    match s {
        AnyStore::Sqlite(s) => s
            .conn_for_tests()
            .query_row("SELECT count(*) FROM login_failures", [], |r| r.get(0))
            .unwrap(),
        AnyStore::Postgres(s) => s
            .scalar_for_tests("SELECT count(*) FROM login_failures")
            .unwrap(),
    }
}

#[test]
fn delay_doubles_after_the_free_failures_up_to_the_cap_in_both_stores() {
    for (name, mut s) in both_stores() {
        eprintln!("store: {name}");
        let s = &mut s;
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        for _ in 0..4 {
            assert_eq!(reserve(s, "a", t), reserved(None), "{name}");
        }
        // The fifth reservation starts the first lock; reserving while locked counts nothing.
        assert_eq!(reserve(s, "a", t), reserved(Some(1)), "{name}");
        assert_eq!(
            reserve(s, "a", t),
            Attempt::Locked {
                wait: Duration::from_secs(1)
            },
            "{name}"
        );
        let mut now = t;
        let mut delays = Vec::new();
        for _ in 0..12 {
            now = at(now, 901);
            match reserve(s, "a", now) {
                Attempt::Reserved { lock: Some(l) } => delays.push(l.as_secs()),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(
            delays,
            [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900],
            "{name}"
        );
        assert_eq!(reserve(s, "b", now), reserved(None), "{name}");
        s.forget_failures("a").unwrap();
        assert_eq!(reserve(s, "a", now), reserved(None), "{name}");
        // One locked counter blocks the whole attempt, and the other is not counted either.
        for _ in 0..4 {
            reserve(s, "c", now);
        }
        let pair = [counter("c"), counter("d")];
        assert_eq!(s.reserve_attempt(&pair, now).unwrap(), reserved(Some(1)));
        assert!(matches!(
            s.reserve_attempt(&pair, now).unwrap(),
            Attempt::Locked { .. }
        ));
        for _ in 0..3 {
            assert_eq!(
                reserve(s, "d", now),
                reserved(None),
                "{name}: d counted once"
            );
        }
        assert_eq!(reserve(s, "d", now), reserved(Some(1)), "{name}");
    }
}

#[test]
fn quiet_counters_start_over_and_their_rows_are_deleted_in_both_stores() {
    for (name, mut s) in both_stores() {
        eprintln!("store: {name}");
        let s = &mut s;
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        for _ in 0..4 {
            reserve(s, "a", t);
        }
        reserve(s, "b", t);
        assert_eq!(rows(s), 2, "{name}");
        // An hour later "a" starts over; "b", as quiet, is deleted by that attempt.
        assert_eq!(reserve(s, "a", at(t, 3600)), reserved(None), "{name}");
        assert_eq!(rows(s), 1, "{name}: the quiet counter's row is gone");
        // A locked counter stays while its lock runs, whatever its quiet window.
        let short = Counter {
            key: "c".into(),
            policy: BackoffPolicy {
                free_failures: 1,
                base: Duration::from_secs(100),
                forget_after: Duration::from_secs(10),
                ..policy()
            },
        };
        let t2 = at(t, 3600);
        assert!(matches!(
            s.reserve_attempt(std::slice::from_ref(&short), t2).unwrap(),
            Attempt::Reserved { lock: Some(_) }
        ));
        reserve(s, "x", at(t2, 50));
        assert!(matches!(
            s.reserve_attempt(std::slice::from_ref(&short), at(t2, 50))
                .unwrap(),
            Attempt::Locked { .. }
        ));
    }
}

#[test]
fn racing_connections_get_exactly_the_free_attempts_in_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("store.db");
    let url = pg::test_server::database();
    for location in [sqlite.as_path(), std::path::Path::new(&url)] {
        let name = AnyStore::describe(location);
        AnyStore::open(location).unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        // Eight connections (as eight processes would hold), ten attempts each, all at once.
        let reservations: usize = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    sc.spawn(|| {
                        let mut s = AnyStore::open(location).unwrap();
                        (0..10)
                            .filter(|_| {
                                let pair = [counter("client"), counter("account")];
                                matches!(
                                    s.reserve_attempt(&pair, now).unwrap(),
                                    Attempt::Reserved { .. }
                                )
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(reservations, 5, "{name}: the free failures, not one more");
    }
}
