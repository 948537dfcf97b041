"""`make deploy` checks what needs no plan first: without working credentials it stops in one line, before it
synthesizes or plans anything; a stack name it does not know is one line too."""

from __future__ import annotations

import socket

import yaml

from tests.helpers import app_env, run_make


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deploy_without_credentials_stops_before_the_synth(tmp_path):
    config = tmp_path / "config.yaml"  # an AWS endpoint nothing answers at: no credentials will work
    config.write_text(yaml.safe_dump({"endpoints": {"url": f"http://127.0.0.1:{_closed_port()}"}}))
    out = tmp_path / "cdktf.out"
    env = app_env(config=config, outdir=out, RAY_EKS_BUILD_DIR=str(tmp_path / "build"), AWS_MAX_ATTEMPTS="1")
    r = run_make("deploy", env=env)
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot reach AWS with the current credentials"), r.stderr
    assert "aws sso login" in errors[0]
    assert not out.exists() and not (tmp_path / "build" / "terraform").exists()  # nothing synthesized, nothing planned


def test_an_unknown_stack_is_one_line(tmp_path):
    r = run_make("diff", "STACKS=infra,rayy", env=app_env(outdir=tmp_path / "out"))
    assert r.returncode != 0
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [
        "error: STACKS: rayy is not a stack (have infra, ray, ray-cluster)"]
