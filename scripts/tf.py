"""Terraform on the synthesized stacks, for one deployment: what `make deploy`, `diff`, `destroy`, `tunnel`,
`pipeline` and `job-yaml` run.

Each stack's Terraform data (its backend's settings, providers, modules) lives outside cdktf.out, per deployment:
``build/terraform/<name>/<region>/<stack>/`` (``TF_DATA_DIR``), with the stack's dependency lock file kept beside it
and the provider downloads shared through a plugin cache (``build/terraform/plugin-cache``). A synth replaces
cdktf.out whole; what Terraform initialised survives it, and two deployments from one checkout never share it.

Before a stack is planned, its state must be this deployment's: a state whose ``deployment`` output names another
(name, region) is refused, and so is a deployment whose state is still at the path of releases before one state per
deployment (``make state-move`` moves it; docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from config import AppConfig
from stacks.contract import INFRA_STACK
from stacks.state import DEPLOYMENT_OUTPUT, deployment_identity, legacy_state_key, local_state_file, state_key

from .aws_cli import Aws, AwsError

ROOT = Path(__file__).resolve().parent.parent
# Where main.py writes (CDKTF_OUTDIR, as there) and where the deploy keeps what it makes (RAY_EKS_BUILD_DIR).
OUTDIR = Path(os.environ.get("CDKTF_OUTDIR") or ROOT / "cdktf.out")
BUILD = Path(os.environ.get("RAY_EKS_BUILD_DIR") or ROOT / "build")
TERRAFORM_HOME = BUILD / "terraform"
PLUGIN_CACHE = TERRAFORM_HOME / "plugin-cache"
LOCK_FILE = ".terraform.lock.hcl"
MIN_TERRAFORM = (1, 10)
INSTALL_TERRAFORM = "install Terraform 1.10 or later: https://developer.hashicorp.com/terraform/install"


class TerraformError(Exception):
    """One line: what failed and what to do."""


def describe(identity: dict) -> str:
    return f"{identity.get('name')} ({identity.get('region')})"


def not_deployed(cfg: AppConfig, why: str = "its infra stack has no state") -> str:
    """The one line of every command that needs this deployment applied first."""
    return f"deployment {cfg.name} ({cfg.region}) is not deployed ({why}): run `make deploy`"


def data_dir(cfg: AppConfig, stack: str) -> Path:
    return TERRAFORM_HOME / cfg.name / cfg.region / stack


def check_terraform() -> None:
    """terraform on PATH, at 1.10 or later (S3 native locking; every stack's required_version)."""
    if not shutil.which("terraform"):
        raise TerraformError(f"terraform is not on PATH: {INSTALL_TERRAFORM}")
    r = subprocess.run(["terraform", "version", "-json"], capture_output=True, text=True, timeout=60)
    m = re.search(r'"terraform_version":\s*"(\d+)\.(\d+)', r.stdout)
    if not m or (int(m.group(1)), int(m.group(2))) < MIN_TERRAFORM:
        found = m.group(0).split('"')[-1] if m else "an unknown version"
        raise TerraformError(f"terraform {found} is too old: {INSTALL_TERRAFORM}")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Terraform:
    """terraform in ``<outdir>/stacks/<stack>`` with this deployment's data directory."""

    def __init__(self, cfg: AppConfig, outdir: Path = OUTDIR) -> None:
        self.cfg = cfg
        self.outdir = outdir

    def stack_dir(self, stack: str) -> Path:
        return self.outdir / "stacks" / stack

    def env(self, stack: str) -> dict[str, str]:
        PLUGIN_CACHE.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(TF_DATA_DIR=str(data_dir(self.cfg, stack)), TF_PLUGIN_CACHE_DIR=str(PLUGIN_CACHE),
                   TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
        return env

    def run(self, stack: str, *args: str, capture: bool = True, timeout: int | None = None) -> Result:
        """``terraform <args>`` in the stack; output captured, or straight to the terminal (capture=False)."""
        synthesized = self.stack_dir(stack) / "cdk.tf.json"
        if not synthesized.is_file():
            raise TerraformError(f"{self.stack_dir(stack)} holds no synthesized stack: nothing was deployed from here "
                                 f"yet (run `make deploy`), or run `make synth` for a deployment that exists")
        # Its backend and providers are that synth's: another config's synth would read (or write) another state.
        found = synthesized_identity(synthesized)
        mine = deployment_identity(self.cfg)
        if found is not None and found != mine:
            raise TerraformError(
                f"{self.outdir} holds the synth of deployment {describe(found)}, not this config's {describe(mine)}: "
                f"run `make synth` with this config (RAY_EKS_CONFIG) first")
        r = subprocess.run(["terraform", *args], cwd=self.stack_dir(stack), env=self.env(stack),
                           capture_output=capture, text=True, timeout=timeout)
        return Result(r.returncode, r.stdout or "", r.stderr or "")

    def init(self, stack: str, capture: bool = True) -> None:
        """terraform init, with the lock file a previous init kept (a synth removes the one in cdktf.out)."""
        kept = data_dir(self.cfg, stack).with_name(f"{stack}{LOCK_FILE}")
        here = self.stack_dir(stack) / LOCK_FILE
        if kept.is_file() and not here.is_file():
            shutil.copyfile(kept, here)
        r = self.run(stack, "init", "-input=false", "-no-color", capture=capture)
        if r.returncode != 0:
            raise TerraformError(f"terraform init of stack {stack} failed: {_last_line(r.stderr)}")
        if here.is_file():
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(here, kept)

    def initialised(self, stack: str) -> bool:
        return (data_dir(self.cfg, stack) / "terraform.tfstate").is_file()

    def outputs(self, stack: str) -> dict:
        """The stack's outputs from its state ({} when it has none: not deployed). Initialises the stack when this
        deployment never did."""
        if not self.initialised(stack):
            self.init(stack)
        r = self.run(stack, "output", "-json", "-no-color")
        if r.returncode != 0:
            raise TerraformError(f"terraform output of stack {stack} failed: {_last_line(r.stderr)}")
        return {k: v.get("value") for k, v in json.loads(r.stdout or "{}").items()}

    def guard(self, stack: str) -> None:
        """Refuse a state that is not this deployment's, and this deployment's state at the old path."""
        mine = deployment_identity(self.cfg)
        found = self.outputs(stack).get(DEPLOYMENT_OUTPUT)
        if found is not None and found != mine:
            raise TerraformError(
                f"stack {stack}'s state ({self.state_location(stack)}) belongs to deployment {describe(found)}, not "
                f"to this config's {describe(mine)}: refusing to plan against another deployment's state")
        if found is None:
            legacy = legacy_state(self.cfg, stack)
            if legacy:
                raise TerraformError(
                    f"deployment {describe(mine)} has its {stack} state at the path before one state per deployment "
                    f"({legacy}): run `make state-move` first (docs/deploy.md, \"One state per deployment\")")

    def state_location(self, stack: str) -> str:
        b = self.cfg.backend
        if b.type == "s3":
            return f"s3://{b.bucket}/{state_key(self.cfg, stack)}"
        return str(local_state_file(self.cfg, stack))


def synthesized_identity(stack_file: Path) -> dict | None:
    """The deployment a synthesized stack was made for (its ``deployment`` output), if it says."""
    try:
        value = json.loads(stack_file.read_text()).get("output", {}).get(DEPLOYMENT_OUTPUT, {}).get("value")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, dict) else None


def _last_line(text: str) -> str:
    lines = [ln.strip(" │╷╵") for ln in text.strip().splitlines()]
    lines = [ln for ln in lines if ln]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    return (errors[-1] if errors else lines[-1]) if lines else "no output"


# ------------------------------------------------------------------------------------- state of older releases
def read_local_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def legacy_identity(state: dict) -> dict | None:
    """The deployment a legacy infra state belongs to: its region and cluster_name outputs (no deployment output
    then)."""
    outputs = {k: v.get("value") for k, v in (state.get("outputs") or {}).items()}
    if outputs.get(DEPLOYMENT_OUTPUT):
        return outputs[DEPLOYMENT_OUTPUT]
    if "cluster_name" in outputs and "region" in outputs:
        return {"name": outputs["cluster_name"], "region": outputs["region"]}
    return None


def _project_path(p: Path) -> Path:
    return p if p.is_absolute() else ROOT / p


def legacy_state(cfg: AppConfig, stack: str) -> str | None:
    """Where this deployment's state of ``stack`` is at the old path, if it is (checked through its infra state:
    the stacks of one deployment moved together)."""
    b = cfg.backend
    if b.type == "local":
        infra = read_local_state(_project_path(Path(local_state_file(cfg, INFRA_STACK, legacy=True))))
        path = _project_path(Path(local_state_file(cfg, stack, legacy=True)))
        if infra is not None and legacy_identity(infra) == deployment_identity(cfg) and path.is_file():
            return str(local_state_file(cfg, stack, legacy=True))
        return None
    aws = Aws(cfg)
    try:
        infra = json.loads(s3_get(aws, b.bucket, legacy_state_key(cfg, INFRA_STACK)) or "null")
    except AwsError:
        return None
    if not infra or legacy_identity(infra) != deployment_identity(cfg):
        return None
    key = legacy_state_key(cfg, stack)
    return f"s3://{b.bucket}/{key}" if s3_exists(aws, b.bucket, key) else None


def s3_get(aws: Aws, bucket: str | None, key: str) -> str | None:
    import tempfile

    if not s3_exists(aws, bucket, key):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "state"
        aws("s3api", "get-object", "--bucket", str(bucket), "--key", key, str(target))
        return target.read_text()


def s3_exists(aws: Aws, bucket: str | None, key: str) -> bool:
    try:
        aws("s3api", "head-object", "--bucket", str(bucket), "--key", key)
    except AwsError as e:
        if "404" in str(e) or "Not Found" in str(e) or "NoSuchKey" in str(e):
            return False
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m scripts.tf <stack> <terraform arguments>``: terraform on one stack of this deployment (its data
    directory, init, the state guard), e.g. ``python -m scripts.tf infra apply -replace=aws_instance.api_tunnel``."""
    import argparse
    import sys

    from stacks.contract import STACK_ORDER

    from . import load_config_or_report

    ap = argparse.ArgumentParser(description=main.__doc__.splitlines()[0] if main.__doc__ else None)
    ap.add_argument("stack", choices=STACK_ORDER)
    ap.add_argument("args", nargs=argparse.REMAINDER, help="terraform's arguments (plan, apply -replace=..., ...)")
    ns = ap.parse_args(argv)
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    try:
        check_terraform()
        tf = Terraform(cfg)
        tf.init(ns.stack)
        tf.guard(ns.stack)
        r = tf.run(ns.stack, *ns.args, capture=False)
    except (TerraformError, AwsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if r.returncode != 0:
        print(f"error: terraform {' '.join(ns.args[:1])} of stack {ns.stack} failed (above)", file=sys.stderr)
    return r.returncode


if __name__ == "__main__":
    raise SystemExit(main())
