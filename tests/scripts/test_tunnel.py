"""`make tunnel` with a deployed infra stack (a state real terraform wrote, with the outputs the tunnel reads; the API
a real TLS server for the endpoint's host name on 127.0.0.1, tests/scripts/test_after_deploy.py):

- an open session is reused only when it goes through the deployed tunnel instance, on the config's port, and the API
  answers through it; otherwise it is stopped and a new one started;
- StartSession answers TargetNotConnected while a new instance's SSM Agent registers: `make tunnel` tries again until
  its timeout, then says so in one line; any other refusal ends it at once.

The AWS side is the real AWS CLI against a local endpoint that answers StartSession as Systems Manager does when it
refuses (awsJson1_1 errors); `session-manager-plugin` is on PATH as a stand-in only, since the CLI calls it after a
StartSession that succeeds and none does here.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, app_env, run_make, terraformrc
from tests.scripts.test_after_deploy import ENDPOINT_HOST, _api_server, _free_port, _terraform

INSTANCE = "i-0123456789abcdef0"


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[int, str]]:
    """The cluster's API (TLS for ENDPOINT_HOST) on 127.0.0.1: its port and CA."""
    with _api_server(tmp_path_factory.mktemp("api")) as found:
        yield found


@pytest.fixture(scope="module")
def outdir(default_synth, api, tmp_path_factory) -> Iterator[Path]:
    """The default synth, copied, with its infra stack deployed: the state holds the outputs `make tunnel` reads."""
    out = tmp_path_factory.mktemp("tunnel") / "cdktf.out"
    shutil.copytree(default_synth["_outdir"], out)
    state = out.parent / "state" / "ray-eks" / "us-west-2" / "infra.tfstate"
    maker = out.parent / "maker"
    maker.mkdir()
    values = {"deployment": {"name": "ray-eks", "region": "us-west-2"}, "cluster_name": "ray-eks",
              "region": "us-west-2", "cluster_endpoint": f"https://{ENDPOINT_HOST}",
              "cluster_certificate_authority_data": api[1], "api_tunnel_instance_id": INSTANCE}
    (maker / "main.tf.json").write_text(json.dumps({
        "terraform": {"backend": {"local": {"path": str(state)}}},
        "output": {k: {"value": v} for k, v in values.items()}}))
    _terraform(maker, "init", "-input=false")
    _terraform(maker, "apply", "-auto-approve", "-input=false")
    yield out


class _Ssm(http.server.BaseHTTPRequestHandler):
    """Systems Manager's StartSession, refusing: each call takes the next of ``answers`` (the last one repeats)."""

    answers: list[str] = []
    calls: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        assert self.headers["X-Amz-Target"] == "AmazonSSM.StartSession", self.headers["X-Amz-Target"]
        type(self).calls.append(body)
        error = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if error == "ok":  # a session: the AWS CLI then hands it to session-manager-plugin
            return self._answer(200, {"SessionId": "s-0123456789abcdef0", "TokenValue": "token",
                                      "StreamUrl": "wss://ssmmessages.us-west-2.amazonaws.com/v1/data-channel/s"})
        message = {"TargetNotConnected": f"{body.get('Target')} is not connected.",
                   "AccessDeniedException": "User is not authorized to perform: ssm:StartSession"}[error]
        self._answer(400, {"__type": error, "message": message})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextmanager
