//! `models:view` decisions on the peer benchmark's data set (`../shared/bench/peers`):
//! 10,000 users with 1–5 bindings, 2,000 models, 20,000 questions, half of them asked
//! by the model's owner. Times `api::Index::authorize` on one thread and checks every
//! answer against the policy's reference decision (`policy::decide` over all models).
//!
//! `cargo bench --bench decisions` (release). Arguments: `[users models queries]`.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use stagegate::api::Index;
use stagegate::plan::{answer, Models, Question};
use stagegate::policy::{Action, Grant, Principal, Role, Scope, Stage};
use stagegate::store::{BindingRow, ModelRow, StoreState, UserRow};
use std::hint::black_box;
use std::time::Instant;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn random_scope(rng: &mut SmallRng) -> Scope {
    match rng.random_range(0..3) {
        0 => Scope::global(),
        1 => Scope::customer(&format!("c{}", rng.random_range(0..20))),
        _ => Scope::project(
            &format!("c{}", rng.random_range(0..20)),
            &format!("p{}", rng.random_range(0..10)),
        ),
    }
}

fn main() {
    let users = arg(1, 10_000);
    let nmodels = arg(2, 2_000);
    let queries = arg(3, 20_000);
    // `--no-check` skips the comparison with the reference (for profiling the timed loop alone).
    let check = if std::env::args().any(|a| a == "--no-check") {
        0
    } else {
        queries
    };
    let mut rng = SmallRng::seed_from_u64(7);
    let mut state = StoreState::default();
    for i in 0..users {
        let u = UserRow::new(&format!("u{i}"), None);
        state.users.insert(u.username.clone(), u);
        for _ in 0..rng.random_range(1..=5) {
            let role = if rng.random_bool(0.02) {
                Role::Admin
            } else {
                Role::ALL[rng.random_range(1..5)]
            };
            let mut scope = random_scope(&mut rng);
            if !role.allowed_at(&scope) {
                scope = Scope::customer(&format!("c{}", rng.random_range(0..20)));
            }
            if role == Role::Admin && rng.random_bool(0.5) {
                scope = Scope::customer(&format!("c{}", rng.random_range(0..20)));
            }
            state.bindings.push(BindingRow {
                username: format!("u{i}"),
                role,
                scope,
                owner: None,
            });
        }
    }
    let stages = [Stage::Dev, Stage::Staging, Stage::Production];
    let mut owners = Vec::new();
    for j in 0..nmodels {
        let owner = rng.random_range(0..users);
        owners.push(owner);
        let row = ModelRow {
            name: format!("m{j}"),
            scope: random_scope(&mut rng),
            owner: Some(format!("u{owner}")),
            stage: stages[rng.random_range(0..3)],
        };
        state
            .models
            .insert((row.scope.clone(), row.name.clone()), row);
    }
    let index = Index::build(&state);
    let principals: Vec<Principal> = (0..users)
        .map(|i| {
            let n = format!("u{i}");
            let g: Vec<Grant> = index.user(&n).map(|u| u.grants.clone()).unwrap_or_default();
            Principal::user(&n, g)
        })
        .collect();
    let scopes: Vec<Scope> = (0..nmodels)
        .map(|j| {
            let name = format!("m{j}");
            index
                .models()
                .keys()
                .find(|id| id.name == name)
                .map(|id| id.scope.clone())
                .unwrap_or_default()
        })
        .collect();
    let qs: Vec<(usize, Question)> = (0..queries)
        .map(|_| {
            let m = rng.random_range(0..nmodels);
            let u = if rng.random_bool(0.5) {
                owners[m]
            } else {
                rng.random_range(0..users)
            };
            let q = Question {
                action: Some(Action::ModelsView),
                model: Some(format!("m{m}")),
                scope: Some(scopes[m].clone()),
                to: None,
            };
            (u, q)
        })
        .collect();

    let rounds = 20;
    let start = Instant::now();
    let mut yes = 0usize;
    for _ in 0..rounds {
        for (u, q) in &qs {
            yes += usize::from(
                index
                    .authorize(black_box(&principals[*u]), black_box(q))
                    .map(|d| d.allowed)
                    .unwrap_or(false),
            );
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (rounds * queries) as f64;
    black_box(yes);
    // Where the time goes: the same questions asked by one principal (its grants stay in
    // cache), and one question asked by every principal (the model stays in cache).
    let split = |pick: &dyn Fn(usize, usize) -> (usize, usize)| {
        let start = Instant::now();
        let mut yes = 0usize;
        for _ in 0..rounds {
            for (k, (u, _)) in qs.iter().enumerate() {
                let (u, q) = pick(k, *u);
                yes += usize::from(
                    index
                        .authorize(black_box(&principals[u]), black_box(&qs[q].1))
                        .map(|d| d.allowed)
                        .unwrap_or(false),
                );
            }
        }
        black_box(yes);
        start.elapsed().as_nanos() as f64 / (rounds * queries) as f64
    };
    let one_principal = split(&|k, _| (qs[0].0, k));
    let one_question = split(&|_, u| (u, 0));
    // Reference: the policy over every model, as `can-i` asks it.
    let all: &Models = index.models();
    let mut disagreements = 0;
    let mut allowed = 0;
    for (u, q) in qs.iter().take(check) {
        let p = &principals[*u];
        let fast = index.authorize(p, q).expect("answer");
        let slow = answer(p, all, q).expect("answer");
        allowed += usize::from(fast.allowed);
        if (fast.allowed, fast.code, fast.reason()) != (slow.allowed, slow.code, slow.reason()) {
            disagreements += 1;
        }
    }

    println!(
        "users={users} models={nmodels} queries={queries} allowed={allowed}\n\
         stagegate index: {ns:>8.0} ns/decision  {:>12.0} decisions/s  disagreements with the reference={disagreements}\n\
         one principal asking every question: {one_principal:.0} ns; every principal asking one question: {one_question:.0} ns",
        1e9 / ns
    );
}
