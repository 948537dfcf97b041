"""`moved` blocks, for real: a state holding the old address plans a move, not a destroy and a create.

stacks/migrations.py turns MOVED entries into `moved` blocks; the probe stack (migration_probe_app.py) goes through
that same code with Terraform's built-in terraform_data resource, applied and planned with the real terraform CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, addresses, app_env

PROBE_APP = Path(__file__).with_name("migration_probe_app.py")


def _synth(tmp: Path, construct_id: str, moved_from: str = "") -> Path:
    out = tmp / f"out-{construct_id}-{moved_from or 'none'}"
    env = app_env(PROBE_ID=construct_id, PROBE_MOVE=moved_from, PROBE_OUT=str(out),
                  PROBE_STATE=str(tmp / "terraform.tfstate"))
    r = subprocess.run([sys.executable, str(PROBE_APP)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return out / "stacks" / "migration-probe"


def _terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    r = subprocess.run(["terraform", f"-chdir={workdir}", *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"terraform {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


def _plan(workdir: Path) -> list[dict]:
    _terraform(workdir, "init", "-input=false", "-no-color")
    _terraform(workdir, "plan", "-input=false", "-no-color", "-out=plan.bin")
    shown = json.loads(_terraform(workdir, "show", "-json", "plan.bin").stdout)
    return shown.get("resource_changes", [])


@pytest.fixture(scope="module")
def applied_old_address(tmp_path_factory) -> Path:
    """State holding terraform_data.before_rename, applied for real."""
    tmp = tmp_path_factory.mktemp("migration")
    old = _synth(tmp, "before_rename")
    _terraform(old, "init", "-input=false", "-no-color")
    _terraform(old, "apply", "-input=false", "-no-color", "-auto-approve")
    return tmp


def test_a_recorded_rename_plans_a_move(applied_old_address):
    changes = _plan(_synth(applied_old_address, "after_rename", moved_from="before_rename"))
    assert [(c["address"], c.get("previous_address"), c["change"]["actions"]) for c in changes] == [
        ("terraform_data.after_rename", "terraform_data.before_rename", ["no-op"])]


def test_without_the_record_the_same_rename_replaces(applied_old_address):
    """What the MOVED entry prevents: the plan destroys the old address and creates the new one."""
    changes = _plan(_synth(applied_old_address, "after_rename"))
    assert sorted((c["address"], tuple(c["change"]["actions"])) for c in changes) == [
        ("terraform_data.after_rename", ("create",)), ("terraform_data.before_rename", ("delete",))]


def _move_problems(doc: dict, moves: list[tuple[str, str]]) -> list[str]:
    """What is wrong with ``moves`` as the moved blocks of the stack ``doc``: each old address must be gone from the
    synth and each new one declared."""
    declared = addresses(doc)
    problems = [f"moved block targets {new}, which the stack does not declare" for _, new in moves
                if new not in declared]
    problems += [f"{old} is still declared; the move would be a no-op conflict" for old, _ in moves if old in declared]
    return problems


def test_recorded_moves_point_from_gone_addresses_to_declared_ones(default_synth):
    """Every MOVED entry of our stacks: the old address is gone from the synth, the new one is declared, and the
    stack carries exactly these moved blocks (none while MOVED is empty)."""
    from stacks.migrations import MOVED

    assert set(MOVED) == {"infra", "ray", "ray-cluster"}
    for stack, releases in MOVED.items():
        doc = default_synth[stack]
        moves = [m for r in releases.values() for m in r]
        assert doc.get("moved", []) == [{"from": a, "to": b} for a, b in moves]
        assert not _move_problems(doc, moves), stack


def test_the_move_check_finds_a_stale_or_dangling_entry(default_synth):
    """The check above, on entries it must refuse: it would otherwise pass on an empty MOVED without checking."""
    doc = default_synth["infra"]
    declared = addresses(doc)
    existing = next(a for a in declared if a.startswith("aws_eks_cluster."))
    assert _move_problems(doc, [("aws_eks_cluster.gone", existing)]) == []
    assert _move_problems(doc, [(existing, "aws_eks_cluster.renamed")]) == [
        "moved block targets aws_eks_cluster.renamed, which the stack does not declare",
        f"{existing} is still declared; the move would be a no-op conflict"]
