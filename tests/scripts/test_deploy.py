"""`make deploy` checks what needs no plan first: without working credentials it stops in one line, before it
synthesizes or plans anything; a stack name it does not know is one line too. With the API behind the tunnel (the
default), what the ray stacks' tunnel needs from this machine (the Session Manager plugin, the local port free) is
checked first too, not after the infra stack's half hour."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import app_env, run_make


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deploy_without_credentials_stops_before_the_synth(tmp_path):
    r = _deploy(tmp_path, "deploy", config={"cluster": {"tunnel_local_port": _closed_port()}},
                PATH=_stand_in_plugin(tmp_path))
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot reach AWS with the current credentials"), r.stderr
    assert "aws sso login" in errors[0]
    out = tmp_path / "cdktf.out"
    assert not out.exists() and not (tmp_path / "build" / "terraform").exists()  # nothing synthesized, nothing planned


def test_an_unknown_stack_is_one_line(tmp_path):
    r = run_make("diff", "STACKS=infra,rayy", env=app_env(outdir=tmp_path / "out"))
    assert r.returncode != 0
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [
        "error: STACKS: rayy is not a stack (have infra, ray, ray-cluster)"]


# ---- tunnel mode (the default): what the ray stacks' tunnel needs is checked before the infra stack is applied ----
def _path_without_plugin() -> str:
    return ":".join(p for p in app_env()["PATH"].split(":") if not (Path(p) / "session-manager-plugin").exists())


def _stand_in_plugin(tmp: Path) -> str:
    """A PATH with a `session-manager-plugin` on it: these runs stop before anything would call it."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    plugin = bin_dir / "session-manager-plugin"
    plugin.write_text("#!/bin/sh\nexit 1\n")
    plugin.chmod(0o755)
    return f"{bin_dir}:{_path_without_plugin()}"


def _deploy(tmp: Path, *args: str, config: dict | None = None, **extra: str) -> subprocess.CompletedProcess:
    path = tmp / "config.yaml"  # an AWS endpoint nothing answers at: reaching the credentials check fails there
    path.write_text(yaml.safe_dump({"endpoints": {"url": f"http://127.0.0.1:{_closed_port()}"}, **(config or {})}))
    env = app_env(config=path, outdir=tmp / "cdktf.out", RAY_EKS_BUILD_DIR=str(tmp / "build"), AWS_MAX_ATTEMPTS="1",
                  **extra)
    return run_make(*args, env=env)


def test_tunnel_mode_without_the_plugin_stops_before_anything_is_applied(tmp_path):
    r = _deploy(tmp_path, "deploy", PATH=_path_without_plugin())
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        "error: the ray stacks reach the private API through `make tunnel`, and session-manager-plugin is not on "
        "PATH: install the AWS CLI's Session Manager plugin: https://docs.aws.amazon.com/systems-manager/latest/"
        "userguide/session-manager-working-with-install-plugin.html"], r.stderr
    assert not (tmp_path / "cdktf.out").exists() and not (tmp_path / "build" / "terraform").exists()


@pytest.mark.parametrize("verb", ["deploy", "diff", "destroy"])
def test_tunnel_mode_with_the_local_port_taken_stops_before_anything_is_applied(tmp_path, verb):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = _deploy(tmp_path, verb, config={"cluster": {"tunnel_local_port": port}}, PATH=_stand_in_plugin(tmp_path))
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: the ray stacks reach the private API through `make tunnel`, and 127.0.0.1:{port} is in "
                      f"use by another program: stop it, or set cluster.tunnel_local_port to a free port"], r.stderr
    assert not (tmp_path / "cdktf.out").exists()


def test_the_infra_stack_alone_needs_no_tunnel(tmp_path):
    r = _deploy(tmp_path, "deploy", "STACKS=infra", PATH=_path_without_plugin())
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode != 0 and len(errors) == 1
    assert errors[0].startswith("error: cannot reach AWS with the current credentials"), errors  # the next check
