"""Print the user guide's commands for this deployment, from the same config and functions the stacks use
for their outputs: `make dashboard` and `make submit` run what this prints.

    python -m scripts.ray_commands dashboard    # kubectl port-forward to the Ray head's dashboard (8265)
    python -m scripts.ray_commands submit [ARG ...]   # ray job submit of the training job (ARGs replace training.args)
"""

from __future__ import annotations

import argparse
import sys

from config import ConfigError, load_config
from constructs_lib.ray_manifests import job_submit_command, port_forward_command
from stacks.contract import TRAINING_SCRIPT, job_pip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("dashboard", "submit"))
    ap.add_argument("args", nargs=argparse.REMAINDER, help="submit: the training job's arguments")
    ns = ap.parse_args(argv)
    try:
        cfg = load_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if ns.command == "dashboard":
        print(port_forward_command(cfg.ray.namespace, cfg.ray.head_service))
    else:
        print(job_submit_command(TRAINING_SCRIPT, tuple(ns.args or cfg.training.args), job_pip(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
