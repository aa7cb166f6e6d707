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

/// What a reconcile reads of a validated snapshot, comparable as a whole.
fn validated_view(snap: &Snapshot) -> String {
    format!(
        "{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}\n{:#?}",
        snap.users,
        snap.bindings,
        snap.tokens,
        snap.requests,
        snap.diagnostics,
        snap.broken_files,
        snap.skipped,
        snap.domains.pins,
        snap.domains.delegations,
        snap.domains.resolved,
        snap.domains.roots,
    )
}

/// The cache's merged snapshot, validated as the daemon validates it.
fn cached_validated(c: &DirCache) -> Snapshot {
    let mut snap = c.snapshot();
    crate::validate::validate(&mut snap);
    snap
}

/// Checks that the cache of `dir` gives exactly what parsing its files directly gives.
fn assert_cache_matches_parse(dir: &Path) -> DirCache {
    let direct = crate::sources::files::load_paths_with(&[dir.to_path_buf()], false).unwrap();
    let mut c = DirCache::new(dir);
    c.refresh(false).unwrap();
    assert_eq!(
        validated_view(&cached_validated(&c)),
        validated_view(&direct),
        "{}",
        dir.display()
    );
    c
}

/// A generated organization: many files of every kind, labels, annotations,
/// comments, optional fields set and unset, objects of other kinds, and problems.
fn generate(dir: &Path, files: usize, seed: usize) {
    for f in 0..files {
        let mut text = String::from("# generated\n");
        for i in 0..12 {
            let n = f * 100 + i + seed;
            let ns = ["team-a", "team-b", "default"][n % 3];
            let meta = |kind: &str, name: String| {
                let mut m = format!(
                    "apiVersion: stagegate.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n"
                );
                if n % 3 != 2 {
                    m.push_str(&format!("  namespace: {ns}\n"));
                }
                if n % 4 == 0 {
                    m.push_str(&format!(
                        "  labels:\n    team: t{}\n    tier: \"{}\"\n",
                        n % 7,
                        n % 2
                    ));
                }
                if n % 5 == 0 {
                    m.push_str("  annotations:\n    note: \"quoted: value\"\n    stagegate.dev/requested-at: \"2026-11-02T09:00:00Z\"\n");
                }
                m
            };
            let doc = match (n + f) % 6 {
                0 => format!(
                    "{}spec:\n  displayName: User {n} \"q\" é\n  email: u{n}@example.com\n",
                    meta("User", format!("u{n}"))
                ),
                1 => format!(
                    "{}spec:\n  displayName: User {n}\n  passwordSecretRef:\n    name: u{n}-password\n    key: password\n",
                    meta("User", format!("p{n}"))
                ),
                2 => format!(
                    "{}spec:\n  user: u{}\n  role: {}\n{}",
                    meta("AccessBinding", format!("b{n}")),
                    n.saturating_sub(2),
                    ["Admin", "Manager", "Developer", "Analyst", "Deployer"][n % 5],
                    if n % 2 == 0 {
                        format!("  scope:\n    customer: c{}\n    project: p{}\n", n % 3, n % 4)
                    } else {
                        String::new()
                    }
                ),
                3 => format!(
                    "{}spec:\n  role: Deployer\n  scope:\n    customer: c{}\n  owner: u{}\n  validity: {}d\n{}",
                    meta("ApiToken", format!("t{n}")),
                    n % 3,
                    n.saturating_sub(3),
                    30 + n % 60,
                    if n % 2 == 0 { "  revoked: true\n" } else { "" }
                ),
                4 => format!(
                    "{}spec:\n  model: m{}\n  scope:\n    customer: c{}\n    project: p{}\n  from: None\n  to: Dev\n  requestedBy: u{}\n  reason: r {n}\n",
                    meta("ModelStageRequest", format!("r{n}")),
                    n % 9,
                    n % 3,
                    n % 4,
                    n.saturating_sub(4)
                ),
                _ => match n % 3 {
                    0 => format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{n}\n"),
                    1 => format!(
                        "{}spec:\n  displayName: Bad {n}\n  email: 7\n  unknownField: x\n",
                        meta("User", format!("bad{n}"))
                    ),
                    _ => format!(
                        "{}spec:\n  user: ''\n  role: Wizard\n",
                        meta("AccessBinding", format!("badb{n}"))
                    ),
                },
            };
            text.push_str("---\n");
            text.push_str(&doc);
        }
        let sub = if f % 3 == 0 { "sub/" } else { "" };
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(format!("{sub}f{f:03}.yaml")), text).unwrap();
    }
}

#[test]
fn the_packed_cache_gives_the_snapshot_parsing_the_files_gives() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![
        root.join("examples"),
        root.join("examples/tenants"),
        root.join("tests/fixtures/invalid"),
    ];
    for case in std::fs::read_dir(root.join("tests/fixtures/diff")).unwrap() {
        let case = case.unwrap().path();
        dirs.extend(
            ["base", "head"]
                .map(|side| case.join(side))
                .into_iter()
                .filter(|d| d.is_dir()),
        );
    }
    for dir in &dirs {
        assert_cache_matches_parse(dir);
    }

    for seed in [0, 7] {
        let tmp = tempfile::tempdir().unwrap();
        generate(tmp.path(), 20, seed);
        let mut c = assert_cache_matches_parse(tmp.path());
        // Every file's objects are held packed: none fell back to the parsed form.
        assert_eq!(c.plain_files(), 0);
        // One file edited: the cache re-parses it, and still gives the same snapshot.
        let f = tmp.path().join("f004.yaml");
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(
            &f,
            text.replace("role: Deployer", "role: Analyst\n  # moved"),
        )
        .unwrap();
        c.refresh(false).unwrap();
        let direct =
            crate::sources::files::load_paths_with(&[tmp.path().to_path_buf()], false).unwrap();
        assert_eq!(
            validated_view(&cached_validated(&c)),
            validated_view(&direct)
        );
    }
}

#[test]
fn a_parse_packing_would_change_stays_as_parsed() {
    // An object whose source is not the file it is held for cannot be packed
    // (the packed form keeps the file name once): it is held as parsed, unchanged.
    let mut snap = crate::sources::files::load_text("users.yaml", ADA);
    snap.users[0].source.file = Some("elsewhere.yaml".into());
    let parse = Parse::pack("users.yaml", snap.clone());
    assert!(matches!(parse, Parse::Plain(_)));
    assert_eq!(
        format!("{:?}", parse.snapshot("users.yaml").users),
        format!("{:?}", snap.users)
    );

    let snap = crate::sources::files::load_text("users.yaml", &format!("{ADA}---\n{BOB}"));
    let parse = Parse::pack("users.yaml", snap.clone());
    assert!(matches!(parse, Parse::Packed { .. }));
    assert_eq!(
        format!("{:?}", parse.snapshot("users.yaml").users),
        format!("{:?}", snap.users)
    );
}
