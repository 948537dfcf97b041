"""Every make target a user runs after the deploy tells the truth: with the cluster absent (no kubeconfig, no tunnel,
nothing deployed) `make tunnel`, `dashboard`, `token`, `submit`, `grafana`, `pipeline`, `job-yaml` and `image` exit
non-zero with one line that says what to do, and nothing of kubectl's `localhost:8080` noise (the cluster checks are
scripts/cluster_access.py's, one owner for the Ray targets and `make grafana`). Run through make, as users run
them, with the real kubectl, terraform (the offline provider mirror) and states that real terraform wrote.

And the tunnel's TLS for real: a server holding a certificate for an EKS endpoint's host name, on 127.0.0.1, is
reached by the tunnel's own check and by kubectl through a kubeconfig with ``tls-server-name``, and refused without
it -- what the providers' ``tls_server_name`` and `make kubeconfig` rely on.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from config import parse_config
from scripts.cluster_access import NotReady, check_cluster
from scripts.ray_commands import check_ray_deployed
from scripts.tunnel import api_answers
from tests.helpers import app_env, run_make

ENDPOINT_HOST = "0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"
CLUSTER_ARN = "arn:aws:eks:us-west-2:123456789012:cluster/ray-eks"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _errors(r: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]


def _env(tmp: Path, outdir: Path, config: dict | None = None, **extra: str) -> dict:
    path = None
    if config is not None:
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(config))
    env = app_env(config=path, outdir=outdir)
    env.update(RAY_EKS_BUILD_DIR=str(tmp / "build"), KUBECONFIG=str(tmp / "kubeconfig"), **extra)
    return env


def _kubeconfig(path: Path, server: str, cluster: str = CLUSTER_ARN, ca: str | None = None,
                server_name: str | None = None) -> None:
    entry: dict = {"server": server}
    if ca:
        entry["certificate-authority-data"] = ca
    if server_name:
        entry["tls-server-name"] = server_name
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": cluster, "cluster": entry}],
        "contexts": [{"name": "ctx", "context": {"cluster": cluster, "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}]}))


@pytest.fixture(scope="module")
def outdir(default_synth, tmp_path_factory) -> Path:
    """The default synth, copied: terraform init writes lock files into the stacks it runs in."""
    out = tmp_path_factory.mktemp("after-deploy") / "cdktf.out"
    shutil.copytree(default_synth["_outdir"], out)
    return out


# ------------------------------------------------------------------------------------------- nothing deployed
CLUSTER_TARGETS = ["dashboard", "token", "submit", "grafana"]


def _config(target: str, **sections) -> dict:
    """The defaults (and ``sections``), with kube-prometheus-stack for `make grafana` (else it has no Grafana)."""
    return {**sections, **({"observability": {"kube_prometheus_stack": True}} if target == "grafana" else {})}


@pytest.mark.parametrize("target", CLUSTER_TARGETS)
def test_without_a_kubeconfig_the_cluster_targets_say_make_kubeconfig(target, tmp_path, outdir):
    r = run_make(target, env=_env(tmp_path, outdir, _config(target)))
    assert r.returncode != 0 and r.stdout == "", r.stdout
    (line,) = _errors(r)
    # The default reaches the API through the tunnel: `make kubeconfig`, not a bare update-kubeconfig (private API).
    assert "no kubeconfig" in line and line.endswith(
        "run `make kubeconfig` (it points kubectl at the tunnel, https://127.0.0.1:8443)"), line
    assert "localhost:8080" not in r.stderr


@pytest.mark.parametrize("target", CLUSTER_TARGETS)
def test_without_the_tunnel_the_cluster_targets_say_make_tunnel(target, tmp_path, outdir):
    port = _free_port()  # nothing listens: the tunnel is not open
    _kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{port}", server_name=ENDPOINT_HOST)
    r = run_make(target, env=_env(tmp_path, outdir, _config(target, cluster={"tunnel_local_port": port})))
    assert r.returncode != 0 and r.stdout == ""
    (line,) = _errors(r)
    assert line.endswith("refused the connection): run `make tunnel`"), line


@pytest.mark.parametrize("target", ["token", "grafana"])
def test_another_clusters_context_is_not_used(target, tmp_path, outdir):
    _kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", cluster="arn:aws:eks:eu-west-1:1:cluster/other")
    r = run_make(target, env=_env(tmp_path, outdir, _config(target)))
    (line,) = _errors(r)
    assert r.returncode != 0 and "not the EKS cluster ray-eks in us-west-2: run `make kubeconfig`" in line


@pytest.mark.parametrize("target, namespace", [("dashboard", "ray"), ("token", "ray"), ("grafana", "monitoring")])
def test_with_the_cluster_reachable_and_nothing_deployed_the_cluster_targets_say_make_deploy(target, namespace,
                                                                                              tmp_path, outdir):
    """Through the tunnel's address to an API that answers (TLS for the endpoint's host name) and has none of our
    namespaces: one line naming the namespace and `make deploy`."""
    with _api_server(tmp_path) as (port, ca):
        _kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{port}", ca=ca, server_name=ENDPOINT_HOST)
        r = run_make(target, env=_env(tmp_path, outdir, _config(target, cluster={"tunnel_local_port": port})))
    assert r.returncode != 0 and r.stdout == "", r.stdout
    (line,) = _errors(r)
    assert line.startswith(f"error: namespace {namespace} does not exist: ") and line.endswith("(run `make deploy`)"), \
        line


def test_tunnel_pipeline_job_yaml_and_image_say_make_deploy_when_nothing_is_deployed(tmp_path, outdir):
    env = _env(tmp_path, outdir)
    for target in ("tunnel", "pipeline", "job-yaml", "image"):
        r = run_make(target, env=env)
        assert r.returncode != 0, (target, r.stdout)
        (line,) = _errors(r)
        assert "is not deployed" in line and "run `make deploy`" in line, (target, line)


def test_pipeline_without_an_orchestrator_says_so(tmp_path, outdir):
    r = run_make("pipeline", env=_env(tmp_path, outdir, {"orchestrator": {"enabled": False}}))
    (line,) = _errors(r)
    assert r.returncode != 0 and "orchestrator.enabled: false" in line


def _terraform(cwd: Path, *args: str) -> None:
    r = subprocess.run(["terraform", *args, "-no-color"], cwd=cwd, capture_output=True, text=True, timeout=300,
                       env={**app_env(), "CHECKPOINT_DISABLE": "1"})
    assert r.returncode == 0, r.stderr


def test_tunnel_without_the_session_manager_plugin_says_how_to_install_it(tmp_path, outdir):
    """A deployed infra stack (a state real terraform wrote, with the outputs `make tunnel` reads) on a machine
    without the plugin: one line with the install page, before anything is started."""
    state = outdir.parent / "state" / "ray-eks" / "us-west-2" / "infra.tfstate"
    maker = tmp_path / "maker"
    maker.mkdir()
    values = {"deployment": {"name": "ray-eks", "region": "us-west-2"}, "cluster_name": "ray-eks",
              "region": "us-west-2", "cluster_endpoint": f"https://{ENDPOINT_HOST}",
              "cluster_certificate_authority_data": "Y2E=", "api_tunnel_instance_id": "i-0123456789abcdef0"}
    (maker / "main.tf.json").write_text(json.dumps({
        "terraform": {"backend": {"local": {"path": str(state)}}},
        "output": {k: {"value": v} for k, v in values.items()}}))
    _terraform(maker, "init", "-input=false")
    _terraform(maker, "apply", "-auto-approve", "-input=false")
    try:
        path = ":".join(p for p in app_env()["PATH"].split(":")
                        if not (Path(p) / "session-manager-plugin").exists())
        r = run_make("tunnel", env=_env(tmp_path, outdir, PATH=path))
    finally:
        state.unlink()
    assert r.returncode != 0
    (line,) = _errors(r)
    assert line.startswith("error: session-manager-plugin is not on PATH: install the AWS CLI's Session Manager "
                           "plugin: https://docs.aws.amazon.com/systems-manager/"), line


# ------------------------------------------------------------------------------------------- TLS through 127.0.0.1
def _certificates(tmp: Path) -> tuple[Path, Path, str]:
    """A CA and a server certificate for ENDPOINT_HOST only (no IP address): the server's files and the CA's PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    cert = (x509.CertificateBuilder().subject_name(server_name)
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(ENDPOINT_HOST.lower())]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp / "server.crt", tmp / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM).decode()


