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


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the scripts) as readable | blocks."""


_LiteralDumper.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


class NotDeployed(Exception):
    pass


def _infra_output(cfg: AppConfig, name: str) -> str | None:
    """An output of this deployment's infra stack, if it is deployed (plain terraform, no cdktf needed)."""
    from .tf import Terraform, TerraformError

    try:
        value = Terraform(cfg).outputs(INFRA_STACK).get(name)
    except TerraformError as e:
        raise NotDeployed(str(e)) from None
    return str(value) if value else None


def job_props(cfg: AppConfig, image: str | None = None, files: dict[str, str] | None = None) -> JobSubmissionProps:
    if image is None:
        built = _infra_output(cfg, "ray_image") if cfg.ray.image.source == "build" else None
        if cfg.ray.image.source == "build" and not built:
            raise NotDeployed(f"deployment {cfg.name} ({cfg.region}) is not deployed (ray.image.source build: the "
                              f"image is its infra stack's ray_image output): run `make deploy` first, or pass "
                              f"--image")
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
    except NotDeployed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, docs in documents(props).items():
        (out / name).write_text(yaml.dump_all(docs, Dumper=_LiteralDumper, sort_keys=False))
        print(f"wrote {out / name}: kubectl apply -f {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
