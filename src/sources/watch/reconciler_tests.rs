use super::*;
use std::path::{Path, PathBuf};

const ORG: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata:
  name: ada
  namespace: t
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata:
  name: bot
  namespace: t
spec:
  role: Admin
  validity: VALIDITY
";

fn snapshot(validity: &str) -> Snapshot {
    let mut snap = crate::sources::files::load_text("org.yaml", &ORG.replace("VALIDITY", validity));
    crate::validate::validate(&mut snap);
    assert!(
        !snap.diagnostics.iter().any(|d| d.is_error()),
        "{:?}",
        snap.diagnostics
    );
    snap
}

/// The store of a test in `dir`: a SQLite file there, or a fresh PostgreSQL database.
fn location(dir: &Path, postgres: bool) -> PathBuf {
    if postgres {
        crate::store::pg::test_server::database().into()
    } else {
        dir.join("store.db")
    }
}

fn reconciler(dir: &Path, store: &Path, bootstrap: bool) -> StoreReconciler {
    let store = AnyStore::open(store).unwrap();
    let bootstrap = bootstrap.then(|| BootstrapConfig {
        username: "admin".into(),
        namespace: crate::bootstrap::DIR_MODE_NAMESPACE.into(),
    });
    StoreReconciler::new(
        store,
        dir.join("secrets"),
        ServerKey::generate(),
        PasswordParams::insecure_fast_for_tests(),
        bootstrap,
    )
}

/// Runs rounds with nothing to do until one leaves `rec` settled. On SQLite the first must:
/// its token is the file's. On PostgreSQL it is the server's, and the other tests' databases
/// on the shared test server move it too, so a round settles once nobody wrote during it
/// (with the old token, which never matched, none ever did).
fn settle(rec: &mut StoreReconciler, postgres: bool, snapshot: impl Fn() -> Snapshot) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let round = rec.reconcile(snapshot(), None).unwrap();
        assert!(round.changes.is_empty(), "{:?}", round.changes);
        if rec.settled(crate::snapshot::now()) {
            return;
        }
        assert!(postgres, "a SQLite round that wrote nothing settles");
        assert!(
            std::time::Instant::now() < deadline,
            "no round with nothing to do settled on PostgreSQL"
        );
    }
}

#[test]
fn settled_after_a_round_that_wrote_nothing_until_the_store_changes_or_a_key_expires() {
    for (bootstrap, postgres) in [(false, false), (true, false), (false, true), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        let store = location(dir.path(), postgres);
        let mut rec = reconciler(dir.path(), &store, bootstrap);
        let now = crate::snapshot::now();
        assert!(!rec.settled(now), "nothing reconciled yet");
        let first = rec.reconcile(snapshot("30d"), None).unwrap();
        assert!(!first.changes.is_empty());
        assert!(
            !rec.settled(now),
            "the first round wrote: the next plans again"
        );
        settle(&mut rec, postgres, || snapshot("30d"));
        let now = crate::snapshot::now();
        // The key expires in 30 days: from then on the same inputs plan differently.
        let day = jiff::SignedDuration::from_hours(24);
        assert!(rec.settled(now.checked_add(day * 29).unwrap()));
        assert!(!rec.settled(now.checked_add(day * 31).unwrap()));
        // Another process writes to the store: no longer settled.
        let mut other = AnyStore::open(&store).unwrap();
        crate::sources::health::record_failure(&mut other, "X", "test", None, now);
        assert!(!rec.settled(now));
        // The next round reads the store again (and clears the failure it recorded: a
        // write); the one after it writes nothing and settles.
        let again = rec.reconcile(snapshot("30d"), None).unwrap();
        assert!(again.changes.is_empty());
        settle(&mut rec, postgres, || snapshot("30d"));
        let now = crate::snapshot::now();
        // A login elsewhere writes a session, which bumps no revision: not settled either.
        other
            .create_session(&crate::store::SessionRow {
                id_hash: crate::secrets::HashValue::new("a-session".into()),
                username: "ada".into(),
                grants: Vec::new(),
                created_at: now,
                expires_at: now + jiff::SignedDuration::from_hours(1),
            })
            .unwrap();
        assert!(!rec.settled(now), "{}", store.display());
    }
}

