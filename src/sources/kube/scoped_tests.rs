use super::super::pipeline::{run, run_scoped, Applied};
use super::*;
use crate::apply::ApplyContext;
use crate::resources::names;
use crate::secrets::{MemorySink, PasswordParams, SecretSink, SecretState, ServerKey};
use crate::store::{AnyStore, ObjectStatus, Store};
use serde_json::json;

#[test]
fn buckets_are_stable_and_name_kind_and_namespace() {
    let key = ObjectKey::new("AccessBinding", "org", "b004711");
    let label = label_of(&key.kind, &key.namespace, &key.name);
    assert_eq!(bucket(&key.to_string()), label);
    assert!(label.starts_with("AccessBinding org #"), "{label}");
    let spread: BTreeSet<String> = (0..4096)
        .map(|i| label_of("User", "org", &format!("u{i:05}")))
        .collect();
    assert!(spread.len() > 900, "{}", spread.len());
}

const ROLES: [&str; 3] = ["Admin", "Manager", "Analyst"];

/// Whether an object is declared, being deleted (its finalizer still on), or gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Gone,
    Declared,
    Deleting,
}

impl Life {
    /// The next step of an object's life: added, deleted (finalizer held), removed.
    fn next(self) -> Life {
        match self {
            Life::Gone => Life::Declared,
            Life::Declared => Life::Deleting,
            Life::Deleting => Life::Gone,
        }
    }
}

/// A small organization in a cluster: four users (life, revoked, display name, renamed),
/// four bindings (life, user, role, global), two tokens (life, revoked, owner) and four
/// stage requests (life, model (m0 global, m1 of customer acme), transition, requester,
/// requested-at: none or one of two instants).
#[derive(Clone, Debug)]
struct Org {
    users: [(Life, bool, u8, bool); 4],
    bindings: [(Life, usize, usize, bool); 4],
    tokens: [(Life, bool, usize); 2],
    requests: [(Life, usize, usize, usize, usize); 4],
}

/// A stage request's transitions: (from, to).
const TRANSITIONS: [(&str, &str); 3] = [
    ("None", "Dev"),
    ("Dev", "Staging"),
    ("Staging", "Production"),
];

impl Org {
    fn start() -> Org {
        Org {
            users: [(Life::Declared, false, 0, false); 4],
            bindings: [
                (Life::Declared, 0, 0, true),
                (Life::Declared, 1, 1, false),
                (Life::Declared, 2, 2, true),
                (Life::Gone, 3, 2, false),
            ],
            tokens: [(Life::Declared, false, 0), (Life::Gone, false, 1)],
            requests: [
                (Life::Declared, 0, 0, 0, 0),
                (Life::Gone, 0, 1, 1, 1),
                (Life::Gone, 1, 0, 2, 1),
                (Life::Gone, 1, 1, 0, 0),
            ],
        }
    }

    /// One edit: a binding patched (user, role, scope), a token revoked, a user edited
    /// (revoked, display name) or renamed (another username), an object added, deleted
    /// or removed, a stage request's spec or requested-at edited.
    fn edit(&mut self, what: u8, value: u8) {
        let v = value as usize;
        match what % 13 {
            11 => self.requests[v % 4].0 = self.requests[v % 4].0.next(),
            12 => {
                let r = &mut self.requests[v % 4];
                match (v / 4) % 4 {
                    0 => r.2 = (r.2 + 1) % TRANSITIONS.len(),
                    1 => r.3 = (r.3 + 1) % 8,
                    2 => r.4 = (r.4 + 1) % 3,
                    _ => r.1 ^= 1,
                }
            }
            0 => self.users[v % 4].0 = self.users[v % 4].0.next(),
            1 => self.users[v % 4].1 ^= true,
            2 => self.users[v % 4].2 = value,
            3 => self.users[v % 4].3 ^= true,
            4 => self.bindings[v % 4].0 = self.bindings[v % 4].0.next(),
            5 => self.bindings[v % 4].1 = (v / 4) % 8,
            6 => self.bindings[v % 4].2 = (v / 4) % ROLES.len(),
            7 => self.bindings[v % 4].3 ^= true,
            8 => self.tokens[v % 2].1 ^= true,
            9 => self.tokens[v % 2].0 = self.tokens[v % 2].0.next(),
            _ => self.tokens[v % 2].2 = (v / 2) % 8,
        }
    }

