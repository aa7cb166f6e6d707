use super::*;
use std::sync::Mutex;

/// Records the users of each snapshot it is given.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<String>>>>);

impl Reconciler for Recorder {
    fn reconcile(&mut self, snapshot: Snapshot) -> Result<Reconciled, ReconcileError> {
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
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if rx
                .borrow_and_update()
                .as_ref()
                .is_some_and(|o| o.generation >= generation)
            {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("reconcile did not happen in time");
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
