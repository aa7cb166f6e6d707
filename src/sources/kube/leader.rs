//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go does
//! it: acquire when the Lease is free or its holder stopped renewing for a
//! lease duration (measured on our own clock from when we last saw the
//! record change, so clock skew between replicas does not matter), renew
//! every third of the duration, step down when renewals fail for two thirds
//! of it, and give the Lease up on shutdown so another replica takes over at once.
//!
//! Fencing: every acquire-or-renew attempt (a GET and a write) has a
//! deadline of a third of the duration, so a hung request cannot keep a
//! replica "leading". Leadership is held until the renew deadline (two
//! thirds of the duration) counted from the start of the last successful
//! attempt; the [`Fence`] says whether that time has passed, and the Secret
//! sink asks it before every write, so a replica that lost the Lease (or no
//! longer knows) creates and deletes nothing, even in an apply already
//! running. Another replica can take over only a full duration after it saw
//! the last renewal, a third of the duration after this one has stopped.
//!
//! Verbs: leases get, create, update (optimistic concurrency by resourceVersion).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Name of the Lease in the controller's namespace.
pub const LEASE_NAME: &str = "stagegate-leader";

/// Until when this replica is sure it holds the Lease; shared by the elector
/// (which extends it on each renewal) and everything that writes.
#[derive(Clone, Debug, Default)]
pub struct Fence(Arc<Mutex<Option<Instant>>>);

impl Fence {
    /// A fence that holds nothing yet.
    pub fn new() -> Self {
        Fence::default()
    }

    /// Whether leadership is still certain now.
    pub fn holds(&self) -> bool {
        self.until().is_some_and(|u| Instant::now() < u)
    }

    /// The instant leadership stops being certain, if held.
    pub fn until(&self) -> Option<Instant> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, until: Option<Instant>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = until;
    }
}

/// One replica's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
    /// The last record seen from another holder, and when we first saw it.
    observed: Option<(String, Instant)>,
    /// When the last successful attempt started.
    renewed: Option<Instant>,
    /// Shared with the writers: until when we are sure we lead.
    fence: Fence,
}

impl Elector {
    /// An elector for Lease [`LEASE_NAME`] in `namespace`.
    pub fn new(
        client: Client,
        namespace: &str,
        identity: &str,
        duration: Duration,
        fence: Fence,
    ) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            identity: identity.to_string(),
            duration,
            observed: None,
            renewed: None,
            fence,
        }
    }

    /// How long leadership lasts after the start of a successful attempt.
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// The deadline of one attempt (its GET and its write together).
    fn request_deadline(&self) -> Duration {
        self.duration / 3
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
        let started = Instant::now();
        let attempt = tokio::time::timeout(self.request_deadline(), self.attempt()).await;
        let result = match attempt {
            Ok(r) => r,
            Err(_) => Err(kube::Error::Service(
                format!(
                    "Lease request took longer than its deadline of {:?}",
                    self.request_deadline()
                )
                .into(),
            )),
        };
        match &result {
            Ok(true) => {
                self.renewed = Some(started);
                self.fence.set(Some(started + self.renew_deadline()));
            }
            Ok(false) => {
                self.renewed = None;
                self.fence.set(None);
            }
            // Leadership lapses by itself when the renew deadline passes.
            Err(_) => {}
        }
        result
    }

    async fn attempt(&mut self) -> Result<bool, kube::Error> {
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
            Ok(_) => Ok(true),
            // Another replica wrote first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up when we hold it, so another replica takes over without waiting.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        self.fence.set(None);
        let deadline = self.request_deadline();
        match tokio::time::timeout(deadline, self.give_up()).await {
            Ok(r) => r,
            Err(_) => Err(kube::Error::Service(
                format!("releasing the Lease took longer than {deadline:?}").into(),
            )),
        }
    }

    async fn give_up(&mut self) -> Result<(), kube::Error> {
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
        loop {
            if let Err(e) = self.try_acquire_or_renew().await {
                tracing::warn!(error = %e, "leader election request failed");
            }
            self.publish(&leader);
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

    /// Tells the controller whether we lead, from the fence (so a lapse is seen at once).
    fn publish(&self, leader: &watch::Sender<bool>) {
        let holds = self.fence.holds();
        if *leader.borrow() != holds {
            tracing::info!(identity = %self.identity, leader = holds, "leadership changed");
        }
        leader.send_replace(holds);
    }
}

/// Returns when the fence lapses: leadership was not renewed by its deadline.
pub async fn lapsed(fence: &Fence) {
    loop {
        match fence.until() {
            Some(until) if Instant::now() < until => {
                tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await
            }
            _ => return,
        }
    }
}