    /// Username `i` of eight: user `i % 4`'s, as declared before (`i < 4`) or after a rename.
    fn username(i: usize) -> String {
        if i < 4 {
            format!("u{i}")
        } else {
            format!("u{}-renamed", i % 4)
        }
    }

    /// Every object, as the API server serves it.
    fn objects(&self) -> BTreeMap<ObjectKey, Value> {
        let mut out = BTreeMap::new();
        let mut add_at = |kind: &str, name: String, life: Life, spec: Value, at: usize| {
            if life == Life::Gone {
                return;
            }
            let mut meta = json!({"name": name, "namespace": "t", "uid": format!("uid-{kind}-{name}"),
                                  "generation": 1, "finalizers": [super::super::FINALIZER]});
            if life == Life::Deleting {
                meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            if at > 0 {
                meta["annotations"] =
                    json!({"stagegate.dev/requested-at": format!("2026-01-0{at}T00:00:00Z")});
            }
            let value = json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": kind,
                               "metadata": meta, "spec": spec});
            out.insert(ObjectKey::new(kind, "t", &name), value);
        };
        let mut requests = Vec::new();
        for (i, (life, model, step, by, at)) in self.requests.iter().enumerate() {
            let (from, to) = TRANSITIONS[*step];
            let mut spec = json!({"model": format!("m{model}"), "from": from, "to": to,
                                  "requestedBy": Org::username(*by)});
            if *model == 1 {
                spec["scope"] = json!({"customer": "acme"});
            }
            requests.push((format!("r{i}"), *life, spec, *at));
        }
        for (name, life, spec, at) in requests {
            add_at("ModelStageRequest", name, life, spec, at);
        }
        let mut add =
            |kind: &str, name: String, life: Life, spec: Value| add_at(kind, name, life, spec, 0);
        for (i, (life, revoked, display, renamed)) in self.users.iter().enumerate() {
            let mut spec = json!({"displayName": format!("Name {display}"),
                                  "state": if *revoked { "Revoked" } else { "Active" }});
            if *renamed {
                spec["username"] = json!(Org::username(i + 4));
            }
            if i == 3 {
                spec["passwordSecretRef"] = json!({"name": "u3-pw", "key": "password"});
            }
            add("User", format!("u{i}"), *life, spec);
        }
        for (i, (life, user, role, global)) in self.bindings.iter().enumerate() {
            let mut spec = json!({"user": Org::username(*user), "role": ROLES[*role]});
            if !*global {
                spec["scope"] = json!({"customer": "acme"});
            }
            add("AccessBinding", format!("b{i}"), *life, spec);
        }
        for (i, (life, revoked, owner)) in self.tokens.iter().enumerate() {
            let spec = json!({"role": "Analyst", "owner": Org::username(*owner),
                              "validity": "30d", "revoked": revoked});
            add("ApiToken", format!("k{i}"), *life, spec);
        }
        out
    }
}

/// The core of a controller (no API server): its cache, what it keeps between rounds, a
/// store and a sink; `scoped`: whether its rounds may be scoped (else each is whole, as
/// before scoped rounds).
struct Core {
    cache: Cache,
    scoper: Scoper,
    store: AnyStore,
    sink: MemorySink,
    key: ServerKey,
    scoped: bool,
    scoped_rounds: usize,
    /// The resourceVersion of the last Secret this test changed.
    secret_version: u64,
    _dir: tempfile::TempDir,
}

/// The metadata of Secret `t/name` at `rv`, managed by stagegate when `ours`.
fn secret_meta(
    name: &str,
    rv: u64,
    ours: bool,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        namespace: Some("t".into()),
        name: Some(name.into()),
        uid: Some(format!("uid-secret-{name}")),
        resource_version: Some(rv.to_string()),
        annotations: ours.then(|| {
            [(
                crate::secrets::MANAGED_BY_ANNOTATION.to_string(),
                super::super::MANAGED_BY.to_string(),
            )]
            .into()
        }),
        ..Default::default()
    }
}

impl Core {
    fn new(scoped: bool) -> Core {
        let dir = tempfile::tempdir().unwrap();
        Core {
            cache: Cache::default(),
            scoper: Scoper::default(),
            store: AnyStore::open(&dir.path().join("store.db")).unwrap(),
            sink: MemorySink::new(),
            key: ServerKey::generate(),
            scoped,
            scoped_rounds: 0,
            secret_version: 0,
            _dir: dir,
        }
    }

