"""`make state-move`: move this deployment's state from the paths of releases before one state per deployment to its
own paths.

    python -m scripts.state move      # the config of $RAY_EKS_CONFIG, as main.py

Before, every deployment of a checkout shared ``<local_dir>/<stack>.tfstate`` (S3: ``<key_prefix>/<stack>.tfstate``);
now each has ``<local_dir>/<name>/<region>/<stack>.tfstate`` (``<key_prefix>/<name>/<region>/<stack>.tfstate``).
The old infra state says whose it is (its ``cluster_name`` and ``region`` outputs): only this deployment's is moved,
stack by stack, and never over a state that is already at the new path. Local files are moved (with their
``.backup``); S3 objects are copied to the new key (encrypted like every state object) and the old key deleted (the
bucket's versioning keeps its history). Nothing else changes: the next plan shows no change.

Exit status: 0 moved (or nothing to move), 1 a state that cannot be moved (another deployment's, or both paths
taken), 2 a config problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from config import AppConfig
from stacks.contract import INFRA_STACK, STACK_ORDER
from stacks.state import deployment_identity, legacy_state_key, local_state_file, state_key

from . import load_config_or_report
from .aws_cli import Aws, AwsError
from .tf import ROOT, describe, legacy_identity, read_local_state, s3_exists, s3_get


class MoveError(Exception):
    pass


def _path(p) -> Path:
    p = Path(p)
    return p if p.is_absolute() else ROOT / p


def move_local(cfg: AppConfig) -> list[str]:
    old_infra = _path(local_state_file(cfg, INFRA_STACK, legacy=True))
    state = read_local_state(old_infra)
    if state is None:
        return []
    _check_owner(legacy_identity(state), cfg, str(local_state_file(cfg, INFRA_STACK, legacy=True)))
    moved = []
    for stack in STACK_ORDER:
        old, new = _path(local_state_file(cfg, stack, legacy=True)), _path(local_state_file(cfg, stack))
        if not old.is_file():
            continue
        if new.exists():
            raise MoveError(f"both {local_state_file(cfg, stack, legacy=True)} and {local_state_file(cfg, stack)} "
                            f"exist: keep the one that holds the deployment and remove the other by hand")
        new.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, new)
        backup = old.with_name(old.name + ".backup")
        if backup.is_file():
            os.replace(backup, new.with_name(new.name + ".backup"))
        moved.append(f"moved {local_state_file(cfg, stack, legacy=True)} -> {local_state_file(cfg, stack)}")
    return moved


def move_s3(cfg: AppConfig, aws: Aws) -> list[str]:
    bucket = str(cfg.backend.bucket)
    text = s3_get(aws, bucket, legacy_state_key(cfg, INFRA_STACK))
    if text is None:
        return []
    _check_owner(legacy_identity(json.loads(text)), cfg, f"s3://{bucket}/{legacy_state_key(cfg, INFRA_STACK)}")
    moved = []
    for stack in STACK_ORDER:
        old, new = legacy_state_key(cfg, stack), state_key(cfg, stack)
        if not s3_exists(aws, bucket, old):
            continue
        if s3_exists(aws, bucket, new):
            raise MoveError(f"both s3://{bucket}/{old} and s3://{bucket}/{new} exist: keep the one that holds the "
                            f"deployment and remove the other by hand")
        sse = ["--server-side-encryption", "aws:kms", "--ssekms-key-id", cfg.backend.kms_key_id] \
            if cfg.backend.kms_key_id else ["--server-side-encryption", "AES256"]
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "state"
            aws("s3api", "get-object", "--bucket", bucket, "--key", old, str(local))
            aws("s3api", "put-object", "--bucket", bucket, "--key", new, "--body", str(local), *sse)
        aws("s3api", "delete-object", "--bucket", bucket, "--key", old)
        moved.append(f"moved s3://{bucket}/{old} -> s3://{bucket}/{new}")
    return moved


def _check_owner(found: dict | None, cfg: AppConfig, where: str) -> None:
    mine = deployment_identity(cfg)
    if found != mine:
        whose = describe(found) if found else "no deployment this release can name"
        raise MoveError(f"{where} belongs to {whose}, not to this config's {describe(mine)}: run `make state-move` "
                        f"with that deployment's config (RAY_EKS_CONFIG)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("move",))
    ap.parse_args(argv)
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    try:
        moved = move_local(cfg) if cfg.backend.type == "local" else move_s3(cfg, Aws(cfg))
    except (MoveError, AwsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for line in moved:
        print(line)
    if not moved:
        print(f"state: nothing to move for {describe(deployment_identity(cfg))} (no state at the old paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
