use super::*;
use std::sync::Mutex;

/// Records the users of each snapshot it is given.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<String>>>>);

impl Reconciler for Recorder {
    fn reconcile(
        &mut self,
        snapshot: Snapshot,
        _secrets: Option<&SecretsCache>,
    ) -> Result<Reconciled, ReconcileError> {
        let mut users: Vec<String> = snapshot
            .users
            .iter()
            .map(|u| u.key().name.clone())
            .collect();
        users.sort();
        self.0.lock().unwrap().push(users);
        Ok(Reconciled::default())
    }
}

const USER: &str = "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: NAME\n  namespace: t\nspec: {}\n";

async fn wait_for(rx: &mut watch::Receiver<Option<Arc<Report>>>, generation: u64) {
    wait_until(rx, |o| {
        o.as_ref().is_some_and(|o| o.generation >= generation)
    })
    .await;
}

/// Waits (with a deadline, so a hang fails) until what `rx` carries satisfies `done`.
async fn wait_until<T>(rx: &mut watch::Receiver<T>, done: impl Fn(&T) -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if done(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the daemon did not get there in time");
}

#[tokio::test]
async fn reconciles_at_start_on_change_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), USER.replace("NAME", "ada")).unwrap();
    let rec = Recorder::default();
    let config = DaemonConfig {
        dir: dir.path().to_path_buf(),
        secrets_dir: None,
        resync: Duration::from_secs(3600),
        debounce: Duration::from_millis(50),
        require_access_domain: false,
    };
    let mut daemon = Daemon::new(config, rec.clone());
    let hooked = Arc::new(Mutex::new(0u64));
    let h = hooked.clone();
    daemon.on_applied(move |o| *h.lock().unwrap() = o.generation);
    let mut rx = daemon.reports();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon.run(async {
        let _ = stop_rx.await;
    }));
    wait_for(&mut rx, 1).await;
    // An editor swap file changes nothing.
    std::fs::write(dir.path().join(".a.yaml.swp"), "junk").unwrap();
    std::fs::write(dir.path().join("b.yaml"), USER.replace("NAME", "bob")).unwrap();
    wait_for(&mut rx, 2).await;
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    wait_for(&mut rx, 3).await;
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(seen.first().unwrap(), &vec!["ada".to_string()]);
    assert_eq!(seen.last().unwrap(), &vec!["bob".to_string()]);
    assert!(seen.contains(&vec!["ada".to_string(), "bob".to_string()]));
    assert!(*hooked.lock().unwrap() >= 3);
}

/// Delivers a password Secret per user through the daemon's cached sink, as the store
/// reconciler does, and records the users it saw.
#[derive(Clone, Default)]
struct Deliverer(Recorder);

impl Reconciler for Deliverer {
    fn reconcile(
        &mut self,
        snapshot: Snapshot,
        secrets: Option<&SecretsCache>,
    ) -> Result<Reconciled, ReconcileError> {
        let sink = secrets
            .expect("the daemon watches a secrets directory")
            .sink();
        for u in &snapshot.users {
            let secret = crate::secrets::OutgoingSecret {
                namespace: "t".into(),
                name: format!("{}-password", u.key().name),
                data: [(
                    "password".to_string(),
                    crate::secrets::SecretValue::from_string("generated-password".into()),
                )]
                .into(),
                key_id: "k1".into(),
                expires_at: None,
                owner: u.key(),
            };
            crate::secrets::SecretSink::deliver(&sink, &secret).unwrap();
        }
        let written = sink.written();
        let mut out = self.0.reconcile(snapshot, None)?;
        out.written = written;
        Ok(out)
    }
}

#[tokio::test]
async fn own_secret_writes_and_unchanged_files_do_not_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("a.yaml"), USER.replace("NAME", "ada")).unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    let rec = Deliverer::default();
    let config = DaemonConfig {
        dir: manifests.clone(),
        secrets_dir: Some(dir.path().join("secrets")),
        resync: Duration::from_secs(3600),
        debounce: Duration::from_millis(50),
        require_access_domain: false,
    };
    let daemon = Daemon::new(config, rec.clone());
    let mut reports = daemon.reports();
    let mut activity = daemon.activity();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon.run(async {
        let _ = stop_rx.await;
    }));
    wait_for(&mut reports, 1).await;
    // The delivery raises file-system events: a round runs, finds only its own write, and
    // neither reconciles nor reads the file again (it was read back right after the write).
    wait_until(&mut activity, |a| a.rounds >= 2).await;
    let a = *activity.borrow();
    assert_eq!(a.reconciles, 1, "{a:?}");
    assert_eq!(a.secret_files_read, 1, "{a:?}");
    assert_eq!(a.files_parsed, 1, "{a:?}");
    // The same content written again (a new inode, a new mtime): read, not parsed, no reconcile.
    let rounds = a.rounds;
    let tmp = manifests.join(".a.yaml.tmp");
    std::fs::write(&tmp, USER.replace("NAME", "ada")).unwrap();
    std::fs::rename(&tmp, manifests.join("a.yaml")).unwrap();
    wait_until(&mut activity, |a| a.rounds > rounds).await;
    let a = *activity.borrow();
    assert_eq!((a.reconciles, a.files_parsed), (1, 1), "{a:?}");
    // A real edit is parsed and applied; its delivery again costs no further reconcile.
    std::fs::write(manifests.join("b.yaml"), USER.replace("NAME", "bob")).unwrap();
    wait_for(&mut reports, 2).await;
    let rounds = activity.borrow().rounds;
    wait_until(&mut activity, |a| a.rounds > rounds).await;
    let a = *activity.borrow();
    assert_eq!((a.reconciles, a.files_parsed), (2, 2), "{a:?}");
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    let seen = rec.0 .0.lock().unwrap().clone();
    assert_eq!(
        seen.last().unwrap(),
        &vec!["ada".to_string(), "bob".to_string()]
    );
    assert!(dir.path().join("secrets/t/bob-password.yaml").exists());
}