#[test]
fn a_key_that_never_expires_leaves_it_settled_and_a_change_unsettles_it() {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = reconciler(dir.path(), &location(dir.path(), postgres), true);
        rec.reconcile(snapshot("Never"), None).unwrap();
        settle(&mut rec, postgres, || snapshot("Never"));
        let far = crate::snapshot::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * 3650))
            .unwrap();
        assert!(rec.settled(far));
        // A declared change is applied (a write): the round after it plans again.
        let changed = rec.reconcile(snapshot("30d"), None).unwrap();
        assert!(!changed.changes.is_empty());
        assert!(!rec.settled(crate::snapshot::now()));
    }
}

#[test]
fn an_unaccepted_invitation_unsettles_it_when_it_expires() {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = reconciler(dir.path(), &location(dir.path(), postgres), false);
        let invited = ORG
            .replace("spec: {}", "spec:\n  invitation:\n    validity: 2d")
            .replace("VALIDITY", "Never");
        let snap = || {
            let mut snap = crate::sources::files::load_text("org.yaml", &invited);
            crate::validate::validate(&mut snap);
            assert!(
                !snap.diagnostics.iter().any(|d| d.is_error()),
                "{:?}",
                snap.diagnostics
            );
            snap
        };
        rec.reconcile(snap(), None).unwrap();
        settle(&mut rec, postgres, snap);
        let now = crate::snapshot::now();
        let day = jiff::SignedDuration::from_hours(24);
        assert!(rec.settled(now.checked_add(day).unwrap()));
        // At the invitation's expiry the same inputs plan InvitationExpired: plan again.
        assert!(!rec.settled(now.checked_add(day * 3).unwrap()));
    }
}

/// A small organization the equivalence tests edit one field at a time: four users
/// (declared? revoked?), four bindings (declared? which user, which role, global or a
/// customer's) and one token (revoked?).
#[derive(Clone, Debug)]
struct Org {
    users: [(bool, bool); 4],
    bindings: [(bool, usize, usize, bool); 4],
    token_revoked: bool,
}

const ROLES: [&str; 3] = ["Admin", "Manager", "Analyst"];

impl Org {
    fn start() -> Org {
        Org {
            users: [(true, false); 4],
            bindings: [
                (true, 0, 0, true),
                (true, 1, 1, false),
                (true, 2, 2, true),
                (false, 3, 2, false),
            ],
            token_revoked: false,
        }
    }

