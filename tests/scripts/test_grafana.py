"""`make grafana` (scripts/grafana.py): the login read from Grafana's Secret with the real kubectl, through a
kubeconfig pointing at a small HTTP server that answers kubectl's requests (/livez, the monitoring namespace, that
Secret) as the API server does (there is no cluster here; the port-forward itself needs one); and one line with what
to do when it cannot work. The cluster checks it shares with the Ray targets (no kubeconfig, no tunnel, nothing
deployed, through `make grafana`) are in test_after_deploy.py."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.helpers import EXAMPLES, ROOT, app_env

SECRET_PATH = "/api/v1/namespaces/monitoring/secrets/kube-prometheus-stack-grafana"
NAMESPACE_PATH = "/api/v1/namespaces/monitoring"
# The prod example's cluster (ray-prod in us-west-2), as `make kubeconfig` names it in the kubeconfig.
CLUSTER_ARN = "arn:aws:eks:us-west-2:123456789012:cluster/ray-prod"


def run(tmp_path, config, kubeconfig=None, path=None):
    env = app_env(config)
    env["KUBECONFIG"] = str(kubeconfig or tmp_path / "no-kubeconfig")
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "scripts.grafana", "--print-login-only"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# What kubectl asks before a GET: the API versions, groups and the core group's resources.
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
         "verbs": ["get", "list"], "shortNames": []},
        {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
         "verbs": ["get", "list"], "shortNames": ["ns"]}]},
}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}}


class _Api(BaseHTTPRequestHandler):
    secret: dict | None = None
    namespace: bool = True

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        kind = "application/json"
        if path == "/livez":
            body, status, kind = b"ok", 200, "text/plain"
        elif path in DISCOVERY:
            body, status = json.dumps(DISCOVERY[path]).encode(), 200
        elif path == NAMESPACE_PATH and self.namespace:
            body, status = json.dumps(NAMESPACE).encode(), 200
        elif path == SECRET_PATH and self.secret is not None:
            body, status = json.dumps(self.secret).encode(), 200
        else:
            name = path.rsplit("/", 1)[-1]
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                               "code": 404, "message": f'"{name}" not found'}).encode()
            status = 404
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def api(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": CLUSTER_ARN, "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "contexts": [{"name": "t", "context": {"cluster": CLUSTER_ARN, "user": "t"}}],
        "users": [{"name": "t", "user": {"token": "t"}}]}))
    yield kubeconfig
    server.shutdown()
    _Api.secret = None
    _Api.namespace = True


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture(scope="module")
def kubectl():
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is missing (the deploy tests need it too)")
    return path


def test_prints_the_login_from_grafanas_secret(tmp_path, api, kubectl):
    _Api.secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "kube-prometheus-stack-grafana", "namespace": "monitoring"},
                   "data": {"admin-user": b64("admin"), "admin-password": b64("s3cret-from-the-chart")}}
    r = run(tmp_path, EXAMPLES / "prod-gpu.yaml", kubeconfig=api)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "Grafana: http://localhost:3000  user: admin  password: s3cret-from-the-chart"


def test_no_secret_is_one_line_saying_to_deploy(tmp_path, api, kubectl):
    r = run(tmp_path, EXAMPLES / "prod-gpu.yaml", kubeconfig=api)
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: Grafana's Secret monitoring/kube-prometheus-stack-grafana is not there")


def test_no_monitoring_namespace_is_one_line_saying_to_deploy(tmp_path, api, kubectl):
    _Api.namespace = False
    r = run(tmp_path, EXAMPLES / "prod-gpu.yaml", kubeconfig=api)
    assert r.returncode == 1
    assert r.stderr.strip() == ("error: namespace monitoring does not exist: the ray stack is not deployed with "
                                "observability.kube_prometheus_stack: true (run `make deploy`)")


def test_no_kubeconfig_is_one_line_saying_make_kubeconfig(tmp_path, kubectl):
    r = run(tmp_path, EXAMPLES / "prod-gpu.yaml")
    assert r.returncode == 1, r.stdout
    assert r.stderr.strip() == ("error: kubectl has no current context (no kubeconfig): run `make kubeconfig` (aws eks "
                                "update-kubeconfig --region us-west-2 --name ray-prod)")


def test_no_kubectl_is_one_line(tmp_path):
    r = run(tmp_path, EXAMPLES / "prod-gpu.yaml", path="/nonexistent")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: kubectl is not on PATH: install kubectl: https://kubernetes.io/docs/tasks/tools/"


def test_no_grafana_in_this_deployment_is_one_line(tmp_path):
    r = run(tmp_path, None)  # the defaults: no kube-prometheus-stack
    assert r.returncode == 1
    assert r.stderr.strip() == ("error: this deployment has no Grafana: set observability.kube_prometheus_stack: "
                                "true and deploy")
