//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go does
//! it: acquire when the Lease is free or its holder stopped renewing for a
//! lease duration (measured on our own clock from when we last saw the
//! record change, so clock skew between replicas does not matter), renew
//! every third of the duration, step down when renewals fail for two thirds
//! of it, and give the Lease up on shutdown so another replica takes over at once.
//!
//! Verbs: leases get, create, update (optimistic concurrency by resourceVersion).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Name of the Lease in the controller's namespace.
pub const LEASE_NAME: &str = "stagegate-leader";

/// One replica's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
    /// The last record seen from another holder, and when we first saw it.
    observed: Option<(String, Instant)>,
    /// When we last renewed successfully.
    renewed: Option<Instant>,
}

impl Elector {
    /// An elector for Lease [`LEASE_NAME`] in `namespace`.
    pub fn new(client: Client, namespace: &str, identity: &str, duration: Duration) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            identity: identity.to_string(),
            duration,
            observed: None,
            renewed: None,
        }
    }

    fn spec(&self, transitions: i32) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().clamp(1, i32::MAX as u64) as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt to acquire or renew; `Ok(true)` when we hold the Lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let pp = PostParams::default();
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    ..Default::default()
                },
                spec: Some(self.spec(0)),
            };
            return self.write(self.api.create(&pp, &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder == self.identity {
            let mut renewed = spec;
            renewed.renew_time = Some(MicroTime(jiff::Timestamp::now()));
            lease.spec = Some(renewed);
            return self.write(self.api.replace(LEASE_NAME, &pp, &lease).await);
        }
        self.renewed = None;
        let record = format!("{holder}|{:?}|{:?}", spec.renew_time, spec.acquire_time);
        let now = Instant::now();
        let seen = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => {
                self.observed = Some((record, now));
                now
            }
        };
        let held_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        if !holder.is_empty() && now.duration_since(seen) < held_for {
            return Ok(false);
        }
        tracing::info!(previous = %holder, identity = %self.identity, "taking over the Lease");
        lease.spec = Some(self.spec(spec.lease_transitions.unwrap_or(0) + 1));
        self.write(self.api.replace(LEASE_NAME, &pp, &lease).await)
    }

    fn write(&mut self, r: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
        match r {
            Ok(_) => {
                self.renewed = Some(Instant::now());
                Ok(true)
            }
            // Another replica wrote first.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.renewed = None;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up when we hold it, so another replica takes over without waiting.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await?;
        self.renewed = None;
        tracing::info!(identity = %self.identity, "Lease released");
        Ok(())
    }

    /// Runs the election until `shutdown` turns true, publishing leadership on `leader`; releases at the end.
    pub async fn run(mut self, leader: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let period = self.duration / 3;
        let deadline = self.duration * 2 / 3;
        loop {
            let holds = match self.try_acquire_or_renew().await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election request failed");
                    // Keep leading only while the last renewal is recent.
                    self.renewed.is_some_and(|r| r.elapsed() < deadline)
                }
            };
            if *leader.borrow() != holds {
                tracing::info!(identity = %self.identity, leader = holds, "leadership changed");
            }
            leader.send_replace(holds);
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        leader.send_replace(false);
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "could not release the Lease");
        }
    }
}
