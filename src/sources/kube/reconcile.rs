//! One reconcile, as a pipeline of named phases:
//! snapshot (pure) → finalizers added → core (validate/plan/apply, on a
//! blocking thread) → report (status patches, Events, finalizers released).
//! Every write happens only when something changed, so a reconcile with
//! nothing new sends no write request.

use super::cache::{Compact, Shared};
use super::pipeline::{self, Applied};
use super::scoped::{self, PartRound, Scoper};
use super::sink::KubeSecretSink;
use super::{events, finalizer, snapshot, status, ControllerError, ReportError};
use crate::secrets::{PasswordParams, ServerKey};
use crate::snapshot::ObjectKey;
use crate::store::{AnyStore, ObjectStatus, StateToken};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::Patch;
use kube::runtime::events::Recorder;
use kube::Client;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What every reconcile needs (the controller-rs `Context`).
#[derive(Clone)]
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The identity store (shared with the HTTP API).
    pub store: Arc<Mutex<AnyStore>>,
    /// HMAC key of this installation.
    pub server_key: Arc<ServerKey>,
    /// argon2id cost.
    pub password_params: PasswordParams,
    /// `run --public-url`: delivered invitation Secrets also hold an acceptance URL.
    pub public_url: Option<String>,
    /// The bootstrap administrator to keep, if enabled.
    pub bootstrap: Option<crate::bootstrap::BootstrapConfig>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Delivers Secrets.
    pub sink: KubeSecretSink,
}

/// State kept between reconciles of one leadership term.
#[derive(Debug, Default)]
pub struct Memory {
    /// Malformed objects already reported, with the resourceVersion reported.
    reported: HashMap<ObjectKey, String>,
    /// Set by a reconcile that changed nothing anywhere: what it saw.
    settled: Option<Settled>,
    /// What a round keeps to scope the next one (see [`super::scoped`]).
    scoper: Scoper,
    /// The last round's next expiry (see [`Applied::next_expiry`]).
    until: Option<jiff::Timestamp>,
    /// How many rounds were scoped (a figure for tests and logs).
    scoped_rounds: u64,
}

/// What a reconcile that wrote nothing (no store change, no request to the API server)
/// saw: while the cache's version and the store's token stay the same and the clock has
/// not reached `until`, reconciling again would do nothing either.
#[derive(Debug, Clone)]
pub struct Settled {
    version: u64,
    token: StateToken,
    until: Option<jiff::Timestamp>,
}

impl Settled {
    /// Whether a reconcile now would still change nothing: no change that matters
    /// reached the cache since (`version`), nothing wrote to the store (its token) and
    /// no key or invitation expired. PostgreSQL's token never matches, so there every
    /// resync reconciles.
    pub fn holds(&self, version: u64, store: &AnyStore, now: jiff::Timestamp) -> bool {
        self.version == version
            && store.state_token().is_ok_and(|t| t == self.token)
            && self.until.is_none_or(|u| now < u)
    }
}

impl Memory {
    /// What the last reconcile saw, when it changed nothing at all.
    pub fn settled(&self) -> Option<Settled> {
        self.settled.clone()
    }

    /// How many rounds of this term were scoped (planned the changed objects and what
    /// they touch, not everything).
    pub fn scoped_rounds(&self) -> u64 {
        self.scoped_rounds
    }
}

/// What a reconcile did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Store changes applied.
    pub changes: usize,
    /// Status patches sent.
    pub status_patches: usize,
    /// Events published.
    pub events: usize,
    /// Finalizers added or removed.
    pub finalizers: usize,
    /// Requests about single objects that failed (each reported on its object; retried soon).
    pub object_failures: usize,
}

fn reference(value: &Value) -> ObjectReference {
    let s = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_string);
    ObjectReference {
        api_version: s("/apiVersion"),
        kind: s("/kind"),
        name: s("/metadata/name"),
        namespace: s("/metadata/namespace"),
        uid: s("/metadata/uid"),
        ..Default::default()
    }
}

fn api_error(verb: &'static str, key: &ObjectKey, source: kube::Error) -> ReportError {
    ReportError::Api {
        verb,
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        source,
    }
}

