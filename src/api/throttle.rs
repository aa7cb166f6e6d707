//! Throttling: exponential back-off of failed logins, and token-bucket
//! request rate limits per client address (anonymous and login traffic) and,
//! when configured, per authenticated caller (decision routes).
//!
//! A login *reserves* its attempt before the password is verified: the check
//! and the count are one step under one lock, so however many requests a
//! client sends at once, no more passwords are verified than its budget
//! allows. A success gives the attempt back (the counters reset).
//!
//! Counters, in the manner of OWASP's device cookies:
//! * a client presenting a valid device token for the account (issued at an
//!   earlier successful login there) is counted per device only, so failures
//!   from other clients never lock it out;
//! * every other client is counted per (account, address) with the strict
//!   policy, and per account over all such clients with a short cap.
//!
//! Locks always end (the delay is capped), and a key that stays quiet is
//! forgotten. See `docs/api.md` for the policy and its limits.

use super::config::{BackoffPolicy, RateLimitConfig};
use crate::policy::PrincipalKind;
use std::borrow::Borrow;
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

/// Consecutive failed (or still running) attempts and lock deadlines per key. Not locked
/// itself: [`Backoff`] and [`LoginThrottle`] hold it under their mutex.
#[derive(Debug)]
struct Counters<K> {
    policy: BackoffPolicy,
    keys: HashMap<K, Failures>,
}

impl<K: Eq + Hash + Clone> Counters<K> {
    fn new(policy: BackoffPolicy) -> Self {
        Counters {
            policy,
            keys: HashMap::new(),
        }
    }

