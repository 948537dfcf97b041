"""Ray's and KubeRay's names the platform relies on: the head's ports, the labels KubeRay puts on Ray pods, the
dashboard's addresses, and the runtime_env every job submission builds."""

from __future__ import annotations

import json
from collections.abc import Sequence

# Ports of the head service, as in the original user guide.
HEAD_PORTS = {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "metrics": 8080, "serve": 8000}
DASHBOARD_PORT = HEAD_PORTS["dashboard"]
# The dashboard as `kubectl port-forward` (the user guide's step 4) makes it reachable on the user's machine.
LOCAL_DASHBOARD_URL = f"http://localhost:{DASHBOARD_PORT}"
# Labels KubeRay puts on every pod of a RayCluster (v1.7.0 controllers/ray/utils/constant.go), and the head's
# node type.
RAY_CLUSTER_LABEL, RAY_NODE_TYPE_LABEL = "ray.io/cluster", "ray.io/node-type"
HEAD_NODE_TYPE = "head"
# On SIGTERM, Ray 2.58's `ray start --block` (the Ray container's process: KubeRay v1.7.0 common/pod.go runs it as
# the last command of `bash -c`, which bash execs) marks its node draining and waits up to this many seconds for
# the raylet to finish before it kills Ray's processes (python/ray/_private/node.py _drain_node_before_shutdown,
# ray_constants.py RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S, default 30 s: exactly Kubernetes' default grace period,
# so the kill would race SIGKILL).
GRACEFUL_SHUTDOWN_DRAIN_ENV = "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"
# What a pod's termination grace period adds to the drain: Ray's kill_all_processes after it (each process SIGTERM,
# up to a second's wait, then SIGKILL).
SHUTDOWN_MARGIN_SECONDS = 30


def worker_termination_grace_seconds(drain_seconds: int) -> int:
    """A Ray worker pod's terminationGracePeriodSeconds: its drain, then Ray's shutdown. A Karpenter NodePool's
    terminationGracePeriod is this too (conventions/karpenter.py)."""
    return drain_seconds + SHUTDOWN_MARGIN_SECONDS


def dashboard_url(head_service: str) -> str:
    return f"http://{head_service}:{DASHBOARD_PORT}"


def runtime_env(pip: Sequence[str], working_dir: str | None = None) -> dict:
    """A job's runtime_env: its files (``working_dir``) and the libraries its image lacks (``pip``: the lines of
    training/requirements.txt with a stock or custom image, none with the built one). Every job submission
    (make submit, the stack output, the submitter Job, the RayJob, the orchestrator) builds it here."""
    env: dict = {}
    if working_dir:
        env["working_dir"] = working_dir
    if pip:
        env["pip"] = list(pip)
    return env


def runtime_env_args(pip: Sequence[str]) -> list[str]:
    """``ray job submit`` arguments that add ``pip`` to the job's runtime_env (none when there is nothing to add)."""
    if not pip:
        return []
    return ["--runtime-env-json", json.dumps(runtime_env(pip), separators=(",", ":"))]
