"""fast_imports.python_side: the import finder, its jsii hook, its loud fallback and its quiet step aside."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from fast_imports import ENV_PLAIN, python_side
from tests.fast_imports.fakes import JSII_LAZY_INIT
from tests.helpers import ROOT, app_env


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


def test_provider_lazy_already_is_left_alone_quietly(fake_provider, capsys, caplog):
    caplog.set_level(logging.DEBUG, logger=python_side.__name__)
    name, mod = fake_provider(JSII_LAZY_INIT)
    assert capsys.readouterr().err == ""  # not a failure: no warning
    assert f"{name} loads its submodules lazily already" in caplog.text
    assert name not in python_side._LAZY  # no trimmed __init__, no jsii hook: jsii's own loading runs
    assert f"{name}.alpha" not in sys.modules
    assert mod.alpha.VALUE == "alpha" and "beta" in dir(mod)


def test_real_provider_is_lazy_and_resolves_types_on_demand():
    # A fresh interpreter (the real aws assembly, the real jsii kernel): what main.py gets.
    script = textwrap.dedent("""
        import json, sys
        import fast_imports
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
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=False, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "warning" not in r.stderr, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    # Only the assembly loader, not 2,135 resource modules.
    assert got["loaded"] and all(m.split(".")[1] in ("_jsii", "_private") for m in got["loaded"]), got["loaded"]
    assert got["vpc"] == "@cdktf/provider-aws.vpc.Vpc"
    assert got["bucket"] == "@cdktf/provider-aws.s3Bucket.S3Bucket"
    assert got["hooked"] is True and got["identity"] is True and got["listed"] is True
