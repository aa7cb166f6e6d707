//! DESIGN §3 stated as named cases: one test per rule of the policy table.

use super::*;

fn user(name: &str, role: Role, scope: Scope) -> Principal {
    Principal::user(name, vec![Grant { role, scope }])
}

/// A decision with its reason rendered, so it outlives the request it borrows.
#[derive(Debug)]
struct Answer {
    allowed: bool,
    code: DecisionCode,
    reason: String,
}

fn rendered(d: Decision<'_>) -> Answer {
    Answer {
        allowed: d.allowed,
        code: d.code,
        reason: d.reason(),
    }
}

fn model(name: &str, scope: Scope, owner: &str, stage: Option<Stage>) -> ModelState {
    ModelState {
        name: name.into(),
        scope,
        owner: Some(owner.into()),
        stage,
    }
}

fn acme() -> Scope {
    Scope::customer("acme")
}

fn fraud() -> Scope {
    Scope::project("acme", "fraud")
}

fn view(p: &Principal, m: &ModelState) -> Answer {
    rendered(decide(
        p,
        &Request {
            action: Action::ModelsView,
            scope: None,
            model: Some(m.into()),
            to: None,
        },
    ))
}

fn moves(p: &Principal, m: &ModelState, to: Stage) -> Answer {
    rendered(decide(
        p,
        &Request {
            action: Action::ModelsTransition,
            scope: None,
            model: Some(m.into()),
            to: Some(to),
        },
    ))
}

fn deploys(p: &Principal, m: &ModelState) -> Answer {
    rendered(decide(
        p,
        &Request {
            action: Action::ModelsDeploy,
            scope: None,
            model: Some(m.into()),
            to: Some(Stage::Dev),
        },
    ))
}

fn manages(p: &Principal, action: Action, scope: &Scope) -> Answer {
    rendered(decide(
        p,
        &Request {
            action,
            scope: Some(scope),
            model: None,
            to: None,
        },
    ))
}

#[test]
fn analyst_never_sees_a_production_model_even_its_own() {
    let alan = user("alan", Role::Analyst, fraud());
    let d = view(&alan, &model("m", fraud(), "alan", Some(Stage::Production)));
    assert!(!d.allowed);
    assert_eq!(d.code, DecisionCode::ProductionHidden);
}

#[test]
fn analyst_sees_only_its_own_dev_and_staging_models() {
    let alan = user("alan", Role::Analyst, fraud());
    assert!(view(&alan, &model("m", fraud(), "alan", Some(Stage::Dev))).allowed);
    assert!(view(&alan, &model("m", fraud(), "alan", Some(Stage::Staging))).allowed);
    let other = view(&alan, &model("m", fraud(), "anna", Some(Stage::Dev)));
    assert_eq!((other.allowed, other.code), (false, DecisionCode::NotOwner));
    assert!(!view(&alan, &model("m", fraud(), "anna", Some(Stage::Staging))).allowed);
}

#[test]
fn analyst_promotes_only_its_own_models_to_staging() {
    let alan = user("alan", Role::Analyst, fraud());
    assert!(
        moves(
            &alan,
            &model("m", fraud(), "alan", Some(Stage::Dev)),
            Stage::Staging
        )
        .allowed
    );
    let d = moves(
        &alan,
        &model("m", fraud(), "anna", Some(Stage::Dev)),
        Stage::Staging,
    );
    assert_eq!((d.allowed, d.code), (false, DecisionCode::NotOwner));
}

#[test]
fn analyst_never_promotes_to_production() {
    let alan = user("alan", Role::Analyst, fraud());
    let d = moves(
        &alan,
        &model("m", fraud(), "alan", Some(Stage::Staging)),
        Stage::Production,
    );
    assert_eq!((d.allowed, d.code), (false, DecisionCode::ProductionHidden));
}

#[test]
fn analyst_cannot_reject_staging_to_dev() {
    let alan = user("alan", Role::Analyst, fraud());
    assert!(
        !moves(
            &alan,
            &model("m", fraud(), "alan", Some(Stage::Staging)),
            Stage::Dev
        )
        .allowed
    );
}

#[test]
fn manager_and_admin_see_every_staging_and_production_model() {
    for role in [Role::Manager, Role::Admin] {
        let p = user("boss", role, acme());
        for stage in [Stage::Staging, Stage::Production] {
            assert!(
                view(&p, &model("m", fraud(), "someone", Some(stage))).allowed,
                "{role} {stage}"
            );
        }
    }
}

