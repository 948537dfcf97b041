"""Render the in-cluster job-submission objects to YAML for `kubectl apply -f`.

    python -m scripts.render_jobs [--out rendered] [--image IMAGE]

Writes ``submit-job.yaml`` (ServiceAccount ray-operator-ray-operator, ConfigMap with the training
script, batch Job running `ray job submit` against the head service) and ``rayjob.yaml`` (the same
ConfigMap + a RayJob onto the running cluster). Namespace, service names, Ray version, image and
runtime_env come from the same config the stacks use (with ray.image.source build, the image is the deployed
infra stack's ray_image output).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from config import AppConfig, ConfigError, load_config
from constructs_lib.manifests.jobs import (
    JobSubmissionProps,
    ray_job,
    submit_job,
    submitter_service_account,
    training_script_config_map,
)
from stacks.contract import INFRA_STACK, TRAINING_SCRIPT, job_files, job_pip

ROOT = Path(__file__).resolve().parent.parent


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the scripts) as readable | blocks."""


_LiteralDumper.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def _infra_output(name: str) -> str | None:
    """An output of the deployed infra stack, if there is one (plain terraform, no cdktf needed)."""
    stack = ROOT / "cdktf.out" / "stacks" / INFRA_STACK
    if not stack.is_dir():
        return None
    r = subprocess.run(["terraform", f"-chdir={stack}", "output", "-json"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout or "{}").get(name, {}).get("value")


def job_props(cfg: AppConfig, image: str | None = None, files: dict[str, str] | None = None) -> JobSubmissionProps:
    if image is None:
        built = _infra_output("ray_image") if cfg.ray.image.source == "build" else None
        if cfg.ray.image.source == "build" and not built:
            raise ConfigError("ray.image.source is build: the image is the deployed infra stack's ray_image output "
                              "(cdktf.out/stacks/infra); deploy it first or pass --image")
        image = cfg.ray_image(built)
    return JobSubmissionProps(namespace=cfg.ray.namespace, cluster_name=cfg.ray.cluster_name, image=image,
                              files=files if files is not None else job_files(), script=TRAINING_SCRIPT,
                              args=tuple(cfg.training.args), pip=job_pip(cfg))


def documents(props: JobSubmissionProps) -> dict[str, list[dict]]:
    config_map = training_script_config_map(props)
    return {
        "submit-job.yaml": [submitter_service_account(props), config_map, submit_job(props)],
        "rayjob.yaml": [config_map, ray_job(props)],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="rendered", help="output directory (default: rendered)")
    ap.add_argument("--image", help="image for the submitter (default: the RayCluster's image)")
    args = ap.parse_args(argv)
    try:
        props = job_props(load_config(), image=args.image)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, docs in documents(props).items():
        (out / name).write_text(yaml.dump_all(docs, Dumper=_LiteralDumper, sort_keys=False))
        print(f"wrote {out / name}: kubectl apply -f {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
