"""training/requirements.lock -- what the image build installs with pip --require-hashes -- is the lock of
training/requirements.txt (scripts/lock_requirements.py), every package hashed; and a stale lock is caught."""

from __future__ import annotations

import re

import pytest

from scripts import lock_requirements as lock
from stacks.contract import REQUIREMENTS_FILE, REQUIREMENTS_LOCK, image_context_files


def test_the_committed_lock_is_in_step_with_the_requirements():
    assert lock.main(["--check"]) == 0
    assert lock.lock_problems(REQUIREMENTS_FILE.read_text(), REQUIREMENTS_LOCK.read_text()) == []


def test_every_locked_package_is_pinned_with_hashes_and_the_pins_come_through():
    entries = lock.entries(REQUIREMENTS_LOCK.read_text())
    pins = lock.entries(REQUIREMENTS_FILE.read_text().replace("\r\n", "\n"))
    assert pins and all(entries[name][0] == version for name, (version, _) in pins.items())
    # The closure, not the pins alone: torch brings its CUDA libraries, triton, sympy...
    assert len(entries) > len(pins) and {"torch", "triton", "sympy"} <= set(entries)
    assert all(hashes and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes)
               for _, hashes in entries.values())


def test_the_image_installs_the_lock_with_hashes_required():
    files = image_context_files()
    assert files["requirements.lock"] == REQUIREMENTS_LOCK.read_bytes()
    assert b"pip install --no-cache-dir --require-hashes -r /home/ray/training/requirements.lock" in files["Dockerfile"]


@pytest.mark.parametrize("change, problem", [
    (lambda req, lk: (req.replace("numpy==2.4.6", "numpy==2.4.7"), lk), "header"),
    (lambda req, lk: (req.replace("numpy==2.4.6", "numpy==2.4.7"), lk), "numpy==2.4.7 is locked as 2.4.6"),
    (lambda req, lk: (req, re.sub(r"(torch==\S+) \\\n(    --hash=\S+ \\\n)*    --hash=\S+\n", r"\1\n", lk)),
     "torch has no sha256 hash"),
    (lambda req, lk: (req + "requests>=2\n", lk), "'requests>=2' is not pinned"),
])
def test_a_stale_or_unhashed_lock_is_reported(change, problem):
    requirements, locked = change(REQUIREMENTS_FILE.read_text(), REQUIREMENTS_LOCK.read_text())
    assert any(problem in p for p in lock.lock_problems(requirements, locked)), lock.lock_problems(requirements, locked)