class _Api(http.server.BaseHTTPRequestHandler):
    """Answers /livez like an API server; every object is absent (nothing deployed)."""

    def do_GET(self):
        if self.path.startswith("/livez"):
            body, status, kind = b"ok", 200, "text/plain"
        else:
            body, status, kind = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                             "reason": "NotFound", "code": 404,
                                             "message": f"{self.path} not found"}).encode(), 404, "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def _api_server(tmp: Path) -> Iterator[tuple[int, str]]:
    cert, key, ca_pem = _certificates(tmp)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], base64.b64encode(ca_pem.encode()).decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_kubeconfig_at_the_private_endpoint_in_tunnel_mode_says_make_kubeconfig(tmp_path, monkeypatch):
    """What a bare `aws eks update-kubeconfig` writes (the endpoint's host as server) cannot reach a tunnel-mode API:
    the hint is `make kubeconfig`, which points kubectl at the tunnel, and names no bare update-kubeconfig again."""
    kubeconfig = tmp_path / "kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    _kubeconfig(kubeconfig, f"https://{ENDPOINT_HOST}")
    with pytest.raises(NotReady) as e:
        check_cluster(parse_config({"cluster": {"tunnel_local_port": 8444}}))
    assert str(e.value) == (f"kubectl calls https://{ENDPOINT_HOST}, but the API is private and reached through the "
                            f"tunnel: run `make kubeconfig` (it points kubectl at the tunnel, https://127.0.0.1:8444), "
                            f"then `make tunnel`")


def test_the_api_is_reached_on_127_0_0_1_by_its_endpoint_host_name(tmp_path, monkeypatch):
    with _api_server(tmp_path) as (port, ca):
        # The tunnel's own check (scripts/tunnel.py): TLS with the cluster's CA and the endpoint's host name.
        assert api_answers(port, ENDPOINT_HOST, ca) is None
        assert "does not match 127.0.0.1" in api_answers(port, "127.0.0.1", ca)
        # kubectl: the kubeconfig `make kubeconfig` writes in tunnel mode, and the same without tls-server-name.
        kubeconfig = tmp_path / "kubeconfig"
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        _kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", ca=ca, server_name=ENDPOINT_HOST)
        ok = subprocess.run(["kubectl", "get", "--raw", "/livez"], capture_output=True, text=True, timeout=60)
        assert (ok.returncode, ok.stdout) == (0, "ok"), ok.stderr
        cfg = parse_config({"cluster": {"tunnel_local_port": port}})
        check_cluster(cfg)  # what `make token` checks first: this cluster, reachable
        with pytest.raises(NotReady, match=r"namespace ray does not exist: the ray stacks are not deployed \(run "
                                           r"`make deploy`\)"):
            check_ray_deployed(cfg, token=True)
        _kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", ca=ca)
        refused = subprocess.run(["kubectl", "get", "--raw", "/livez"], capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "certificate" in refused.stderr, refused.stderr
