"""One state per deployment: where each stack's state lives (its name and region are in every path and key), where
releases before that kept it, and what a state says about whose it is. Plain functions (no cdktf): the stacks
(stacks/common.py) and the deploy scripts (scripts/tf.py, scripts/state.py) share them."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import AppConfig

# The local backend's state files live in <project>/<local_dir>/; stacks run from cdktf.out/stacks/<name>/.
STACK_DIR_TO_PROJECT = "../../.."
# S3 native locking (use_lockfile) needs Terraform 1.10; so does every stack, whatever its backend.
REQUIRED_TERRAFORM = ">= 1.10"
# Every stack's output naming the deployment its state belongs to (scripts/tf.py refuses another's).
DEPLOYMENT_OUTPUT = "deployment"


def deployment_identity(cfg: AppConfig) -> dict[str, str]:
    """What makes a deployment: its name and region (two deployments differ in one of them)."""
    return {"name": cfg.name, "region": cfg.region}


def _deployment_dir(cfg: AppConfig) -> str:
    return f"{cfg.name}/{cfg.region}"


def state_key(cfg: AppConfig, stack_name: str) -> str:
    """The S3 key of a stack's state: <key_prefix>/<name>/<region>/<stack>.tfstate."""
    return f"{cfg.backend.key_prefix}/{_deployment_dir(cfg)}/{stack_name}.tfstate"


def legacy_state_key(cfg: AppConfig, stack_name: str) -> str:
    """Where releases before one state per deployment kept it: <key_prefix>/<stack>.tfstate (scripts/state.py
    moves it)."""
    return f"{cfg.backend.key_prefix}/{stack_name}.tfstate"


def local_state_file(cfg: AppConfig, stack_name: str, legacy: bool = False) -> PurePosixPath:
    """A stack's local state, relative to the project root (or absolute when local_dir is)."""
    parts = [cfg.backend.local_dir] if legacy else [cfg.backend.local_dir, cfg.name, cfg.region]
    return PurePosixPath(*parts, f"{stack_name}.tfstate")


def local_state_path(cfg: AppConfig, stack_name: str) -> str:
    """The local backend's path as Terraform sees it, from the stack's directory."""
    path = local_state_file(cfg, stack_name)
    return str(path) if path.is_absolute() else f"{STACK_DIR_TO_PROJECT}/{path}"
