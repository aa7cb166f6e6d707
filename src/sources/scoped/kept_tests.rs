use super::*;
use crate::sources::watch::DirCache;
use crate::validate::{validate, validate_part};
use std::collections::BTreeMap;
use std::path::Path;

const ROLES: [&str; 4] = ["Admin", "Manager", "Analyst", "Developer"];

/// An organization in five files of several objects: users `u0`..`u5` (u6, u7 are never
/// declared), bindings `b0`..`b5`, tokens `k0`..`k2`; a User or a token can be removed
/// from its file. Edits can make it invalid: a binding
/// to an undeclared user, a Developer bound globally, a binding or User renamed onto
/// another's key, a username claimed twice, a token delivering to a user's password Secret
/// or to another token's, a token name used in two namespaces. Four stage requests in two
/// files (two each) name a model, an instant and a requester: two requests of one model at
/// one instant warn, in one file or across both, and a requester may be undeclared.
#[derive(Clone, Debug)]
struct Org {
    /// (name index, explicit username, display name).
    users: [(usize, Option<usize>, u8); 6],
    /// (name index, user, role, global).
    bindings: [(usize, usize, usize, bool); 6],
    /// (namespace s?, owner, secret name: 0 default, 1 a user's password, 2 another token's).
    tokens: [(bool, usize, u8); 3],
    /// One more binding at the end of the second bindings file: (name index, user).
    extra: Option<(usize, usize)>,
    /// A User left out of its file (removed), by index.
    gone_user: Option<usize>,
    /// An ApiToken left out of its file (removed), by index.
    gone_token: Option<usize>,
    /// (model, requested-at: none or one of two instants, requester).
    requests: [(usize, usize, usize); 4],
}

impl Org {
    fn start() -> Org {
        Org {
            users: std::array::from_fn(|i| (i, None, 0)),
            bindings: std::array::from_fn(|i| (i, i % 6, i % 3, i % 2 == 0)),
            tokens: std::array::from_fn(|i| (false, i, 0)),
            extra: None,
            gone_user: None,
            gone_token: None,
            // No model has requests in both files (r2 and r3 share one in one file).
            requests: [(0, 1, 0), (1, 0, 2), (2, 1, 3), (2, 0, 5)],
        }
    }

    fn edit(&mut self, what: u8, value: u8) {
        let v = value as usize;
        match what % 16 {
            13 => self.requests[v % 4].0 = (v / 4) % 3,
            14 => self.requests[v % 4].1 = (v / 4) % 3,
            15 => self.requests[v % 4].2 = (v / 4) % 8,
            11 => self.gone_user = (v % 2 == 0).then_some((v / 2) % 6),
            12 => self.gone_token = (v % 2 == 0).then_some((v / 2) % 3),
            10 => self.extra = (v % 2 == 0).then_some(((v / 2) % 8, (v / 16) % 8)),
            0 => self.bindings[v % 6].1 = (v / 6) % 8,
            1 => self.bindings[v % 6].2 = (v / 6) % ROLES.len(),
            2 => self.bindings[v % 6].3 ^= true,
            3 => self.bindings[v % 6].0 = if v % 3 == 0 { (v / 6) % 6 } else { v % 6 },
            4 => self.users[v % 6].1 = (v % 2 == 0).then_some((v / 6) % 8),
            5 => self.users[v % 6].2 = value,
            6 => self.users[v % 6].0 = if v % 3 == 0 { (v / 6) % 6 } else { v % 6 },
            7 => self.tokens[v % 3].2 = ((v / 3) % 3) as u8,
            8 => self.tokens[v % 3].1 = (v / 3) % 8,
            _ => self.tokens[v % 3].0 ^= true,
        }
    }