    /// A Secret edit on this core's sink and cache, as the watch reports it: (0) someone
    /// deletes the Secret of token `k{value % 2}`, (1) someone else's Secret replaces
    /// it, (else) the password Secret user u3 references is reset to password
    /// `value`.
    fn secret_edit(&mut self, what: u8, value: u8) {
        self.secret_version += 1;
        let rv = self.secret_version;
        if what >= 2 {
            let meta = secret_meta("u3-pw", rv, false);
            self.cache.put_secret(meta.clone());
            let secret = k8s_openapi::api::core::v1::Secret {
                metadata: meta,
                string_data: Some(
                    [(
                        "password".to_string(),
                        format!("correct horse battery staple {value}"),
                    )]
                    .into(),
                ),
                ..Default::default()
            };
            self.cache
                .put_password(("t".into(), "u3-pw".into()), Some(secret));
            return;
        }
        let name = names::token_secret_name(&format!("k{}", value % 2));
        let state = self.sink.state("t", &name).unwrap();
        if let SecretState::Ours { .. } = state {
            // What the controller's sink told the cache when it delivered the Secret.
            self.cache.put_own_secret(secret_meta(&name, 0, true));
        }
        match (what, state) {
            (0, SecretState::Absent) | (1, SecretState::Foreign) => {}
            (0, _) => {
                self.sink.remove("t", &name);
                self.cache.remove_secret("t", &name);
            }
            _ => {
                self.sink.plant_foreign("t", &name);
                self.cache.put_secret(secret_meta(&name, rv, false));
            }
        }
    }

    /// Brings the cache to `objects`, as the watch events would.
    fn sync(&mut self, objects: &BTreeMap<ObjectKey, Value>) {
        let gone: Vec<ObjectKey> = self
            .cache
            .objects()
            .map(|(k, _)| k)
            .filter(|k| !objects.contains_key(k))
            .collect();
        for k in gone {
            self.cache.remove_object(&k);
        }
        for (k, v) in objects {
            self.cache.put_object(k.clone(), v.clone());
        }
    }

    /// One round, as `reconcile::reconcile` runs its phases: scoped when the part and the
    /// scope allow, else whole. The statuses it would report and whether it was scoped.
    fn round(&mut self) -> (Applied, bool) {
        let ctx = ApplyContext {
            now: crate::snapshot::now(),
            server_key: &self.key,
            password_params: PasswordParams::insecure_fast_for_tests(),
            public_url: None,
        };
        let changes = self.cache.take_changes();
        if self.scoped {
            if let Some(mut part) = self.scoper.part(&self.cache, changes) {
                let memo = part.memo.take().expect("a part holds the memo");
                let done = run_scoped(&part.input(), memo, &mut self.store, &self.sink, &ctx, None)
                    .unwrap();
                if let Some(mut applied) = done {
                    self.scoper.keep(applied.memo.take());
                    self.scoped_rounds += 1;
                    return (applied, true);
                }
            }
        }
        let mut built = snapshot::build(&self.cache);
        self.scoper.validated(&built.snapshot);
        let snap = std::mem::take(&mut built.snapshot);
        let label = self
            .scoped
            .then_some(bucket as crate::sources::scoped::Label);
        let mut applied = run(snap, &mut self.store, &self.sink, &ctx, None, label).unwrap();
        self.scoper.keep(applied.memo.take());
        (applied, false)
    }
}

/// What the report phase would publish from `statuses`, without what differs between two
/// stores by chance (key ids and times, a request's decision time too).
fn published(statuses: &[ObjectStatus]) -> BTreeMap<ObjectKey, String> {
    statuses
        .iter()
        .map(|s| {
            let extra: BTreeMap<&String, &String> = s
                .extra
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "keyId" | "issuedAt" | "expiresAt" | "decidedAt")
                })
                .collect();
            // Key ids are random: the word after "key" is masked.
            let mut words: Vec<&str> = s.message.split(' ').collect();
            for i in 1..words.len() {
                if words[i - 1] == "key" {
                    words[i] = "ID";
                }
            }
            let text = format!(
                "{} {} {} {:?} {:?} {:?}",
                s.ready,
                s.reason,
                words.join(" "),
                s.phase,
                s.observed_generation,
                extra
            );
            (s.key.clone(), text)
        })
        .collect()
}

