//! Login throttling: the attempt is reserved before the password is checked,
//! so concurrent requests get no more checks than the budget; and a client
//! that logged in before (device token) keeps its own budget while an attack
//! from other addresses locks the account for everyone else.

use super::{user, Daemon};
use crate::api::client::{ApiClient, Reply};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

/// Sends `n` copies of `body` to `/v1/login` at once; returns (401s, 429s).
fn burst(c: &ApiClient, n: usize, body: &Value) -> (usize, usize) {
    let barrier = Barrier::new(n);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    c.post("/v1/login", None, body).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    assert_eq!(count(401) + count(429), n, "{statuses:?}");
    (count(401), count(429))
}

fn failures_metric(d: &Daemon) -> u64 {
    let m = d.api.get("/metrics", None).text;
    m.lines()
        .find_map(|l| l.strip_prefix("stagegate_login_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no login failure counter in\n{m}"))
}

fn login(c: &ApiClient, who: &str, password: &str, device: Option<&str>) -> Reply {
    let mut body = json!({"username": who, "password": password});
    if let Some(t) = device {
        body["deviceToken"] = json!(t);
    }
    c.post("/v1/login", None, &body)
}

#[test]
fn login_throttle_concurrent_wrong_logins_stay_within_the_budget() {
    // A long first lock: the budget (5 checks) is all a burst can get, however it is scheduled.
    let d = Daemon::start(
        &[("ann.yaml", user("ann"))],
        &["--login-free-failures", "5", "--login-lockout", "10m"],
    );
    let pw = d.password("ann");

    // One address, a real account: 50 wrong passwords at once.
    let attacker = d.client_from("127.0.0.2");
    let (checked, refused) = burst(
        &attacker,
        50,
        &json!({"username": "ann", "password": "nope"}),
    );
    assert!(
        (1..=5).contains(&checked),
        "{checked} password checks, {refused} refused"
    );
    assert_eq!(failures_metric(&d), checked as u64);

    // An unknown account costs the same budget (and says nothing about existing).
    let other = d.client_from("127.0.0.3");
    let (ghost, _) = burst(
        &other,
        50,
        &json!({"username": "ghost", "password": "nope"}),
    );
    assert!(
        (1..=5).contains(&ghost),
        "{ghost} checks for an unknown account"
    );

    // A device token's own budget is reserved just as atomically.
    let owner = d.client_from("127.0.0.4");
    let ok = login(&owner, "ann", &pw, None);
    assert_eq!(ok.status, 200, "{}", ok.text);
    let token = ok.body["deviceToken"].as_str().unwrap().to_string();
    let (device, _) = burst(
        &d.client_from("127.0.0.5"),
        50,
        &json!({"username": "ann", "password": "nope", "deviceToken": token}),
    );
    assert!(
        (1..=5).contains(&device),
        "{device} checks with one device token"
    );
    assert_eq!(
        failures_metric(&d),
        (checked + ghost + device) as u64,
        "every 401 was one password check and nothing else was"
    );
}

#[test]
fn login_throttle_known_client_logs_in_during_an_attack_from_other_addresses() {
    let d = Daemon::start(&[("ann.yaml", user("ann")), ("bob.yaml", user("bob"))], &[]);
    let pw = d.password("ann");
    // Ann's usual client logged in before and kept its device token; so did bob's.
    let home = d.client_from("127.0.0.1");
    let first = login(&home, "ann", &pw, None);
    assert_eq!(first.status, 200, "{}", first.text);
    let device = first.body["deviceToken"].as_str().unwrap().to_string();
    let bob = login(&home, "bob", &d.password("bob"), None);
    let bobs_device = bob.body["deviceToken"].as_str().unwrap().to_string();

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Twenty addresses guess ann's password without pause.
        for i in 10..30 {
            let c = d.client_from(&format!("127.0.0.{i}"));
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    login(&c, "ann", "guess", None);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            });
        }
        // The attack works: from a client it has not seen, even ann's right password is refused.
        let stranger = d.client_from("127.0.0.200");
        d.until("the account locked for unknown clients", || {
            (login(&stranger, "ann", &pw, None).status == 429).then_some(())
        });
        // Her known client logs in, again and again, while the attack goes on.
        for _ in 0..3 {
            let r = login(&home, "ann", &pw, Some(&device));
            assert_eq!(r.status, 200, "{}", r.text);
        }
        // Its own budget counts its own mistakes, not the attacker's.
        assert_eq!(login(&home, "ann", "typo", Some(&device)).status, 401);
        assert_eq!(login(&home, "ann", &pw, Some(&device)).status, 200);
        // The token is the device, not the address: from an attacker's address (shared NAT) too.
        let nat = d.client_from("127.0.0.10");
        assert_eq!(login(&nat, "ann", &pw, Some(&device)).status, 200);
        // Another account's token, or a forged one, is no device of ann's.
        let r = login(&stranger, "ann", &pw, Some(&bobs_device));
        assert_eq!(r.status, 429, "{}", r.text);
        let forged = format!("{}x", &device[..device.len() - 1]);
        assert_eq!(login(&stranger, "ann", &pw, Some(&forged)).status, 429);
        stop.store(true, Ordering::Relaxed);
    });
}
