//! Throttling: exponential back-off of failed logins (per account and client,
//! and per account overall), and a token-bucket request rate limit per client.
//!
//! Locks always end (the delay is capped), a success resets the counters, and
//! a key that stays quiet is forgotten: an attacker can slow a real user's
//! logins down but cannot lock the account for good. See `docs/api.md`.

use super::config::{BackoffPolicy, RateLimitConfig};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys one back-off map or rate limiter tracks before it sheds harmless entries.
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Consecutive failures and lock deadlines per key.
#[derive(Debug)]
pub struct Backoff<K> {
    policy: BackoffPolicy,
    keys: Mutex<HashMap<K, Failures>>,
}

impl<K: Eq + Hash + Clone> Backoff<K> {
    /// An empty map with `policy`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` while `key` is locked.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.lock().get(key).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure; returns the lock it starts, if any.
    pub fn fail(&self, key: &K, now: Instant) -> Option<Duration> {
        let p = self.policy;
        let mut keys = self.lock();
        if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            // Shed what carries no delay: forgotten keys and keys still under the free allowance.
            keys.retain(|_, f| {
                now.duration_since(f.last) < p.forget_after && f.count >= p.free_failures
            });
        }
        let f = keys.entry(key.clone()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if now.duration_since(f.last) >= p.forget_after {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count < p.free_failures {
            return None;
        }
        let doublings = (f.count - p.free_failures).min(30);
        let delay = p.base.saturating_mul(1u32 << doublings).min(p.cap);
        f.locked_until = Some(now + delay);
        Some(delay)
    }

    /// Forgets `key` (a successful login).
    pub fn succeed(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// The two login back-offs: per (account, client) with the strict policy, per account with a short cap.
#[derive(Debug)]
pub struct LoginThrottle {
    per_client: Backoff<(String, IpAddr)>,
    per_account: Backoff<String>,
}

impl LoginThrottle {
    /// Throttle with the two policies.
    pub fn new(per_client: BackoffPolicy, per_account: BackoffPolicy) -> Self {
        LoginThrottle {
            per_client: Backoff::new(per_client),
            per_account: Backoff::new(per_account),
        }
    }

    /// `Err(wait)` while logins to `account` from `client` are locked.
    pub fn check(&self, account: &str, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let a = self.per_account.check(&account.to_string(), now);
        let c = self.per_client.check(&(account.to_string(), client), now);
        match (a, c) {
            (Ok(()), Ok(())) => Ok(()),
            (a, c) => Err(a.err().unwrap_or_default().max(c.err().unwrap_or_default())),
        }
    }

    /// Counts a failed login.
    pub fn fail(&self, account: &str, client: IpAddr, now: Instant) {
        self.per_client.fail(&(account.to_string(), client), now);
        self.per_account.fail(&account.to_string(), now);
    }

    /// Resets the counters after a successful login.
    pub fn succeed(&self, account: &str, client: IpAddr) {
        self.per_client.succeed(&(account.to_string(), client));
        self.per_account.succeed(&account.to_string());
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token bucket per client address.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter with `config`.
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`; `Err(wait)` when the bucket is empty.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let rate = self.config.per_second.max(f64::MIN_POSITIVE);
        let burst = f64::from(self.config.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(&client) {
            // A full bucket is the same as no bucket: drop those.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            free_failures: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(900),
            forget_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn delay_doubles_after_five_failures_up_to_the_cap() {
        let b = Backoff::new(policy());
        let t = Instant::now();
        for _ in 0..4 {
            assert_eq!(b.fail(&"a", t), None);
        }
        let delays: Vec<u64> = (0..13)
            .map(|_| b.fail(&"a", t).unwrap().as_secs())
            .collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
        );
        assert!(b.check(&"a", t).is_err());
        assert!(b.check(&"a", t + Duration::from_secs(901)).is_ok());
        assert!(b.check(&"b", t).is_ok());
        b.succeed(&"a");
        assert!(b.check(&"a", t).is_ok());
    }

    #[test]
    fn quiet_keys_are_forgotten() {
        let b = Backoff::new(policy());
        let t = Instant::now();
        for _ in 0..5 {
            b.fail(&"a", t);
        }
        assert_eq!(b.fail(&"a", t + Duration::from_secs(3600)), None);
    }

    #[test]
    fn bucket_refills_at_the_rate() {
        let r = RateLimiter::new(RateLimitConfig {
            per_second: 10.0,
            burst: 2,
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t = Instant::now();
        assert!(r.take(ip, t).is_ok());
        assert!(r.take(ip, t).is_ok());
        let wait = r.take(ip, t).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(r.take([10, 0, 0, 2].into(), t).is_ok());
        assert!(r.take(ip, t + Duration::from_millis(100)).is_ok());
    }
}
