"""Assemble the app's stacks and synthesize them atomically."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from config import AppConfig

DEFAULT_OUTDIR = "cdktf.out"


def _progress(msg: str) -> None:
    # Progress for humans; CI logs stay quiet.
    if sys.stderr.isatty() and not os.environ.get("CI"):
        print(msg, file=sys.stderr, flush=True)


def build_app(cfg: AppConfig, outdir: str):
    from cdktf import App

    from .infra import InfraStack
    from .ray import RayStack
    from .ray_cluster import RayClusterStack

    app = App(outdir=outdir)
    _progress("synth: infra stack (VPC, EKS, node groups, FSx, ECR, S3)")
    infra = InfraStack(app, cfg)
    _progress("synth: ray stack (KubeRay operator, add-ons, FSx volume, IRSA)")
    ray = RayStack(app, cfg)
    ray.add_dependency(infra)
    _progress("synth: ray-cluster stack (RayCluster)")
    RayClusterStack(app, cfg, after=ray)
    return app


def synth(cfg: AppConfig, outdir: str | None = None) -> Path:
    """Synthesize into a temp dir next to ``outdir`` and swap it in: never a half-written output."""
    final = Path(outdir or os.environ.get("CDKTF_OUTDIR") or DEFAULT_OUTDIR).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        app = build_app(cfg, str(tmp))
        _progress("synth: writing Terraform JSON")
        app.synth()
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
