"""`make client`: the Ray client `make submit` runs, in a small environment of its own -- ``ray[default]`` at the
cluster's Ray version (ray.ray_version) and nothing else (no torch, CUDA, moto or pytest).

    python -m scripts.client_env [DIR]      # default build/ray-client; then DIR/bin/ray job submit ...

The job API of a token-protected RayCluster needs a client of Ray 2.52 or later (an older one gets 401), and the
dashboard's job client expects its own version: the environment follows the config's version, and is rebuilt when
that changes. Without make: ``pip install "ray[default]==<ray.ray_version>"`` in any Python 3.10-3.12 environment.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

from . import load_config_or_report
from .tf import BUILD

DEFAULT_DIR = BUILD / "ray-client"


def requirement(ray_version: str) -> str:
    return f"ray[default]=={ray_version}"


def installed_version(directory: Path) -> str | None:
    ray = directory / "bin" / "ray"
    if not ray.is_file():
        return None
    r = subprocess.run([str(ray), "--version"], capture_output=True, text=True, timeout=120)
    return r.stdout.strip().rsplit(" ", 1)[-1] if r.returncode == 0 else None


def ensure(directory: Path, want: str) -> str | None:
    """The client at version ``want`` in ``directory``, installed when it is not; None, or why it could not be."""
    if installed_version(directory) == want:
        return None
    print(f"client: installing {requirement(want)} into {directory}", file=sys.stderr)
    venv.EnvBuilder(clear=True, with_pip=True).create(directory)
    # pip's output goes to stderr: `make submit` runs what our stdout says.
    r = subprocess.run([str(directory / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", requirement(want)], stdout=sys.stderr)
    if r.returncode != 0:
        return (f"pip could not install {requirement(want)} (above): check your network or PIP_INDEX_URL, then run "
                f"`make client` again")
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", nargs="?", default=str(DEFAULT_DIR))
    ns = ap.parse_args(argv)
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    problem = ensure(Path(ns.directory), cfg.ray.ray_version)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
