//! Identity store, plan/apply and directory delivery, driven through the real binary
//! (and, for crash injection, through the library with failing wrappers).

mod crash;
mod invalid;
mod lifecycle;
mod no_secret_leaks;
mod noop;

use crate::stores::StoreKind;
use serde_json::Value;
use stagegate::store::{AnyStore, Store};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A temporary installation: a copy of `examples/` plus store, secrets and key paths.
pub struct Env {
    /// Keeps the directory alive.
    pub _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    /// A SQLite file path, or a `postgres://` URL (see [`Env::on`]).
    pub store: PathBuf,
    pub secrets: PathBuf,
    pub key_file: PathBuf,
}

impl Env {
    /// A copy of `examples/` in a fresh temporary directory.
    pub fn from_examples() -> Env {
        let env = Env::empty();
        for e in std::fs::read_dir(crate::support::root().join("examples")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, env.dir.join(p.file_name().unwrap())).unwrap();
            }
        }
        env
    }

    /// An empty manifest directory.
    pub fn empty() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("manifests");
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            store: tmp.path().join("state/store.db"),
            secrets: tmp.path().join("state/secrets"),
            key_file: tmp.path().join("state/server.key"),
            dir,
            _tmp: tmp,
        }
    }

    /// The same installation with its store of `kind` (a fresh one).
    pub fn on(mut self, kind: StoreKind) -> Env {
        self.store = kind.location(&self.store);
        self
    }

    /// Writes a manifest file.
    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join(file), text).unwrap();
    }

    /// Replaces `from` by `to` in a manifest file (which must contain it).
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let p = self.dir.join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{file} does not contain {from:?}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }

    /// Writes a Secret manifest into the secrets directory (for passwordSecretRef).
    pub fn write_secret(&self, ns: &str, name: &str, key: &str, value: &str) {
        let d = self.secrets.join(ns);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("{name}.yaml")),
            format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\nstringData:\n  {key}: {value}\n"),
        )
        .unwrap();
    }

    fn common_args(&self) -> Vec<String> {
        vec![
            "--dir".into(),
            self.dir.display().to_string(),
            "--store".into(),
            self.store.display().to_string(),
            "--secrets-dir".into(),
            self.secrets.display().to_string(),
            "--server-key-file".into(),
            self.key_file.display().to_string(),
            // Cheap argon2 keeps debug-build tests fast; the parameters are stored in each PHC string.
            "--argon2-memory-kib".into(),
            "64".into(),
            "--argon2-iterations".into(),
            "1".into(),
        ]
    }

    /// Runs `stagegate <cmd> --dir .. --store .. --secrets-dir .. ARGS` with RUST_LOG=debug.
    pub fn run(&self, cmd: &str, args: &[&str]) -> Output {
        let mut c = crate::support::stagegate();
        c.env("RUST_LOG", "debug").arg(cmd);
        if cmd == "status" {
            c.args(["--store", &self.store.display().to_string()]);
        } else {
            c.args(self.common_args());
        }
        c.args(args).output().unwrap()
    }

    /// `apply -o json`: exit code and outcomes.
    pub fn apply(&self) -> (i32, Vec<Value>, Output) {
        let o = self.run("apply", &["--output", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "apply did not print JSON ({e}): {}\n{}",
                crate::support::stdout(&o),
                crate::support::stderr(&o)
            )
        });
        (o.status.code().unwrap(), v.as_array().unwrap().clone(), o)
    }

    /// Opens the store.
    pub fn open(&self) -> AnyStore {
        AnyStore::open(&self.store).unwrap()
    }

    /// The parsed Secret manifest `<secrets>/<ns>/<name>.yaml`, if present.
    pub fn secret(&self, ns: &str, name: &str) -> Option<serde_yaml::Value> {
        let text = std::fs::read_to_string(self.secret_path(ns, name)).ok()?;
        Some(serde_yaml::from_str(&text).unwrap())
    }

    /// Path of a delivered Secret file.
    pub fn secret_path(&self, ns: &str, name: &str) -> PathBuf {
        self.secrets.join(ns).join(format!("{name}.yaml"))
    }

    /// Every stringData value of every Secret file (the issued secrets).
    pub fn all_secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ns in std::fs::read_dir(&self.secrets).into_iter().flatten() {
            for f in std::fs::read_dir(ns.unwrap().path()).unwrap() {
                let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
                let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
                if let Some(m) = v["stringData"].as_mapping() {
                    for (k, val) in m {
                        if k.as_str() != Some("username") {
                            out.push(val.as_str().unwrap().to_string());
                        }
                    }
                }
            }
        }
        out
    }

    /// The server key the binary created.
    pub fn server_key(&self) -> stagegate::secrets::ServerKey {
        stagegate::secrets::ServerKey::load_or_create(&self.key_file).unwrap()
    }
}

/// The outcome of `kind ns/name` in an apply's JSON.
pub fn outcome<'a>(outcomes: &'a [Value], kind: &str, name: &str) -> &'a Value {
    outcomes
        .iter()
        .find(|o| o["kind"] == kind && o["name"] == name)
        .unwrap_or_else(|| panic!("no outcome for {kind} {name} in {outcomes:#?}"))
}

/// Modification time of a file.
pub fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// The number of audit rows.
pub fn audit_count(s: &dyn Store) -> usize {
    s.audit(0).unwrap().len()
}
