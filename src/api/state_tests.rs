//! The index patched from the journaled commits' rows equals the index built from the whole
//! store, whatever sequence of writes led there.

use super::*;
use crate::api::index::Index;
use crate::plan::Question;
use crate::policy::{Action, Role, Scope, Stage};
use crate::secrets::{PasswordParams, ServerKey};
use crate::snapshot::ObjectKey;
use crate::store::{
    BindingRow, KeyState, ModelRow, ObjectStatus, Owner, StoreOp, TokenKeyRow, UserRow,
};
use proptest::prelude::*;
use std::sync::atomic::AtomicUsize;

const PEOPLE: [&str; 4] = ["alan", "maria", "grace", "ken"];
const PARTS: [&str; 2] = ["acme", "globex"];
const MODELS: [&str; 3] = ["fraud", "churn", "x"];

/// One write the daemon (journaled) or another writer (not journaled) commits.
#[derive(Clone, Debug)]
enum Write {
    User(usize, bool, Option<u8>, bool),
    DeleteUser(usize),
    Binding(usize, usize, usize, Scope),
    Unbind(usize),
    Token(usize, usize, Option<usize>, u8),
    DeleteToken(usize),
    Model(usize, Scope, Option<usize>, Stage),
    Status(usize, bool, bool),
    DeleteStatus(usize),
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::global()),
        (0..PARTS.len()).prop_map(|c| Scope::customer(PARTS[c])),
        (0..PARTS.len(), 0..PARTS.len()).prop_map(|(c, p)| Scope::project(PARTS[c], PARTS[p])),
    ]
}

fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        Just(Stage::Dev),
        Just(Stage::Staging),
        Just(Stage::Production)
    ]
}

fn write() -> impl Strategy<Value = Write> {
    let who = 0..PEOPLE.len();
    prop_oneof![
        (
            who.clone(),
            any::<bool>(),
            proptest::option::of(0u8..3),
            any::<bool>()
        )
            .prop_map(|(u, active, hash, chosen)| Write::User(u, active, hash, chosen)),
        who.clone().prop_map(Write::DeleteUser),
        (0..5usize, who.clone(), 0..Role::ALL.len(), scope())
            .prop_map(|(b, u, r, s)| Write::Binding(b, u, r, s)),
        (0..5usize).prop_map(Write::Unbind),
        (
            0..4usize,
            0..Role::ALL.len(),
            proptest::option::of(who.clone()),
            0u8..6
        )
            .prop_map(|(k, r, o, state)| Write::Token(k, r, o, state)),
        (0..4usize).prop_map(Write::DeleteToken),
        (
            0..MODELS.len(),
            scope(),
            proptest::option::of(who.clone()),
            stage()
        )
            .prop_map(|(m, s, o, st)| Write::Model(m, s, o, st)),
        (0..4usize, any::<bool>(), any::<bool>()).prop_map(|(k, f, r)| Write::Status(k, f, r)),
        (0..4usize).prop_map(Write::DeleteStatus),
    ]
}

fn owner(kind: &str, name: String) -> Option<Owner> {
    Some(Owner {
        key: ObjectKey::new(kind, "ns", &name),
        source: "test.yaml:1".into(),
    })
}

fn at(hours: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(hours)
}