/// Runs one reconcile of everything in `shared`: a scoped round when only a few objects
/// changed since the last one and the change is provably local (see [`super::scoped`]),
/// else a whole round.
pub async fn reconcile(
    ctx: &Context,
    shared: &Shared,
    memory: &mut Memory,
) -> Result<Summary, ControllerError> {
    let mut summary = Summary::default();
    memory.settled = None;
    // A failed request about one object is that object's problem: it gets a Warning Event,
    // the others and the core (revocations above all) go on, and the loop retries soon.
    // Referenced password Secrets: their data, read by name when they changed.
    let started = std::time::Instant::now();
    super::watch::fetch_passwords(&ctx.client, shared).await;
    let passwords = started.elapsed();
    let started = std::time::Instant::now();
    let (part, version, quiet) = {
        let mut cache = shared.lock();
        let changes = cache.take_changes();
        // Only the round's own writes came back (status patches, finalizers, Secrets).
        let quiet = changes.known && changes.objects.is_empty() && changes.restatus.is_empty();
        (memory.scoper.part(&cache, changes), cache.version, quiet)
    };
    if quiet {
        // The round after one that wrote: when nothing else wrote to the store and
        // nothing expired, it would plan nothing; it settles without reading everything.
        let (_, token) = core(ctx, |_, _, _| Ok(())).await?;
        let now = crate::snapshot::now();
        if token.as_ref().is_some_and(|t| memory.scoper.holds(t, now)) {
            tracing::debug!("only the last round's own writes came back: nothing to plan");
            finish(memory, &summary, token, version);
            return Ok(summary);
        }
    }
    let mut finalized = BTreeSet::new();
    if let Some(part) = part {
        let snapshot_ms = started.elapsed();
        match scoped_round(ctx, part, &mut summary, &mut finalized).await {
            Ok(Some((part, applied, token, times))) => {
                memory.scoped_rounds += 1;
                let phases = Phases {
                    passwords,
                    snapshot: snapshot_ms,
                    validated: part.built.validated_in,
                    finalizers: times.0,
                    core: times.1,
                };
                report(
                    ctx,
                    shared,
                    memory,
                    &part.objects,
                    &part.built,
                    applied,
                    phases,
                    &mut summary,
                )
                .await;
                finish(memory, &summary, token, version);
                return Ok(summary);
            }
            Ok(None) => {}
            Err(e) => {
                memory.scoper.keep(None);
                return Err(e);
            }
        }
    }
    // Phase 1: snapshot (pure), with a copy of the objects for the report phase.
    let started = std::time::Instant::now();
    let (mut built, objects, version) = {
        let cache = shared.lock();
        (snapshot::build(&cache), cache.object_list(), cache.version)
    };
    memory.scoper.validated(&built.snapshot);
    let snap = std::mem::take(&mut built.snapshot);
    let snapshot_ms = started.elapsed();
    let validated = built.validated_in;
    let started = std::time::Instant::now();
    // Phase 2: our finalizer goes on before the store entry can exist.
    add_finalizers(ctx, &objects, &mut finalized, &mut summary).await;
    let finalizers = started.elapsed();
    // Phase 3: the shared core, on a blocking thread (the sink blocks on API calls).
    let started = std::time::Instant::now();
    let (applied, token): (Applied, Option<StateToken>) = {
        core(ctx, move |store, ctx, apply_ctx| {
            pipeline::run(
                snap,
                store,
                &ctx.sink,
                apply_ctx,
                ctx.bootstrap.as_ref(),
                Some(scoped::bucket),
            )
        })
        .await
        .inspect_err(|_| memory.scoper.keep(None))?
    };
    let core_ms = started.elapsed();
    let phases = Phases {
        passwords,
        snapshot: snapshot_ms,
        validated,
        finalizers,
        core: core_ms,
    };
    report(
        ctx,
        shared,
        memory,
        &objects,
        &built,
        applied,
        phases,
        &mut summary,
    )
    .await;
    finish(memory, &summary, token, version);
    Ok(summary)
}

/// How long the phases before the report took, for the round's phase log.
struct Phases {
    passwords: std::time::Duration,
    snapshot: std::time::Duration,
    validated: std::time::Duration,
    finalizers: std::time::Duration,
    core: std::time::Duration,
}