#[test]
fn manager_sees_only_its_own_dev_models() {
    let maria = user("maria", Role::Manager, acme());
    assert!(view(&maria, &model("m", fraud(), "maria", Some(Stage::Dev))).allowed);
    let d = view(&maria, &model("m", fraud(), "alan", Some(Stage::Dev)));
    assert_eq!((d.allowed, d.code), (false, DecisionCode::NotOwner));
}

#[test]
fn admin_sees_dev_models_of_others() {
    let ada = user("ada", Role::Admin, Scope::global());
    assert!(view(&ada, &model("m", fraud(), "alan", Some(Stage::Dev))).allowed);
}

#[test]
fn only_admin_manages_users_and_tokens_manager_cannot() {
    let ada = user("ada", Role::Admin, acme());
    let maria = user("maria", Role::Manager, Scope::global());
    for action in [Action::UsersManage, Action::TokensManage] {
        assert!(manages(&ada, action, &acme()).allowed);
        let d = manages(&maria, action, &acme());
        assert_eq!((d.allowed, d.code), (false, DecisionCode::AdminOnly));
        for role in [Role::Analyst, Role::Developer, Role::Deployer] {
            assert!(!manages(&user("x", role, acme()), action, &acme()).allowed);
        }
    }
}

#[test]
fn admin_manages_only_within_its_scope() {
    let ada = user("ada", Role::Admin, acme());
    assert!(manages(&ada, Action::UsersManage, &fraud()).allowed);
    assert!(!manages(&ada, Action::UsersManage, &Scope::customer("globex")).allowed);
    assert!(!manages(&ada, Action::UsersManage, &Scope::global()).allowed);
}

#[test]
fn developer_and_deployer_cannot_be_bound_globally() {
    for role in [Role::Developer, Role::Deployer] {
        assert!(!role.allowed_at(&Scope::global()));
        assert!(role.allowed_at(&acme()));
        assert!(role.allowed_at(&fraud()));
        // A global grant of these roles, should one reach the policy, grants nothing.
        let p = user("x", role, Scope::global());
        assert!(!view(&p, &model("m", fraud(), "x", Some(Stage::Staging))).allowed);
    }
    for role in [Role::Admin, Role::Manager, Role::Analyst] {
        assert!(role.allowed_at(&Scope::global()));
    }
}

#[test]
fn everyone_but_deployer_deploys_own_model_to_dev() {
    let new = ModelState {
        name: "m".into(),
        scope: fraud(),
        owner: None,
        stage: None,
    };
    for role in [Role::Admin, Role::Manager, Role::Analyst, Role::Developer] {
        assert!(deploys(&user("x", role, fraud()), &new).allowed, "{role}");
    }
    assert!(!deploys(&user("x", Role::Deployer, fraud()), &new).allowed);
}

#[test]
fn dev_to_staging_admin_and_developer_any_model_manager_own() {
    let m = model("m", fraud(), "alan", Some(Stage::Dev));
    assert!(moves(&user("ada", Role::Admin, acme()), &m, Stage::Staging).allowed);
    assert!(moves(&user("dan", Role::Developer, acme()), &m, Stage::Staging).allowed);
    assert!(!moves(&user("maria", Role::Manager, acme()), &m, Stage::Staging).allowed);
    assert!(moves(&user("alan", Role::Manager, acme()), &m, Stage::Staging).allowed);
    assert!(!moves(&user("dora", Role::Deployer, acme()), &m, Stage::Staging).allowed);
}

#[test]
fn staging_to_production_admin_manager_deployer_only() {
    let m = model("m", fraud(), "alan", Some(Stage::Staging));
    for (role, allowed) in [
        (Role::Admin, true),
        (Role::Manager, true),
        (Role::Deployer, true),
        (Role::Analyst, false),
        (Role::Developer, false),
    ] {
        assert_eq!(
            moves(&user("x", role, acme()), &m, Stage::Production).allowed,
            allowed,
            "{role}"
        );
    }
}

#[test]
fn staging_to_dev_rejection_admin_manager_deployer_only() {
    let m = model("m", fraud(), "alan", Some(Stage::Staging));
    for (role, allowed) in [
        (Role::Admin, true),
        (Role::Manager, true),
        (Role::Deployer, true),
        (Role::Analyst, false),
        (Role::Developer, false),
    ] {
        assert_eq!(
            moves(&user("x", role, acme()), &m, Stage::Dev).allowed,
            allowed,
            "{role}"
        );
    }
}

