"""Session fixtures: the app is synthesized once per configuration (synth is slow); the AWS emulator per module."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import ROOT, Emulator, emulator_server, load_stacks, run_app

EXAMPLES = ROOT / "config" / "examples"


def _synth(tmp_path_factory, name: str, config: Path | None) -> dict[str, dict]:
    out = tmp_path_factory.mktemp(f"synth-{name}") / "cdktf.out"
    r = run_app(config=config, outdir=out)
    assert r.returncode == 0, f"synth of {name} failed:\n{r.stderr[-3000:]}"
    stacks = load_stacks(out)
    stacks["_outdir"] = out  # type: ignore[assignment]
    return stacks


@pytest.fixture(scope="session")
def default_synth(tmp_path_factory) -> dict[str, dict]:
    """Both stacks with the defaults (a complete GPU deployment)."""
    return _synth(tmp_path_factory, "default", None)


@pytest.fixture(scope="session")
def infra(default_synth) -> dict:
    return default_synth["infra"]


@pytest.fixture(scope="session")
def dev_synth(tmp_path_factory) -> dict[str, dict]:
    """The small CPU-only dev example: an explicit-AZ, single-NAT, no-GPU shape."""
    return _synth(tmp_path_factory, "dev", EXAMPLES / "dev-cpu.yaml")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Iterator[Emulator]:
    """The AWS emulator (tests/deploy/emulator.py) for the tests of one module, stopped when they are done."""
    with emulator_server(tmp_path_factory.mktemp("emulator") / "emulator.log") as emu:
        yield emu
