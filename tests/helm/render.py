#!/usr/bin/env python3
"""Lint or render a Helm chart with Helm's own code, without a `helm` binary.

Uses the `helm-python-sdk` package (module `helm_python`), which loads
Helm's Go SDK as a shared library. The Rust integration tests
(tests/integration/helm.rs) run this script; it is also handy by hand:

    python3 tests/helm/render.py lint charts/stagegate -f charts/stagegate/ci/ha-values.yaml
    python3 tests/helm/render.py template charts/stagegate --namespace stagegate

`lint` prints every finding as `[SEVERITY] path: message` and fails on
errors (and, with --strict, the default, on warnings), like `helm lint`.
`template` prints the rendered manifests as one multi-document YAML stream,
each document preceded by `# Source: <template>`, like `helm template`;
values are validated against values.schema.json first.
With `--live FILE`, it renders as an upgrade instead: a stand-in API server
(fake_apiserver.py) serves the objects in FILE to Helm's `lookup`.

Exit status: 0 success, 1 lint findings or render/schema failure, 2 usage or
environment error (e.g. the package is not installed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge values files left to right, as repeated `-f` does."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_values(helm: Any, files: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in files:
        values = merge(values, helm.values_from_yaml(Path(name).read_text()))
    return values


def lint(helm: Any, args: argparse.Namespace) -> int:
    values = load_values(helm, args.values)
    report = helm.lint(
        args.chart,
        values,
        strict=args.strict,
        namespace=args.namespace,
        kube_version=args.kube_version,
    )
    threshold = 2 if args.strict else 3
    failed = bool(report.get("errors"))
    for message in report.get("messages") or []:
        severity = int(message.get("severity", 0))
        label = SEVERITY.get(severity, str(severity))
        print(f"[{label}] {message.get('path', '')}: {message.get('error', '')}")
        failed = failed or severity >= threshold
    for error in report.get("errors") or []:
        print(f"[ERROR] {error}")
    linted = report.get("total_charts_linted", 0)
    print(f"{linted} chart(s) linted, {'FAILED' if failed else 'no failures'}")
    return 1 if failed or linted < 1 else 0


def render_upgrade(helm: Any, chart: Any, values: dict[str, Any], args: argparse.Namespace) -> dict[str, str]:
    """Render as an upgrade of a release whose live objects are `--live` files."""
    from fake_apiserver import KUBECONFIG, FakeApiServer

    objects: list[dict[str, Any]] = []
    for name in args.live:
        loaded = json.loads(Path(name).read_text())
        objects.extend(loaded if isinstance(loaded, list) else [loaded])
    with FakeApiServer(objects) as server, helm.Config(
        kubeconfig_content=KUBECONFIG, kube_apiserver=server.url, namespace=args.namespace
    ) as config:
        rendered: dict[str, str] = config.render(
            chart, values, name=args.name, namespace=args.namespace, is_upgrade=True
        )
        return rendered


def template(helm: Any, args: argparse.Namespace) -> int:
    values = load_values(helm, args.values)
    with helm.Chart.load(args.chart) as chart:
        # Rendering applies the schema too; checking first gives a shorter message.
        chart.validate_schema(values)
        if args.live:
            rendered = render_upgrade(helm, chart, values, args)
        else:
            rendered = chart.render(
                values,
                name=args.name,
                namespace=args.namespace,
                is_install=True,
            )
        if args.include_crds:
            for crd in sorted(chart.crds, key=lambda c: c["filename"]):
                body = crd["data"].strip()
                body = body[3:].lstrip("\n") if body.startswith("---") else body
                print(f"---\n# Source: {crd['filename']}\n{body}")
    for path in sorted(rendered):
        body = rendered[path].strip()
        if not body:
            continue
        if path.endswith("NOTES.txt"):
            if args.notes:
                sys.stderr.write(rendered[path])
            continue
        for document in body.split("\n---"):
            document = document.strip().removeprefix("---").strip()
            if document and not all(
                not line.strip() or line.lstrip().startswith("#")
                for line in document.splitlines()
            ):
                print(f"---\n# Source: {path}\n{document}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("lint", "template"):
        cmd = sub.add_parser(name)
        cmd.add_argument("chart", help="chart directory or .tgz")
        cmd.add_argument("-f", "--values", action="append", default=[], help="values file (repeatable)")
        cmd.add_argument("--namespace", default="default")
    sub.choices["lint"].add_argument("--no-strict", dest="strict", action="store_false", help="warnings do not fail")
    sub.choices["lint"].add_argument("--kube-version", default=None, help="e.g. v1.30.0")
    sub.choices["template"].add_argument("--name", default="stagegate", help="release name")
    sub.choices["template"].add_argument("--include-crds", action="store_true")
    sub.choices["template"].add_argument("--notes", action="store_true", help="print NOTES.txt to stderr")
    sub.choices["template"].add_argument(
        "--live",
        action="append",
        default=[],
        metavar="JSON",
        help="render as an upgrade: `lookup` finds the core/v1 objects in this JSON file (repeatable)",
    )
    args = parser.parse_args()

    try:
        import helm_python as helm
    except ImportError as err:
        print(f"helm-python-sdk is not installed ({err}); run `make test-deps`", file=sys.stderr)
        return 2
    try:
        return lint(helm, args) if args.command == "lint" else template(helm, args)
    except helm.HelmError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
