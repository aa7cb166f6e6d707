//! kube-rs clients and watchers against the fake server.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use stagegate::resources::{ApiToken, User};

use super::{api_error, install_crds, user};
use crate::kube_api::KubeApiServer;

#[tokio::test]
async fn kube_watcher_sees_add_modify_delete() {
    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let users: Api<User> = Api::default_namespaced(client.clone());
    let mut events = watcher(users.clone(), watcher::Config::default()).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    assert!(matches!(next().await, watcher::Event::Init));
    assert!(matches!(next().await, watcher::Event::InitDone));

    users
        .create(&PostParams::default(), &user("carol"))
        .await
        .unwrap();
    let watcher::Event::Apply(added) = next().await else {
        panic!("expected Apply")
    };
    assert_eq!(
        (added.name_any(), added.metadata.generation),
        ("carol".into(), Some(1))
    );

    let patch = json!({"spec": {"displayName": "Carol"}});
    users
        .patch("carol", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let watcher::Event::Apply(modified) = next().await else {
        panic!("expected Apply")
    };
    assert_eq!(modified.metadata.generation, Some(2));
    assert!(modified.resource_version() > added.resource_version());

    users
        .delete("carol", &DeleteParams::default())
        .await
        .unwrap();
    let watcher::Event::Delete(deleted) = next().await else {
        panic!("expected Delete")
    };
    assert_eq!(deleted.name_any(), "carol");

    // The watch may start before or after the create; it resumes from the list's resourceVersion.
    let mut verbs: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.resource.as_deref() == Some("users"))
        .map(|r| r.verb.clone())
        .collect();
    verbs.sort();
    assert_eq!(verbs, ["create", "delete", "list", "patch", "watch"]);
}

