"""Print the user guide's commands for this deployment, from the same config and functions the stacks use
for their outputs: `make dashboard`, `make token` and `make submit` run what this prints.

    python -m scripts.ray_commands dashboard    # kubectl port-forward to the Ray head's dashboard (8265)
    python -m scripts.ray_commands token        # kubectl command printing the cluster's Ray token (the dashboard asks)
    python -m scripts.ray_commands submit [ARG ...]   # export the token, then ray job submit of the training job
                                                      # (ARGs replace training.args)
"""

from __future__ import annotations

import argparse
import sys

from config import ConfigError, load_config
from conventions.commands import job_submit_command, port_forward_command, token_command, token_export_command
from stacks.contract import TRAINING_SCRIPT, job_pip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("dashboard", "token", "submit"))
    ap.add_argument("args", nargs=argparse.REMAINDER, help="submit: the training job's arguments")
    ns = ap.parse_args(argv)
    try:
        cfg = load_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    namespace, cluster = cfg.ray.namespace, cfg.ray.cluster_name
    if ns.command == "dashboard":
        # stdout is run by `make dashboard`; the hint goes to the terminal.
        print(f"The dashboard asks for the cluster's token: `make token` prints it "
              f"({token_command(namespace, cluster)}).", file=sys.stderr)
        print(port_forward_command(namespace, cfg.ray.head_service))
    elif ns.command == "token":
        print(token_command(namespace, cluster))
    else:
        # The job API requires the token: `ray job submit` sends it when RAY_AUTH_MODE=token and RAY_AUTH_TOKEN are set.
        print(token_export_command(namespace, cluster))
        print(job_submit_command(TRAINING_SCRIPT, tuple(ns.args or cfg.training.args), job_pip(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
