"""Fast synth (stacks/fast_imports.py): the same bytes as a plain synth, and a loud fallback when a provider
package no longer has the shape the lazy loading relies on."""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from stacks import fast_imports
from stacks.fast_imports import ENV_PLAIN, PROVIDER_PACKAGES, UnsupportedLayout, analyse_init
from tests.helpers import ROOT, app_env, run_app

LAUNCHER = ("import runpy, sys; from stacks import fast_imports; assert fast_imports.install(); "
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
        r = subprocess.run([sys.executable, "-c", LAUNCHER], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
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
        "main.py must call `fast_imports.install()` (from stacks import fast_imports) before `from stacks.app "
        "import synth`, or synth runs the slow way")


# --- the installed providers take the fast path on both sides of jsii --------------------------------------------

@pytest.mark.parametrize("package", sorted(PROVIDER_PACKAGES))
def test_installed_provider_init_passes_the_shape_check(package):
    origin = importlib.util.find_spec(package).origin
    _, submodules = analyse_init(Path(origin).read_text(), package, origin)
    assert "provider" in submodules and len(submodules) == len(set(submodules))


def test_fast_import_is_lazy_and_resolves_types_on_demand():
    # A fresh interpreter (the real aws assembly, the real jsii kernel): what main.py gets.
    script = textwrap.dedent("""
        import json, sys
        from stacks import fast_imports
        assert fast_imports.install()
        import cdktf_cdktf_provider_aws as aws
        loaded = sorted(m for m in sys.modules if m.startswith("cdktf_cdktf_provider_aws."))
        from cdktf_cdktf_provider_aws.vpc import Vpc
        bucket = aws.s3_bucket.S3Bucket  # attribute access imports the submodule
        import jsii._reference_map as rm
        hooked = rm._try_import_type_module("@cdktf/provider-aws.dataAwsCallerIdentity.DataAwsCallerIdentity")
        print(json.dumps(dict(loaded=loaded, vpc=Vpc.__jsii_type__, bucket=bucket.__jsii_type__, hooked=hooked,
                              identity="cdktf_cdktf_provider_aws.data_aws_caller_identity" in sys.modules,
                              listed="wafv2_web_acl" in dir(aws))))
    """)
    env = app_env()
    env.pop(ENV_PLAIN, None)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "fast imports off" not in r.stderr, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    # Only the assembly loader, not 2,135 resource modules.
    assert got["loaded"] and all(m.split(".")[1] in ("_jsii", "_private") for m in got["loaded"]), got["loaded"]
    assert got["vpc"] == "@cdktf/provider-aws.vpc.Vpc"
    assert got["bucket"] == "@cdktf/provider-aws.s3Bucket.S3Bucket"
    assert got["hooked"] is True and got["identity"] is True and got["listed"] is True


def _node(script: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["node", f"--require={script}", "-e", code, *args], capture_output=True, text=True,
                          timeout=60)


def _console_lines(stderr: str) -> str:
    # The hook speaks jsii's console protocol ({"stderr": base64}); the Python side prints the decoded text.
    return "".join(base64.b64decode(json.loads(line)["stderr"]).decode() for line in stderr.splitlines() if line)


@pytest.fixture
def node_hook(tmp_path) -> Path:
    script = tmp_path / fast_imports.NODE_HOOK_FILE
    script.write_text(fast_imports.NODE_LAZY_REQUIRE.replace(
        "__PACKAGES__", json.dumps(sorted(PROVIDER_PACKAGES.values()))))
    return script


@pytest.mark.parametrize("package", sorted(PROVIDER_PACKAGES))
def test_shipped_node_index_passes_the_shape_check(package, tmp_path, node_hook):
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
    r = _node(node_hook, "const m = require(process.argv[1]); "
                         "const d = Object.getOwnPropertyDescriptor(m, 'provider'); "
                         "console.log(Object.keys(m).length, typeof d.get)", str(tmp_path / "package"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    count, getter = r.stdout.split()
    assert int(count) > 1 and getter == "function"  # every re-export lazy, none loaded


# --- the loud fallback --------------------------------------------------------------------------------------------

FAKE_INIT = '''\
r"""Fake provider bindings, in the shape jsii-pacmak generates."""
from pkgutil import extend_path
__path__ = extend_path(__path__, __name__)

import typing

import jsii
import publication

TYPEGUARD_MAJOR_VERSION = 2

def check_type(argname: str, value: object, expected_type: typing.Any) -> typing.Any:
    return None

from ._jsii import *

__all__ = [
    "alpha",
    "beta",
]

publication.publish()

# Loading modules to ensure their types are registered with the jsii runtime library
from . import alpha
from . import beta
'''


@pytest.fixture
def fake_provider(tmp_path, monkeypatch):
    """Write fake_provider_<n> (an __init__ like FAKE_INIT plus ``extra``) and import it with the finder on."""
    monkeypatch.delenv(ENV_PLAIN, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(init: str = FAKE_INIT, extra: str = ""):
        name = f"fake_provider_{len(names)}_{tmp_path.name}".replace("-", "_")
        names.append(name)
        pkg = tmp_path / name
        (pkg / "_jsii").mkdir(parents=True)
        (pkg / "_jsii" / "__init__.py").write_text("__jsii_assembly__ = 'fake'\n__all__ = ['__jsii_assembly__']\n")
        for sub in ("alpha", "beta"):
            (pkg / sub).mkdir()
            (pkg / sub / "__init__.py").write_text(f"VALUE = {sub!r}\n")
        (pkg / "__init__.py").write_text(init + extra)
        assert fast_imports.install([name])
        return name, importlib.import_module(name)

    yield make
    fast_imports.uninstall()
    for name in names:
        fast_imports._LAZY.pop(name, None)
        for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[m]


def test_fake_provider_in_the_known_shape_loads_lazily(fake_provider, capsys, monkeypatch):
    name, mod = fake_provider()
    assert capsys.readouterr().err == ""
    assert f"{name}.alpha" not in sys.modules and f"{name}.beta" not in sys.modules
    assert mod._private.__jsii_assembly__ == "fake" and mod.__all__ == ["alpha", "beta"]
    assert mod.alpha.VALUE == "alpha" and f"{name}.alpha" in sys.modules
    assert f"{name}.beta" not in sys.modules
    with pytest.raises(AttributeError):
        mod.gamma  # noqa: B018 -- unknown names still raise
    # A type the jsii kernel hands back from a submodule not imported yet imports it.
    import jsii._reference_map as rm

    monkeypatch.setitem(rm._assembly_to_module, "@fake/provider", name)
    assert rm._try_import_type_module("@fake/provider.beta.Beta") is True
    assert f"{name}.beta" in sys.modules


def test_fake_provider_with_an_extra_statement_falls_back_loudly(fake_provider, capsys):
    name, mod = fake_provider(extra="DEFAULT_VALUE = alpha.VALUE\n")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: fast imports off for {name} ("), err
    # The plain import ran: every submodule loaded, the extra statement too.
    assert f"{name}.alpha" in sys.modules and f"{name}.beta" in sys.modules
    assert mod.alpha.VALUE == "alpha"


@pytest.mark.parametrize("change, why", [
    (lambda s: s + "DEFAULT = alpha.VALUE\n", "does not end with"),
    (lambda s: s.replace("publication.publish()", "publication.publish()\nclass Extra:\n    pass"),
     "unexpected statement"),
    (lambda s: s.replace("    return None", "    return alpha"), "uses submodule 'alpha'"),
    (lambda s: s.replace("from ._jsii import *", "from ._jsii import *\nfrom .alpha import VALUE"),
     "unexpected import"),
    (lambda s: s.replace("import jsii", "import jsii\nimport fake_provider.alpha"), "import of the package itself"),
    (lambda s: s.replace('    "beta",\n', ""), "__all__ differs"),
    (lambda s: s.replace("import typing", "if True:\n    import typing"), "unexpected statement"),
])
def test_shape_check_rejects_what_it_does_not_know(change, why):
    assert analyse_init(FAKE_INIT, "fake_provider")[1] == ["alpha", "beta"]
    with pytest.raises(UnsupportedLayout, match=why.replace("(", r"\(")):
        analyse_init(change(FAKE_INIT), "fake_provider")


def _fake_npm_package(root: Path, index_js: str) -> Path:
    pkg = root / "node_modules" / "@cdktf" / "provider-helm"
    for sub in ("alpha", "beta"):
        (pkg / "lib" / sub).mkdir(parents=True)
        (pkg / "lib" / sub / "index.js").write_text(f"(globalThis.loaded ||= []).push('{sub}'); exports.V = '{sub}';\n")
    (pkg / "package.json").write_text(json.dumps({"name": "@cdktf/provider-helm", "main": "lib/index.js"}))
    (pkg / "lib" / "index.js").write_text(index_js)
    return pkg


NODE_INDEX = '''"use strict";
/**
 * Copyright (c) HashiCorp, Inc.
 * SPDX-License-Identifier: MPL-2.0
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.beta = exports.alpha = void 0;
// generated by cdktf get
exports.alpha = require("./alpha");
exports.beta = require("./beta");
//# sourceMappingURL=data:application/json;base64,e30=
'''
NODE_PROBE = ("const m = require(process.argv[1]); const before = [...(globalThis.loaded || [])]; "
              "console.log(JSON.stringify({before, alpha: m.alpha.V, after: globalThis.loaded, keys: Object.keys(m)}))")


def test_node_hook_defers_each_resource_module(tmp_path, node_hook):
    pkg = _fake_npm_package(tmp_path, NODE_INDEX)
    r = _node(node_hook, NODE_PROBE, str(pkg))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout) == {"before": [], "alpha": "alpha", "after": ["alpha"], "keys": ["alpha", "beta"]}


def test_node_hook_falls_back_loudly_on_an_unknown_line(tmp_path, node_hook):
    pkg = _fake_npm_package(tmp_path, NODE_INDEX.replace('exports.beta = require("./beta");',
                                                         'exports.beta = require("./beta");\nexports.x = 1;'))
    r = _node(node_hook, NODE_PROBE, str(pkg))
    assert r.returncode == 0, r.stderr
    warning = _console_lines(r.stderr)
    assert warning.startswith("warning: fast imports off for node @cdktf/provider-helm (unexpected line"), warning
    assert warning.count("\n") == 1
    assert json.loads(r.stdout)["before"] == ["alpha", "beta"]  # the plain, eager require


def test_install_adds_the_node_hook_to_existing_node_options(monkeypatch):
    monkeypatch.delenv(ENV_PLAIN, raising=False)
    monkeypatch.setenv("NODE_OPTIONS", "--max-old-space-size=512")
    try:
        assert fast_imports.install()
        first = os.environ["NODE_OPTIONS"]
        assert fast_imports.install() and os.environ["NODE_OPTIONS"] == first  # idempotent
        keep, hook = first.split(" ", 1)
        assert keep == "--max-old-space-size=512" and hook.startswith("--require=")
        assert "@cdktf/provider-aws" in Path(hook.split("=", 1)[1].strip('"')).read_text()
    finally:
        fast_imports.uninstall()
    assert os.environ["NODE_OPTIONS"] == "--max-old-space-size=512"
    assert not any(isinstance(f, fast_imports.LazyProviderFinder) for f in sys.meta_path)


def test_opt_out_leaves_the_interpreter_alone(monkeypatch):
    monkeypatch.setenv(ENV_PLAIN, "1")
    monkeypatch.setenv("NODE_OPTIONS", "--max-old-space-size=512")
    before = list(sys.meta_path)
    assert fast_imports.install() is False
    assert sys.meta_path == before and os.environ["NODE_OPTIONS"] == "--max-old-space-size=512"