def _ssm(*answers: str) -> Iterator[type[_Ssm]]:
    handler = type("Ssm", (_Ssm,), {"answers": list(answers), "calls": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _plugin_path(tmp: Path) -> str:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    plugin = bin_dir / "session-manager-plugin"
    plugin.write_text("#!/bin/sh\nexit 1\n")
    plugin.chmod(0o755)
    rest = [p for p in app_env()["PATH"].split(":") if not (Path(p) / "session-manager-plugin").exists()]
    return ":".join([str(bin_dir), *rest])


def _tunnel(tmp: Path, outdir: Path, port: int, ssm_url: str, **extra: str) -> subprocess.CompletedProcess:
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump({"cluster": {"tunnel_local_port": port}, "endpoints": {"url": ssm_url}}))
    env = app_env(config=config, outdir=outdir, RAY_EKS_BUILD_DIR=str(outdir.parent / "build"),
                  PATH=_plugin_path(tmp), AWS_MAX_ATTEMPTS="1", **extra)
    return run_make("tunnel", env=env)


@contextmanager
def _session(outdir: Path, command: list[str] | None = None, **fields) -> Iterator[subprocess.Popen]:
    """A running session of this deployment's tunnel as `make tunnel` records it (a process in its own group whose
    command line is a start-session to the recorded instance), or, given ``command``, a record whose pid is another
    program's."""
    session = [sys.executable, "-c", "import time; time.sleep(300)", "ssm", "start-session", "--target",
               str(fields.get("instance"))]
    proc = subprocess.Popen(command or session, start_new_session=True)
    tunnels = outdir.parent / "build" / "tunnel"
    tunnels.mkdir(parents=True, exist_ok=True)
    (tunnels / "ray-eks-us-west-2.json").write_text(json.dumps({
        "pid": proc.pid, "host": ENDPOINT_HOST, "log": str(tunnels / "ray-eks-us-west-2.log"), **fields}))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        (tunnels / "ray-eks-us-west-2.json").unlink(missing_ok=True)


def _errors(r: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]


def test_the_deployed_instances_session_on_the_configs_port_with_the_api_answering_is_reused(tmp_path, outdir, api):
    port = api[0]
    with _ssm("AccessDeniedException") as ssm, _session(outdir, instance=INSTANCE, port=port) as proc:
        r = _tunnel(tmp_path, outdir, port, ssm.url)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"tunnel already open: https://127.0.0.1:{port} -> {ENDPOINT_HOST}:443 through "
                                   f"{INSTANCE} (pid {proc.pid})"), r.stdout
        assert proc.poll() is None and ssm.calls == []


@pytest.mark.parametrize("stale", ["instance", "port", "api"])
def test_any_other_session_is_stopped_and_a_new_one_started(tmp_path, outdir, stale):
    port = _free_port()  # the config's; nothing answers there (the new session must find it free)
    recorded = {"instance": "i-0000000000000old0" if stale == "instance" else INSTANCE,
                "port": port + 1 if stale == "port" else port}
    why = {"instance": f"it goes through i-0000000000000old0, the infra stack's tunnel instance is {INSTANCE}",
           "port": f"it listens on port {port + 1}, cluster.tunnel_local_port is {port}",
           "api": "the API does not answer through it: ConnectionRefusedError"}[stale]
    with _ssm("AccessDeniedException") as ssm, _session(outdir, **recorded) as proc:
        r = _tunnel(tmp_path, outdir, port, ssm.url)
        proc.wait(timeout=15)  # stopped
    assert r.returncode != 0
    assert f"tunnel: stopping the open session (pid {proc.pid}; {why}" in r.stdout, r.stdout
    assert [c["Target"] for c in ssm.calls] == [INSTANCE]  # and a new session asked for, to the deployed instance
    (line,) = _errors(r)
    assert line.startswith(f"error: aws ssm start-session to {INSTANCE} ended (") and "AccessDenied" in line, line


def test_a_record_whose_pid_is_another_program_is_stale_and_that_program_left_alone(tmp_path, outdir):
    """A session record outlives a reboot; its pid may then be another program's: not reused, not stopped."""
    port = _free_port()
    with _ssm("AccessDeniedException") as ssm, \
            _session(outdir, command=["sleep", "300"], instance=INSTANCE, port=port) as other:
        r = _tunnel(tmp_path, outdir, port, ssm.url)
        assert other.poll() is None  # still running
    assert "stopping the open session" not in r.stdout, r.stdout
    assert [c["Target"] for c in ssm.calls] == [INSTANCE]  # a new session asked for
    (line,) = _errors(r)
    assert line.startswith(f"error: aws ssm start-session to {INSTANCE} ended (") and "AccessDenied" in line, line