    /// One small edit: `what` picks the field, `value` the object and its new value.
    fn edit(&mut self, what: u8, value: u8) {
        let v = value as usize;
        match what % 7 {
            0 => self.users[v % 4].0 ^= true,
            1 => self.users[v % 4].1 ^= true,
            2 => self.bindings[v % 4].0 ^= true,
            3 => self.bindings[v % 4].1 = (v / 4) % 4,
            4 => self.bindings[v % 4].2 = (v / 4) % ROLES.len(),
            5 => self.bindings[v % 4].3 ^= true,
            _ => self.token_revoked ^= true,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut docs = Vec::new();
        for (i, (declared, revoked)) in self.users.iter().enumerate() {
            if *declared {
                let state = if *revoked { "Revoked" } else { "Active" };
                docs.push(format!(
                    "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: u{i}\n  namespace: t\nspec:\n  state: {state}\n"
                ));
            }
        }
        for (i, (declared, user, role, global)) in self.bindings.iter().enumerate() {
            if *declared {
                let scope = if *global {
                    ""
                } else {
                    "  scope:\n    customer: acme\n"
                };
                docs.push(format!(
                    "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata:\n  name: b{i}\n  namespace: t\nspec:\n  user: u{user}\n  role: {}\n{scope}",
                    ROLES[*role]
                ));
            }
        }
        docs.push(format!(
            "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata:\n  name: bot\n  namespace: t\nspec:\n  role: Analyst\n  validity: 30d\n  revoked: {}\n",
            self.token_revoked
        ));
        let mut snap = crate::sources::files::load_text("org.yaml", &docs.join("---\n"));
        crate::validate::validate(&mut snap);
        snap
    }
}

/// Everything of a state the bootstrap step reads, and more: the rows of every user with a
/// global Admin binding, the bootstrap administrator's row and its legacy status row.
fn bootstrap_inputs(state: &StoreState, cfg: &BootstrapConfig) -> String {
    use crate::policy::Role;
    let admins: std::collections::BTreeSet<&str> = state
        .bindings
        .iter()
        .filter(|b| b.role == Role::Admin && b.scope.is_global())
        .map(|b| b.username.as_str())
        .collect();
    let users: Vec<_> = state
        .users
        .values()
        .filter(|u| admins.contains(u.username.as_str()) || u.username == cfg.username)
        .collect();
    let legacy = crate::snapshot::ObjectKey::new("User", &cfg.namespace, &cfg.username);
    format!("{users:?}\n{:?}", state.statuses.get(&legacy))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// The full path reads the store again after every apply before the bootstrap step;
    /// the daemon skips that read when `unaffected_by` says the apply touched nothing the
    /// step reads. For random runs of small edits, whenever it skips, the state before
    /// the apply and the state after it give the bootstrap step the same inputs.
    #[test]
    fn the_bootstrap_step_reads_the_same_from_the_state_before_an_apply_it_skips_reading_after(
        edits in proptest::collection::vec((0u8..7, 0u8..16), 1..8)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store: AnyStore = crate::store::SqliteStore::open(&dir.path().join("store.db")).unwrap().into();
        let secrets = dir.path().join("secrets");
        let sink = DirSecretSink::new(&secrets);
        let key = ServerKey::generate();
        let params = PasswordParams::insecure_fast_for_tests();
        let cfg = BootstrapConfig {
            username: "admin".into(),
            namespace: crate::bootstrap::DIR_MODE_NAMESPACE.into(),
        };
        let mut org = Org::start();
        for (round, (what, value)) in std::iter::once((u8::MAX, 0)).chain(edits).enumerate() {
            if round > 0 {
                org.edit(what, value);
            }
            let now = crate::snapshot::now();
            let before = store.load_state().unwrap();
            let (plan, _) = crate::sources::directory::reconcile_with(
                &org.snapshot(), &mut store, &secrets, &key, params, now,
            ).unwrap();
            let after = store.load_state().unwrap();
            if unaffected_by(&plan.changes, &before) {
                proptest::prop_assert_eq!(
                    bootstrap_inputs(&before, &cfg),
                    bootstrap_inputs(&after, &cfg),
                    "round {} {:?}: {:?}", round, org, plan.changes.iter().map(|c| c.op.name()).collect::<Vec<_>>()
                );
            }
            ensure_bootstrap_admin_in(&mut store, &after, &sink, &cfg, params, now).unwrap();
        }
    }
}

#[test]
fn an_edit_the_bootstrap_step_does_not_read_costs_one_state_read_and_an_admin_change_two() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = reconciler(dir.path(), &location(dir.path(), false), true);
    let mut org = Org::start();
    rec.reconcile(org.snapshot(), None).unwrap();
    // A Manager binding becomes an Analyst one, the token is revoked: one read, before the
    // plan. The global Admin binding moves to another user, a user is revoked: read again.
    for (what, value, reads) in [(4, 1 + 4 * 2, 1), (6, 0, 1), (3, 4, 2), (1, 1, 2)] {
        let before = rec.state_reads();
        org.edit(what, value);
        let round = rec.reconcile(org.snapshot(), None).unwrap();
        assert!(!round.changes.is_empty());
        assert_eq!(rec.state_reads() - before, reads, "edit {what} {value}");
    }
}

/// An organization for the scoped rounds: four users (declared? revoked? display name),
/// four bindings (declared? user, role, global?) and two tokens (declared? revoked?
/// owner), one object per file, or (`layout` 1) one file per kind, or (2) all in one file;
/// grouped, the optional lines (a revoked state, a customer scope) move the declarations
/// after them; and per kind (`pads`) comment lines before its first declaration and
/// blank lines after it (before and after each, one per file), which move the
/// declarations below them and change nothing else; and four stage requests (declared?
/// model (m0 global, m1 of customer acme), transition, requester, requested-at (none, or
/// one of two instants)), the requests of one model in several files (one object per
/// file) or in one.
#[derive(Clone, Debug)]
struct Files {
    users: [(bool, bool, u8); 4],
    bindings: [(bool, usize, usize, bool); 4],
    tokens: [(bool, bool, usize); 2],
    requests: [(bool, usize, usize, usize, usize); 4],
    layout: u8,
    pads: [(usize, usize); 3],
}

/// A stage request's transitions: (from, to).
const TRANSITIONS: [(&str, &str); 3] = [
    ("None", "Dev"),
    ("Dev", "Staging"),
    ("Staging", "Production"),
];

impl Files {
    fn start() -> Files {
        Files {
            users: [(true, false, 0); 4],
            bindings: [
                (true, 0, 0, true),
                (true, 1, 1, false),
                (true, 2, 2, true),
                (false, 3, 2, false),
            ],
            tokens: [(true, false, 0), (false, false, 1)],
            requests: [
                (true, 0, 0, 0, 0),
                (false, 0, 1, 1, 1),
                (false, 1, 0, 2, 1),
                (false, 1, 1, 0, 0),
            ],
            layout: 0,
            pads: [(0, 0); 3],
        }
    }