    /// The files and their texts.
    fn files(&self) -> BTreeMap<&'static str, String> {
        let header = "apiVersion: stagegate.dev/v1alpha1\nkind:";
        let user = |(name, username, display): &(usize, Option<usize>, u8)| {
            let username = username.map_or(String::new(), |u| format!("  username: u{u}\n"));
            format!("{header} User\nmetadata:\n  name: u{name}\n  namespace: t\nspec:\n  displayName: Name {display}\n{username}")
        };
        let binding = |(name, user, role, global): &(usize, usize, usize, bool)| {
            let scope = if *global {
                ""
            } else {
                "  scope:\n    customer: acme\n"
            };
            format!(
                "{header} AccessBinding\nmetadata:\n  name: b{name}\n  namespace: t\nspec:\n  user: u{user}\n  role: {}\n{scope}",
                ROLES[*role]
            )
        };
        let token = |i: usize, (other, owner, secret): &(bool, usize, u8)| {
            let ns = if *other { "s" } else { "t" };
            let secret = match secret {
                0 => String::new(),
                1 => format!("  secretName: u{owner}-password\n"),
                _ => format!("  secretName: k{}-token\n", (i + 1) % 3),
            };
            format!("{header} ApiToken\nmetadata:\n  name: k{i}\n  namespace: {ns}\nspec:\n  role: Analyst\n  owner: u{owner}\n  validity: 30d\n{secret}")
        };
        let request = |i: usize, (model, at, by): &(usize, usize, usize)| {
            let at = match at {
                0 => String::new(),
                n => format!(
                    "  annotations:\n    stagegate.dev/requested-at: \"2026-01-0{n}T00:00:00Z\"\n"
                ),
            };
            format!("{header} ModelStageRequest\nmetadata:\n  name: r{i}\n  namespace: t\n{at}spec:\n  model: m{model}\n  from: None\n  to: Dev\n  requestedBy: u{by}\n")
        };
        let join = |docs: Vec<String>| docs.join("---\n");
        BTreeMap::from([
            (
                "users-a.yaml",
                join(
                    self.users[..3]
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| self.gone_user != Some(*i))
                        .map(|(_, u)| user(u))
                        .collect(),
                ),
            ),
            (
                "users-b.yaml",
                join(
                    self.users[3..]
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| self.gone_user != Some(i + 3))
                        .map(|(_, u)| user(u))
                        .collect(),
                ),
            ),
            (
                "bind-a.yaml",
                join(self.bindings[..3].iter().map(binding).collect()),
            ),
            (
                "bind-b.yaml",
                join(
                    self.bindings[3..]
                        .iter()
                        .chain(self.extra.map(|(n, u)| (n, u, 2, false)).as_ref())
                        .map(binding)
                        .collect(),
                ),
            ),
            (
                "requests-a.yaml",
                join(
                    self.requests[..2]
                        .iter()
                        .enumerate()
                        .map(|(i, r)| request(i, r))
                        .collect(),
                ),
            ),
            (
                "requests-b.yaml",
                join(
                    self.requests[2..]
                        .iter()
                        .enumerate()
                        .map(|(i, r)| request(i + 2, r))
                        .collect(),
                ),
            ),
            (
                "tokens.yaml",
                join(
                    self.tokens
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| self.gone_token != Some(*i))
                        .map(|(i, t)| token(i, t))
                        .collect(),
                ),
            ),
        ])
    }

    /// Writes the files that differ from `before`, as editors do (temp file + rename).
    fn write(&self, dir: &Path, before: &BTreeMap<&str, String>) -> Vec<std::path::PathBuf> {
        let mut paths = Vec::new();
        for (name, text) in self.files() {
            if before.get(name) == Some(&text) {
                continue;
            }
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, &text).unwrap();
            std::fs::rename(&tmp, dir.join(name)).unwrap();
            paths.extend([tmp, dir.join(name)]);
        }
        paths
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// For random runs of edits, valid and invalid, made to files of several objects
    /// (declarations changed, added and removed): the part the daemon would validate alone
    /// (the changed files and every file of a User, binding or owned token of a username
    /// the edited or removed declarations name) is validated alone only when every rule's
    /// group lies within it, and then its diagnostics are exactly those the whole
    /// directory's validation gives the part's files (a stage request's warnings too:
    /// requests of one model at one instant, an unknown requester); a part with no error is never one
    /// whose whole has an error; and the part holds every User, binding and owned token of
    /// those usernames (what the reconciler's scope widens to).
    #[test]
    fn a_part_is_validated_alone_exactly_as_within_the_whole_or_not_at_all(
        edits in proptest::collection::vec((0u8..16, 0u8..64), 1..12)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut org = Org::start();
        let mut files = BTreeMap::new();
        org.write(dir.path(), &files);
        files = org.files();
        let mut cache = DirCache::new(dir.path());
        cache.refresh(false).unwrap();
        let mut whole = cache.snapshot();
        validate(&mut whole);
        proptest::prop_assert!(!whole.has_errors(), "{:?}", whole.diagnostics);
        let mut kept = Kept::new(&whole);
        let mut before = whole.diagnostics.clone();
        let (mut alone, mut accepted) = (0, 0);
        for (what, value) in edits {
            org.edit(what, value);
            let paths = org.write(dir.path(), &files);
            files = org.files();
            let refresh = cache.refresh_paths(&paths).expect("plain files refresh alone");
            let mut whole = cache.snapshot();
            validate(&mut whole);
            let was = std::mem::replace(&mut before, whole.diagnostics.clone());
            let changed: BTreeSet<String> = refresh.changed.iter().map(|(f, _)| f.clone()).collect();
            let (Some(k), Some(edits)) = (kept.as_mut(), refresh.edits.as_ref()) else {
                kept = Kept::new(&whole);
                continue;
            };
            // As the daemon builds a part: with every request of the models the changed
            // files' requests name, before and now.
            let mut part_files = k.files_of(&edits.usernames);
            part_files.extend(changed.iter().cloned());
            let part = cache.snapshot_of(&part_files, &changed);
            let with_requests = k.with_requests(
                part.requests.iter().map(|r| (r.object.spec.scope(), r.object.spec.model.as_str())),
                &changed,
            );
            part_files.extend(with_requests.iter().cloned());
            let mut part = cache.snapshot_of(&part_files, &with_requests);
            let closed = !k.moves_a_requester_claim(&part, &changed)
                && validate_part(&mut part, &k.outside(&part_files, &with_requests));
            if closed {
                alone += 1;
                let mut expected: Vec<_> = whole
                    .diagnostics
                    .iter()
                    .filter(|d| d.file.as_ref().is_some_and(|f| part_files.contains(f)))
                    .cloned()
                    .collect();
                expected.sort();
                let mut got = part.diagnostics.clone();
                got.sort();
                proptest::prop_assert_eq!(got, expected, "{:?} {:?}", org, part_files);
                // Nothing outside the part changed its diagnostics: what the daemon keeps
                // of them holds.
                let outside = |diags: &[crate::snapshot::Diagnostic]| -> BTreeSet<String> {
                    diags
                        .iter()
                        .filter(|d| !d.file.as_ref().is_some_and(|f| part_files.contains(f)))
                        .map(ToString::to_string)
                        .collect()
                };
                proptest::prop_assert_eq!(outside(&whole.diagnostics), outside(&was), "{:?} {:?}", org, part_files);
                let keys = |s: &Snapshot| -> BTreeSet<ObjectKey> {
                    s.users.iter().map(|d| d.key())
                        .chain(s.bindings.iter().map(|d| d.key()))
                        .chain(s.tokens.iter().map(|d| d.key()))
                        .collect()
                };
                let needed: BTreeSet<ObjectKey> = whole.users.iter()
                    .filter(|u| edits.usernames.contains(&u.object.username()))
                    .map(|d| d.key())
                    .chain(whole.bindings.iter().filter(|b| edits.usernames.contains(&b.object.spec.user)).map(|d| d.key()))
                    .chain(whole.tokens.iter().filter(|t| t.object.spec.owner.as_ref().is_some_and(|o| edits.usernames.contains(o))).map(|d| d.key()))
                    .collect();
                proptest::prop_assert!(needed.is_subset(&keys(&part)), "{:?}", org);
            }
            if closed && !part.has_errors() {
                accepted += 1;
                proptest::prop_assert!(!whole.has_errors(), "{:?}: {:?}", org, whole.diagnostics);
                k.update(&part, &changed);
            } else {
                kept = Kept::new(&whole);
            }
        }
        // Not a figure asserted: most runs validate some parts alone, some fall back.
        let _ = (alone, accepted);
    }
}

