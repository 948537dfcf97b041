"""What every after-deploy command checks before it talks to the cluster -- one owner for `make dashboard`, `token`,
`submit` (scripts/ray_commands.py) and `make grafana` (scripts/grafana.py):

- kubectl is installed, and its current context is this deployment's EKS cluster (else: `make kubeconfig`);
- the API answers: through `make tunnel` with cluster.endpoint_access tunnel, the VPN with private, the endpoint
  with public; the credentials are an admin's;
- a namespace the ray stack creates exists (else: `make deploy`).

Each failure is ``NotReady``: one line that says what to do; the command prints it as ``error: ...`` and exits 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from config import AppConfig
from conventions.api_access import TUNNEL_HOST, TUNNEL_KUBECONFIG_COMMAND, tunnel_url

KUBECTL_TIMEOUT_S = 30
INSTALL_KUBECTL = "install kubectl: https://kubernetes.io/docs/tasks/tools/"


class NotReady(Exception):
    """One line: what is missing and the command that provides it."""


def kubectl(*args: str) -> subprocess.CompletedProcess:
    """kubectl with a bounded wait: a timeout reads like kubectl's own i/o timeout."""
    try:
        return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 1, "", f"kubectl {' '.join(args)}: no answer within "
                                                        f"{KUBECTL_TIMEOUT_S}s (i/o timeout)")


def first_error(text: str) -> str:
    """The line of kubectl's stderr that says what went wrong (its last)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def kubeconfig_hint(cfg: AppConfig) -> str:
    if cfg.cluster.endpoint_access == "tunnel":  # update-kubeconfig alone would leave kubectl at the private endpoint
        return (f"run `{TUNNEL_KUBECONFIG_COMMAND}` (it points kubectl at the tunnel, "
                f"{tunnel_url(cfg.cluster.tunnel_local_port)})")
    return f"run `make kubeconfig` (aws eks update-kubeconfig --region {cfg.region} --name {cfg.name})"


def check_cluster(cfg: AppConfig) -> None:
    """kubectl reaches this deployment's cluster; NotReady says what to do otherwise."""
    if not shutil.which("kubectl"):
        raise NotReady(f"kubectl is not on PATH: {INSTALL_KUBECTL}")
    r = kubectl("config", "view", "--minify", "-o", "json")
    view = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}
    clusters = view.get("clusters") or []
    if not clusters:
        raise NotReady(f"kubectl has no current context (no kubeconfig): {kubeconfig_hint(cfg)}")
    cluster_name = str(clusters[0].get("name", ""))
    if not cluster_name.endswith(f":cluster/{cfg.name}") or f":{cfg.region}:" not in cluster_name:
        raise NotReady(f"kubectl's current context is {cluster_name or 'another cluster'}, not the EKS cluster "
                       f"{cfg.name} in {cfg.region}: {kubeconfig_hint(cfg)}")
    server = str((clusters[0].get("cluster") or {}).get("server", ""))
    r = kubectl("get", "--raw", "/livez", f"--request-timeout={KUBECTL_TIMEOUT_S}s")
    if r.returncode == 0:
        return
    err = first_error(r.stderr)
    tunnel = cfg.cluster.endpoint_access == "tunnel"
    if tunnel and f"{TUNNEL_HOST}:{cfg.cluster.tunnel_local_port}" in server and "refused" in err:
        raise NotReady(f"no tunnel to the Kubernetes API ({server} refused the connection): run `make tunnel`")
    if tunnel and TUNNEL_HOST not in server:
        raise NotReady(f"kubectl calls {server}, but the API is private and reached through the tunnel: "
                       f"{kubeconfig_hint(cfg)}, then `make tunnel`")
    if "no such host" in err:
        raise NotReady(f"the API endpoint {server} does not resolve (the cluster is gone?): run `make deploy`, then "
                       f"`make kubeconfig`")
    if any(w in err for w in ("Unauthorized", "Forbidden", "must be logged in")):
        raise NotReady(f"the API refused your credentials ({err}): use a principal of cluster.admin_principal_arns "
                       f"(or the one that deployed: cluster.creator_is_admin)")
    if cfg.cluster.endpoint_access == "private":
        raise NotReady(f"cannot reach the private API at {server} ({err}): connect to a network of "
                       f"cluster.private_access_cidrs (VPN)")
    raise NotReady(f"cannot reach the Kubernetes API at {server} ({err})")


def check_namespace(namespace: str, what: str) -> None:
    """The namespace exists (check_cluster passed first); else the stacks that create it are not deployed.
    ``what``: what is missing then, e.g. "the ray stacks are not deployed"."""
    r = kubectl("get", "namespace", namespace, "-o", "name")
    if r.returncode != 0:
        raise NotReady(f"namespace {namespace} does not exist: {what} (run `make deploy`)")