    /// One file per kind (`layout` 1) or one file (2), every object declared.
    fn grouped(layout: u8) -> Files {
        let mut org = Files::start();
        org.layout = layout;
        org.bindings[3].0 = true;
        org.tokens[1].0 = true;
        org.requests[2].0 = true;
        org
    }

    fn edit(&mut self, what: u8, value: u8) {
        let v = value as usize;
        match what % 14 {
            0 => self.users[v % 4].0 ^= true,
            1 => self.users[v % 4].1 ^= true,
            2 | 3 => self.users[v % 4].2 = value,
            4 => self.bindings[v % 4].0 ^= true,
            5 => self.bindings[v % 4].1 = (v / 4) % 4,
            6 => self.bindings[v % 4].2 = (v / 4) % ROLES.len(),
            7 => self.bindings[v % 4].3 ^= true,
            8 => self.tokens[v % 2].1 ^= true,
            9 => match v % 3 {
                0 => self.tokens[v % 2].0 ^= true,
                _ => self.tokens[v % 2].2 = (v / 2) % 4,
            },
            10 => self.pads[v % 3].0 = (v / 3) % 3,
            11 => self.pads[v % 3].1 = (v / 3) % 3,
            // A request added or removed.
            12 => self.requests[v % 4].0 ^= true,
            // A request edited: after it was decided, its spec is immutable (the record
            // stands), and its requested-at is no spec.
            _ => {
                let r = &mut self.requests[v % 4];
                match v / 4 {
                    0 => r.2 = (r.2 + 1) % TRANSITIONS.len(),
                    1 => r.3 = (r.3 + 1) % 4,
                    2 => r.4 = (r.4 + 1) % 3,
                    _ => r.1 ^= 1,
                }
            }
        }
    }

    /// Each declaration's file and text.
    fn files(&self) -> std::collections::BTreeMap<String, String> {
        let mut out: std::collections::BTreeMap<String, (String, usize)> = Default::default();
        let header = "apiVersion: stagegate.dev/v1alpha1\nkind:";
        // Grouped, a default is left out (as people write it): a revoked state or a
        // customer scope is a line more.
        let grouped = self.layout > 0;
        let mut add = |kind: usize, i: usize, declared: bool, text: String| {
            let (file, first) = match self.layout {
                0 => (format!("{}{i}", ["u", "b", "k", "r"][kind]), true),
                1 => (
                    ["users", "bindings", "tokens", "requests"][kind].to_string(),
                    i == 0,
                ),
                _ => ("org".to_string(), i == 0),
            };
            let (top, blank) = self.pads.get(kind).copied().unwrap_or_default();
            let (entry, docs) = out.entry(format!("{file}.yaml")).or_default();
            if declared && *docs > 0 {
                entry.push_str("---\n");
            }
            if first {
                entry.push_str(&"# a comment\n".repeat(top));
            }
            if declared {
                *docs += 1;
                entry.push_str(&text);
                if first {
                    entry.push_str(&"\n".repeat(blank));
                }
            }
        };
        for (i, (declared, revoked, name)) in self.users.iter().enumerate() {
            let state = match (*revoked, grouped) {
                (true, _) => "  state: Revoked\n",
                (false, false) => "  state: Active\n",
                (false, true) => "",
            };
            let text = format!("{header} User\nmetadata:\n  name: u{i}\n  namespace: t\nspec:\n  displayName: Name {name}\n{state}");
            add(0, i, *declared, text);
        }
        for (i, (declared, user, role, global)) in self.bindings.iter().enumerate() {
            let scope = if *global {
                ""
            } else {
                "  scope:\n    customer: acme\n"
            };
            let text = format!(
                "{header} AccessBinding\nmetadata:\n  name: b{i}\n  namespace: t\nspec:\n  user: u{user}\n  role: {}\n{scope}",
                ROLES[*role]
            );
            add(1, i, *declared, text);
        }
        for (i, (declared, revoked, owner)) in self.tokens.iter().enumerate() {
            let revoked = match (*revoked, grouped) {
                (true, _) => "  revoked: true\n",
                (false, false) => "  revoked: false\n",
                (false, true) => "",
            };
            let text = format!("{header} ApiToken\nmetadata:\n  name: k{i}\n  namespace: t\nspec:\n  role: Analyst\n  owner: u{owner}\n  validity: 30d\n{revoked}");
            add(2, i, *declared, text);
        }
        for (i, (declared, model, step, by, at)) in self.requests.iter().enumerate() {
            let (from, to) = TRANSITIONS[*step];
            let scope = ["", "  scope:\n    customer: acme\n"][*model];
            let at = match at {
                0 => String::new(),
                n => format!(
                    "  annotations:\n    stagegate.dev/requested-at: \"2026-01-0{n}T00:00:00Z\"\n"
                ),
            };
            let text = format!("{header} ModelStageRequest\nmetadata:\n  name: r{i}\n  namespace: t\n{at}spec:\n  model: m{model}\n{scope}  from: {from}\n  to: {to}\n  requestedBy: u{by}\n");
            add(3, i, *declared, text);
        }
        out.into_iter().map(|(f, (text, _))| (f, text)).collect()
    }

