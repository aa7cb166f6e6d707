//! Failed-login counters in the store, so that every process sharing it (API
//! replicas on one PostgreSQL database, the daemon and `serve` on one SQLite
//! file) counts the same attempts: no replica multiplies an attacker's
//! password-guess budget.
//!
//! A counter is a row of `login_failures` under an opaque key the caller
//! computes (the API uses a keyed hash of the account and the client, so no
//! username, address or device token is stored). [`Store::reserve_attempt`]
//! checks and counts every counter of one attempt in one transaction that locks
//! their rows (SQLite: the write lock of an IMMEDIATE transaction; PostgreSQL:
//! the row locks an `INSERT ... ON CONFLICT DO UPDATE` takes), so concurrent
//! attempts on any process are counted one after the other and none slips
//! past a lock. The arithmetic (free failures, doubling, cap, forgetting) is
//! one function for both databases.
//!
//! Times are wall-clock milliseconds from the caller's clock: processes sharing a
//! store are expected to keep their clocks in step (NTP), as session expiry already does.
//!
//! [`Store::reserve_attempt`]: super::Store::reserve_attempt

use super::StoreError;
use jiff::Timestamp;
use rusqlite::OptionalExtension;
use std::time::Duration;

/// Exponential back-off of failed logins for one key (an account, or an account from one client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Consecutive failures allowed before any delay.
    pub free_failures: u32,
    /// Delay after the first failure past `free_failures`; doubles with each further failure.
    pub base: Duration,
    /// Longest delay: the lock always ends (no permanent lockout).
    pub cap: Duration,
    /// A key with no failure for this long is forgotten.
    pub forget_after: Duration,
}

/// One counter an attempt is checked against and counted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Opaque key, free of secrets (the API's is a keyed hash, in hex).
    pub key: String,
    /// How this counter backs off.
    pub policy: BackoffPolicy,
}

/// The answer to [`super::Store::reserve_attempt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Counted on every counter (as a failure until the counter is forgotten); `lock` is
    /// the longest lock this count started for later attempts, if any.
    Reserved {
        /// Lock started by this attempt's count.
        lock: Option<Duration>,
    },
    /// A counter is locked for `wait` more: nothing was counted.
    Locked {
        /// Time until the longest applicable lock ends.
        wait: Duration,
    },
}

/// A counter as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Failures {
    /// Consecutive failed (or still running) attempts.
    count: i64,
    /// Time of the last one (ms since the epoch).
    last: i64,
    /// End of the lock the last count started (ms since the epoch).
    locked_until: Option<i64>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// `Err(wait)` while `f` is locked at `now`.
fn check(f: Option<&Failures>, now: i64) -> Result<(), Duration> {
    match f.and_then(|f| f.locked_until) {
        Some(until) if until > now => Err(duration(until - now)),
        _ => Ok(()),
    }
}

/// `f` with one more attempt at `now` (a quiet one starts over), and the lock that starts.
fn count(f: Option<Failures>, p: &BackoffPolicy, now: i64) -> (Failures, Option<Duration>) {
    let mut f = f.unwrap_or(Failures {
        count: 0,
        last: now,
        locked_until: None,
    });
    if now.saturating_sub(f.last) >= millis(p.forget_after) {
        f.count = 0;
    }
    f.count = f.count.saturating_add(1);
    f.last = now;
    let free = i64::from(p.free_failures);
    if f.count < free {
        return (f, None);
    }
    let doublings = (f.count - free).min(30) as u32;
    let delay = p.base.saturating_mul(1u32 << doublings).min(p.cap);
    f.locked_until = Some(now.saturating_add(millis(delay)));
    (f, Some(delay))
}

/// When a row may be deleted: it is quiet, and no lock of it still runs.
fn forget_at(f: &Failures, p: &BackoffPolicy) -> i64 {
    let quiet = f.last.saturating_add(millis(p.forget_after));
    f.locked_until.map_or(quiet, |l| l.max(quiet))
}

/// Every counter's new row with its deletion time, and the longest lock their counts started.
type Counted = (Vec<(Failures, i64)>, Option<Duration>);

/// The decision for `counters` given their rows (same order): `Err(wait)` when one is locked,
/// else what counting the attempt on each gives.
fn decide(counters: &[Counter], rows: &[Option<Failures>], now: i64) -> Result<Counted, Duration> {
    let mut wait = None::<Duration>;
    for f in rows {
        if let Err(w) = check(f.as_ref(), now) {
            wait = Some(wait.map_or(w, |x| x.max(w)));
        }
    }
    if let Some(w) = wait {
        return Err(w);
    }
    let mut lock = None::<Duration>;
    let mut out = Vec::with_capacity(counters.len());
    for (c, f) in counters.iter().zip(rows) {
        let (f, started) = count(*f, &c.policy, now);
        if let Some(s) = started {
            lock = Some(lock.map_or(s, |l| l.max(s)));
        }
        out.push((f, forget_at(&f, &c.policy)));
    }
    Ok((out, lock))
}

/// Rows deleted per attempt at most, so one attempt never pays for a day of quiet keys at once.
const PURGE_BATCH: i64 = 1000;

