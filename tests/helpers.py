"""Shared test helpers: run the real app (a subprocess, as users do) and read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "kuberay-v1.7.0"


def app_env(config: Optional[Path] = None, outdir: Optional[Path] = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_EKS_CONFIG", "CDKTF_OUTDIR")}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["CHECKPOINT_DISABLE"] = "1"
    if config is not None:
        env["RAY_EKS_CONFIG"] = str(config)
    if outdir is not None:
        env["CDKTF_OUTDIR"] = str(outdir)
    env.update(extra)
    return env


def run_app(config: Optional[Path] = None, outdir: Optional[Path] = None, timeout: int = 300, **extra: str):
    return subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=ROOT, env=app_env(config, outdir, **extra),
                          capture_output=True, text=True, timeout=timeout)


def load_stacks(outdir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(outdir.glob("stacks/*/cdk.tf.json"))}


def resources(stack: dict, rtype: str) -> dict[str, dict]:
    return stack.get("resource", {}).get(rtype, {})


def one(stack: dict, rtype: str, name: str) -> dict:
    found = resources(stack, rtype)
    assert name in found, f"{rtype}.{name} not in {sorted(found)}"
    return found[name]


def addresses(stack: dict) -> list[str]:
    out = [f"{t}.{n}" for t, byname in stack.get("resource", {}).items() for n in byname]
    out += [f"data.{t}.{n}" for t, byname in stack.get("data", {}).items() for n in byname]
    return sorted(out)
