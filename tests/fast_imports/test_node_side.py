"""fast_imports/lazy_require.js (loaded by node as is) and node_side (which preloads it into the jsii kernel)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import fast_imports
from fast_imports import ENV_PACKAGES, NODE_HOOK, PROVIDER_PACKAGES, node_side
from tests.fast_imports.fakes import LAZY_INDEXES, NODE_INDEX, NODE_PROBE, console_lines, fake_npm_package, node


def test_hook_is_plain_javascript():
    r = subprocess.run(["node", "--check", str(NODE_HOOK)], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "__PACKAGES__" not in NODE_HOOK.read_text()  # not a template


@pytest.mark.parametrize("package", sorted(PROVIDER_PACKAGES))
def test_shipped_node_index_passes_the_shape_check(package, tmp_path):
    # The lib/index.js the jsii kernel will require, taken from the tarball the Python package ships.
    jsii_dir = Path(importlib.util.find_spec(package).origin).parent / "_jsii"
    (tarball,) = jsii_dir.glob("*.jsii.tgz")
    want = {"package/lib/index.js", "package/package.json"}
    with tarfile.open(tarball) as tf:
        for member in tf:
            if member.name in want:
                tf.extract(member, tmp_path, filter="data")
                want.discard(member.name)
                if not want:
                    break
    assert not want, f"{tarball.name} lacks {want}"
    r = node("const m = require(process.argv[1]); const d = Object.getOwnPropertyDescriptor(m, 'provider'); "
             "console.log(Object.keys(m).length, typeof d.get)", str(tmp_path / "package"),
             packages=json.dumps(sorted(PROVIDER_PACKAGES.values())))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    count, getter = r.stdout.split()
    assert int(count) > 1 and getter == "function"  # every re-export lazy, none loaded


def test_node_hook_defers_each_resource_module(tmp_path):
    pkg = fake_npm_package(tmp_path, NODE_INDEX)
    r = node(NODE_PROBE, str(pkg))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout) == {"before": [], "alpha": "alpha", "after": ["alpha"], "keys": ["alpha", "beta"]}


def test_node_hook_leaves_packages_it_was_not_given(tmp_path):
    pkg = fake_npm_package(tmp_path, NODE_INDEX)
    for packages in (None, json.dumps(["@cdktf/provider-aws"])):
        r = node(NODE_PROBE, str(pkg), packages=packages)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert json.loads(r.stdout)["before"] == ["alpha", "beta"]  # the plain, eager require


def test_node_hook_falls_back_loudly_on_an_unknown_line(tmp_path):
    pkg = fake_npm_package(tmp_path, NODE_INDEX.replace('exports.beta = require("./beta");',
                                                        'exports.beta = require("./beta");\nexports.x = 1;'))
    r = node(NODE_PROBE, str(pkg))
    assert r.returncode == 0, r.stderr
    warning = console_lines(r.stderr)
    assert warning.startswith("warning: fast imports off for node @cdktf/provider-helm (unexpected line"), warning
    assert warning.count("\n") == 1
    assert json.loads(r.stdout)["before"] == ["alpha", "beta"]  # the plain, eager require


def test_node_hook_warns_on_a_bad_package_list(tmp_path):
    pkg = fake_npm_package(tmp_path, NODE_INDEX)
    r = node(NODE_PROBE, str(pkg), packages='{"not": "a list"}')
    assert r.returncode == 0, r.stderr
    warning = console_lines(r.stderr)
    assert warning.startswith(f"warning: fast imports off for node providers ({ENV_PACKAGES} is not"), warning
    assert json.loads(r.stdout)["before"] == ["alpha", "beta"]


@pytest.mark.parametrize("style", sorted(LAZY_INDEXES))
def test_node_hook_leaves_a_lazy_index_alone_quietly(tmp_path, style):
    pkg = fake_npm_package(tmp_path, LAZY_INDEXES[style])
    r = node(NODE_PROBE, str(pkg))
    assert r.returncode == 0 and r.stderr == "", r.stderr  # not a failure: no warning
    got = json.loads(r.stdout)
    assert got["before"] == [] and got["alpha"] == "alpha" and got["after"] == ["alpha"]  # its own laziness
    r = node(NODE_PROBE, str(pkg), NODE_DEBUG="fast_imports")
    assert "@cdktf/provider-helm loads its submodules lazily already; left alone" in r.stderr, r.stderr


# --- installing it: NODE_OPTIONS and RAY_EKS_LAZY_PACKAGES ----------------------------------------------------

def test_install_adds_the_node_hook_to_existing_node_options(clean_install, monkeypatch):
    monkeypatch.setenv("NODE_OPTIONS", "--max-old-space-size=512")
    assert fast_imports.install()
    first = os.environ["NODE_OPTIONS"]
    assert fast_imports.install() and os.environ["NODE_OPTIONS"] == first  # idempotent
    keep, hook = first.split(" ", 1)
    assert keep == "--max-old-space-size=512" and hook == f'--require="{NODE_HOOK}"'
    assert json.loads(os.environ[ENV_PACKAGES]) == sorted(PROVIDER_PACKAGES.values())
    fast_imports.uninstall()
    assert os.environ["NODE_OPTIONS"] == "--max-old-space-size=512" and ENV_PACKAGES not in os.environ


def test_install_replaces_an_inherited_hook(clean_install, monkeypatch):
    monkeypatch.setenv("NODE_OPTIONS", '--require="/elsewhere/fast_imports/lazy_require.js" --trace-warnings')
    assert fast_imports.install()
    assert os.environ["NODE_OPTIONS"] == f'--trace-warnings --require="{NODE_HOOK}"'
    fast_imports.uninstall()
    assert os.environ["NODE_OPTIONS"] == "--trace-warnings"


def test_hook_under_a_path_with_spaces_is_preloaded_from_a_copy(clean_install, monkeypatch, tmp_path):
    spaced = tmp_path / "a checkout" / "fast_imports" / "lazy_require.js"
    spaced.parent.mkdir(parents=True)
    shutil.copyfile(NODE_HOOK, spaced)
    monkeypatch.setattr(node_side, "NODE_HOOK", spaced)
    monkeypatch.setattr(node_side, "_copy", None)
    assert fast_imports.install()
    script = os.environ["NODE_OPTIONS"].removeprefix('--require="').removesuffix('"')
    assert script != str(spaced) and " " not in script and script.endswith(node_side.HOOK_MARKER)
    assert Path(script).read_bytes() == NODE_HOOK.read_bytes()
