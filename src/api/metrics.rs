//! Prometheus metrics of the API and the hooks the daemon calls after each
//! reconcile. Labels never hold usernames, token names or key ids.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Labels of HTTP request metrics. Static strings (methods and route templates are a fixed
/// set): counting a request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Method.
    pub method: &'static str,
    /// Route template (`/v1/login`), or `unmatched`.
    pub route: &'static str,
    /// Status code.
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Method.
    pub method: &'static str,
    /// Route template.
    pub route: &'static str,
}

/// Labels of reconcile counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or `error`.
    pub outcome: String,
}

/// Labels of reconcile errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Machine reason (e.g. `StoreError`, `SecretConflict`).
    pub reason: String,
}

/// Labels of object counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Kind (`User`, `AccessBinding`, ...).
    pub kind: String,
    /// `true` or `false`.
    pub ready: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

fn reconcile_histogram() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the process exports, in one registry (clones share it).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: std::sync::Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ReasonLabels, Counter>,
    last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    objects: Family<ObjectLabels, Gauge>,
    tokens_expiring: Gauge,
    login_failures: Counter,
    logins_throttled: Counter,
    requests_throttled: Counter,
    sessions: Gauge,
    leader: Gauge,
    files_broken: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `stagegate` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("stagegate");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            reconciles: Family::default(),
            reconcile_duration: reconcile_histogram(),
            reconcile_errors: Family::default(),
            last_success: Gauge::default(),
            objects: Family::default(),
            tokens_expiring: Gauge::default(),
            login_failures: Counter::default(),
            logins_throttled: Counter::default(),
            requests_throttled: Counter::default(),
            sessions: Gauge::default(),
            leader: Gauge::default(),
            files_broken: Gauge::default(),
            registry: Default::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            m.latency.clone(),
        );
        registry.register("reconciles", "Reconciles by outcome", m.reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by reason",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "last_successful_reconcile_timestamp_seconds",
            "Unix time of the last reconcile that ran (0: none yet)",
            m.last_success.clone(),
        );
        registry.register(
            "objects",
            "Declared objects by kind and readiness",
            m.objects.clone(),
        );
        registry.register(
            "tokens_expiring_within_7d",
            "Live API token keys that expire within 7 days",
            m.tokens_expiring.clone(),
        );
        registry.register(
            "login_failures",
            "Failed password logins (wrong password, unknown or revoked user)",
            m.login_failures.clone(),
        );
        registry.register(
            "logins_throttled",
            "Logins refused by the failed-login back-off",
            m.logins_throttled.clone(),
        );
        registry.register(
            "requests_throttled",
            "Requests refused by a request-rate limit (per client address, or per authenticated caller on the decision routes)",
            m.requests_throttled.clone(),
        );
        registry.register("sessions", "Live login sessions", m.sessions.clone());
        registry.register(
            "leader",
            "1 while this replica holds the controller Lease (Kubernetes mode)",
            m.leader.clone(),
        );
        registry.register(
            "manifest_files_broken",
            "Manifest files that failed to load as a whole (directory mode)",
            m.files_broken.clone(),
        );
        Metrics {
            registry: std::sync::Arc::new(registry),
            ..m
        }
    }

    /// Records one HTTP request (`method` and `route` from fixed sets, see [`RequestLabels`]).
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        latency: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { method, route })
            .observe(latency.as_secs_f64());
    }

    /// Daemon hook: one reconcile finished (`ok` false when it failed).
    pub fn record_reconcile(&self, duration: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// Daemon hook: one reconcile error, by machine reason.
    pub fn record_reconcile_error(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Daemon hook: the number of declared objects of `kind` that are (not) ready.
    pub fn set_objects(&self, kind: &str, ready: bool, count: i64) {
        self.objects
            .get_or_create(&ObjectLabels {
                kind: kind.to_string(),
                ready: ready.to_string(),
            })
            .set(count);
    }

    /// Controller hook: whether this replica holds the Lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Sets the gauge of tokens expiring within 7 days.
    pub fn set_tokens_expiring(&self, n: usize) {
        self.tokens_expiring.set(n as i64);
    }

    /// Sets the gauge of manifest files that failed to load.
    pub fn set_files_broken(&self, n: usize) {
        self.files_broken.set(n as i64);
    }

    /// Sets the gauge of live sessions.
    pub fn set_sessions(&self, n: usize) {
        self.sessions.set(n as i64);
    }

    /// Counts a failed login.
    pub fn login_failed(&self) {
        self.login_failures.inc();
    }

    /// Counts a login refused by the back-off.
    pub fn login_throttled(&self) {
        self.logins_throttled.inc();
    }

    /// Counts a request refused by the rate limit.
    pub fn request_throttled(&self) {
        self.requests_throttled.inc();
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
