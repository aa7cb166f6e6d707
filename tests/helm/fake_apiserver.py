"""A stand-in Kubernetes API server, just enough for Helm's `lookup`.

Rendering offline, `lookup` finds nothing, as on a first install. To check
what a chart does on upgrade (e.g. that a generated key is kept), render.py
serves the objects of a previous render from this server and renders
cluster-aware: Helm's own `lookup` then reads them over HTTP. It answers
discovery for the core group and GET of single core/v1 objects; everything
else is 404.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Enough of a kubeconfig for client-go; the server address is passed
# separately (kube_apiserver).
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: []
contexts: []
users: []
"""


def _plural(kind: str) -> str:
    return kind.lower() + "s"


class FakeApiServer:
    """Serves `objects` (core/v1 dicts) at their REST paths until closed."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        by_path: dict[str, dict[str, Any]] = {}
        kinds: dict[str, str] = {}
        for obj in objects:
            if obj.get("apiVersion") != "v1":
                raise ValueError(f"only core/v1 objects are served, not {obj.get('apiVersion')}")
            meta = obj.get("metadata") or {}
            plural = _plural(obj["kind"])
            kinds[plural] = obj["kind"]
            by_path[f"/api/v1/namespaces/{meta['namespace']}/{plural}/{meta['name']}"] = obj
        resources = [
            {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": ["get"]}
            for plural, kind in kinds.items()
        ]
        routes: dict[str, Any] = {
            "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
            "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources},
            "/version": {"major": "1", "minor": "31", "gitVersion": "v1.31.0"},
            **by_path,
        }

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep stderr for errors
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = routes.get(self.path.split("?", 1)[0])
                code = 200 if body is not None else 404
                if body is None:
                    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
