"""The user guide's commands for this deployment, from the same config and functions the stacks use for their outputs,
after checking that they can work: `make dashboard`, `make token`, `make submit` and `make pipeline` run what this
prints.

    python -m scripts.ray_commands dashboard    # kubectl port-forward to the Ray head's dashboard (8265)
    python -m scripts.ray_commands token        # kubectl command printing the cluster's Ray token (the dashboard asks)
    python -m scripts.ray_commands submit [ARG ...]   # export the token, then ray job submit of the training job
                                                      # (ARGs replace training.args)
    python -m scripts.ray_commands pipeline     # start the Step Functions pipeline (the ray stack's output)

Before printing, it checks what the command needs -- kubectl and a kubeconfig context for this cluster, the API
reachable (through `make tunnel` with cluster.endpoint_access tunnel), the Ray stacks deployed (those three are
scripts/cluster_access.py's, shared with `make grafana`), and for submit the dashboard's port-forward and a Ray
client at the cluster's version -- and otherwise prints one line on stderr saying what to do (`make kubeconfig`,
`make tunnel`, `make deploy`, `make dashboard`, `make client`) and exits 1, printing nothing to run. ``--no-check``
prints the command only.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from pathlib import Path

from config import AppConfig
from conventions.commands import job_submit_command, port_forward_command, token_command
from conventions.kubernetes import RAY_AUTH_ENV, auth_secret_name
from conventions.ray import DASHBOARD_PORT
from stacks.contract import INFRA_STACK, RAY_STACK, TRAINING_SCRIPT, job_pip

from . import load_config_or_report
from .cluster_access import NotReady, check_cluster, check_namespace, first_error, kubectl


def check_ray_deployed(cfg: AppConfig, token: bool) -> None:
    ns = cfg.ray.namespace
    check_namespace(ns, "the ray stacks are not deployed")
    if token:
        secret = auth_secret_name(cfg.ray.cluster_name)
        r = kubectl("get", "secret", "-n", ns, secret, "-o", "name")
        if r.returncode != 0:
            raise NotReady(f"the RayCluster's token (Secret {ns}/{secret}) does not exist: the ray-cluster stack is "
                           f"not deployed (run `make deploy`) or KubeRay has not created it yet "
                           f"({first_error(r.stderr)})")


def check_dashboard_forwarded() -> None:
    with socket.socket() as s:
        s.settimeout(2)
        if s.connect_ex(("127.0.0.1", DASHBOARD_PORT)) != 0:
            raise NotReady(f"nothing listens on localhost:{DASHBOARD_PORT}: run `make dashboard` in another terminal "
                           f"first (the job API is reached through its port-forward)")


def check_ray_client(cfg: AppConfig) -> None:
    """The `ray` that `make submit` runs (build/ray-client first on its PATH) is the cluster's version: installed
    there (`make client`) when it is not."""
    from .client_env import DEFAULT_DIR, ensure

    want = cfg.ray.ray_version
    problem = ensure(DEFAULT_DIR, want)
    if problem:
        raise NotReady(problem)
    ray = shutil.which("ray")
    if ray is None or Path(ray).resolve() != (DEFAULT_DIR / "bin" / "ray").resolve():
        raise NotReady(f"`ray` on PATH is {ray or 'missing'}, not the client of {DEFAULT_DIR}: run `make submit` "
                       f"(it puts {DEFAULT_DIR / 'bin'} first on PATH)")


def submit_script(cfg: AppConfig, args: tuple[str, ...]) -> str:
    """Export the token (a failed kubectl stops the script: no empty token reaches ray), then submit."""
    token = token_command(cfg.ray.namespace, cfg.ray.cluster_name)
    mode, var = RAY_AUTH_ENV["mode"], RAY_AUTH_ENV["token"]
    return "\n".join([
        f"{var}=\"$({token})\" || {{ echo 'error: could not read the Ray token (above): run `make token` to see "
        f"why' >&2; exit 1; }}",
        f"export {mode}=token {var}",
        job_submit_command(TRAINING_SCRIPT, args, job_pip(cfg)),
    ])


def pipeline_command(cfg: AppConfig) -> str:
    if not cfg.orchestrator_enabled:
        raise NotReady("the orchestrator is off (orchestrator.enabled: false): there is no pipeline to start")
    from .tf import Terraform, TerraformError, not_deployed

    tf = Terraform(cfg)
    try:
        # The infra stack first: it needs only the AWS provider, the ray stack the Kubernetes ones too.
        if not tf.outputs(INFRA_STACK):
            raise NotReady(not_deployed(cfg))
        command = tf.outputs(RAY_STACK).get("start_execution_command")
    except TerraformError as e:
        raise NotReady(str(e)) from None
    if not command:
        raise NotReady(f"the ray stack of {cfg.name} ({cfg.region}) is not deployed (no start_execution_command "
                       f"output): run `make deploy`")
    return str(command)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-check", action="store_true", help="print the command without checking it can work")
    ap.add_argument("command", choices=("dashboard", "token", "submit", "pipeline"))
    ap.add_argument("args", nargs=argparse.REMAINDER, help="submit: the training job's arguments")
    ns = ap.parse_args(argv)
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    namespace, cluster = cfg.ray.namespace, cfg.ray.cluster_name
    try:
        if ns.command == "pipeline":
            print(pipeline_command(cfg))
            return 0
        if not ns.no_check:
            check_cluster(cfg)
            check_ray_deployed(cfg, token=ns.command != "dashboard")
            if ns.command == "submit":
                check_dashboard_forwarded()
                check_ray_client(cfg)
    except NotReady as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if ns.command == "dashboard":
        # stdout is run by `make dashboard`; the hint goes to the terminal.
        print(f"The dashboard asks for the cluster's token: `make token` prints it "
              f"({token_command(namespace, cluster)}).", file=sys.stderr)
        print(port_forward_command(namespace, cfg.ray.head_service))
    elif ns.command == "token":
        print(token_command(namespace, cluster))
    else:
        print(submit_script(cfg, tuple(ns.args or cfg.training.args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
