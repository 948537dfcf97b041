"""Print outputs of this deployment's infra stack as shell assignments (NAME='value'), for make targets to eval:

    python -m scripts.infra_outputs ecr_repository_url region

Exit 1 with one line when the deployment (or the output) is not there: `make deploy` first.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from stacks.contract import INFRA_OUTPUTS, INFRA_STACK

from . import load_config_or_report
from .tf import Terraform, TerraformError, not_deployed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+", choices=INFRA_OUTPUTS, metavar="OUTPUT", help="infra outputs to print")
    ns = ap.parse_args(argv)
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    try:
        outputs = Terraform(cfg).outputs(INFRA_STACK)
    except TerraformError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    missing = [n for n in ns.names if not outputs.get(n)]
    if missing:
        why = "its infra stack has no state" if not outputs else f"no infra output {', '.join(missing)}"
        print(f"error: {not_deployed(cfg, why)}", file=sys.stderr)
        return 1
    for n in ns.names:
        print(f"{n.upper()}={shlex.quote(str(outputs[n]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