/// A recorder that says whether the inputs it last reconciled are still settled.
#[derive(Clone)]
struct Settling(Recorder, bool);

impl Reconciler for Settling {
    fn reconcile(
        &mut self,
        snapshot: Snapshot,
        secrets: Option<&SecretsCache>,
    ) -> Result<Reconciled, ReconcileError> {
        self.0.reconcile(snapshot, secrets)
    }

    fn settled(&mut self, _now: Timestamp) -> bool {
        self.1
    }
}

/// Writes one User manifest (`ada`) into `dir` and configures a daemon watching it, with
/// no secrets directory.
fn one_user(dir: &std::path::Path, resync: Duration) -> DaemonConfig {
    std::fs::write(dir.join("a.yaml"), USER.replace("NAME", "ada")).unwrap();
    DaemonConfig {
        dir: dir.to_path_buf(),
        secrets_dir: None,
        resync,
        debounce: Duration::from_millis(50),
        require_access_domain: false,
    }
}

/// Runs a daemon with a fast resync until it has run `rounds` rounds; returns its activity.
async fn resync_rounds(settled: bool, rounds: u64) -> Activity {
    let dir = tempfile::tempdir().unwrap();
    let config = one_user(dir.path(), Duration::from_millis(20));
    let daemon = Daemon::new(config, Settling(Recorder::default(), settled));
    let mut activity = daemon.activity();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon.run(async {
        let _ = stop_rx.await;
    }));
    wait_until(&mut activity, |a| a.rounds >= rounds).await;
    let a = *activity.borrow();
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    a
}

#[tokio::test]
async fn a_resync_reconciles_only_when_the_reconciler_is_not_settled() {
    // Settled (the store unchanged, no expiry due): resyncs re-read the files, find
    // nothing new, and do not plan again.
    let a = resync_rounds(true, 4).await;
    assert_eq!((a.reconciles, a.files_parsed), (1, 1), "{a:?}");
    // Not settled (the default: the store changed, or a key's expiry came due): every
    // resync reconciles, though no file changed.
    let a = resync_rounds(false, 4).await;
    assert!(a.reconciles >= 4, "{a:?}");
    assert_eq!(a.files_parsed, 1, "{a:?}");
}

/// Reports one change, one written Secret and one outcome per user, as the store
/// reconciler does after an apply.
#[derive(Clone, Default)]
struct Changing(Recorder);

impl Reconciler for Changing {
    fn reconcile(
        &mut self,
        snapshot: Snapshot,
        secrets: Option<&SecretsCache>,
    ) -> Result<Reconciled, ReconcileError> {
        let names: Vec<String> = snapshot.users.iter().map(|u| u.key().name).collect();
        let mut out = self.0.reconcile(snapshot, secrets)?;
        out.changes = names
            .iter()
            .map(|n| AppliedChange {
                object: ObjectKey::new("User", "t", n),
                action: "createUser".into(),
                source: "a.yaml:1".into(),
            })
            .collect();
        out.written = names
            .iter()
            .map(|n| ("t".to_string(), format!("{n}-password")))
            .collect();
        out.objects = Arc::new(
            names
                .iter()
                .map(|n| Outcome {
                    kind: "User".into(),
                    namespace: "t".into(),
                    name: n.clone(),
                    ready: true,
                    reason: "Ready".into(),
                    phase: None,
                    message: String::new(),
                })
                .collect(),
        );
        Ok(out)
    }
}

#[tokio::test]
async fn hooks_see_the_rounds_changes_and_the_published_report_only_its_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_user(dir.path(), Duration::from_secs(3600));
    let mut daemon = Daemon::new(config, Changing::default());
    let hooked = Arc::new(Mutex::new(None));
    let h = hooked.clone();
    daemon.on_applied(move |o| {
        let r = o.result.as_ref().unwrap();
        *h.lock().unwrap() = Some((r.changes.len(), r.written.len(), r.objects.len()));
    });
    let mut rx = daemon.reports();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon.run(async {
        let _ = stop_rx.await;
    }));
    wait_for(&mut rx, 1).await;
    let published = rx.borrow().clone().unwrap();
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        *hooked.lock().unwrap(),
        Some((1, 1, 1)),
        "the hook sees it all"
    );
    // The published report lives until the next round: a first apply's lists of changes
    // and written Secrets (tens of MiB at scale) are not kept in it.
    let r = published.result.as_ref().unwrap();
    assert!(r.changes.is_empty(), "{:?}", r.changes);
    assert!(r.written.is_empty(), "{:?}", r.written);
    assert_eq!(
        r.objects.len(),
        1,
        "the outcomes stay (the memo shares them)"
    );
}