/// `org` written to a new directory: the directory, its cache, the whole validated and
/// the index of that validation.
fn written(org: &Org) -> (tempfile::TempDir, DirCache, Snapshot, Kept) {
    let dir = tempfile::tempdir().unwrap();
    org.write(dir.path(), &BTreeMap::new());
    let mut cache = DirCache::new(dir.path());
    cache.refresh(false).unwrap();
    let mut whole = cache.snapshot();
    validate(&mut whole);
    let kept = Kept::new(&whole).expect("a valid organization");
    (dir, cache, whole, kept)
}

/// The part the daemon validates for `edits` to the files `changed` (see
/// `Worker::part`), and whether it was validated alone.
fn part_of(
    kept: &Kept,
    cache: &DirCache,
    edits: &crate::sources::watch::Edits,
    changed: &BTreeSet<String>,
) -> (bool, Snapshot) {
    let mut part_files = kept.files_of(&edits.usernames);
    part_files.extend(changed.iter().cloned());
    let part = cache.snapshot_of(&part_files, changed);
    let with_requests = kept.with_requests(
        part.requests
            .iter()
            .map(|r| (r.object.spec.scope(), r.object.spec.model.as_str())),
        changed,
    );
    part_files.extend(with_requests.iter().cloned());
    let mut part = cache.snapshot_of(&part_files, &with_requests);
    let closed = !kept.moves_a_requester_claim(&part, changed)
        && validate_part(&mut part, &kept.outside(&part_files, &with_requests));
    (closed, part)
}

