//! `stagegate apply --dir DIR`: one reconcile of a manifest directory into the store, then exit.

use crate::apply::{all_ready, Outcome};
use crate::secrets::{
    PasswordParams, PasswordPolicy, GENERATED_PASSWORD_CHARS, MIN_PASSWORD_CHARS_FLOOR,
};
use crate::sources::directory::{reconcile, DirOptions, DEFAULT_SECRETS_DIR, DEFAULT_STORE};
use clap::builder::TypedValueParser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Store, secrets and key locations shared by `apply`, `plan` and `run --dir`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Identity store: a SQLite file, or a `postgres://` URL shared by several processes
    /// (its password from STAGEGATE_STORE_PASSWORD or STAGEGATE_STORE_PASSWORD_FILE, or inside
    /// the URL only when the URL comes from STAGEGATE_STORE; never on the command line).
    #[arg(long, default_value = DEFAULT_STORE, env = "STAGEGATE_STORE")]
    pub store: PathBuf,
    /// Directory Secrets are delivered to (and passwordSecretRef Secrets read from); never inside --dir.
    #[arg(long, default_value = DEFAULT_SECRETS_DIR, env = "STAGEGATE_SECRETS_DIR")]
    pub secrets_dir: PathBuf,
    /// HMAC key file (created 0600 at first start); default <store dir>/server.key.
    #[arg(long, env = "STAGEGATE_SERVER_KEY_FILE")]
    pub server_key_file: Option<PathBuf>,
    /// argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, default_value_t = PasswordParams::default().m_cost, hide_short_help = true)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations (OWASP: 2).
    #[arg(long, default_value_t = PasswordParams::default().t_cost, hide_short_help = true)]
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    #[arg(long, default_value_t = PasswordParams::default().p_cost, hide_short_help = true)]
    pub argon2_lanes: u32,
    /// Fewest characters (Unicode scalar values) a password may have, 8 to 24.
    ///
    /// Every password set from a passwordSecretRef Secret must also be at
    /// most 1024 bytes (what login accepts), valid UTF-8, not empty or only
    /// whitespace, free of control characters (a trailing newline, say), and
    /// not one of the most common passwords. A refused
    /// password never replaces the one in force: the User is Ready=False with
    /// reason PasswordBlank, PasswordNotUtf8, PasswordControlCharacter, PasswordTooShort,
    /// PasswordTooLong or PasswordTooCommon. Generated passwords are 24
    /// characters, so they always pass.
    #[arg(long, default_value_t = PasswordPolicy::default().min_chars,
          value_parser = clap::value_parser!(u16).range(MIN_PASSWORD_CHARS_FLOOR as i64..=GENERATED_PASSWORD_CHARS as i64)
              .map(usize::from))]
    pub password_min_length: usize,
    /// Refuse (and report) every declaration made outside a pinned access
    /// domain: in a namespace no AccessDomain pins, or in a file outside every
    /// folder `access-domains.yaml` pins (the platform pins its own folder, or
    /// namespace, to the global scope `{}`).
    #[arg(long, env = "STAGEGATE_REQUIRE_ACCESS_DOMAIN")]
    pub require_access_domain: bool,
}

impl StoreArgs {
    /// Directory options for `dir`.
    pub fn options(&self, dir: PathBuf) -> DirOptions {
        DirOptions {
            dir,
            store: self.store.clone(),
            secrets_dir: self.secrets_dir.clone(),
            server_key_file: self.server_key_file.clone(),
            password_params: self.password_params(),
            require_access_domain: self.require_access_domain,
        }
    }

    /// The argon2id cost.
    pub fn password_params(&self) -> PasswordParams {
        PasswordParams {
            m_cost: self.argon2_memory_kib,
            t_cost: self.argon2_iterations,
            p_cost: self.argon2_lanes,
            policy: PasswordPolicy {
                min_chars: self.password_min_length,
            },
        }
    }

    /// Refuses a PostgreSQL store without `--server-key-file`: replicas sharing one store must
    /// share one key (it checks every token), and a URL has no directory to keep it beside.
    pub fn check_key_file(&self) -> anyhow::Result<()> {
        if crate::store::pg::is_url(&self.store) && self.server_key_file.is_none() {
            anyhow::bail!(
                "--store {} is a PostgreSQL URL: pass --server-key-file (the same key for every process sharing the store)",
                crate::store::AnyStore::describe(&self.store)
            );
        }
        Ok(())
    }

    /// The server key file: `--server-key-file`, or `server.key` next to the store.
    pub fn key_file(&self) -> PathBuf {
        crate::sources::directory::key_file_for(&self.store, self.server_key_file.as_deref())
    }
}

/// Arguments of `stagegate apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of manifests.
    #[arg(long)]
    pub dir: PathBuf,
    /// Store, secrets and key locations.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: super::ReportFormat,
}

/// Prints each object's outcome; exit 0 when all are ready, 1 when any is not (or a file failed to load).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.store.check_key_file()?;
    let opts = args.store.options(args.dir);
    let r = reconcile(&opts, crate::snapshot::now())?;
    for d in &r.snapshot.diagnostics {
        eprintln!("{d}");
    }
    print_outcomes(&r.outcomes, args.output)?;
    if args.output == super::ReportFormat::Text {
        eprintln!(
            "applied {} change(s) to {}; secrets in {}",
            r.plan.data_changes().count(),
            crate::store::AnyStore::describe(&opts.store),
            opts.secrets_dir.display()
        );
    }
    // A file that failed to load is not an object, but its objects are not reconciled either.
    Ok(
        if all_ready(&r.outcomes) && r.snapshot.broken_files.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// Prints outcomes as a table or a JSON array of `{kind, namespace, name, ready, reason, phase, message}`.
pub fn print_outcomes(outcomes: &[Outcome], format: super::ReportFormat) -> anyhow::Result<()> {
    match format {
        super::ReportFormat::Json => out(&format!("{}\n", serde_json::to_string_pretty(outcomes)?)),
        super::ReportFormat::Text => {
            let rows: Vec<Vec<String>> = outcomes
                .iter()
                .map(|o| {
                    vec![
                        crate::snapshot::ObjectKey::new(&o.kind, &o.namespace, &o.name).to_string(),
                        if o.ready { "True" } else { "False" }.to_string(),
                        o.reason.clone(),
                        o.phase.clone().unwrap_or_else(|| "-".into()),
                        o.message.clone(),
                    ]
                })
                .collect();
            print_table(&["OBJECT", "READY", "REASON", "PHASE", "MESSAGE"], &rows);
        }
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`| head`) ends output quietly instead of panicking.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    out(&crate::render::text_table(header, rows));
}
