//! The examples under each command's `--help`, as raw text.
//!
//! clap wraps help text to the terminal, and a command line wrapped in the
//! middle cannot be pasted: every example line stays under 72 columns, and a
//! longer command continues on the next line after a `\`, as in a shell
//! (a test runs every `--help` at 80 columns and checks no example wraps).

/// `stagegate validate --help`.
pub const VALIDATE: &str = "\
Examples:
  stagegate validate examples/
  stagegate validate examples/users.yaml --output json";

/// `stagegate can-i --help`.
pub const CAN_I: &str = "\
Exit: 0 yes, 1 no, 2 errors (a missing store, an incomplete question:
models:view and models:deploy need a MODEL, models:transition a MODEL
and --to).
Examples:
  stagegate can-i --dir examples --as alan models:view fraud-detector
  stagegate can-i --dir examples --as maria \\
      models:transition churn-model --to Dev --explain
  stagegate can-i --store .stagegate/store.db --as ada \\
      users:manage --scope acme";

/// `stagegate apply --help`.
pub const APPLY: &str = "\
Exit: 0 every object ready, 1 any not ready (or a file failed to load),
2 errors.
Example:
  stagegate apply --dir examples --store .stagegate/store.db \\
      --secrets-dir .stagegate/secrets";

/// `stagegate plan --help`.
pub const PLAN: &str = "\
Each change starts with a marker: + adds, ~ changes, - removes,
! decides a stage request (once, for good), · updates a status.
Example:
  stagegate plan --dir examples --output markdown";

/// `stagegate run --help`.
pub const RUN: &str = "\
Stops cleanly on SIGTERM or Ctrl-C (exit 0).
Examples:
  stagegate run --dir examples
  stagegate run --dir manifests --store /var/lib/stagegate/store.db \\
      --secrets-dir /var/lib/stagegate/secrets --resync 1m
  stagegate run --kube --namespace ml-platform \\
      --store /var/lib/stagegate/store.db";

/// `stagegate status --help`.
pub const STATUS: &str = "\
Exit: 0 every object ready, 1 any not ready or a manifest file broken.
Example:
  stagegate status --output json";

/// `stagegate crds --help`.
pub const CRDS: &str = "\
Examples:
  stagegate crds | kubectl apply -f -
  stagegate crds --out-dir crds/";

/// `stagegate diff --help`.
pub const DIFF: &str = "\
Examples:
  stagegate diff --base ../main/examples --head examples
  stagegate diff --base-ref origin/main --head examples \\
      --output markdown > comment.md
  stagegate diff --base old/ --head new/ --output json \\
      --fail-on never --max-validity 30d

Exit codes: 0 no escalation, 1 escalation (with --fail-on escalation, the
default) or errors in head, 2 usage errors.
--base-ref reads the base with the git command (git ls-tree and git show),
without a second checkout.";

/// `stagegate audit --help`.
pub const AUDIT: &str = "\
Exit: 0 (also when nothing matches), 2 errors (such as a missing store).
Examples:
  stagegate audit --since 24h
  stagegate audit --user ada --output json
  stagegate audit --object AccessBinding/ml-platform/ada-admin";
