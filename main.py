#!/usr/bin/env python
"""Synthesize the stacks (infra, ray, ray-cluster) of the Ray-on-EKS deployment into Terraform JSON.

`make synth` runs this, and so does `cdktf synth` (cdktf.json). The config is validated before anything heavy is
imported or written: bad input costs well under a second, prints one line and leaves any previous cdktf.out
untouched.
"""

from __future__ import annotations

import argparse
import sys

EPILOG = """environment:
  RAY_EKS_CONFIG        the YAML config (default: the built-in defaults; see docs/configuration.md)
  CDKTF_OUTDIR          where to write (default: cdktf.out)
  RAY_EKS_PLAIN_IMPORTS=1  load the provider packages the plain, slow way

exit status: 0 written; 2 bad config (one line naming the field); 1 the synth failed."""


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="main.py", description=__doc__.splitlines()[0], epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    from config import ConfigError, load_config

    try:
        cfg = load_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in cfg.warnings():
        print(f"warning: {w}", file=sys.stderr)

    import fast_imports

    fast_imports.install()  # load provider resources on first use: ~10x faster synth; RAY_EKS_PLAIN_IMPORTS=1 opts out
    from stacks.app import synth

    try:
        synth(cfg)
    except Exception as e:  # one clear line, never a stack trace
        print(f"error: synth failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