#[test]
fn developer_sees_all_dev_and_staging_not_production() {
    let dan = user("dan", Role::Developer, acme());
    assert!(view(&dan, &model("m", fraud(), "alan", Some(Stage::Dev))).allowed);
    assert!(view(&dan, &model("m", fraud(), "alan", Some(Stage::Staging))).allowed);
    assert!(!view(&dan, &model("m", fraud(), "alan", Some(Stage::Production))).allowed);
}

#[test]
fn deployer_sees_staging_and_production_not_dev() {
    let dora = user("dora", Role::Deployer, acme());
    assert!(!view(&dora, &model("m", fraud(), "alan", Some(Stage::Dev))).allowed);
    assert!(view(&dora, &model("m", fraud(), "alan", Some(Stage::Staging))).allowed);
    assert!(view(&dora, &model("m", fraud(), "alan", Some(Stage::Production))).allowed);
}

#[test]
fn production_rollback_is_admin_only_and_reported_as_such() {
    let m = model("m", fraud(), "maria", Some(Stage::Production));
    assert!(moves(&user("ada", Role::Admin, acme()), &m, Stage::Staging).allowed);
    for role in [Role::Manager, Role::Deployer] {
        let d = moves(&user("maria", role, acme()), &m, Stage::Staging);
        assert_eq!(
            (d.allowed, d.code),
            (false, DecisionCode::AdminOnly),
            "{role}"
        );
        assert!(d.reason.contains("Admin only"), "{}", d.reason);
    }
    let skip = moves(
        &user("maria", Role::Manager, acme()),
        &model("m", fraud(), "maria", Some(Stage::Dev)),
        Stage::Production,
    );
    assert_eq!(skip.code, DecisionCode::AdminOnly);
}

#[test]
fn moves_that_are_never_allowed() {
    let ada = user("ada", Role::Admin, Scope::global());
    let d = moves(
        &ada,
        &model("m", fraud(), "ada", Some(Stage::Dev)),
        Stage::Dev,
    );
    assert_eq!(
        (d.allowed, d.code),
        (false, DecisionCode::TransitionNeverAllowed)
    );
    let new = ModelState {
        name: "m".into(),
        scope: fraud(),
        owner: None,
        stage: None,
    };
    assert_eq!(
        moves(&ada, &new, Stage::Production).code,
        DecisionCode::TransitionNeverAllowed
    );
    assert!(moves(&ada, &new, Stage::Dev).allowed);
}

#[test]
fn customer_binding_covers_its_projects_not_other_customers() {
    let maria = user("maria", Role::Manager, acme());
    assert!(
        view(
            &maria,
            &model("m", Scope::project("acme", "p1"), "x", Some(Stage::Staging))
        )
        .allowed
    );
    let d = view(
        &maria,
        &model("m", Scope::customer("globex"), "x", Some(Stage::Staging)),
    );
    assert_eq!((d.allowed, d.code), (false, DecisionCode::NoRoleInScope));
}

#[test]
fn project_binding_covers_neither_sibling_project_nor_customer() {
    let alan = user("alan", Role::Analyst, fraud());
    assert!(
        !view(
            &alan,
            &model(
                "m",
                Scope::project("acme", "churn"),
                "alan",
                Some(Stage::Dev)
            )
        )
        .allowed
    );
    assert!(!view(&alan, &model("m", acme(), "alan", Some(Stage::Dev))).allowed);
    assert!(fraud().covers(&fraud()));
    assert!(!fraud().covers(&acme()));
    assert!(Scope::global().covers(&fraud()));
}

#[test]
fn any_grant_allowing_is_enough() {
    let p = Principal::user(
        "alan",
        vec![
            Grant {
                role: Role::Analyst,
                scope: fraud(),
            },
            Grant {
                role: Role::Deployer,
                scope: acme(),
            },
        ],
    );
    let m = model("m", fraud(), "alan", Some(Stage::Production));
    assert!(
        view(&p, &m).allowed,
        "the Deployer binding shows Production models"
    );
}

#[test]
fn api_tokens_are_principals_with_one_role() {
    let t = Principal::token(
        "ci",
        Grant {
            role: Role::Deployer,
            scope: fraud(),
        },
    );
    assert!(
        moves(
            &t,
            &model("m", fraud(), "alan", Some(Stage::Staging)),
            Stage::Production
        )
        .allowed
    );
    assert!(!manages(&t, Action::TokensManage, &fraud()).allowed);
}