#[test]
fn a_part_is_validated_alone_when_each_rule_group_lies_within_it() {
    let org = Org::start();
    let (dir, mut cache, _, kept) = written(&org);
    type Edit = fn(&mut Org);
    // (edit, validated alone?, with an error?)
    let cases: [(&str, Edit, bool, bool); 12] = [
        ("a role changed", |o| o.bindings[0].2 = 1, true, false),
        (
            "a binding to an undeclared user",
            |o| o.bindings[0].1 = 7,
            true,
            false,
        ),
        (
            "a Developer bound globally",
            |o| o.bindings[0] = (0, 0, 3, true),
            true,
            true,
        ),
        (
            "b1 renamed b0 (b1 is gone, b0 twice in its file)",
            |o| o.bindings[1].0 = 0,
            true,
            true,
        ),
        ("a new binding b6", |o| o.extra = Some((6, 1)), true, false),
        (
            "a second b3, in b3's file",
            |o| o.extra = Some((3, 1)),
            true,
            true,
        ),
        (
            "a second b0, in another file",
            |o| o.extra = Some((0, 4)),
            false,
            false,
        ),
        (
            "u1 claims username u4",
            |o| o.users[1].1 = Some(4),
            true,
            true,
        ),
        (
            "k0 delivers to k1's Secret",
            |o| o.tokens[0].2 = 2,
            true,
            true,
        ),
        (
            "r3 requested by another user (its model's requests are all in its file)",
            |o| o.requests[3].2 = 4,
            true,
            false,
        ),
        (
            "r2 requests r0's model at r0's instant (r0's file joins the part)",
            |o| o.requests[2] = (0, 1, 2),
            true,
            false,
        ),
        (
            "r0 requests a model of the other file's requests (that file joins the part)",
            |o| o.requests[0].0 = 2,
            true,
            false,
        ),
    ];
    for (what, edit, alone, error) in cases {
        let mut o = org.clone();
        edit(&mut o);
        let paths = o.write(dir.path(), &org.files());
        let refresh = cache.refresh_paths(&paths).unwrap();
        let changed: BTreeSet<String> = refresh.changed.iter().map(|(f, _)| f.clone()).collect();
        // A declaration gone from a file: what changed object by object is not told.
        let Some(edits) = refresh.edits.clone() else {
            assert!(!alone, "{what}");
            let back = org.write(dir.path(), &o.files());
            cache.refresh_paths(&back).unwrap();
            continue;
        };
        let (closed, part) = part_of(&kept, &cache, &edits, &changed);
        assert_eq!(closed, alone, "{what}");
        if closed {
            assert_eq!(part.has_errors(), error, "{what}: {:?}", part.diagnostics);
        }
        // Put the organization back for the next case.
        let back = org.write(dir.path(), &o.files());
        cache.refresh_paths(&back).unwrap();
    }
}

