use super::*;
use crate::snapshot::ObjectKey;

fn secret(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: team}}\nstringData:\n  password: {value}\n")
}

fn key(name: &str) -> SecretKey {
    ("team".to_string(), name.to_string())
}

fn setup() -> (tempfile::TempDir, SecretsCache) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("team")).unwrap();
    std::fs::write(dir.path().join("team/a.yaml"), secret("a", "one-password")).unwrap();
    std::fs::write(dir.path().join("team/b.yaml"), secret("b", "two-password")).unwrap();
    let cache = SecretsCache::new(dir.path());
    (dir, cache)
}

#[test]
fn unchanged_files_are_not_read_again() {
    let (dir, mut cache) = setup();
    assert_eq!(cache.refresh(), BTreeSet::from([key("a"), key("b")]));
    assert_eq!(cache.reads(), 2);
    assert!(cache.refresh().is_empty());
    assert_eq!(
        cache.reads(),
        2,
        "a refresh with nothing changed reads no file"
    );
    // The same content written again is read (its stamp moved) but is no news.
    std::fs::write(dir.path().join("team/a.yaml"), secret("a", "one-password")).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(dir.path().join("team/a.yaml"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    assert!(cache.refresh().is_empty());
    assert_eq!(cache.reads(), 3);
    // New content and a removal are.
    std::fs::write(dir.path().join("team/b.yaml"), secret("b", "new-password")).unwrap();
    std::fs::remove_file(dir.path().join("team/a.yaml")).unwrap();
    assert_eq!(cache.refresh(), BTreeSet::from([key("a"), key("b")]));
    let (data, _) = cache.loaded(&[key("a"), key("b")]);
    assert_eq!(data.len(), 1);
    assert_eq!(data[&key("b")]["password"], b"new-password");
}

#[test]
fn own_deliveries_are_absorbed_not_reported() {
    let (_dir, mut cache) = setup();
    cache.refresh();
    let written = {
        let sink = cache.sink();
        assert_eq!(sink.state("team", "t-token").unwrap(), SecretState::Absent);
        let out = OutgoingSecret {
            namespace: "team".into(),
            name: "t-token".into(),
            data: BTreeMap::from([(
                "token".to_string(),
                crate::secrets::SecretValue::from_string("sgt_x".into()),
            )]),
            key_id: "k1".into(),
            expires_at: None,
            owner: ObjectKey::new("ApiToken", "team", "t"),
        };
        assert_eq!(sink.deliver(&out).unwrap(), Delivery::Delivered);
        sink.written()
    };
    assert_eq!(written, BTreeSet::from([key("t-token")]));
    cache.absorb(&written);
    assert!(
        cache.refresh().is_empty(),
        "the daemon's own delivery is not a change"
    );
    assert_eq!(
        cache.sink().state("team", "t-token").unwrap(),
        SecretState::Ours {
            key_id: Some("k1".into())
        }
    );
    // Somebody deleting it is.
    std::fs::remove_file(cache.root().join("team/t-token.yaml")).unwrap();
    assert_eq!(cache.refresh(), BTreeSet::from([key("t-token")]));
    assert_eq!(
        cache.sink().state("team", "t-token").unwrap(),
        SecretState::Absent
    );
}

#[test]
fn only_referenced_data_is_handed_out_but_every_warning_is() {
    let (dir, mut cache) = setup();
    std::fs::write(dir.path().join("team/bad.yaml"), "kind: ConfigMap\n").unwrap();
    cache.refresh();
    let (data, diags) = cache.loaded(&[key("b")]);
    assert_eq!(data.keys().collect::<Vec<_>>(), vec![&key("b")]);
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.contains("not a Secret manifest"));
}

#[test]
fn only_wanted_data_is_kept_and_a_newly_wanted_file_is_read_again() {
    let (_dir, mut cache) = setup();
    cache.refresh();
    let held = |c: &SecretsCache| {
        c.files
            .iter()
            .filter(|(_, f)| f.file.data.is_some())
            .map(|(k, _)| k.1.clone())
            .collect::<Vec<_>>()
    };
    // Nothing named yet: what was read is a digest and a state, no data.
    assert!(held(&cache).is_empty());
    let (data, _) = cache.loaded(&[key("a")]);
    assert_eq!(data[&key("a")]["password"], b"one-password");
    assert_eq!(cache.reads(), 3, "a, named now, was read again");
    assert_eq!(held(&cache), ["a"]);
    // Named again: served from the cache. Named no more: dropped; another named: read.
    let (data, _) = cache.loaded(&[key("a")]);
    assert_eq!(data.len(), 1);
    assert_eq!(cache.reads(), 3);
    let (data, _) = cache.loaded(&[key("b")]);
    assert_eq!(data[&key("b")]["password"], b"two-password");
    assert_eq!((cache.reads(), held(&cache)), (4, vec!["b".to_string()]));
    // What a sink is told is unchanged by dropping the data.
    assert!(matches!(
        cache.sink().state("team", "a"),
        Ok(SecretState::Foreign) | Ok(SecretState::Ours { .. })
    ));
}
