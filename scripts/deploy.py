"""`make deploy`, `make diff`, `make destroy`: plain Terraform on the synthesized stacks, in order.

    python -m scripts.deploy deploy  [--stacks infra,ray,ray-cluster]   # apply, in order
    python -m scripts.deploy diff    [--stacks ...]                     # plan each stack
    python -m scripts.deploy destroy [--stacks ...]                     # destroy, in reverse order

First what needs no plan: terraform (1.10 or later), the AWS CLI and working credentials for the account (the
emulator's with ``endpoints.url``); then a synth of the config (RAY_EKS_CONFIG) into cdktf.out; then each stack,
initialised in this deployment's own Terraform data directory (scripts/tf.py) and refused when its state belongs to
another deployment. With ``cluster.endpoint_access: tunnel`` the ray stacks run through `make tunnel`'s port-forward:
opened after the infra stack, closed at the end (a tunnel that was already open stays open); what it needs from this
machine (the Session Manager plugin, the local port free) is checked before anything is applied.

The stack's Terraform output goes to the terminal; a failure ends with one line saying what failed and what to do,
and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from config import AppConfig
from stacks.contract import INFRA_STACK, STACK_ORDER

from . import load_config_or_report
from .aws_cli import INSTALL_AWS_CLI, Aws, AwsError
from .tf import ROOT, Terraform, TerraformError, check_terraform, describe
from .tunnel import TunnelError, check_can_open, close_tunnel, open_tunnel

VERBS = {"deploy": ("apply", "-auto-approve"), "diff": ("plan",), "destroy": ("destroy", "-auto-approve")}


class DeployError(Exception):
    pass


def synth() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=ROOT)
    if r.returncode != 0:
        raise DeployError("the synth failed (above): fix the config, then run the command again")


def run(cfg: AppConfig, verb: str, stacks: list[str]) -> None:
    check_terraform()
    if not Aws.installed():
        raise DeployError(f"the AWS CLI is not on PATH: {INSTALL_AWS_CLI}")
    if cfg.cluster.endpoint_access == "tunnel" and any(s != INFRA_STACK for s in stacks):
        # Before the infra stack's half hour, not after it: the ray stacks reach the API only through the tunnel.
        try:
            check_can_open(cfg)
        except TunnelError as e:
            raise DeployError(f"the ray stacks reach the private API through `make tunnel`, and {e}") from None
    me = Aws(cfg).caller()
    print(f"{verb}: deployment {describe({'name': cfg.name, 'region': cfg.region})}, account {me.get('Account')}, "
          f"as {me.get('Arn')}", flush=True)
    synth()
    tf = Terraform(cfg)
    order = [s for s in (reversed(STACK_ORDER) if verb == "destroy" else STACK_ORDER) if s in stacks]
    opened = False
    try:
        for stack in order:
            print(f"--- {stack}", flush=True)
            tf.init(stack)
            tf.guard(stack)
            if stack != INFRA_STACK:
                if not tf.outputs(INFRA_STACK):
                    if verb == "deploy":
                        raise DeployError(f"stack {stack} needs the infra stack applied first: run `make deploy`")
                    print(f"{stack}: skipped, the infra stack is not deployed", flush=True)
                    continue
                if verb == "destroy" and not tf.outputs(stack):
                    print(f"{stack}: nothing to destroy", flush=True)
                    continue
                if cfg.cluster.endpoint_access == "tunnel":
                    _, now = open_tunnel(cfg)
                    opened = opened or now
            r = tf.run(stack, *VERBS[verb], "-input=false", capture=False)
            if r.returncode != 0:
                raise DeployError(f"terraform {VERBS[verb][0]} of stack {stack} failed (above)")
    finally:
        if opened:
            close_tunnel(cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("verb", choices=tuple(VERBS))
    ap.add_argument("--stacks", default=",".join(STACK_ORDER),
                    help=f"comma-separated, of {', '.join(STACK_ORDER)} (default: all)")
    ns = ap.parse_args(argv)
    stacks = [s.strip() for s in ns.stacks.split(",") if s.strip()]
    unknown = [s for s in stacks if s not in STACK_ORDER]
    if unknown or not stacks:
        print(f"error: STACKS: {', '.join(unknown) or 'empty'} is not a stack (have {', '.join(STACK_ORDER)})",
              file=sys.stderr)
        return 2
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    try:
        run(cfg, ns.verb, stacks)
    except (DeployError, TerraformError, TunnelError, AwsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (a session we started is stopped on the way)
        print("error: interrupted (terraform, stopped by Ctrl-C, records what it applied): run the command again "
              "to go on", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