/// [`super::Store::reserve_attempt`] on SQLite: the IMMEDIATE transaction's write lock orders
/// attempts across every connection to the file.
pub(super) fn reserve_sqlite(
    conn: &mut rusqlite::Connection,
    counters: &[Counter],
    now: Timestamp,
) -> Result<Attempt, StoreError> {
    let now = now.as_millisecond();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut rows = Vec::with_capacity(counters.len());
    for c in counters {
        rows.push(
            tx.prepare_cached(
                "SELECT failures, last_at, locked_until FROM login_failures WHERE key = ?1",
            )?
            .query_row([&c.key], |r| {
                Ok(Failures {
                    count: r.get(0)?,
                    last: r.get(1)?,
                    locked_until: r.get(2)?,
                })
            })
            .optional()?,
        );
    }
    let (rows, lock) = match decide(counters, &rows, now) {
        Ok(d) => d,
        // Dropping the transaction rolls it back: nothing counted.
        Err(wait) => return Ok(Attempt::Locked { wait }),
    };
    for (c, (f, forget)) in counters.iter().zip(rows) {
        tx.prepare_cached(
            "INSERT INTO login_failures (key, failures, last_at, locked_until, forget_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
               last_at = excluded.last_at, locked_until = excluded.locked_until,
               forget_at = excluded.forget_at",
        )?
        .execute(rusqlite::params![
            c.key,
            f.count,
            f.last,
            f.locked_until,
            forget
        ])?;
    }
    tx.prepare_cached(
        "DELETE FROM login_failures WHERE key IN
           (SELECT key FROM login_failures WHERE forget_at <= ?1 LIMIT ?2)",
    )?
    .execute([now, PURGE_BATCH])?;
    tx.commit()?;
    Ok(Attempt::Reserved { lock })
}

/// [`super::Store::reserve_attempt`] on PostgreSQL, in one READ COMMITTED transaction: one
/// `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` creates the missing rows and locks them all
/// (in key order, so two attempts sharing counters never deadlock) and reads them; a
/// concurrent attempt on another process waits on those row locks and then reads what this
/// one wrote. Rows this one only created are rolled back with it when a counter is locked.
pub(super) fn reserve_pg(
    client: &mut postgres::Client,
    counters: &[Counter],
    now: Timestamp,
) -> Result<Attempt, StoreError> {
    let now = now.as_millisecond();
    let mut keys: Vec<&str> = counters.iter().map(|c| c.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut tx = client.transaction()?;
    let locked = tx.query(
        "INSERT INTO login_failures (key, failures, last_at, forget_at)
         SELECT k, 0, $2, $2 FROM unnest($1::text[]) AS k ORDER BY k
         ON CONFLICT (key) DO UPDATE SET key = excluded.key
         RETURNING key, failures, last_at, locked_until",
        &[&keys, &now],
    )?;
    let mut found = std::collections::HashMap::new();
    for r in &locked {
        // A row created just now (no failure, last at now) counts exactly as no row.
        let f = Failures {
            count: r.try_get(1)?,
            last: r.try_get(2)?,
            locked_until: r.try_get(3)?,
        };
        found.insert(r.try_get::<_, String>(0)?, f);
    }
    let rows: Vec<Option<Failures>> = counters
        .iter()
        .map(|c| found.get(&c.key).copied())
        .collect();
    let (rows, lock) = match decide(counters, &rows, now) {
        Ok(d) => d,
        Err(wait) => {
            tx.rollback()?;
            return Ok(Attempt::Locked { wait });
        }
    };
    let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (c, (f, forget)) in counters.iter().zip(rows) {
        cols.0.push(c.key.as_str());
        cols.1.push(f.count);
        cols.2.push(f.last);
        cols.3.push(f.locked_until);
        cols.4.push(forget);
    }
    tx.execute(
        "UPDATE login_failures AS f SET failures = u.failures, last_at = u.last_at,
           locked_until = u.locked_until, forget_at = u.forget_at
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
           AS u (key, failures, last_at, locked_until, forget_at)
         WHERE f.key = u.key",
        &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4],
    )?;
    // Quiet rows go; rows another attempt holds are skipped (never waited on: no deadlock).
    tx.execute(
        "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures
           WHERE forget_at <= $1 ORDER BY forget_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&now, &PURGE_BATCH],
    )?;
    tx.commit()?;
    Ok(Attempt::Reserved { lock })
}

/// Five free failures, then 1 s doubling up to 15 min, forgotten after an hour (unit tests).
#[cfg(test)]
pub(crate) fn tests_policy() -> BackoffPolicy {
    BackoffPolicy {
        free_failures: 5,
        base: Duration::from_secs(1),
        cap: Duration::from_secs(900),
        forget_after: Duration::from_secs(3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::tests_policy as policy;

    #[test]
    fn a_lock_outliving_the_quiet_window_keeps_its_row() {
        let p = BackoffPolicy {
            forget_after: Duration::from_secs(10),
            ..policy()
        };
        let f = Failures {
            count: 9,
            last: 0,
            locked_until: Some(60_000),
        };
        assert_eq!(forget_at(&f, &p), 60_000);
        assert_eq!(forget_at(&f, &policy()), 3_600_000);
    }

    #[test]
    fn one_locked_counter_blocks_the_attempt_and_reports_the_longest_wait() {
        let c = |k: &str| Counter {
            key: k.into(),
            policy: policy(),
        };
        let locked = |until| {
            Some(Failures {
                count: 6,
                last: 0,
                locked_until: Some(until),
            })
        };
        let counters = [c("a"), c("b")];
        assert_eq!(
            decide(&counters, &[locked(2000), locked(5000)], 1000).unwrap_err(),
            Duration::from_secs(4)
        );
        assert_eq!(
            decide(&counters, &[None, locked(1000)], 1000)
                .unwrap()
                .0
                .len(),
            2
        );
    }
}
