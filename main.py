#!/usr/bin/env python
"""cdktf app entry point: `cdktf synth` runs this, and so can `python main.py`.

The config is validated before anything heavy is imported or written: bad input costs well under a
second and leaves any previous cdktf.out untouched.
"""

from __future__ import annotations

import sys


def main() -> int:
    from config import ConfigError, load_config

    try:
        cfg = load_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in cfg.warnings():
        print(f"WARNING: {w}", file=sys.stderr)

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
    sys.exit(main())
