//! Throttling: exponential back-off of failed logins, and token-bucket
//! request rate limits per client address (anonymous and login traffic) and,
//! when configured, per authenticated caller (decision routes).
//!
//! A login *reserves* its attempt before the password is verified: the check
//! and the count are one step, atomic across every process sharing the store
//! ([`Store::reserve_attempt`]), so however many requests a client sends at
//! once, to however many replicas, no more passwords are verified than its
//! budget allows. A success gives the attempt back (the counter resets).
//!
//! Counters, in the manner of OWASP's device cookies:
//! * a client presenting a valid device token for the account (issued at an
//!   earlier successful login there) is counted per device only, so failures
//!   from other clients never lock it out;
//! * every other client is counted per (account, address) with the strict
//!   policy, and per account over all such clients with a short cap.
//!
//! Locks always end (the delay is capped), and a key that stays quiet is
//! forgotten. The counters live in the store under keyed hashes (no account
//! name, address or device token is stored). The request rate limits stay in
//! the process: they slow abuse down, they do not bound guesses. See
//! `docs/api.md` for the policy and its limits.

use super::config::{BackoffPolicy, RateLimitConfig};
use crate::policy::PrincipalKind;
use crate::secrets::ServerKey;
use crate::store::{Attempt, Counter, Store, StoreError};
use jiff::Timestamp;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys one rate limiter tracks before it sheds harmless entries.
const MAX_KEYS: usize = 100_000;

/// HMAC domain of the throttle's counter keys.
const COUNTER_DOMAIN: &str = "stagegate login throttle v1";

/// Who is attempting a login, as the throttle counts it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LoginClient {
    /// A client with a valid device token for the account: the token's device id.
    Device(String),
    /// Any other client, by address.
    Address(IpAddr),
}

/// The login back-offs: per (account, device) and per (account, address) with the strict policy,
/// per account over untrusted clients with a short cap; counted in the store.
#[derive(Debug)]
pub struct LoginThrottle {
    per_client: BackoffPolicy,
    per_account: BackoffPolicy,
}

impl LoginThrottle {
    /// Throttle with the two policies (devices share the per-client one).
    pub fn new(per_client: BackoffPolicy, per_account: BackoffPolicy) -> Self {
        LoginThrottle {
            per_client,
            per_account,
        }
    }

    /// The store key of one counter: a keyed hash, so the store holds no account name, address
    /// or device id, and nobody without the server key can tell whose counter a row is.
    fn key(key: &ServerKey, kind: &str, account: &str, client: &str) -> String {
        // Length-prefixed: no account name can make two different counters share a key.
        let data = format!("{kind}\0{}\0{account}\0{client}", account.len());
        key.mac_hex(COUNTER_DOMAIN, data.as_bytes())
    }

    /// The counter this client's success resets.
    fn own(&self, key: &ServerKey, account: &str, client: &LoginClient) -> Counter {
        match client {
            LoginClient::Device(id) => Counter {
                key: Self::key(key, "device", account, id),
                policy: self.per_client,
            },
            LoginClient::Address(ip) => Counter {
                key: Self::key(key, "address", account, &ip.to_string()),
                policy: self.per_client,
            },
        }
    }

    /// Reserves one password check for `account` from `client`: [`Attempt::Locked`] while a
    /// counter that applies is locked (nothing is counted then), else every applicable counter
    /// is counted. Blocking (the store): call off the async runtime.
    pub fn reserve(
        &self,
        store: &mut dyn Store,
        key: &ServerKey,
        account: &str,
        client: &LoginClient,
        now: Timestamp,
    ) -> Result<Attempt, StoreError> {
        let mut counters = vec![self.own(key, account, client)];
        if let LoginClient::Address(_) = client {
            counters.push(Counter {
                key: Self::key(key, "account", account, ""),
                policy: self.per_account,
            });
        }
        store.reserve_attempt(&counters, now)
    }

    /// Gives back the reserved attempt of a successful login: this client's counter resets.
    /// The account-wide counter does not: an attack under way is not over because the owner got
    /// in, and resetting it would hand the attacker a fresh allowance at every login of hers.
    pub fn succeed(
        &self,
        store: &mut dyn Store,
        key: &ServerKey,
        account: &str,
        client: &LoginClient,
    ) -> Result<(), StoreError> {
        store.forget_failures(&self.own(key, account, client).key)
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
    use crate::store::SqliteStore;

    use crate::store::throttle::tests_policy as policy;

    fn at(t: Timestamp, secs: i64) -> Timestamp {
        t + jiff::SignedDuration::from_secs(secs)
    }

    #[test]
    fn a_known_device_keeps_its_own_budget_while_the_account_is_locked() {
        let th = LoginThrottle::new(policy(), policy());
        let (store, key) = (
            &mut SqliteStore::in_memory().unwrap(),
            &ServerKey::generate(),
        );
        let t = Timestamp::now();
        let reserved = |a: Attempt| matches!(a, Attempt::Reserved { .. });
        for i in 0..5u8 {
            let ip = LoginClient::Address([10, 0, 0, i].into());
            assert!(reserved(th.reserve(store, key, "ann", &ip, t).unwrap()));
        }
        let stranger = LoginClient::Address([10, 0, 1, 1].into());
        assert!(!reserved(
            th.reserve(store, key, "ann", &stranger, t).unwrap()
        ));
        let device = LoginClient::Device("d1".into());
        assert!(reserved(th.reserve(store, key, "ann", &device, t).unwrap()));
        th.succeed(store, key, "ann", &device).unwrap();
        assert!(!reserved(
            th.reserve(store, key, "ann", &stranger, t).unwrap()
        ));
        let later = at(t, 2);
        assert!(reserved(
            th.reserve(store, key, "ann", &stranger, later).unwrap()
        ));
        // Another account's counters are its own.
        assert!(reserved(
            th.reserve(store, key, "bob", &stranger, t).unwrap()
        ));
    }

    #[test]
    fn counter_keys_hold_no_name_address_or_device_id() {
        let th = LoginThrottle::new(policy(), policy());
        let (store, key) = (
            &mut SqliteStore::in_memory().unwrap(),
            &ServerKey::generate(),
        );
        let t = Timestamp::now();
        let device = LoginClient::Device("0123456789abcdef0123456789abcdef".into());
        th.reserve(store, key, "ann", &device, t).unwrap();
        th.reserve(
            store,
            key,
            "ann",
            &LoginClient::Address([10, 9, 8, 7].into()),
            t,
        )
        .unwrap();
        let keys: Vec<String> = store
            .conn_for_tests()
            .prepare("SELECT key FROM login_failures")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(keys.len(), 3, "device, address and account counters");
        for k in keys {
            assert_eq!(k.len(), 64);
            assert!(k.bytes().all(|b| b.is_ascii_hexdigit()), "{k}");
        }
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