#[tokio::test]
async fn kube_streaming_list_watcher_gets_initial_events() {
    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let users: Api<User> = Api::default_namespaced(client);
    users
        .create(&PostParams::default(), &user("dave"))
        .await
        .unwrap();
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher(users, config).boxed();
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        match event {
            watcher::Event::InitApply(u) => seen.push(u.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["dave"]);
    assert!(server
        .requests()
        .iter()
        .any(|r| r.verb == "watch" && r.query.contains("sendInitialEvents=true")));
}

#[tokio::test]
async fn kube_status_patch_changes_only_status() {
    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let users: Api<User> = Api::default_namespaced(client);
    let mut with_status = serde_json::to_value(user("erin")).unwrap();
    with_status["status"] = json!({"phase": "Active"});
    let created = users
        .create(
            &PostParams::default(),
            &serde_json::from_value(with_status).unwrap(),
        )
        .await
        .unwrap();
    assert!(
        created.status.is_none(),
        "create ignores status when it is a subresource"
    );
    server.clear_requests();

    let status = json!({"status": {"phase": "Invited", "observedGeneration": 1, "bogus": true}});
    let patched = users
        .patch_status("erin", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(1));
    let stored = server
        .object("stagegate.dev", "users", "default", "erin")
        .unwrap();
    assert!(
        stored["status"].get("bogus").is_none(),
        "unknown fields are pruned"
    );
    assert_eq!(
        serde_json::to_value(&patched.status).unwrap()["phase"],
        "Invited"
    );
    assert!(patched.resource_version() > created.resource_version());

    let sneaky = json!({"spec": {"displayName": "Erin"}, "status": {"phase": "Revoked"}});
    let main = users
        .patch("erin", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    assert_eq!(main.metadata.generation, Some(2));
    assert_eq!(
        serde_json::to_value(&main.status).unwrap()["phase"],
        "Invited",
        "main writes ignore status"
    );

    let apply = json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "User", "status": {"phase": "Active"}});
    let applied = users
        .patch_status(
            "erin",
            &PatchParams::apply("stagegate").force(),
            &Patch::Apply(&apply),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&applied.status).unwrap()["phase"],
        "Active"
    );
    assert_eq!(applied.metadata.generation, Some(2));
    let managers: Vec<_> = applied
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"stagegate".to_string()), "{managers:?}");

    let mut replaced = users.get_status("erin").await.unwrap();
    replaced.status.as_mut().unwrap().phase = Some(stagegate::resources::UserPhase::Revoked);
    let replaced = users
        .replace_status("erin", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&replaced.status).unwrap()["phase"],
        "Revoked"
    );
    assert_eq!(replaced.metadata.generation, Some(2));

    let log = server.take_requests();
    let status_writes: Vec<_> = log
        .iter()
        .filter(|r| r.resource.as_deref() == Some("users/status"))
        .collect();
    let verbs: Vec<&str> = status_writes.iter().map(|r| r.verb.as_str()).collect();
    assert_eq!(verbs, ["patch", "patch", "get", "update"]);
    assert_eq!(
        status_writes[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        status_writes[1].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(status_writes[1].query.contains("fieldManager=stagegate"));
}

#[tokio::test]
async fn kube_conflicts_and_not_found_are_statuses() {
    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let users: Api<User> = Api::default_namespaced(client);
    let original = users
        .create(&PostParams::default(), &user("frank"))
        .await
        .unwrap();
    let mut first = original.clone();
    first.spec.display_name = Some("Frank".into());
    users
        .replace("frank", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = original.clone();
    stale.spec.display_name = Some("Stale".into());
    let err = users
        .replace("frank", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));

    let err = users
        .create(&PostParams::default(), &user("frank"))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "AlreadyExists".into()));
    let err = users.get("nobody").await.unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".into()));

    let mut generated = user("placeholder");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let made = users
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(
        made.name_any().starts_with("gen-") && made.name_any().len() == 9,
        "{}",
        made.name_any()
    );

    let applied: User = users
        .patch(
            "grace",
            &PatchParams::apply("stagegate").force(),
            &Patch::Apply(&user("grace")),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.metadata.generation,
        Some(1),
        "server-side apply creates"
    );
    let by_name = users
        .list(&ListParams::default().fields("metadata.name=grace"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
}

#[tokio::test]
async fn kube_watch_from_compacted_version_is_gone() {
    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let users: Api<User> = Api::default_namespaced(client);
    let rv = users
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    users
        .create(&PostParams::default(), &user("heidi"))
        .await
        .unwrap();
    let mut resumed = users
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let Some(Ok(WatchEvent::Added(u))) = resumed.next().await else {
        panic!("expected the missed ADDED")
    };
    assert_eq!(u.name_any(), "heidi");

    let params = WatchParams::default(); // bookmarks are on by default
    let mut bookmarked = users.watch(&params, &rv).await.unwrap().boxed();
    assert!(matches!(
        bookmarked.next().await,
        Some(Ok(WatchEvent::Added(_)))
    ));
    let next = tokio::time::timeout(Duration::from_secs(3), bookmarked.next())
        .await
        .unwrap();
    let Some(Ok(WatchEvent::Bookmark(b))) = next else {
        panic!("expected a bookmark, got {next:?}")
    };
    assert!(b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap());

    server.compact();
    let mut expired = users
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match expired.next().await {
        Some(Ok(WatchEvent::Error(status))) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn kube_owner_deletion_collects_secrets() {
    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let tokens: Api<ApiToken> = Api::default_namespaced(client.clone());
    let token: ApiToken = serde_json::from_value(json!({
        "apiVersion": "stagegate.dev/v1alpha1", "kind": "ApiToken",
        "metadata": {"name": "ci"}, "spec": {"role": "Admin", "validity": "Never"},
    }))
    .unwrap();
    let token = tokens.create(&PostParams::default(), &token).await.unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mut secret = Secret::default();
    secret.metadata.name = Some("ci-token".into());
    secret.metadata.owner_references = Some(vec![token.controller_owner_ref(&()).unwrap()]);
    secret.string_data = Some([("token".to_string(), "sgt_x".to_string())].into());
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let stored = server.object("", "secrets", "default", "ci-token").unwrap();
    assert_eq!(
        stored["data"]["token"], "c2d0X3g=",
        "stringData is stored as base64 data"
    );
    assert!(stored.get("stringData").is_none());

    tokens.delete("ci", &DeleteParams::default()).await.unwrap();
    let err = secrets.get("ci-token").await.unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".into()));

    let leases: Api<Lease> = Api::default_namespaced(client);
    let mut lease = Lease::default();
    lease.metadata.name = Some("stagegate-leader".into());
    leases.create(&PostParams::default(), &lease).await.unwrap();
    assert!(server
        .object(
            "coordination.k8s.io",
            "leases",
            "default",
            "stagegate-leader"
        )
        .is_some());
    let created: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.verb == "create")
        .filter_map(|r| r.resource.clone())
        .collect();
    assert_eq!(
        created[created.len() - 3..],
        ["apitokens", "secrets", "leases"]
    );
    server.stop();
}

#[tokio::test]
async fn kube_finalizer_helper_adds_and_removes_its_finalizer() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{finalizer, Event as Finalizer};
    use std::sync::Arc;

    const NAME: &str = "stagegate.dev/cleanup";
    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let users: Api<User> = Api::default_namespaced(client);
    let reconcile = |event: Finalizer<User>| async move {
        let _ = event;
        Ok::<_, std::io::Error>(Action::await_change())
    };

    let created = users
        .create(&PostParams::default(), &user("ivan"))
        .await
        .unwrap();
    finalizer(&users, NAME, Arc::new(created), reconcile)
        .await
        .unwrap();
    let with_finalizer = users.get("ivan").await.unwrap();
    assert_eq!(with_finalizer.finalizers(), [NAME]);

    users
        .delete("ivan", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = users.get("ivan").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    finalizer(&users, NAME, Arc::new(deleting), reconcile)
        .await
        .unwrap();
    let err = users.get("ivan").await.unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".into()));
}

#[tokio::test]
async fn kube_recorder_publishes_and_aggregates_events() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let users: Api<User> = Api::default_namespaced(client.clone());
    let judy = users
        .create(&PostParams::default(), &user("judy"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "stagegate".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("user is in the store".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &judy.object_ref(&()))
        .await
        .unwrap();
    recorder
        .publish(&event, &judy.object_ref(&()))
        .await
        .unwrap();

    let log: Vec<_> = server
        .take_requests()
        .into_iter()
        .filter(|r| r.group.as_deref() == Some("events.k8s.io"))
        .collect();
    let verbs: Vec<&str> = log.iter().map(|r| r.verb.as_str()).collect();
    assert_eq!(
        verbs,
        ["create", "patch"],
        "a repeated event becomes a series"
    );
    let name = log[1].name.clone().unwrap();
    let stored = server
        .object("events.k8s.io", "events", "default", &name)
        .unwrap();
    assert_eq!(stored["regarding"]["name"], "judy");
    assert_eq!(stored["series"]["count"], 2);
    let core = server.object("", "events", "default", &name).unwrap();
    assert_eq!(
        core["involvedObject"]["name"], "judy",
        "one resource, two API versions"
    );
    assert_eq!(core["message"], "user is in the store");
    let described = server.kubectl(&["describe", "user", "judy"]);
    let described = &described.assert_success().stdout;
    assert!(
        described.contains("Reconciled") && described.contains("(x2 over"),
        "{described}"
    );
    let events = server.kubectl(&["get", "events", "-o", "jsonpath={.items[*].reason}"]);
    assert_eq!(events.assert_success().stdout, "Reconciled");
}

/// Synchronous tests (which spawn the product binary) use the kubeconfig file;
/// kube-rs must accept it as written, plain-HTTP server and no credentials.
#[test]
fn kubeconfig_file_works_for_kube_rs_from_a_sync_test() {
    let server = KubeApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = server.write_kubeconfig(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names = runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .unwrap();
        assert_eq!(config.default_namespace, "default");
        let client = kube::Client::try_from(config).unwrap();
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
        let list = namespaces.list(&ListParams::default()).await.unwrap();
        list.items.iter().map(|n| n.name_any()).collect::<Vec<_>>()
    });
    assert_eq!(names, ["default", "kube-public", "kube-system"]);
    assert!(server.requests().iter().all(|r| r.status == 200));
    server.stop();
}

#[tokio::test]
async fn kube_controller_reconciles_across_namespaces() {
    use kube::runtime::controller::{Action, Controller};
    use std::sync::Arc;

    let server = KubeApiServer::start();
    let client = server.client();
    install_crds(&client).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-b"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    for (namespace, name) in [("default", "kim"), ("team-b", "lee")] {
        let api: Api<User> = Api::namespaced(client.clone(), namespace);
        api.create(&PostParams::default(), &user(name))
            .await
            .unwrap();
    }

    async fn reconcile(user: Arc<User>, client: Arc<kube::Client>) -> Result<Action, kube::Error> {
        let api: Api<User> = Api::namespaced((*client).clone(), &user.namespace().unwrap());
        let status =
            json!({"status": {"phase": "Invited", "observedGeneration": user.metadata.generation}});
        api.patch_status(
            &user.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
        Ok(Action::await_change())
    }
    let controller = Controller::new(Api::<User>::all(client.clone()), watcher::Config::default())
        .owns(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
        )
        .run(
            reconcile,
            |_, _, _| Action::await_change(),
            Arc::new(client.clone()),
        );
    let watched = |server: &KubeApiServer| -> Vec<String> {
        server
            .requests()
            .iter()
            .filter(|r| r.verb == "watch" && r.namespace.is_none())
            .filter_map(|r| r.resource.clone())
            .collect()
    };
    // Two reconciles, then keep the controller running until it has opened both of its
    // cluster-wide watches: its Secret watcher starts beside the User one and may open
    // its watch after both Users were reconciled.
    let mut controller = Box::pin(controller);
    let results = tokio::time::timeout(Duration::from_secs(10), async {
        let mut results = Vec::new();
        while results.len() < 2 {
            results.extend(controller.next().await);
        }
        while !watched(&server).contains(&"secrets".into()) {
            tokio::select! {
                _ = controller.next() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        results
    })
    .await
    .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    for (namespace, name) in [("default", "kim"), ("team-b", "lee")] {
        let stored = server
            .object("stagegate.dev", "users", namespace, name)
            .unwrap();
        assert_eq!(stored["status"]["phase"], "Invited");
    }
    let watched = watched(&server);
    assert!(
        watched.contains(&"users".into()) && watched.contains(&"secrets".into()),
        "{watched:?}"
    );
}

/// `as=PartialObjectMetadata[List]` is answered with metadata only, as
/// kube-apiserver does: a Secret's data never crosses the wire to a client
/// that asked for its metadata.
#[tokio::test]
async fn metadata_only_requests_get_no_secret_data() {
    let server = KubeApiServer::start();
    let client = server.client();
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "helm-release", "labels": {"owner": "helm"}},
        "stringData": {"release": "not-for-stagegate"},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let ask = |path: &str, accept: &str| {
        axum::http::Request::get(path)
            .header(axum::http::header::ACCEPT, accept)
            .body(Vec::new())
            .unwrap()
    };
    let meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let list = client
        .request_text(ask("/api/v1/namespaces/default/secrets", meta))
        .await
        .unwrap();
    let one = client
        .request_text(ask(
            "/api/v1/namespaces/default/secrets/helm-release",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ))
        .await
        .unwrap();
    for text in [&list, &one] {
        assert!(text.contains("helm-release"), "{text}");
        assert!(!text.contains("\"data\""), "data sent: {text}");
    }
    assert!(list.contains("\"PartialObjectMetadataList\""), "{list}");
    // kube-rs's metadata-only watcher sees the object, labels included.
    let meta_api: Api<kube::core::PartialObjectMeta<Secret>> = Api::default_namespaced(client);
    let listed = meta_api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].labels()["owner"], "helm");
    // A plain request still gets the whole Secret.
    let whole = secrets.get("helm-release").await.unwrap();
    assert!(whole.data.is_some_and(|d| d.contains_key("release")));
}
