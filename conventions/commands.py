"""The shell commands the user guide gives, one owner for all of them: the ray-cluster stack's outputs, the make
targets (scripts/ray_commands.py) and the README run exactly these."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from .kubernetes import RAY_AUTH_ENV, RAY_AUTH_TOKEN_KEY, auth_secret_name
from .ray import DASHBOARD_PORT, LOCAL_DASHBOARD_URL, runtime_env_args


def token_command(namespace: str, ray_cluster_name: str) -> str:
    """Prints the cluster's Ray token (kubectl decodes the Secret's base64 itself: no base64 flag differences)."""
    template = f"{{{{.data.{RAY_AUTH_TOKEN_KEY} | base64decode}}}}"
    return shlex.join(["kubectl", "get", "secret", "-n", namespace, auth_secret_name(ray_cluster_name),
                       "-o", f"go-template={template}"])


def token_export_command(namespace: str, ray_cluster_name: str) -> str:
    """Exports what `ray job submit` needs to call a token-auth cluster: run it before submitting."""
    token = token_command(namespace, ray_cluster_name)
    return f"export {RAY_AUTH_ENV['mode']}=token {RAY_AUTH_ENV['token']}=\"$({token})\""


def port_forward_command(namespace: str, head_service: str) -> str:
    return f"kubectl port-forward -n {namespace} svc/{head_service} {DASHBOARD_PORT}:{DASHBOARD_PORT}"


def job_submit_command(script: str, args: tuple[str, ...], pip: Sequence[str]) -> str:
    """`ray job submit` through the dashboard port-forward, run from the repository root."""
    return shlex.join(["ray", "job", "submit", "--address", LOCAL_DASHBOARD_URL, "--working-dir", "training",
                       *runtime_env_args(pip), "--", "python", script, *args])