    fn snapshot(files: &std::collections::BTreeMap<String, String>) -> Snapshot {
        let mut snap = Snapshot::default();
        for (file, text) in files {
            let one = crate::sources::files::load_text(file, text);
            snap.users.extend(one.users);
            snap.bindings.extend(one.bindings);
            snap.tokens.extend(one.tokens);
            snap.requests.extend(one.requests);
            snap.diagnostics.extend(one.diagnostics);
        }
        crate::validate::validate(&mut snap);
        snap
    }
}

/// What the daemon's refresh tells of an edit from `before` to `after` (files by name):
/// the changed files and their declarations edited, removed and the usernames they name.
fn edits_between(
    before: &std::collections::BTreeMap<String, String>,
    after: &std::collections::BTreeMap<String, String>,
) -> (BTreeSet<String>, crate::sources::watch::Edits) {
    let mut edits = crate::sources::watch::Edits::default();
    let mut changed = BTreeSet::new();
    for (file, text) in after {
        let old = before.get(file);
        if old == Some(text) {
            continue;
        }
        changed.insert(file.clone());
        let old = old.map(|t| crate::sources::files::load_text(file, t));
        assert!(edits.add(old.as_ref(), &crate::sources::files::load_text(file, text)));
    }
    (changed, edits)
}