/// The end of a round: it settled when it wrote nothing anywhere; a failed request about
/// an object leaves it for a whole round.
fn finish(memory: &mut Memory, summary: &Summary, token: Option<StateToken>, version: u64) {
    if summary.object_failures > 0 {
        memory.scoper.keep(None);
    }
    if let Some(token) = token.filter(|_| *summary == Summary::default()) {
        memory.settled = Some(Settled {
            version,
            token,
            until: memory.until,
        });
    }
}

/// Runs `work` on the store on a blocking thread (the sink blocks on API calls), with
/// the store's token when nothing (apply, bootstrap) wrote.
async fn core<T: Send + 'static>(
    ctx: &Context,
    work: impl FnOnce(
            &mut AnyStore,
            &Context,
            &crate::apply::ApplyContext<'_>,
        ) -> Result<T, pipeline::PipelineError>
        + Send
        + 'static,
) -> Result<(T, Option<StateToken>), ControllerError> {
    let ctx = ctx.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut store = ctx
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The token before and after: equal when nothing (apply, bootstrap) wrote.
        let before = store.state_token().ok();
        let apply_ctx = crate::apply::ApplyContext {
            now: crate::snapshot::now(),
            server_key: &ctx.server_key,
            password_params: ctx.password_params,
            public_url: ctx.public_url.as_deref(),
        };
        let out = work(&mut store, &ctx, &apply_ctx)?;
        let after = store.state_token().ok();
        Ok::<_, pipeline::PipelineError>((out, before.filter(|b| Some(b) == after.as_ref())))
    })
    .await
    .map_err(|e| pipeline::PipelineError::Task(e.to_string()))??;
    Ok(done)
}

/// A scoped round's finalizers and core: None when the scope cannot be proven local (the
/// round then reads everything; the finalizers added are in `finalized`).
async fn scoped_round(
    ctx: &Context,
    mut part: PartRound,
    summary: &mut Summary,
    finalized: &mut BTreeSet<ObjectKey>,
) -> Result<Option<(PartRound, Applied, Option<StateToken>, (Duration, Duration))>, ControllerError>
{
    let started = std::time::Instant::now();
    add_finalizers(ctx, &part.objects, finalized, summary).await;
    let finalizers = started.elapsed();
    let started = std::time::Instant::now();
    let Some(memo) = part.memo.take() else {
        return Ok(None);
    };
    let (back, token) = core(ctx, move |store, ctx, apply_ctx| {
        let applied = pipeline::run_scoped(
            &part.input(),
            memo,
            store,
            &ctx.sink,
            apply_ctx,
            ctx.bootstrap.as_ref(),
        )?;
        Ok((part, applied))
    })
    .await?;
    let (part, applied) = back;
    Ok(applied.map(|a| (part, a, token, (finalizers, started.elapsed()))))
}

/// Adds our finalizer to every object of `objects` of a finalized kind that lacks it and
/// is not being deleted, but those in `done` (added earlier this round); adds them there.
async fn add_finalizers(
    ctx: &Context,
    objects: &BTreeMap<ObjectKey, Arc<Compact>>,
    done: &mut BTreeSet<ObjectKey>,
    summary: &mut Summary,
) {
    for (key, object) in objects {
        if finalizer::finalized(&key.kind)
            && !object.deleting()
            && !object.finalized()
            && !done.contains(key)
        {
            let value = object.object();
            match finalizer::send(
                &ctx.client,
                key,
                finalizer::add_patch(&value),
                "add finalizer",
            )
            .await
            {
                Ok(()) => {
                    summary.finalizers += 1;
                    done.insert(key.clone());
                }
                Err(e) => object_failed(ctx, object, e, summary).await,
            }
        }
    }
}