    /// `Err(wait)` while `key` is locked.
    fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.keys.get(key).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts an attempt; returns the lock it starts, if any.
    fn count(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let p = self.policy;
        if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(key) {
            // Shed what carries no delay: forgotten keys and keys still under the free allowance.
            self.keys.retain(|_, f| {
                now.duration_since(f.last) < p.forget_after && f.count >= p.free_failures
            });
        }
        let f = self.keys.entry(key.clone()).or_insert(Failures {
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

    fn forget(&mut self, key: &K) {
        self.keys.remove(key);
    }
}

/// One back-off map under its own lock: reserve an attempt, forget the key on success.
#[derive(Debug)]
pub struct Backoff<K> {
    counters: Mutex<Counters<K>>,
}

impl<K: Eq + Hash + Clone> Backoff<K> {
    /// An empty map with `policy`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            counters: Mutex::new(Counters::new(policy)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters<K>> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Atomically: `Err(wait)` while `key` is locked, else counts the attempt (as a failure until
    /// [`Backoff::succeed`]) and returns the lock that count starts for later attempts, if any.
    pub fn reserve(&self, key: &K, now: Instant) -> Result<Option<Duration>, Duration> {
        let mut c = self.lock();
        c.check(key, now)?;
        Ok(c.count(key, now))
    }

    /// Forgets `key` (a successful login).
    pub fn succeed(&self, key: &K) {
        self.lock().forget(key);
    }
}

/// Who is attempting a login, as the throttle counts it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LoginClient {
    /// A client with a valid device token for the account: the token's device id.
    Device(String),
    /// Any other client, by address.
    Address(IpAddr),
}

#[derive(Debug)]
struct LoginCounters {
    per_device: Counters<(String, String)>,
    per_client: Counters<(String, IpAddr)>,
    per_account: Counters<String>,
}

/// The login back-offs: per (account, device) and per (account, address) with the strict policy,
/// per account over untrusted clients with a short cap; all under one lock.
#[derive(Debug)]
pub struct LoginThrottle {
    counters: Mutex<LoginCounters>,
}

impl LoginThrottle {
    /// Throttle with the two policies (devices share the per-client one).
    pub fn new(per_client: BackoffPolicy, per_account: BackoffPolicy) -> Self {
        LoginThrottle {
            counters: Mutex::new(LoginCounters {
                per_device: Counters::new(per_client),
                per_client: Counters::new(per_client),
                per_account: Counters::new(per_account),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoginCounters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves one password check for `account` from `client`: `Err(wait)` while a counter that
    /// applies is locked (nothing is counted then), else every applicable counter is counted.
    pub fn reserve(
        &self,
        account: &str,
        client: &LoginClient,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut c = self.lock();
        let account = account.to_string();
        match client {
            LoginClient::Device(id) => {
                let key = (account, id.clone());
                c.per_device.check(&key, now)?;
                c.per_device.count(&key, now);
            }
            LoginClient::Address(ip) => {
                let key = (account.clone(), *ip);
                let a = c.per_account.check(&account, now);
                let k = c.per_client.check(&key, now);
                if a.is_err() || k.is_err() {
                    return Err(a.err().unwrap_or_default().max(k.err().unwrap_or_default()));
                }
                c.per_client.count(&key, now);
                c.per_account.count(&account, now);
            }
        }
        Ok(())
    }

    /// Gives back the reserved attempt of a successful login: this client's counter resets.
    /// The account-wide counter does not: an attack under way is not over because the owner got
    /// in, and resetting it would hand the attacker a fresh allowance at every login of hers.
    pub fn succeed(&self, account: &str, client: &LoginClient) {
        let mut c = self.lock();
        let account = account.to_string();
        match client {
            LoginClient::Device(id) => c.per_device.forget(&(account, id.clone())),
            LoginClient::Address(ip) => c.per_client.forget(&(account, *ip)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token bucket per key: a client address (`IpAddr`), or a caller's name (`String`, looked up
/// by `&str` so a request allocates only when its caller is new).
#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash> RateLimiter<K> {
    /// A limiter with `config`.
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `Err(wait)` when the bucket is empty.
    pub fn take<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let rate = self.config.per_second.max(f64::MIN_POSITIVE);
        let burst = f64::from(self.config.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            // A full bucket is the same as no bucket: drop those.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        if !buckets.contains_key(key) {
            buckets.insert(
                key.to_owned(),
                Bucket {
                    tokens: burst,
                    at: now,
                },
            );
        }
        let Some(b) = buckets.get_mut(key) else {
            return Ok(());
        };
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

/// Buckets per authenticated caller: a user (over all its sessions) or an API token, by name.
#[derive(Debug)]
pub struct CallerLimiter {
    users: RateLimiter<String>,
    tokens: RateLimiter<String>,
}

impl CallerLimiter {
    /// A limiter giving every caller `config`.
    pub fn new(config: RateLimitConfig) -> Self {
        CallerLimiter {
            users: RateLimiter::new(config),
            tokens: RateLimiter::new(config),
        }
    }

    /// Takes one token for the caller `name` of `kind`; `Err(wait)` when its bucket is empty.
    pub fn take(&self, kind: PrincipalKind, name: &str, now: Instant) -> Result<(), Duration> {
        match kind {
            PrincipalKind::User => self.users.take(name, now),
            PrincipalKind::Token => self.tokens.take(name, now),
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
    fn delay_doubles_after_five_attempts_up_to_the_cap() {
        let b = Backoff::new(policy());
        let t = Instant::now();
        for _ in 0..4 {
            assert_eq!(b.reserve(&"a", t), Ok(None));
        }
        // The fifth reservation starts the first lock; reserving while locked counts nothing.
        assert_eq!(b.reserve(&"a", t), Ok(Some(Duration::from_secs(1))));
        assert_eq!(b.reserve(&"a", t), Err(Duration::from_secs(1)));
        let mut at = t;
        let mut delays = Vec::new();
        for _ in 0..12 {
            at += Duration::from_secs(901);
            delays.push(b.reserve(&"a", at).unwrap().unwrap().as_secs());
        }
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]);
        assert!(b.reserve(&"b", at).is_ok());
        b.succeed(&"a");
        assert_eq!(b.reserve(&"a", at), Ok(None));
    }

    #[test]
    fn quiet_keys_are_forgotten() {
        let b = Backoff::new(policy());
        let t = Instant::now();
        for _ in 0..4 {
            b.reserve(&"a", t).unwrap();
        }
        assert_eq!(b.reserve(&"a", t + Duration::from_secs(3600)), Ok(None));
    }

    #[test]
    fn a_known_device_keeps_its_own_budget_while_the_account_is_locked() {
        let th = LoginThrottle::new(policy(), policy());
        let t = Instant::now();
        for i in 0..5u8 {
            th.reserve("ann", &LoginClient::Address([10, 0, 0, i].into()), t)
                .unwrap();
        }
        let stranger = LoginClient::Address([10, 0, 1, 1].into());
        assert!(th.reserve("ann", &stranger, t).is_err());
        let device = LoginClient::Device("d1".into());
        assert!(th.reserve("ann", &device, t).is_ok());
        th.succeed("ann", &device);
        assert!(th.reserve("ann", &stranger, t).is_err());
        assert!(th
            .reserve("ann", &stranger, t + Duration::from_secs(2))
            .is_ok());
    }

    #[test]
    fn bucket_refills_at_the_rate() {
        let r = RateLimiter::new(RateLimitConfig {
            per_second: 10.0,
            burst: 2,
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t = Instant::now();
        assert!(r.take(&ip, t).is_ok());
        assert!(r.take(&ip, t).is_ok());
        let wait = r.take(&ip, t).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(r.take(&IpAddr::from([10, 0, 0, 2]), t).is_ok());
        assert!(r.take(&ip, t + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn callers_are_limited_by_name_each_with_its_own_bucket() {
        let r: RateLimiter<String> = RateLimiter::new(RateLimitConfig {
            per_second: 1.0,
            burst: 1,
        });
        let t = Instant::now();
        assert!(r.take("gateway", t).is_ok());
        assert!(r.take("gateway", t).is_err());
        assert!(r.take("console", t).is_ok());
        assert!(r.take("gateway", t + Duration::from_secs(1)).is_ok());
        // A user and a token may share a name; they are different callers.
        let c = CallerLimiter::new(RateLimitConfig {
            per_second: 1.0,
            burst: 1,
        });
        assert!(c.take(PrincipalKind::User, "ci", t).is_ok());
        assert!(c.take(PrincipalKind::Token, "ci", t).is_ok());
        assert!(c.take(PrincipalKind::Token, "ci", t).is_err());
    }
}
