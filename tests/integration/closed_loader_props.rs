//! Issue 11 "Fail closed", the loader's property: arbitrary bytes and
//! well-formed but hostile manifests given to the loader and `validate` never
//! panic, are handled in bounded time (small inputs, a fixed number of cases)
//! and every document either loads, is counted as another kind, or is reported.

use proptest::prelude::*;
use stagegate::snapshot::{split_documents, strip_bom, Snapshot};
use stagegate::sources::files::{load_bytes, load_text};

/// Every document of `text` is accounted for in `snap`: loaded, skipped or reported.
fn every_document_accounted(text: &str, snap: &Snapshot) -> Result<(), TestCaseError> {
    if !snap.broken_files.is_empty() {
        // A file broken as a whole is reported as such.
        prop_assert!(snap.diagnostics.iter().any(|d| d.is_error()));
        return Ok(());
    }
    let docs = split_documents(strip_bom(text));
    let loaded = snap.users.len() + snap.bindings.len() + snap.tokens.len() + snap.requests.len();
    let skipped: usize = snap.skipped.values().sum();
    let reported: std::collections::BTreeSet<_> = snap
        .diagnostics
        .iter()
        .filter_map(|d| {
            let line = d.line?;
            docs.iter().rposition(|doc| doc.first_line <= line)
        })
        .collect();
    prop_assert!(
        loaded + skipped + reported.len() >= docs.len(),
        "{} documents, {loaded} loaded, {skipped} skipped, {} reported: {:#?}",
        docs.len(),
        reported.len(),
        snap.diagnostics
    );
    for d in &snap.diagnostics {
        prop_assert!(!d.message.is_empty());
    }
    Ok(())
}

/// Loads, checks the accounting, then validates the result (which must not panic either).
fn load_and_validate(text: &str) -> Result<(), TestCaseError> {
    let mut snap = load_text("hostile.yaml", text);
    every_document_accounted(text, &snap)?;
    stagegate::validate::validate(&mut snap);
    let _ = stagegate::plan::ordered_requests(&snap);
    Ok(())
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,20}",
        Just("../m".to_string()),
        Just("/etc".to_string()),
        Just("a/b".to_string()),
        Just(".hidden".to_string()),
        Just("x".repeat(300)),
        "\\PC{0,12}",
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,12}",
        "\\PC{0,16}".prop_map(|s| format!("{s:?}")),
        Just("~".to_string()),
        Just("[".repeat(70)),
        Just("{a: {b: {c: [1, [2, [3]]]}}}".to_string()),
        Just("*undefined".to_string()),
        Just("!!binary aGk=".to_string()),
        Just("99999999999999999999999d".to_string()),
        Just("2026-11-02T09:00:00Z".to_string()),
    ]
}

fn document() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("User"),
            Just("AccessBinding"),
            Just("ApiToken"),
            Just("ModelStageRequest"),
            Just("ConfigMap"),
            Just(""),
        ],
        prop_oneof![
            Just("stagegate.dev/v1alpha1"),
            Just("stagegate.dev/v9"),
            Just("v1")
        ],
        name(),
        name(),
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("username"),
                    Just("user"),
                    Just("role"),
                    Just("scope"),
                    Just("owner"),
                    Just("validity"),
                    Just("rotation"),
                    Just("secretName"),
                    Just("model"),
                    Just("from"),
                    Just("to"),
                    Just("requestedBy"),
                    Just("passwordSecretRef"),
                    Just("state"),
                    Just("extra")
                ],
                scalar(),
            ),
            0..8,
        ),
        any::<bool>(),
    )
        .prop_map(|(kind, api, ns, n, fields, annotate)| {
            let mut doc = format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {n:?}\n  namespace: {ns:?}\n"
            );
            if annotate {
                doc.push_str(
                    "  annotations:\n    stagegate.dev/requested-at: \"2026-11-02T09:00:00Z\"\n",
                );
            }
            doc.push_str("spec:\n");
            for (k, v) in fields {
                doc.push_str(&format!("  {k}: {v}\n"));
            }
            doc
        })
}

/// A file of hostile documents, with the framing attackers vary: BOM, separators, end markers, anchors.
fn file() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(document(), 1..5),
        any::<bool>(),
        prop_oneof![Just("---\n"), Just("--- \n"), Just("...\n---\n"), Just("---\n# c\n")],
        prop_oneof![
            Just(String::new()),
            Just("x: &a [1, 2]\ny: [*a, *a, *a]\n".to_string()),
            Just(format!("deep: {}\n", "- ".repeat(500))),
            Just("a: &a [x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c]\n".to_string()),
        ],
    )
        .prop_map(|(docs, bom, sep, extra)| {
            let mut text = if bom { "\u{FEFF}".to_string() } else { String::new() };
            text.push_str(&docs.join(sep));
            if !extra.is_empty() {
                text.push_str(sep);
                text.push_str(&extra);
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn loader_arbitrary_bytes_never_panic_and_are_loaded_or_reported(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut snap = load_bytes("bytes.yaml", bytes.clone());
        match String::from_utf8(bytes) {
            Ok(text) => every_document_accounted(&text, &snap)?,
            Err(_) => prop_assert!(snap.broken_files.contains("bytes.yaml")),
        }
        stagegate::validate::validate(&mut snap);
    }

    #[test]
    fn loader_arbitrary_yamlish_text_never_panics(text in "([-:{}\\[\\]#&*!|>'\" \n?,a-z0-9]|\u{FEFF}){0,400}") {
        load_and_validate(&text)?;
    }

    #[test]
    fn loader_hostile_manifests_load_or_are_reported(text in file()) {
        load_and_validate(&text)?;
    }
}