/// The part of `whole` the daemon validates for `edits` when each file holds one object:
/// the changed files (their stage requests too), and every User, binding and owned token
/// of a username they name.
fn part_of(
    whole: &Snapshot,
    changed: &BTreeSet<String>,
    edits: &crate::sources::watch::Edits,
) -> Snapshot {
    let names = &edits.usernames;
    let mine = |s: &crate::snapshot::Source| s.file.as_ref().is_some_and(|f| changed.contains(f));
    Snapshot {
        users: whole
            .users
            .iter()
            .filter(|d| mine(&d.source) || names.contains(&d.object.username()))
            .cloned()
            .collect(),
        bindings: whole
            .bindings
            .iter()
            .filter(|d| mine(&d.source) || names.contains(&d.object.spec.user))
            .cloned()
            .collect(),
        tokens: whole
            .tokens
            .iter()
            .filter(|d| {
                mine(&d.source)
                    || d.object
                        .spec
                        .owner
                        .as_ref()
                        .is_some_and(|o| names.contains(o))
            })
            .cloned()
            .collect(),
        requests: whole
            .requests
            .iter()
            .filter(|d| mine(&d.source))
            .cloned()
            .collect(),
        diagnostics: whole.diagnostics.clone(),
        ..Snapshot::default()
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// A scoped round plans only the changed files' declarations and what they touch, from
    /// a partial read. For random runs of small edits (one object per file or one file per
    /// kind: users added, removed, revoked, renamed for display; bindings added, removed,
    /// moved, re-roled, re-scoped; tokens added, removed, revoked, given another owner;
    /// stage requests added, removed and edited, of a model whose other requests are in
    /// other files or in the same;
    /// comments and blank lines inserted or removed, and in one file per kind every edit
    /// that adds or removes lines, which move the declarations after them), whenever the daemon
    /// would scope a round — from every declaration, or from the part it validates for the
    /// change — the scoped plan has exactly the full plan's changes, in order, and the full
    /// plan's statuses of the scoped objects; after each round (scoped from the part when
    /// the reconciler can, else a round of every declaration, as the daemon runs them) a
    /// full plan of the store it left finds nothing to do and gives every object the
    /// outcome the round reported.
    #[test]
    fn a_scoped_round_plans_and_leaves_the_store_as_the_full_round_would(
        layout in 0u8..3,
        edits in proptest::collection::vec((0u8..14, 0u8..16), 1..12)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = reconciler(dir.path(), &dir.path().join("store.db"), true);
        let sink = DirSecretSink::new(dir.path().join("secrets"));
        let mut org = if layout > 0 { Files::grouped(layout) } else { Files::start() };
        let mut files = org.files();
        rec.reconcile(Files::snapshot(&files), None).unwrap();
        for (what, value) in edits {
            org.edit(what, value);
            let next = org.files();
            let (changed, edits) = edits_between(&files, &next);
            files = next;
            let snap = Files::snapshot(&files);
            let part = part_of(&snap, &changed, &edits);
            let now = crate::snapshot::now();
            let plan = |rec: &StoreReconciler, s: &Snapshot, state: &StoreState| {
                crate::sources::directory::plan_against(s, state, &sink, &rec.server_key, rec.password_params.policy, now).unwrap()
            };
            let full = plan(&rec, &snap, &rec.store.load_state().unwrap());
            let memo = rec.memo.as_ref().filter(|m| rec.store.state_token().unwrap() == m.token);
            for (from, p) in [(&snap, None), (&part, Some(Part::of(&edits)))] {
                let Some((scope, partial)) = memo.and_then(|m| m.scope(from, &changed, p, &rec.store).unwrap()) else {
                    continue;
                };
                let scoped = plan(&rec, &scope.snapshot, &partial);
                proptest::prop_assert_eq!(
                    serde_json::to_string(&scoped.changes).unwrap(),
                    serde_json::to_string(&full.changes).unwrap(),
                    "{:?} {:?} part: {}", org, changed, p.is_some()
                );
                let planned = |k: &crate::snapshot::ObjectKey| scope.keys.objects.contains(k) || scope.keys.statuses.contains(k);
                let expected: Vec<_> = full.objects.iter().filter(|s| planned(&s.key)).collect();
                proptest::prop_assert_eq!(scoped.objects.iter().collect::<Vec<_>>(), expected);
            }
            rec.changed_files(Some(changed.clone()));
            let round = match rec.reconcile_part(part, &edits, None) {
                Some(r) => r.unwrap(),
                None => rec.reconcile(snap.clone(), None).unwrap(),
            };
            // Every data change of the full plan was made, in the same order.
            let made: Vec<_> = round.changes.iter().map(|c| (c.object.clone(), c.action.clone())).collect();
            let planned: Vec<_> = full.data_changes().map(|c| (c.object.clone(), c.op.name().to_string())).collect();
            proptest::prop_assert_eq!(made, planned, "{:?}", org);
            let again = plan(&rec, &snap, &rec.store.load_state().unwrap());
            proptest::prop_assert!(again.changes.is_empty(), "{:?}: {:?}", org, again.changes);
            let outcomes: Vec<_> = again.objects.iter().map(crate::apply::Outcome::from).collect();
            proptest::prop_assert_eq!(&outcomes, round.objects.as_ref());
        }
    }
}

#[test]
fn a_binding_edit_a_display_name_and_a_token_revocation_are_scoped_a_removal_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = reconciler(dir.path(), &dir.path().join("store.db"), true);
    let mut org = Files::start();
    let mut files = org.files();
    rec.reconcile(Files::snapshot(&files), None).unwrap();
    // (edit, scoped?): a Manager becomes an Analyst; a display name; a token revoked; a
    // binding moved to another user; a token added; a binding removed (not scoped from
    // every declaration: the memo does not know the removed key); a user revoked (its
    // bindings and owned tokens are in the scope).
    for (what, value, scoped) in [
        (6, 1 + 4 * 2, true),
        (2, 5, true),
        (8, 0, true),
        (5, 1 + 4 * 3, true),
        (9, 3, true),
        (4, 1, false),
        (1, 3, true),
    ] {
        org.edit(what, value);
        let next = org.files();
        let changed = next
            .iter()
            .filter(|(f, t)| files.get(*f) != Some(*t))
            .map(|(f, _)| f.clone())
            .collect();
        files = next;
        let (before, reads) = (rec.scoped_rounds(), rec.state_reads());
        rec.changed_files(Some(changed));
        let round = rec.reconcile(Files::snapshot(&files), None).unwrap();
        assert!(!round.changes.is_empty(), "edit {what} {value}");
        assert_eq!(
            rec.scoped_rounds() - before == 1,
            scoped,
            "edit {what} {value}"
        );
        // A display name or a user's state is a user change: the bootstrap step reads again.
        if scoped && what != 2 && what != 1 {
            assert_eq!(
                rec.state_reads(),
                reads,
                "edit {what} {value}: no full read"
            );
        }
    }
}

