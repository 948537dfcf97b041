"""Fast synth (fast_imports/): the same bytes as a plain synth, and main.py installs it before the stacks load."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fast_imports
from fast_imports import ENV_PLAIN
from tests.helpers import ROOT, app_env, run_app

LAUNCHER = ("import runpy, sys; import fast_imports; assert fast_imports.install(); "
            "sys.argv = ['main.py']; runpy.run_path('main.py', run_name='__main__')")


def _main_installs_fast_imports() -> bool:
    """main.py calls fast_imports.install() before it first imports stacks.app."""
    tree = ast.parse((ROOT / "main.py").read_text())
    install = app = None
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "fast_imports.install":
            install = min(install or line, line)
        if isinstance(node, ast.ImportFrom) and node.module == "stacks.app":
            app = min(app or line, line)
    return install is not None and app is not None and install < app


def _files(outdir: Path) -> list[str]:
    return sorted(str(p.relative_to(outdir)) for p in outdir.rglob("*") if p.is_file())


# --- the contract: not a byte of the output changes --------------------------------------------------------------

def test_synth_is_byte_identical_with_and_without_fast_imports(default_synth, tmp_path):
    ours = default_synth["_outdir"]
    if not _main_installs_fast_imports() or fast_imports.plain_imports_requested():
        # The session synth did not go the fast way: make one that does, so this compares two different paths.
        ours = tmp_path / "fast" / "cdktf.out"
        env = app_env(outdir=ours)
        env.pop(ENV_PLAIN, None)
        r = subprocess.run([sys.executable, "-c", LAUNCHER], cwd=ROOT, env=env, check=False, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"fast synth failed:\n{r.stderr[-3000:]}"
        assert "fast imports off" not in r.stderr, r.stderr
    plain = tmp_path / "plain" / "cdktf.out"
    r = run_app(outdir=plain, **{ENV_PLAIN: "1"})
    assert r.returncode == 0, f"plain synth failed:\n{r.stderr[-3000:]}"

    files = _files(ours)
    assert "manifest.json" in files and sum(f.endswith("cdk.tf.json") for f in files) >= 3, files
    assert files == _files(plain)
    differing = [f for f in files if (ours / f).read_bytes() != (plain / f).read_bytes()]
    assert not differing, f"fast imports changed the synthesized output: {differing}"


def test_main_installs_fast_imports_before_the_stacks():
    assert _main_installs_fast_imports(), (
        "main.py must call `fast_imports.install()` (import fast_imports) before `from stacks.app import synth`, "
        "or synth runs the slow way")