/// Phase 4: the statuses of `objects` that `applied` read back, the malformed objects of
/// `built`, and the finalizers of its deleting objects (their store entries are gone now).
#[allow(clippy::too_many_arguments)]
async fn report(
    ctx: &Context,
    shared: &Shared,
    memory: &mut Memory,
    objects: &BTreeMap<ObjectKey, Arc<Compact>>,
    built: &snapshot::Built,
    mut applied: Applied,
    phases: Phases,
    summary: &mut Summary,
) {
    summary.changes = applied.changes;
    memory.scoper.keep(applied.memo.take());
    memory.until = applied.next_expiry;
    let started = std::time::Instant::now();
    let statuses: BTreeMap<&ObjectKey, &ObjectStatus> =
        applied.statuses.iter().map(|s| (&s.key, s)).collect();
    for (key, object) in objects {
        if object.deleting() {
            continue;
        }
        let Some(st) = statuses.get(key) else {
            continue;
        };
        match publish_status(ctx, shared, key, object, st, summary).await {
            Ok(n) => summary.events += n,
            Err(e) => object_failed(ctx, object, e, summary).await,
        }
    }
    for (key, why) in &built.malformed {
        let Some(object) = objects.get(key) else {
            continue;
        };
        let rv = object.resource_version().unwrap_or_default().to_string();
        if memory.reported.get(key) == Some(&rv) {
            continue;
        }
        tracing::warn!(object = %key, reason = "SchemaViolation", "skipping malformed object: {why}");
        publish(ctx, object, &events::malformed(why)).await;
        summary.events += 1;
        memory.reported.insert(key.clone(), rv);
    }
    // The store entries of deleted objects are gone now: release them.
    for key in &built.deleting {
        let Some(object) = objects.get(key) else {
            continue;
        };
        if let Some(p) = finalizer::remove_patch(&object.object()) {
            match finalizer::send(&ctx.client, key, p, "remove finalizer").await {
                Ok(()) => {
                    summary.finalizers += 1;
                    tracing::info!(object = %key, "store entry removed; finalizer released");
                }
                Err(e) => object_failed(ctx, object, e, summary).await,
            }
        }
    }
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let t = applied.timings;
    tracing::info!(
        objects = objects.len(),
        passwords_ms = ms(phases.passwords),
        unpack_ms = ms(phases.snapshot.saturating_sub(phases.validated)),
        validate_ms = ms(phases.validated),
        finalizers_ms = ms(phases.finalizers),
        load_state_ms = ms(t.load_state),
        plan_ms = ms(t.plan),
        apply_ms = ms(t.apply),
        statuses_ms = ms(t.statuses),
        core_ms = ms(phases.core),
        report_ms = ms(started.elapsed()),
        scoped = applied.scoped.is_some(),
        scoped_objects = applied.scoped.unwrap_or(0) as u64,
        "reconcile phases"
    );
}

/// Reports a failed request about one object on that object (a Warning Event
/// naming what failed), and counts it so the loop retries soon.
async fn object_failed(ctx: &Context, object: &Compact, e: ReportError, summary: &mut Summary) {
    tracing::warn!(error = %e, "request about one object failed; the others go on");
    summary.object_failures += 1;
    let ReportError::Api { verb, source, .. } = &e;
    let reason = match *verb {
        "add finalizer" | "remove finalizer" => "FinalizerFailed",
        _ => "StatusFailed",
    };
    let notice = events::Notice {
        warning: true,
        reason: reason.into(),
        action: "Reconcile",
        note: format!("{verb} failed: {source}; retried at the next reconcile"),
    };
    publish(ctx, object, &notice).await;
    summary.events += 1;
}

/// Patches one object's status when it changed and publishes the Events of the change.
async fn publish_status(
    ctx: &Context,
    shared: &Shared,
    key: &ObjectKey,
    object: &Compact,
    st: &ObjectStatus,
    summary: &mut Summary,
) -> Result<usize, ReportError> {
    // Only the status is parsed; the rest of the object only for an Event's reference.
    let status = object.status();
    let current = status.as_ref();
    let desired = status::desired(current, st, crate::snapshot::now());
    let Some(body) = status::patch(current, &desired) else {
        return Ok(0);
    };
    // Before the request: its watch event may arrive before the response.
    shared.lock().expect_status(key, &desired);
    let api = super::api_for(&ctx.client, &key.kind, &key.namespace);
    match api
        .patch_status(&key.name, &super::patch_params(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => {}
        // Deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(0),
        Err(e) => return Err(api_error("patch status", key, e)),
    }
    summary.status_patches += 1;
    let notices = events::derive(current, st);
    for n in &notices {
        publish(ctx, object, n).await;
    }
    Ok(notices.len())
}

/// Publishes an Event; a failure is logged, never fatal (Events are best effort).
async fn publish(ctx: &Context, object: &Compact, n: &events::Notice) {
    let reference = reference(&object.declared());
    if let Err(e) = ctx.recorder.publish(&n.event(), &reference).await {
        tracing::warn!(reason = %n.reason, error = %e, "could not publish Event");
    }
}
