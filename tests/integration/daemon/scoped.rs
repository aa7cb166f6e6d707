//! Issue 19, goal 4 in directory mode: a changed Secret file is a change of the one
//! declaration that reads or writes it, planned by a scoped round with what it depends on
//! (not a round of every declaration). A password reset through a `passwordSecretRef`'s
//! file, a delivered Secret file someone deleted, then someone else's in its place. And
//! a User renamed.

use super::harness::{copy_examples, status_of, wait_for, Running, Workspace};
use crate::firstrun::provide_secret;
use stagegate::store::Store;

/// Rounds the daemon logged as scoped.
fn scoped_rounds(r: &Running) -> usize {
    r.log()
        .lines()
        .filter(|l| l.contains("reconcile phases") && l.contains("\"scoped\":true"))
        .count()
}

const NOTHING: &str = "\"message\":\"nothing changed; not reconciling\"";

#[test]
fn a_password_reset_a_deleted_secret_file_and_a_rename_are_scoped_rounds() {
    let ws = Workspace::new();
    copy_examples(&ws.manifests());
    let reset = |password: &str| {
        provide_secret(
            &ws.secrets(),
            "ml-platform",
            "maria-password",
            "password",
            password,
        )
    };
    reset("maria-set-by-admin");
    let r = ws.start_logging(&["--log-json"], "info,stagegate::sources::watch=debug");
    let fingerprint = || {
        ws.store()
            .load_state()
            .ok()?
            .users
            .get("maria")?
            .password_fingerprint
            .clone()
    };
    let first = wait_for(&r, 60, "maria's password stored", fingerprint);
    // The first apply's own deliveries raise a round that finds nothing.
    wait_for(&r, 60, "a quiet round", || {
        r.log().contains(NOTHING).then_some(())
    });
    let before = scoped_rounds(&r);
    reset("maria-reset-by-admin");
    wait_for(&r, 60, "the reset password stored", || {
        fingerprint().filter(|f| *f != first)
    });
    wait_for(&r, 10, "a scoped round logged", || {
        (scoped_rounds(&r) > before).then_some(())
    });
    // Someone deletes a delivered Secret file: its token says so, from a scoped round.
    let before = scoped_rounds(&r);
    std::fs::remove_file(
        ws.secrets()
            .join("ml-platform/fraud-ci-deployer-token.yaml"),
    )
    .unwrap();
    wait_for(&r, 60, "the token reports its Secret missing", || {
        status_of(&ws.store(), "ApiToken", "ml-platform", "fraud-ci-deployer")
            .filter(|(_, reason)| reason == "SecretMissing")
    });
    wait_for(&r, 10, "a scoped round logged", || {
        (scoped_rounds(&r) > before).then_some(())
    });
    // Someone else's Secret file takes its place: a conflict, from a scoped round.
    let before = scoped_rounds(&r);
    provide_secret(
        &ws.secrets(),
        "ml-platform",
        "fraud-ci-deployer-token",
        "token",
        "not-written-by-stagegate",
    );
    wait_for(&r, 60, "the token reports a foreign Secret", || {
        status_of(&ws.store(), "ApiToken", "ml-platform", "fraud-ci-deployer")
            .filter(|(_, reason)| reason == "SecretConflict")
    });
    wait_for(&r, 10, "a scoped round logged", || {
        (scoped_rounds(&r) > before).then_some(())
    });
    // A User renamed (spec.username): its old row goes, the new one is created, from a
    // scoped round (the part covers both usernames). Ada requested no stage (a requester's
    // rename changes the requests' warnings: a round of every declaration).
    let before = scoped_rounds(&r);
    let users = ws.read("users.yaml");
    let renamed = users.replacen(
        "  displayName: Ada Lovelace\n",
        "  displayName: Ada Lovelace\n  username: alovelace\n",
        1,
    );
    assert_ne!(users, renamed);
    ws.write("users.yaml", &renamed);
    wait_for(&r, 60, "ada renamed in the store", || {
        let state = ws.store().load_state().ok()?;
        (state.users.contains_key("alovelace") && !state.users.contains_key("ada")).then_some(())
    });
    wait_for(&r, 10, "a scoped round logged", || {
        (scoped_rounds(&r) > before).then_some(())
    });
    assert!(r.terminate().success());
}
