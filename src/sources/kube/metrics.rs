//! Reconcile metrics: runs, errors by reason, duration. Registered into the
//! Prometheus registry the HTTP server exposes on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of a reconcile error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error's reason (`CoreFailed`, `ReportFailed`, ...).
    pub reason: String,
}

/// The controller's metrics; cheap to clone (shared counters).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconcile errors by reason.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// 1 while this replica holds the Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `stagegate_controller` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("stagegate_controller");
        r.register("reconciles", "Reconciles run", self.reconciles.clone());
        r.register(
            "reconcile_errors",
            "Reconcile errors by reason",
            self.errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            self.duration.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the Lease",
            self.leader.clone(),
        );
    }

    /// Counts one error of `reason`.
    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_string(),
            })
            .inc();
    }
}