/// The store's rows, without what differs between two stores by chance.
fn rows(store: &AnyStore) -> String {
    let state = store.load_state().unwrap();
    let users: Vec<String> = state
        .users
        .values()
        .map(|u| {
            let owner = u.owner.as_ref().map(|o| &o.key);
            format!(
                "{} {:?} {:?} {owner:?}",
                u.username, u.display_name, u.state
            )
        })
        .collect();
    let mut bindings: Vec<String> = state
        .bindings
        .iter()
        .map(|b| {
            let owner = b.owner.as_ref().map(|o| &o.key);
            format!("{} {:?} {:?} {owner:?}", b.username, b.role, b.scope)
        })
        .collect();
    bindings.sort();
    let mut tokens: Vec<String> = state
        .token_keys
        .values()
        .map(|t| {
            let owner = t.owner.as_ref().map(|o| &o.key);
            format!(
                "{} {:?} {:?} {:?} {:?} {owner:?}",
                t.token_name,
                t.owner_user,
                t.role,
                t.revoked_at.is_some(),
                t.state
            )
        })
        .collect();
    tokens.sort();
    let models: Vec<String> = state.models.values().map(|m| format!("{m:?}")).collect();
    let requests: Vec<String> = state
        .requests
        .values()
        .map(|r| {
            format!(
                "{}/{} {} {:?} {} {} {} {:?} {}",
                r.namespace,
                r.name,
                r.model,
                r.scope,
                r.from,
                r.to,
                r.requested_by,
                r.phase,
                r.message
            )
        })
        .collect();
    format!("{users:#?}\n{bindings:#?}\n{tokens:#?}\n{models:#?}\n{requests:#?}")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// A controller whose rounds are scoped when they can be reaches, after every round of
    /// random edits (bindings patched, tokens revoked, users revoked, renamed or renamed
    /// for display, stage requests edited, objects added, deleted with their finalizer
    /// held, removed, a delivered Secret deleted or replaced by someone, a referenced
    /// password reset), the same
    /// store rows and the same statuses as one whose every round is whole; each scoped
    /// round reports exactly the statuses the whole round gives its objects.
    #[test]
    fn a_controller_with_scoped_rounds_reaches_what_whole_rounds_reach(
        edits in proptest::collection::vec((0u8..16, 0u8..32), 1..12)
    ) {
        let mut org = Org::start();
        let (mut scoped, mut whole) = (Core::new(true), Core::new(false));
        for core in [&mut scoped, &mut whole] {
            core.sync(&org.objects());
            core.secret_edit(2, 0);
            core.round();
            // The round after the first (its own Secret writes, finalizers) settles it.
            core.round();
        }
        for (what, value) in edits {
            if what < 13 {
                org.edit(what, value);
            }
            let objects = org.objects();
            scoped.sync(&objects);
            whole.sync(&objects);
            if what >= 13 {
                scoped.secret_edit(what - 13, value);
                whole.secret_edit(what - 13, value);
            }
            let (a, was_scoped) = scoped.round();
            let (b, _) = whole.round();
            proptest::prop_assert_eq!(a.changes, b.changes, "{:?}", org);
            let all = published(&b.statuses);
            let reported = published(&a.statuses);
            if was_scoped {
                // Only the scope's statuses, each as the whole round has it.
                for (k, s) in &reported {
                    proptest::prop_assert_eq!(Some(s), all.get(k), "{:?} {}", org, k);
                }
            } else {
                proptest::prop_assert_eq!(&reported, &all, "{:?}", org);
            }
            proptest::prop_assert_eq!(published(&scoped.store.statuses().unwrap()), all, "{:?}", org);
            proptest::prop_assert_eq!(rows(&scoped.store), rows(&whole.store), "{:?}", org);
        }
    }
}