def test_ctrl_c_while_the_session_opens_leaves_nothing_running_and_is_one_line(tmp_path, outdir):
    """StartSession succeeds and the (stand-in) plugin runs but never forwards the port; Ctrl-C then stops the whole
    session (the AWS CLI and its plugin, in their own process group) and ends on one line, exit 130."""
    marker = tmp_path / "plugin-ran"
    bin_dir = tmp_path / "slow-bin"
    bin_dir.mkdir()
    plugin = bin_dir / "session-manager-plugin"
    plugin.write_text(f"#!{sys.executable}\nimport pathlib, time\npathlib.Path({str(marker)!r}).touch()\n"
                      f"time.sleep(300)\n")  # its command line keeps its path (pgrep below)
    plugin.chmod(0o755)
    port = _free_port()
    config = tmp_path / "config.yaml"
    with _ssm("ok") as ssm:
        config.write_text(yaml.safe_dump({"cluster": {"tunnel_local_port": port}, "endpoints": {"url": ssm.url}}))
        rc = terraformrc(tmp_path)  # as the Makefile does
        env = app_env(config=config, outdir=outdir, RAY_EKS_BUILD_DIR=str(outdir.parent / "build"),
                      PATH=f"{bin_dir}:{_plugin_path(tmp_path)}", AWS_MAX_ATTEMPTS="1", **(
                          {"TF_CLI_CONFIG_FILE": rc} if rc else {}))
        # Not through make: Ctrl-C goes to this one process, as a terminal's goes to the foreground job.
        proc = subprocess.Popen([sys.executable, "-m", "scripts.tunnel", "open"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while not marker.exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=10)
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines() == ["error: interrupted: no tunnel was left running"], err
    assert len(ssm.calls) == 1
    leftover = subprocess.run(["pgrep", "-f", f"{bin_dir}/session-manager-plugin"], capture_output=True, text=True)
    assert leftover.stdout == "", f"the session's plugin still runs: {leftover.stdout}"


def test_start_session_is_retried_while_the_agent_is_not_connected(tmp_path, outdir):
    with _ssm("TargetNotConnected", "TargetNotConnected", "AccessDeniedException") as ssm:
        r = _tunnel(tmp_path, outdir, _free_port(), ssm.url, RAY_EKS_TUNNEL_RETRY_S="0.5")
    assert len(ssm.calls) == 3, ssm.calls  # two refusals while the agent registers, then the final answer
    (line,) = _errors(r)
    assert r.returncode != 0 and "AccessDenied" in line, line


def test_an_agent_that_never_connects_is_one_line_after_the_timeout(tmp_path, outdir):
    with _ssm("TargetNotConnected") as ssm:
        r = _tunnel(tmp_path, outdir, _free_port(), ssm.url, RAY_EKS_TUNNEL_RETRY_S="1",
                    RAY_EKS_TUNNEL_CONNECT_TIMEOUT="5")
    assert r.returncode != 0 and len(ssm.calls) >= 2, ssm.calls
    (line,) = _errors(r)
    assert line.startswith(f"error: SSM Agent on the tunnel instance {INSTANCE} is not connected to Systems Manager "
                           f"after {len(ssm.calls)} tries in 5s ("), line
    assert "TargetNotConnected" in line and line.endswith("then run `make tunnel` again"), line


def test_a_synth_of_another_deployment_is_one_line(tmp_path, outdir):
    """cdktf.out holds the default deployment's synth; a config for another deployment must not read its state."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"name": "ray-other"}))
    env = app_env(config=config, outdir=outdir, RAY_EKS_BUILD_DIR=str(outdir.parent / "build"))
    r = run_make("tunnel", env=env)
    assert r.returncode != 0
    assert _errors(r) == [f"error: {outdir} holds the synth of deployment ray-eks (us-west-2), not this config's "
                          f"ray-other (us-west-2): run `make synth` with this config (RAY_EKS_CONFIG) first"], r.stderr


def test_terraform_on_one_stack_of_this_deployment(tmp_path, outdir):
    """`python -m scripts.tf <stack> ...` (the AMI refresh docs/deploy.md gives): init, the guard, then terraform."""
    rc = subprocess.run(["scripts/terraformrc.sh", str(outdir.parent / "build" / "terraformrc")], cwd=ROOT,
                        capture_output=True, text=True, check=True).stdout.strip()
    env = app_env(outdir=outdir, RAY_EKS_BUILD_DIR=str(outdir.parent / "build"),
                  **({"TF_CLI_CONFIG_FILE": rc} if rc else {}))
    r = subprocess.run([sys.executable, "-m", "scripts.tf", "infra", "output", "-raw", "api_tunnel_instance_id"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert (r.returncode, r.stdout) == (0, INSTANCE), r.stderr
    r = subprocess.run([sys.executable, "-m", "scripts.tf", "infra", "output", "-raw", "no_such_output"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == "error: terraform output of stack infra failed (above)"