/// Makes one edit to `org` (whose files were `files`) and runs the round the daemon
/// would from the part it validates, which must be scoped; the whole snapshot after the
/// edit and the round.
fn part_round(
    rec: &mut StoreReconciler,
    org: &mut Files,
    files: &mut std::collections::BTreeMap<String, String>,
    what: u8,
    value: u8,
) -> (Snapshot, Reconciled) {
    org.edit(what, value);
    let next = org.files();
    let (changed, edits) = edits_between(files, &next);
    *files = next;
    let snap = Files::snapshot(files);
    let before = rec.scoped_rounds();
    rec.changed_files(Some(changed.clone()));
    let round = rec
        .reconcile_part(part_of(&snap, &changed, &edits), &edits, None)
        .unwrap_or_else(|| panic!("edit {what} {value} is scoped"))
        .unwrap();
    assert_eq!(rec.scoped_rounds() - before, 1);
    (snap, round)
}

#[test]
fn removals_a_new_user_and_a_revoked_user_are_scoped_from_the_part_the_daemon_validates() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = reconciler(dir.path(), &dir.path().join("store.db"), true);
    let mut org = Files::start();
    let mut files = org.files();
    rec.reconcile(Files::snapshot(&files), None).unwrap();
    // A token revoked; a token added (k1, owned by u1); a binding removed; a user revoked
    // (u1: its token k1 is revoked with it); a token removed; a user removed (its binding
    // b2 is kept, UnknownUser); the same user declared again (a new User).
    for (what, value, change) in [
        (8, 0, "revokeToken"),
        (9, 3, "issueToken"),
        (4, 1, "unbind"),
        (1, 1, "updateUser"),
        (9, 0, "deleteToken"),
        (0, 2, "deleteUser"),
        (0, 2, "createUser"),
    ] {
        let (snap, round) = part_round(&mut rec, &mut org, &mut files, what, value);
        assert!(
            round.changes.iter().any(|c| c.action == change),
            "edit {what} {value}: {:?}",
            round.changes
        );
        if what == 1 {
            assert!(round.changes.iter().any(|c| c.action == "revokeToken"));
        }
        let again = rec.reconcile(snap, None).unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes);
    }
}

