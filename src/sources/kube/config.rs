//! Flags of `stagegate run --kube`, parsed in two stages: raw flags, then [`Settings`].

use std::time::Duration;

/// Raw flags of the Kubernetes controller (flattened into `stagegate run`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KubeArgs {
    /// Namespace to watch (repeatable); all namespaces when absent.
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Quiet time that ends a burst of events before one reconcile.
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = humantime::parse_duration)]
    pub debounce: Duration,
    /// Lease duration of leader election; renewals happen every third of it.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// Namespace of the controller: its Lease and the bootstrap admin Secret.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NS")]
    pub controller_namespace: Option<String>,
    /// Identity in the Lease (defaults to the host name).
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    pub identity: Option<String>,
}

/// Validated configuration of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watched namespaces; empty = all.
    pub namespaces: Vec<String>,
    /// Periodic full reconcile.
    pub resync: Duration,
    /// Debounce of event bursts.
    pub debounce: Duration,
    /// Lease duration.
    pub lease_duration: Duration,
    /// The controller's own namespace.
    pub controller_namespace: String,
    /// Lease holder identity.
    pub identity: String,
    /// Refuse declarations in namespaces no AccessDomain pins (`--require-access-domain`).
    pub require_access_domain: bool,
}

/// A flag combination that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A duration of zero, or a debounce not shorter than the resync period.
    #[error("{0}")]
    Invalid(String),
}

impl KubeArgs {
    /// Checks the flags; `default_namespace` is the kubeconfig's (used when POD_NAMESPACE is unset), `resync` is `run --resync`.
    pub fn settings(
        &self,
        default_namespace: &str,
        resync: Duration,
    ) -> Result<Settings, ConfigError> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "--lease-duration must be at least 1s".into(),
            ));
        }
        if resync.is_zero() || self.debounce >= resync {
            return Err(ConfigError::Invalid(
                "--resync must be longer than --debounce".into(),
            ));
        }
        let mut namespaces = self.namespaces.clone();
        namespaces.sort();
        namespaces.dedup();
        let identity = self
            .identity
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(hostname);
        Ok(Settings {
            namespaces,
            resync,
            debounce: self.debounce,
            lease_duration: self.lease_duration,
            controller_namespace: self
                .controller_namespace
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| default_namespace.to_string()),
            identity,
            require_access_domain: false,
        })
    }
}

impl Settings {
    /// Whether objects in `namespace` are watched.
    pub fn watches(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }
}

/// The host name, with the process id so two processes on one host differ.
fn hostname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "stagegate".into());
    format!("{host}-{}", std::process::id())
}