/// The store operation of one write.
fn op(w: &Write) -> StoreOp {
    match w.clone() {
        Write::User(u, active, hash, chosen) => {
            let mut row = UserRow::new(PEOPLE[u], owner("User", PEOPLE[u].into()));
            row.state = if active {
                crate::resources::UserState::Active
            } else {
                crate::resources::UserState::Revoked
            };
            row.password_hash = hash.map(|h| HashValue::new(format!("$argon2id$h{h}")));
            row.password_chosen_at = chosen.then(|| at(1));
            StoreOp::UpsertUser(Box::new(row))
        }
        Write::DeleteUser(u) => StoreOp::DeleteUser(PEOPLE[u].into()),
        Write::Binding(b, u, role, scope) => StoreOp::UpsertBinding(BindingRow {
            username: PEOPLE[u].into(),
            role: Role::ALL[role],
            scope,
            owner: owner("AccessBinding", format!("b{b}")),
        }),
        Write::Unbind(b) => {
            StoreOp::DeleteBinding(ObjectKey::new("AccessBinding", "ns", &format!("b{b}")))
        }
        // One key per token name: `Index::principal` takes any usable key of a name.
        Write::Token(k, role, owner_user, state) => {
            StoreOp::UpsertTokenKey(Box::new(TokenKeyRow {
                key_id: format!("k{k}"),
                token_name: format!("t{k}"),
                namespace: "ns".into(),
                secret_hmac: HashValue::new(format!("{state}{k}").repeat(32)),
                role: Role::ALL[role],
                scope: Scope::customer("acme"),
                owner_user: owner_user.map(|o| PEOPLE[o].to_string()),
                issued_at: at(0),
                expires_at: [None, Some(at(1)), Some(at(1_000_000))][state as usize % 3],
                revoked_at: (state == 4).then(|| at(2)),
                revoked_reason: None,
                rotation: 0,
                state: if state == 5 {
                    KeyState::Pending
                } else {
                    KeyState::Issued
                },
                secret_name: format!("t{k}-token"),
                owner: owner("ApiToken", format!("t{k}")),
            }))
        }
        Write::DeleteToken(k) => StoreOp::DeleteTokenKey(format!("k{k}")),
        Write::Model(m, scope, owner, stage) => StoreOp::UpsertModel(ModelRow {
            name: MODELS[m].into(),
            scope,
            owner: owner.map(|o| PEOPLE[o].to_string()),
            stage,
        }),
        Write::Status(k, file, ready) => StoreOp::SetStatus(Box::new(ObjectStatus {
            key: status_key(k, file),
            ready,
            reason: "Ready".into(),
            message: String::new(),
            phase: None,
            observed_generation: None,
            extra: Default::default(),
            source: "a.yaml:3".into(),
        })),
        Write::DeleteStatus(k) => StoreOp::DeleteStatus(status_key(k, k % 2 == 0)),
    }
}

fn status_key(k: usize, file: bool) -> ObjectKey {
    match file {
        true => ObjectKey::new(FILE_KIND, "", &format!("f{k}.yaml")),
        false => ObjectKey::new("User", "ns", &format!("u{k}")),
    }
}

/// A fresh store file (removed with its directory when the guard drops).
struct TempStore(std::path::PathBuf);

impl TempStore {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stagegate-patch-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempStore(dir)
    }
    fn path(&self) -> std::path::PathBuf {
        self.0.join("store.db")
    }

    /// The daemon's connection (journaled), another writer's (not journaled: another
    /// process), and the API on its own connection, following the daemon's journal.
    fn open(&self) -> (AnyStore, AnyStore, ApiState) {
        open_at(&self.path())
    }
}

/// [`TempStore::open`] for the store at `location` (a file, or a PostgreSQL URL).
fn open_at(location: &std::path::Path) -> (AnyStore, AnyStore, ApiState) {
    let journal = CommitJournal::new();
    let mut daemon = AnyStore::open(location).expect("store");
    assert!(daemon.record_commits(&journal));
    let other = AnyStore::open(location).expect("store");
    let config = ApiConfig {
        password_params: PasswordParams::insecure_fast_for_tests(),
        ..ApiConfig::default()
    };
    let api = ApiState::open(config, location, ServerKey::generate()).expect("api");
    api.follow_commits(journal);
    (daemon, other, api)
}

/// A fresh PostgreSQL database of the test server, as a store location.
fn postgres() -> std::path::PathBuf {
    crate::store::pg::test_server::database().into()
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What an index answers: every principal at a few times, and every question of a few
/// actions about every model by every principal.
fn answers(index: &Index) -> Vec<String> {
    let names = PEOPLE
        .iter()
        .map(|p| p.to_string())
        .chain((0..4).map(|t| format!("t{t}")));
    let mut out = Vec::new();
    for name in names {
        for now in [at(0), at(5)] {
            let p = index.principal(&name, now);
            out.push(format!("{name} {now}: {p:?}"));
            let Some(p) = p else { continue };
            for action in [Action::ModelsView, Action::ModelsTransition] {
                for model in MODELS {
                    let q = Question {
                        action: Some(action),
                        model: Some(model.into()),
                        scope: None,
                        to: Some(Stage::Production),
                    };
                    let a = index.authorize(&p, &q).map(|d| (d.allowed, d.code));
                    out.push(format!("{name} {action:?} {model}: {a:?}"));
                }
            }
            let visible: Vec<_> = index.visible_models(&p).map(|(id, _)| id.clone()).collect();
            out.push(format!("{name} sees {visible:?}"));
        }
    }
    out.push(format!(
        "{:?} {}",
        index.counts(),
        index.tokens_expiring_within(at(0), EXPIRY_WINDOW)
    ));
    out
}

/// One round: some writes, whether another writer commits them, how the API polls.
type Round = (Vec<Write>, bool, u8);

fn rounds() -> impl Strategy<Value = Vec<Round>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(write(), 1..5),
            any::<bool>(),
            0u8..8,
        ),
        1..14,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// After every commit, the API's index (patched when only the daemon's journaled
    /// commits happened since it was read) equals `Index::build` of the whole store,
    /// in content and in answers; so do its gauges' inputs and broken files.
    #[test]
    fn the_patched_index_equals_the_index_built_from_the_whole_store(rounds in rounds()) {
        let dir = TempStore::new();
        patched_equals_built(dir.open(), rounds)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// The same on PostgreSQL: the daemon's own commits are journaled there too, and a
    /// commit by another connection (another process) sends the API to a full read.
    #[test]
    fn the_patched_index_equals_the_index_built_from_the_whole_store_on_postgres(
        rounds in rounds(),
    ) {
        patched_equals_built(open_at(&postgres()), rounds)?;
    }
}