#[test]
fn a_token_named_like_a_user_does_not_own_that_users_models() {
    let t = Principal::token(
        "alan",
        Grant {
            role: Role::Analyst,
            scope: fraud(),
        },
    );
    let m = model("m", fraud(), "alan", Some(Stage::Dev));
    let d = view(&t, &m);
    assert_eq!((d.allowed, d.code), (false, DecisionCode::NotOwner));
    assert!(!moves(&t, &m, Stage::Staging).allowed);
    assert!(view(&user("alan", Role::Analyst, fraud()), &m).allowed);
}

/// The packed grants and packed models `decide` reads give the decision the grants and models
/// themselves give, on random principals (also with malformed and unpackably long scopes),
/// random models and random requests.
mod packed_grants {
    use super::super::decide::decide_with;
    use super::*;
    use proptest::prelude::*;

    fn label() -> impl Strategy<Value = String> {
        // Short names that collide often, names that share a prefix, and one too long to pack;
        // names that differ in one byte only, at every length a packed label handles alike
        // (1-3, 4-7, 8-16 bytes) and just past it.
        prop_oneof![
            Just("acme".to_string()),
            Just("acme2".to_string()),
            Just("globex".to_string()),
            Just("a".repeat(22)),
            Just("a".repeat(23)),
            Just("abc".to_string()),
            Just("axc".to_string()),
            Just("abcdefg".to_string()),
            Just("abcxefg".to_string()),
            Just("abcdefgh-jklmnop".to_string()),
            Just("abcdefghxjklmnop".to_string()),
            Just("abcdefgh-jklmnopq".to_string()),
            Just("abcdefghxjklmnopq".to_string()),
        ]
    }

    fn scope() -> impl Strategy<Value = Scope> {
        (proptest::option::of(label()), proptest::option::of(label()))
            .prop_map(|(customer, project)| Scope { customer, project })
    }

    fn grant() -> impl Strategy<Value = Grant> {
        (0..Role::ALL.len(), scope()).prop_map(|(r, scope)| Grant {
            role: Role::ALL[r],
            scope,
        })
    }

    fn stage() -> impl Strategy<Value = Option<Stage>> {
        proptest::option::of(prop_oneof![
            Just(Stage::Dev),
            Just(Stage::Staging),
            Just(Stage::Production)
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn packed_and_unpacked_grants_decide_alike(
            token in any::<bool>(),
            // Up to 8: more than are packed.
            grants in proptest::collection::vec(grant(), 0..8),
            // Names too long to pack, too.
            name in prop_oneof![Just("alan"), Just("maria"), Just("a-very-long-user-name"), Just("sixteen-byte-nam")],
            action in 0..Action::ALL.len(),
            target in scope(),
            owner in prop_oneof![Just("alan"), Just("maria"), Just("a-very-long-user-name"), Just("a-very-long-user-nam"), Just("sixteen-byte-nam"), Just("sixteen-byte-naM")],
            from in stage(),
            to in stage(),
            with_model in any::<bool>(),
            asked in scope(),
        ) {
            let p = if token && !grants.is_empty() {
                Principal::token(name, grants[0].clone())
            } else {
                Principal::user(name, grants)
            };
            let m = model("m", target.clone(), owner, from);
            let req = Request {
                action: Action::ALL[action],
                scope: Some(&target),
                model: with_model.then(|| (&m).into()),
                to,
            };
            // The fast side also reads the model's packed scope and owner (when they pack).
            let packed_model = PackedModel::new(&m);
            let fast_req = Request {
                model: with_model.then(|| ModelRef::packed(&m.name, &m, packed_model.as_ref())),
                ..req
            };
            // Resolving a question's scope against the packed model answers what `==` answers.
            prop_assert_eq!(
                ModelRef::packed(&m.name, &m, packed_model.as_ref()).is_at(&asked),
                m.scope == asked
            );
            let fast = rendered(decide_with(&p, &fast_req, true));
            let slow = rendered(decide_with(&p, &req, false));
            prop_assert_eq!(
                (fast.allowed, fast.code, fast.reason),
                (slow.allowed, slow.code, slow.reason)
            );
        }
    }

    #[test]
    fn set_grants_repacks() {
        let mut p = user("alan", Role::Analyst, fraud());
        let m = model("m", fraud(), "x", Some(Stage::Production));
        assert!(!view(&p, &m).allowed);
        p.set_grants(vec![Grant {
            role: Role::Deployer,
            scope: fraud(),
        }]);
        assert!(view(&p, &m).allowed);
    }
}
