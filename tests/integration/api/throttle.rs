//! Failed-login back-off and the request rate limits (per address, per caller), with short windows.

use super::harness::{fast_backoff, org_server, test_config};
use crate::stores::{on_both_stores, StoreKind};
use serde_json::json;
use stagegate::api::{ApiConfig, RateLimitConfig};
use stagegate::policy::{Role, Scope};
use std::time::Duration;

on_both_stores!(wrong_passwords_slow_then_block_one_account_only_and_the_window_ends);
fn wrong_passwords_slow_then_block_one_account_only_and_the_window_ends(store: StoreKind) {
    let srv = org_server(
        store,
        ApiConfig {
            // Three free failures, then 1 s, 2 s (cap).
            login_backoff_per_client: fast_backoff(3, 1000, 2000),
            ..test_config()
        },
    );
    let c = &srv.client;
    for _ in 0..3 {
        assert_eq!(c.login("alan", "guess").status, 401);
    }
    // The third failure started a 1 s lock: even the right password waits.
    let blocked = c.login("alan", "alan-password");
    assert_eq!(blocked.status, 429, "{}", blocked.text);
    assert_eq!(blocked.error(), "too_many_requests");
    assert_eq!(blocked.header("retry-after"), Some("1"));
    // Other accounts are unaffected.
    c.session("maria", "maria-password");
    std::thread::sleep(Duration::from_millis(1050));
    // Another failure after the window doubles the lock.
    assert_eq!(c.login("alan", "guess").status, 401);
    let again = c.login("alan", "alan-password");
    assert_eq!(again.status, 429);
    assert_eq!(again.header("retry-after"), Some("2"));
    std::thread::sleep(Duration::from_millis(2050));
    // A correct login after the window works and resets the count.
    c.session("alan", "alan-password");
    assert_eq!(c.login("alan", "guess").status, 401);
    assert_eq!(c.login("alan", "guess").status, 401);
    c.session("alan", "alan-password");
    let m = c.get("/metrics", None).text;
    assert!(m.contains("stagegate_logins_throttled_total 2"), "{m}");
}

on_both_stores!(the_account_wide_limit_caps_distributed_guessing);
fn the_account_wide_limit_caps_distributed_guessing(store: StoreKind) {
    let srv = org_server(
        store,
        ApiConfig {
            login_backoff_per_client: fast_backoff(100, 1000, 1000),
            login_backoff_per_account: fast_backoff(2, 1000, 1000),
            ..test_config()
        },
    );
    let c = &srv.client;
    assert_eq!(c.login("dan", "a").status, 401);
    assert_eq!(c.login("dan", "b").status, 401);
    assert_eq!(c.login("dan", "dan-password").status, 429);
    c.session("dora", "dora-password");
}

on_both_stores!(unknown_accounts_are_throttled_like_real_ones);
fn unknown_accounts_are_throttled_like_real_ones(store: StoreKind) {
    let srv = org_server(
        store,
        ApiConfig {
            login_backoff_per_client: fast_backoff(2, 5000, 5000),
            ..test_config()
        },
    );
    let c = &srv.client;
    assert_eq!(c.login("ghost", "x").status, 401);
    assert_eq!(c.login("ghost", "x").status, 401);
    assert_eq!(c.login("ghost", "x").status, 429);
}

on_both_stores!(the_request_rate_limit_answers_429_with_retry_after_but_spares_probes);
fn the_request_rate_limit_answers_429_with_retry_after_but_spares_probes(store: StoreKind) {
    let srv = org_server(
        store,
        ApiConfig {
            rate_limit: Some(RateLimitConfig {
                per_second: 0.5,
                burst: 3,
            }),
            ..test_config()
        },
    );
    let c = &srv.client;
    let codes: Vec<u16> = (0..4).map(|_| c.get("/v1/whoami", None).status).collect();
    assert_eq!(codes, [401, 401, 401, 429]);
    let r = c.get("/v1/models", None);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(c.get(path, None).status, 200, "{path}");
    }
}

on_both_stores!(authenticated_decisions_pass_the_address_limit_that_holds_everything_else);
/// Issue 19: a token or session on the decision routes is not held to the address limit;
/// bad credentials, login and the other routes are.
fn authenticated_decisions_pass_the_address_limit_that_holds_everything_else(store: StoreKind) {
    let srv = org_server(
        store,
        ApiConfig {
            // Refills once per 1000 s: only the burst counts, however slow the test runs.
            rate_limit: Some(RateLimitConfig {
                per_second: 0.001,
                burst: 4,
            }),
            ..test_config()
        },
    );
    let (op, token, _) = srv.token("gateway", Role::Deployer, Scope::customer("acme"), None);
    srv.apply(vec![op]);
    let c = &srv.client;
    let ada = c.session("ada", "ada-password"); // 1 of the address burst
    let q = json!({"action": "models:view", "model": "fraud-prod"});
    for i in 0..150 {
        assert_eq!(c.authorize(&token, &q).status, 200, "token request {i}");
        assert_eq!(
            c.get("/v1/models", Some(&ada)).status,
            200,
            "session request {i}"
        );
    }
    assert_eq!(c.whoami(&ada).status, 200);
    // A well-formed token that does not verify is anonymous traffic: 2, 3 of the burst.
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(c.authorize(&forged, &q).status, 401);
    assert_eq!(c.get("/v1/whoami", Some("not-a-credential")).status, 401);
    // Audit is not a decision route: counted per address even with a session (4 of 4).
    assert_eq!(c.get("/v1/audit", Some(&ada)).status, 200);
    assert_eq!(c.get("/v1/audit", Some(&ada)).status, 429);
    assert_eq!(c.authorize(&forged, &q).status, 429);
    assert_eq!(c.login("dan", "dan-password").status, 429);
    // The decision routes still answer their callers.
    assert_eq!(c.authorize(&token, &q).status, 200);
}

on_both_stores!(a_caller_limit_gives_each_token_and_user_its_own_bucket);
fn a_caller_limit_gives_each_token_and_user_its_own_bucket(store: StoreKind) {
    let srv = org_server(
        store,
        ApiConfig {
            caller_rate_limit: Some(RateLimitConfig {
                per_second: 0.001,
                burst: 2,
            }),
            ..test_config()
        },
    );
    let (a, ta, _) = srv.token("a", Role::Deployer, Scope::customer("acme"), None);
    let (b, tb, _) = srv.token("b", Role::Deployer, Scope::customer("acme"), None);
    srv.apply(vec![a, b]);
    let c = &srv.client;
    let q = json!({"action": "models:view", "model": "fraud-prod"});
    assert_eq!(c.authorize(&ta, &q).status, 200);
    assert_eq!(c.whoami(&ta).status, 200);
    let refused = c.authorize(&ta, &q);
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(c.authorize(&tb, &q).status, 200);
    // Two sessions of one user share the user's bucket.
    let s1 = c.session("dan", "dan-password");
    let s2 = c.session("dan", "dan-password");
    assert_eq!(c.whoami(&s1).status, 200);
    assert_eq!(c.whoami(&s2).status, 200);
    assert_eq!(c.whoami(&s1).status, 429);
    assert_eq!(c.whoami(&c.session("ada", "ada-password")).status, 200);
    let m = c.get("/metrics", None).text;
    assert!(m.contains("stagegate_requests_throttled_total 2"), "{m}");
}