/// Commits `rounds` by the daemon (journaled) or another writer, polls the API as each
/// says, and checks after each poll that its index is the one built from the whole store.
fn patched_equals_built(
    (mut daemon, mut other, api): (AnyStore, AnyStore, ApiState),
    rounds: Vec<Round>,
) -> Result<(), TestCaseError> {
    // Whether another writer committed since the API last looked.
    let mut gap = false;
    for (writes, by_other, polls) in rounds {
        let ops: Vec<StoreOp> = writes.iter().map(op).collect();
        let foreign = by_other && polls == 0;
        gap |= foreign;
        let store = if foreign { &mut other } else { &mut daemon };
        store.commit(&ops).expect("commit");
        // Some commits pile up before the API looks.
        if polls % 3 == 0 {
            continue;
        }
        let patches = api.index_patches();
        // An index a reader still holds shares entries with the next one: a patch
        // copies what it changes and never changes this one.
        let held = api.index();
        let held_contents = held.contents();
        prop_assert!(api.poll_changes().expect("poll"));
        prop_assert_eq!(held.contents(), held_contents);
        let state = daemon.load_state().expect("state");
        prop_assert_eq!(api.index_revision(), state.revision);
        let built = Index::build(&state);
        let index = api.index();
        prop_assert_eq!(index.contents(), built.contents());
        prop_assert_eq!(answers(&index), answers(&built));
        prop_assert_eq!(
            api.broken_files(),
            crate::api::readiness::broken_files(&state)
        );
        // The gauges' counts, moved by the journal's counts, equal a count of the rows.
        let mut counted = StatusCounts::new();
        for s in state.statuses.values() {
            *counted.entry((s.key.kind.clone(), s.ready)).or_default() += 1;
        }
        prop_assert_eq!(api.status_counts(), Some(counted));
        // The daemon's own commits are patched in (a test that could never see a
        // patch would prove nothing).
        prop_assert_eq!(
            api.index_patches() - patches,
            u64::from(!gap),
            "{:?}",
            writes
        );
        gap = false;
    }
    Ok(())
}

/// A commit the journal does not name (another writer) sends the API back to a full read,
/// and the next journaled commit is patched again.
#[test]
fn a_commit_the_journal_does_not_name_is_read_in_full() {
    let dir = TempStore::new();
    let (mut daemon, mut other, api) = dir.open();
    let user = |name: &str| {
        op(&Write::User(
            PEOPLE.iter().position(|p| *p == name).unwrap(),
            true,
            Some(1),
            false,
        ))
    };
    daemon.commit(&[user("alan")]).unwrap();
    assert!(api.poll_changes().unwrap());
    assert_eq!(api.index_patches(), 1);
    other.commit(&[user("maria")]).unwrap();
    daemon.commit(&[user("grace")]).unwrap();
    assert!(api.poll_changes().unwrap());
    assert_eq!(api.index_patches(), 1, "a gap: read in full");
    assert!(api.index().user("maria").is_some() && api.index().user("grace").is_some());
    daemon.commit(&[op(&Write::DeleteUser(0))]).unwrap();
    assert!(api.poll_changes().unwrap());
    assert_eq!(api.index_patches(), 2);
    assert!(api.index().user("alan").is_none());
}
