"""`make grafana`: port-forward kube-prometheus-stack's Grafana to your machine and print how to log in.

    python -m scripts.grafana [--print-login-only]

Grafana has no anonymous access: the chart generated its admin password into the Secret
``kube-prometheus-stack-grafana`` at install; this reads it with your kubectl credentials when you run it (it is in
no Terraform state or output). Then it runs ``kubectl port-forward`` to the Grafana service on the port of
``observability.grafana_iframe_host`` (3000 by default) until you stop it: log in once at that URL, and the Ray
dashboard (`make dashboard`, http://localhost:8265) shows Grafana's panels in its Metrics view.

Before that it checks what every after-deploy command checks (scripts/cluster_access.py: kubectl, a kubeconfig
context for this cluster, the API reachable -- through `make tunnel` with cluster.endpoint_access tunnel --, the
monitoring namespace deployed), then its own: kube_prometheus_stack on, Grafana's Secret there.

Exit status: 0 after the port-forward ends normally; 1 with one line saying what to do (`make kubeconfig`,
`make tunnel`, `make deploy`...) when kube_prometheus_stack is off, kubectl or a kubeconfig is missing, the cluster
cannot be reached, the monitoring namespace or the Secret is not there; 2 on bad config.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
from urllib.parse import urlparse

from conventions.monitoring import GRAFANA_NAME, GRAFANA_SECRET_KEYS, GRAFANA_SERVICE_PORT

from . import load_config_or_report
from .cluster_access import NotReady, check_cluster, check_namespace, first_error, kubectl

GRAFANA_SECRET = GRAFANA_NAME
GRAFANA_SERVICE = f"svc/{GRAFANA_NAME}"


def local_port(iframe_host: str) -> int:
    """The port the browser reaches Grafana on: grafana_iframe_host's when it is this machine, else 3000."""
    url = urlparse(iframe_host)
    if url.hostname in ("localhost", "127.0.0.1") and url.port:
        return url.port
    return 3000


def read_login(namespace: str) -> tuple[str, str]:
    """The admin login from Grafana's Secret (the cluster checked reachable first)."""
    r = kubectl("get", "secret", "-n", namespace, GRAFANA_SECRET, "-o", "json", "--request-timeout=20s")
    if r.returncode != 0:
        if "NotFound" in r.stderr or "not found" in r.stderr:
            raise NotReady(f"Grafana's Secret {namespace}/{GRAFANA_SECRET} is not there: deploy with "
                           f"observability.kube_prometheus_stack: true (make deploy) first")
        raise NotReady(f"kubectl cannot read {namespace}/{GRAFANA_SECRET} ({first_error(r.stderr)})")
    data = json.loads(r.stdout).get("data") or {}
    try:
        user, password = (base64.b64decode(data[k]).decode() for k in GRAFANA_SECRET_KEYS)
        return user, password
    except KeyError as e:
        raise NotReady(f"{namespace}/{GRAFANA_SECRET} has no {e.args[0]} key: is it kube-prometheus-stack's?") from e


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--print-login-only", action="store_true", help="print the login, do not port-forward")
    ns = ap.parse_args(argv)
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    obs = cfg.observability
    try:
        if not obs.kube_prometheus_stack:
            raise NotReady("this deployment has no Grafana: set observability.kube_prometheus_stack: true and deploy")
        check_cluster(cfg)
        check_namespace(obs.monitoring_namespace, "the ray stack is not deployed with "
                                                  "observability.kube_prometheus_stack: true")
        user, password = read_login(obs.monitoring_namespace)
    except NotReady as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    port = local_port(obs.grafana_iframe_host)
    print(f"Grafana: http://localhost:{port}  user: {user}  password: {password}")
    print("Log in there once; the Ray dashboard (make dashboard, http://localhost:8265) then shows Grafana's "
          "panels. Stop with Ctrl-C.")
    if ns.print_login_only:
        return 0
    sys.stdout.flush()
    r = subprocess.run(["kubectl", "port-forward", "-n", obs.monitoring_namespace, GRAFANA_SERVICE,
                        f"{port}:{GRAFANA_SERVICE_PORT}"])
    if r.returncode not in (0, -2, 130):  # Ctrl-C ends it normally
        print(f"error: kubectl port-forward to {GRAFANA_SERVICE} ended with status {r.returncode}: is port {port} "
              f"free, and is Grafana running (kubectl get pods -n {obs.monitoring_namespace})?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
