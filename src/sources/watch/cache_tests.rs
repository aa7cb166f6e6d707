use super::*;
use crate::snapshot::Reason;

const ADA: &str = "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: ada\n  namespace: t\nspec: {}\n";
const BOB: &str = "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: bob\n  namespace: t\nspec: {}\n";

fn users(c: &DirCache) -> Vec<String> {
    let mut v: Vec<String> = c
        .snapshot()
        .users
        .iter()
        .map(|u| u.key().name.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn loads_changes_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("users.yaml");
    std::fs::write(&f, ADA).unwrap();
    let mut c = DirCache::new(dir.path());
    let r = c.refresh(false).unwrap();
    assert_eq!(r.changed, vec![(label(&f), FileEvent::Added)]);
    assert_eq!(users(&c), ["ada"]);

    // Nothing changed: nothing reported.
    assert!(c.refresh(false).unwrap().is_empty());
    assert!(c.refresh(true).unwrap().is_empty());

    std::fs::write(&f, format!("{ADA}---\n{BOB}")).unwrap();
    let r = c.refresh(true).unwrap();
    assert_eq!(r.changed, vec![(label(&f), FileEvent::Modified)]);
    assert_eq!(users(&c), ["ada", "bob"]);

    std::fs::remove_file(&f).unwrap();
    let r = c.refresh(false).unwrap();
    assert_eq!(r.changed, vec![(label(&f), FileEvent::Removed)]);
    assert!(users(&c).is_empty());
}

#[test]
fn broken_file_keeps_last_good_objects() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("users.yaml");
    std::fs::write(&f, format!("{ADA}---\n{BOB}")).unwrap();
    let mut c = DirCache::new(dir.path());
    c.refresh(false).unwrap();
    // bob's document is now broken YAML; ada's still parses.
    std::fs::write(&f, format!("{ADA}---\nkind: User\nmetadata: [unclosed\n")).unwrap();
    let r = c.refresh(true).unwrap();
    assert_eq!(r.changed, vec![(label(&f), FileEvent::Broken)]);
    let snap = c.snapshot();
    assert!(snap.broken_files.contains(&label(&f)));
    assert!(snap
        .diagnostics
        .iter()
        .any(|d| d.reason == Reason::InvalidYaml));
    assert_eq!(users(&c), ["ada", "bob"]);
    // Fixed: the file's declarations are what it says now.
    std::fs::write(&f, ADA).unwrap();
    c.refresh(true).unwrap();
    assert_eq!(users(&c), ["ada"]);
    assert!(c.snapshot().broken_files.is_empty());
}

#[test]
fn editor_files_and_hidden_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.yaml"), ADA).unwrap();
    for junk in [
        ".users.yaml.swp",
        "users.yaml~",
        "4913",
        "#users.yaml#",
        ".#users.yaml",
        "users.yaml___jb_tmp___",
    ] {
        std::fs::write(dir.path().join(junk), BOB).unwrap();
    }
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/x.yaml"), BOB).unwrap();
    let mut c = DirCache::new(dir.path());
    c.refresh(false).unwrap();
    assert_eq!(users(&c), ["ada"]);
    assert_eq!(c.len(), 1);
    assert!(!c.is_relevant(&dir.path().join(".users.yaml.swp")));
    assert!(!c.is_relevant(&dir.path().join(".git/x.yaml")));
    assert!(c.is_relevant(&dir.path().join("sub/users.yml")));
}

#[test]
fn unreadable_file_keeps_last_good_objects() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("users.yaml");
    std::fs::write(&f, ADA).unwrap();
    let mut c = DirCache::new(dir.path());
    c.refresh(false).unwrap();
    std::fs::write(&f, [0xff, 0xfe, 0x00]).unwrap();
    let r = c.refresh(true).unwrap();
    assert_eq!(r.changed, vec![(label(&f), FileEvent::Broken)]);
    assert_eq!(users(&c), ["ada"]);
    assert_eq!(c.broken(), vec![label(&f)]);
}

#[test]
fn a_problem_points_at_its_field_from_a_cache_that_keeps_no_document_text() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("users.yaml");
    let text = "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: alice\n  namespace: t\nspec:\n  displayName: Alice\n---\napiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: alice-again\n  namespace: t\nspec:\n  displayName: Alice, again\n  username: alice\n";
    std::fs::write(&f, text).unwrap();
    let mut c = DirCache::new(dir.path());
    c.refresh(false).unwrap();
    let line = |c: &DirCache| {
        let mut snap = c.snapshot();
        assert!(
            snap.documents.is_empty(),
            "the cache keeps no document text"
        );
        crate::validate::validate(&mut snap);
        let d = snap
            .diagnostics
            .iter()
            .find(|d| d.reason == Reason::DuplicateUsername)
            .expect("a DuplicateUsername problem")
            .clone();
        (d.field, d.line)
    };
    // The second document starts at line 9; its spec.username is on line 16.
    assert_eq!(line(&c), (Some("spec.username".into()), Some(16)));
    // The file changed and was not parsed again yet: its lines are not trusted, the
    // document's own line is given.
    std::fs::write(&f, format!("# moved\n{text}")).unwrap();
    assert_eq!(line(&c).1, Some(9));
    // Parsed again: the field's new line.
    c.refresh(true).unwrap();
    assert_eq!(line(&c).1, Some(17));
}