/// The edits the benchmark times are scoped: a binding patched, a token revoked; so is a
/// user renamed; a watch restart (or anything the part cannot hold) is a whole round.
#[test]
fn a_binding_patch_and_a_token_revocation_are_scoped_rounds() {
    let mut org = Org::start();
    let mut core = Core::new(true);
    core.sync(&org.objects());
    assert!(!core.round().1, "the first round reads everything");
    assert!(!core.round().1, "nothing changed: a round with no part");
    org.edit(6, 4); // b0's role
    core.sync(&org.objects());
    let (applied, scoped) = core.round();
    assert!(scoped);
    assert_eq!(applied.changes, 1);
    assert!(
        applied.scoped.is_some_and(|n| n < 10),
        "{:?}",
        applied.scoped
    );
    org.edit(8, 0); // k0 revoked
    core.sync(&org.objects());
    let (applied, scoped) = core.round();
    assert!(scoped);
    assert_eq!(applied.changes, 1);
    // u1 renamed: its old row goes, the new one is created, its binding b1 (to the old
    // username) is withdrawn: one scoped round, as the property test checks.
    org.edit(3, 1);
    core.sync(&org.objects());
    let (applied, scoped) = core.round();
    assert!(scoped, "a rename");
    assert!(applied.changes >= 3, "{}", applied.changes);
    // A watch restart: the next round reads everything.
    let objects = core.cache.objects().map(|(k, c)| (k, c.clone())).collect();
    let feed = super::super::cache::Feed {
        kind: "User",
        namespace: None,
    };
    core.cache.replace_objects(&feed, Vec::new());
    core.cache.replace_objects(&feed, objects);
    org.edit(6, 8);
    core.sync(&org.objects());
    assert!(!core.round().1);
}

/// A password reset and a delivered Secret someone replaced or deleted are scoped rounds
/// of the User and the token that read them (the property test above checks that their
/// outcome is the whole round's).
#[test]
fn secret_changes_are_scoped_rounds_of_the_objects_that_read_them() {
    let org = Org::start();
    let mut core = Core::new(true);
    core.sync(&org.objects());
    core.secret_edit(2, 0);
    assert!(!core.round().1, "the first round reads everything");
    core.round();
    core.secret_edit(2, 1);
    let (applied, scoped) = core.round();
    assert!(scoped, "a password reset");
    assert_eq!(applied.changes, 1);
    let k0 = |applied: &Applied| {
        let s = applied.statuses.iter().find(|s| s.key.name == "k0");
        s.map(|s| s.reason.clone())
    };
    core.secret_edit(1, 0);
    let (applied, scoped) = core.round();
    assert!(scoped, "someone else's Secret replaces k0's");
    assert_eq!(k0(&applied).as_deref(), Some("SecretConflict"));
    core.secret_edit(0, 0);
    let (applied, scoped) = core.round();
    assert!(scoped, "someone deletes k0's Secret");
    assert_eq!(k0(&applied).as_deref(), Some("SecretMissing"));
    assert!(
        applied.scoped.is_some_and(|n| n < 10),
        "{:?}",
        applied.scoped
    );
}

/// A stage request added, edited after it was decided, deleted (finalizer held) and
/// removed: each a scoped round that reports the request's status and reaches what a
/// controller of whole rounds reaches.
#[test]
fn stage_requests_added_edited_and_deleted_are_scoped_rounds() {
    let mut org = Org::start();
    let (mut core, mut whole) = (Core::new(true), Core::new(false));
    for c in [&mut core, &mut whole] {
        c.sync(&org.objects());
        c.round();
        c.round();
    }
    // (edit, decided now?): r1 added (m0 Dev → Staging by u1); r1 given another
    // transition (its record stands: Immutable); r2 added (m1 of acme, by u2); r2 deleted
    // (its finalizer held), then removed.
    for (what, value, decides) in [
        (11, 1, true),
        (12, 1, false),
        (11, 2, true),
        (11, 2, false),
        (11, 2, false),
    ] {
        org.edit(what, value);
        core.sync(&org.objects());
        whole.sync(&org.objects());
        let (applied, scoped) = core.round();
        let (expected, _) = whole.round();
        assert!(scoped, "edit {what} {value}: {org:?}");
        assert_eq!(applied.changes, expected.changes, "edit {what} {value}");
        assert_eq!(applied.changes > 0, decides, "edit {what} {value}");
        let all = published(&expected.statuses);
        let reported = published(&applied.statuses);
        for (k, s) in &reported {
            assert_eq!(Some(s), all.get(k), "edit {what} {value}: {k}");
        }
        assert_eq!(rows(&core.store), rows(&whole.store), "edit {what} {value}");
    }
    let statuses = published(&core.store.statuses().unwrap());
    let r1 = ObjectKey::new("ModelStageRequest", "t", "r1");
    assert!(statuses[&r1].contains("Immutable"), "{}", statuses[&r1]);
    assert!(!statuses.contains_key(&ObjectKey::new("ModelStageRequest", "t", "r2")));
}
