//! The layers read one way: a module imports only from its own layer or below.
//!
//! `resources`/`policy`/`render` → `snapshot` (the shared vocabulary) →
//! `validate`, `store`, `secrets` → `plan` → `apply`, `bootstrap` →
//! `sources`, `api`, `diff` → `cli`. Test code (a `tests.rs` file, a
//! `*_tests.rs` file, or what follows `#[cfg(test)]`) may reach higher.

use crate::support::root;
use std::collections::BTreeMap;
use std::path::Path;

/// Layer of each top-level module of `src/`; lower numbers sit lower.
const LAYERS: &[(&str, u8)] = &[
    ("resources", 0),
    ("policy", 0),
    ("render", 0),
    ("snapshot", 1),
    ("validate", 2),
    ("store", 2),
    ("secrets", 2),
    ("plan", 3),
    ("apply", 4),
    ("bootstrap", 4),
    ("sources", 5),
    ("api", 5),
    ("diff", 5),
    ("cli", 6),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` a non-test part of `src/<module>` names, as (file, line, target).
fn upward_imports() -> Vec<String> {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let module = rel
            .split(['/', '.'])
            .next()
            .unwrap()
            .trim_end_matches("_tests");
        let name = file.file_name().unwrap().to_string_lossy();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let Some(&own) = layer.get(module) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, target) in upward_in(own, &text) {
            found.push(format!("src/{rel}:{line}: {module} imports {target}"));
        }
    }
    found
}

/// The modules above layer `own` that `text` names before its first `#[cfg(test)]`, as (line, module).
fn upward_in(own: u8, text: &str) -> Vec<(usize, String)> {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        for (i, _) in line.match_indices("crate::") {
            let target: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if layer
                .get(target.as_str())
                .is_some_and(|&theirs| theirs > own)
            {
                found.push((n + 1, target));
            }
        }
    }
    found
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let found = upward_imports();
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    for line in lib.lines() {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|m| m.strip_suffix(';'))
        {
            assert!(
                layer.contains_key(m),
                "src/lib.rs declares `{m}` but it has no layer here"
            );
        }
    }
}

#[test]
fn the_scanner_sees_an_upward_import_and_ignores_test_code() {
    // The debt this pins: ObjectKey, Snapshot, … were defined in `plan`, and
    // `validate`, `store` and `secrets` imported upward to reach them.
    let text = "use crate::snapshot::ObjectKey;\nuse crate::plan::{plan, Plan};\n#[cfg(test)]\nuse crate::cli::now;\n";
    assert_eq!(upward_in(2, text), vec![(2, "plan".to_string())]);
    assert!(upward_in(3, text).is_empty());
}