#[test]
fn a_change_to_a_request_brings_every_request_of_its_model_into_the_part() {
    // r2 (requests-b) requests r0's model (requests-a) at r0's instant: r2 warns.
    let mut org = Org::start();
    org.requests[2] = (0, 1, 2);
    let (dir, mut cache, whole, kept) = written(&org);
    type Edit = fn(&mut Org);
    // (edit, whether the other requests file is in the part): r0 leaving m0 ends r2's
    // warning (m0 named before), r1 joining m2 meets r3 (named now); a user's edit reads
    // no request.
    let cases: [(&str, Edit, bool); 4] = [
        ("r0 requests another model", |o| o.requests[0].0 = 1, true),
        ("r1 requests r3's model", |o| o.requests[1].0 = 2, true),
        (
            "r2 requested by another user",
            |o| o.requests[2].2 = 4,
            true,
        ),
        ("u5 renamed for display", |o| o.users[5].2 = 9, false),
    ];
    let before = whole.diagnostics.clone();
    for (what, edit, both) in cases {
        let mut o = org.clone();
        edit(&mut o);
        let paths = o.write(dir.path(), &org.files());
        let refresh = cache.refresh_paths(&paths).unwrap();
        let changed: BTreeSet<String> = refresh.changed.iter().map(|(f, _)| f.clone()).collect();
        let edits = refresh.edits.clone().expect("object by object");
        let (closed, part) = part_of(&kept, &cache, &edits, &changed);
        assert!(closed, "{what}");
        let files: BTreeSet<&str> = part
            .requests
            .iter()
            .filter_map(|r| r.source.file.as_deref())
            .collect();
        assert_eq!(files.len() == 2, both, "{what}: {files:?}");
        // The part's diagnostics are the whole's of its files, and nothing outside it
        // changed its own.
        let mut whole = cache.snapshot();
        validate(&mut whole);
        let part_files: BTreeSet<&str> = part
            .users
            .iter()
            .map(|d| &d.source)
            .chain(part.bindings.iter().map(|d| &d.source))
            .chain(part.tokens.iter().map(|d| &d.source))
            .chain(part.requests.iter().map(|d| &d.source))
            .filter_map(|s| s.file.as_deref())
            .collect();
        let of = |diags: &[crate::snapshot::Diagnostic], inside: bool| -> BTreeSet<String> {
            diags
                .iter()
                .filter(|d| d.file.as_deref().is_some_and(|f| part_files.contains(f)) == inside)
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            of(&part.diagnostics, true),
            of(&whole.diagnostics, true),
            "{what}"
        );
        assert_eq!(of(&whole.diagnostics, false), of(&before, false), "{what}");
        let back = org.write(dir.path(), &o.files());
        cache.refresh_paths(&back).unwrap();
    }
}