#[test]
fn a_declaration_moved_by_an_edit_above_it_is_planned_for_its_status_alone() {
    let key = |kind: &str, name: &str| crate::snapshot::ObjectKey::new(kind, "t", name);
    let (u, b, k) = (
        |i: usize| key("User", &format!("u{i}")),
        |i: usize| key("AccessBinding", &format!("b{i}")),
        |i: usize| key("ApiToken", &format!("k{i}")),
    );
    // (layout, edit, what it is, the declarations planned for their status alone, a data
    // change the round makes)
    let cases = [
        (
            1,
            8,
            0,
            "k0 revoked: a line more above k1",
            vec![k(1)],
            "revokeToken",
        ),
        (
            1,
            7,
            0,
            "b0 given a customer scope: two lines more",
            vec![b(1), b(2), b(3)],
            "updateBinding",
        ),
        (
            1,
            1,
            0,
            "u0 revoked: a line more",
            vec![u(1), u(2), u(3)],
            "updateUser",
        ),
        (
            1,
            0,
            1,
            "u1 removed above u2 and u3",
            vec![u(2), u(3)],
            "deleteUser",
        ),
        (
            1,
            10,
            5,
            "a comment at the top of the tokens' file",
            vec![k(0), k(1)],
            "",
        ),
        (
            1,
            11,
            4,
            "a blank line after the first binding",
            vec![b(1), b(2), b(3)],
            "",
        ),
        (1, 9, 0, "k0 removed above k1", vec![k(1)], "deleteToken"),
        // One file: u0's binding b0 and token k0 move too, but the scope plans them in
        // full (k0 is revoked with its owner); every other declaration after u0 moved.
        (
            2,
            1,
            0,
            "u0 revoked, its binding and token below it",
            vec![u(1), u(2), u(3), b(1), b(2), b(3), k(1)],
            "revokeToken",
        ),
        (
            2,
            10,
            4,
            "a comment above the first binding",
            vec![b(0), b(1), b(2), b(3), k(0), k(1)],
            "",
        ),
    ];
    let mut at = None;
    for (layout, what, value, case, moved, change) in cases {
        if at.as_ref().is_none_or(|(l, _, _, _)| *l != layout) {
            let dir = tempfile::tempdir().unwrap();
            let mut rec = reconciler(dir.path(), &dir.path().join("store.db"), true);
            let org = Files::grouped(layout);
            let files = org.files();
            rec.reconcile(Files::snapshot(&files), None).unwrap();
            at = Some((layout, (dir, rec), org, files));
        }
        let (_, (dir, rec), org, files) = at.as_mut().unwrap();
        org.edit(what, value);
        let next = org.files();
        let (changed, edits) = edits_between(files, &next);
        *files = next;
        let snap = Files::snapshot(files);
        let part = part_of(&snap, &changed, &edits);
        let memo = rec.memo.as_ref().expect("the last round left a memo");
        let (scope, _) = memo
            .scope(&part, &changed, Some(Part::of(&edits)), &rec.store)
            .unwrap()
            .unwrap_or_else(|| panic!("{case}: scoped"));
        let moved: BTreeSet<_> = moved.into_iter().collect();
        assert_eq!(scope.keys.statuses, moved, "{case}");
        assert!(scope.keys.objects.is_disjoint(&moved), "{case}");
        let before = rec.scoped_rounds();
        rec.changed_files(Some(changed.clone()));
        let round = rec
            .reconcile_part(part, &edits, None)
            .unwrap_or_else(|| panic!("{case}: scoped"))
            .unwrap();
        assert_eq!(rec.scoped_rounds() - before, 1, "{case}");
        let made: Vec<_> = round.changes.iter().map(|c| c.action.as_str()).collect();
        assert!(
            made.contains(&change) || change.is_empty() && made.is_empty(),
            "{case}: {made:?}"
        );
        // The store holds what a round of every declaration would: the moved declarations'
        // statuses name their new lines, and a full plan finds nothing to do.
        let state = rec.store.load_state().unwrap();
        let now = crate::snapshot::now();
        let sink = DirSecretSink::new(dir.path().join("secrets"));
        let full = crate::sources::directory::plan_against(
            &snap,
            &state,
            &sink,
            &rec.server_key,
            rec.password_params.policy,
            now,
        )
        .unwrap();
        assert!(full.changes.is_empty(), "{case}: {:?}", full.changes);
        let outcomes: Vec<_> = full
            .objects
            .iter()
            .map(crate::apply::Outcome::from)
            .collect();
        assert_eq!(&outcomes, round.objects.as_ref(), "{case}");
        for key in &moved {
            let d = snap
                .users
                .iter()
                .map(|d| (d.key(), d.source.to_string()))
                .chain(
                    snap.bindings
                        .iter()
                        .map(|d| (d.key(), d.source.to_string())),
                )
                .chain(snap.tokens.iter().map(|d| (d.key(), d.source.to_string())))
                .find(|(k, _)| k == key)
                .unwrap();
            assert_eq!(state.statuses[key].source, d.1, "{case}: {key}");
        }
    }
}

#[test]
fn stage_requests_added_edited_and_removed_are_scoped_from_the_part_the_daemon_validates() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = reconciler(dir.path(), &dir.path().join("store.db"), true);
    let mut org = Files::start();
    let mut files = org.files();
    rec.reconcile(Files::snapshot(&files), None).unwrap();
    // r1 added (m0, whose first deploy r0 is in another file); r0's spec edited after it
    // was decided (the record stands: Immutable); r2 added (m1 of customer acme, by u2);
    // r3 added (m1 again, by u0, in another file than r2); r0 removed (its status goes,
    // its record stays).
    for (what, value, decided) in [
        (12, 1, true),
        (13, 0, false),
        (12, 2, true),
        (12, 3, true),
        (12, 0, false),
    ] {
        let (snap, round) = part_round(&mut rec, &mut org, &mut files, what, value);
        assert_eq!(
            round.changes.iter().any(|c| c.action == "decideRequest"),
            decided,
            "edit {what} {value}: {:?}",
            round.changes
        );
        let again = rec.reconcile(snap, None).unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        assert_eq!(again.objects, round.objects, "edit {what} {value}");
    }
    let state = rec.store.load_state().unwrap();
    assert_eq!(state.requests.len(), 4, "{:?}", state.requests.keys());
    let r0 = crate::snapshot::ObjectKey::new("ModelStageRequest", "t", "r0");
    assert!(!state.statuses.contains_key(&r0));
}
