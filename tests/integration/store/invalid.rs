//! Objects that fail the schema still get an outcome and a stored status.

use super::{outcome, Env};
use crate::stores::{on_both_stores, StoreKind};

on_both_stores!(a_schema_invalid_object_has_an_outcome_and_a_status);
fn a_schema_invalid_object_has_an_outcome_and_a_status(store: StoreKind) {
    let env = Env::empty().on(store);
    env.write(
        "users.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: eve\nspec:\n  state: Sleeping\n---\napiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: bob\nspec: {}\n",
    );
    let (code, outcomes, _) = env.apply();
    assert_eq!(code, 1, "an invalid object is not ready");
    let eve = outcome(&outcomes, "User", "eve");
    assert_eq!(eve["ready"], false);
    assert_eq!(eve["reason"], "Invalid");
    let msg = eve["message"].as_str().unwrap();
    assert!(
        msg.contains("SchemaViolation") && msg.contains("spec.state"),
        "{msg}"
    );
    assert_eq!(outcome(&outcomes, "User", "bob")["ready"], true);
    let status = env.run("status", &["--output", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let eve = outcome(listed.as_array().unwrap(), "User", "eve");
    assert_eq!(eve["reason"], "Invalid");
    // Fixed, it becomes an ordinary ready user.
    env.edit("users.yaml", "state: Sleeping", "state: Active");
    let (code, outcomes, _) = env.apply();
    assert_eq!(code, 0);
    assert_eq!(outcome(&outcomes, "User", "eve")["ready"], true);
}

on_both_stores!(the_store_holder_keeps_a_contested_username);
/// Regression (review): a newer file that sorts first must not take a username from the User
/// that holds it in the store; the holder stays Ready and the newcomer gets UsernameConflict.
fn the_store_holder_keeps_a_contested_username(store: StoreKind) {
    let env = Env::empty().on(store);
    env.write(
        "users.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: ada\nspec: {}\n---\napiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata:\n  name: ada-admin\nspec:\n  user: ada\n  role: Admin\n",
    );
    let (code, _, _) = env.apply();
    assert_eq!(code, 0);
    env.write(
        "00-evil.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: evil\nspec:\n  username: ada\n",
    );
    let (code, outcomes, _) = env.apply();
    assert_eq!(code, 1);
    let ada = outcome(&outcomes, "User", "ada");
    assert_eq!(ada["ready"], true, "{ada}");
    let evil = outcome(&outcomes, "User", "evil");
    assert_eq!(evil["reason"], "UsernameConflict", "{evil}");
    assert!(
        evil["message"]
            .as_str()
            .unwrap()
            .contains("held by User default/ada"),
        "{evil}"
    );
    let store = env.open();
    use stagegate::store::Store;
    let row = store.user("ada").unwrap().expect("ada stays");
    assert_eq!(row.owner.unwrap().key.name, "ada");
}
