"""`make tunnel`, `make tunnel-close`, `make kubeconfig`: the deployer's way to the private Kubernetes API
(cluster.endpoint_access tunnel, the default).

    python -m scripts.tunnel open        # forward https://127.0.0.1:<tunnel_local_port> to the API, once it works
    python -m scripts.tunnel close
    python -m scripts.tunnel status
    python -m scripts.tunnel kubeconfig  # aws eks update-kubeconfig, pointed through the tunnel

``open`` starts ``aws ssm start-session --document-name AWS-StartPortForwardingSessionToRemoteHost`` to the infra
stack's API tunnel instance (host: the endpoint's host, portNumber 443, localPortNumber: the config's port) in the
background, waits until the API answers through it (TLS checked against the cluster's CA and the endpoint's host
name, as the providers and kubectl do) and leaves it running; ``close`` ends it. A new instance's SSM Agent registers
a minute or two after boot: until then StartSession answers TargetNotConnected, and ``open`` tries again (up to
RAY_EKS_TUNNEL_CONNECT_TIMEOUT seconds, 300). An open session is reused only when it goes through the deployed
tunnel instance, on the config's port, and the API answers through it; otherwise it is stopped and a new one
started. The session's process and log are ``build/tunnel/<name>-<region>.{json,log}``. The helm and kubernetes
providers, kubectl (``tls-server-name`` in its kubeconfig) and the make targets then reach the API at
https://127.0.0.1:<port>.

Needs the AWS CLI with its Session Manager plugin. Every failure is one line on stderr that says what to do, and a
non-zero exit status: 1 the tunnel cannot open (not deployed, no plugin, port taken, SSM refused), 2 a config
problem.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from config import AppConfig
from conventions.api_access import TUNNEL_HOST, tunnel_url
from stacks.contract import INFRA_STACK

from . import load_config_or_report
from .aws_cli import INSTALL_AWS_CLI, Aws, AwsError
from .tf import BUILD, Terraform, TerraformError, check_terraform, not_deployed

DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
PLUGIN = "session-manager-plugin"
INSTALL_PLUGIN = ("install the AWS CLI's Session Manager plugin: https://docs.aws.amazon.com/systems-manager/latest/"
                  "userguide/session-manager-working-with-install-plugin.html")
TUNNEL_DIR = BUILD / "tunnel"
OPEN_TIMEOUT_S = float(os.environ.get("RAY_EKS_TUNNEL_TIMEOUT", "90"))
# How long `make tunnel` waits for a new tunnel instance's SSM Agent to register, and between tries.
CONNECT_TIMEOUT_S = float(os.environ.get("RAY_EKS_TUNNEL_CONNECT_TIMEOUT", "300"))
CONNECT_RETRY_S = float(os.environ.get("RAY_EKS_TUNNEL_RETRY_S", "10"))
NOT_CONNECTED = "TargetNotConnected"  # StartSession's error while the target's agent is not registered


class TunnelError(Exception):
    """One line: what failed and what to do."""


def session_file(cfg: AppConfig) -> Path:
    return TUNNEL_DIR / f"{cfg.name}-{cfg.region}.json"


def start_session_argv(aws: Aws, instance_id: str, host: str, local_port: int) -> list[str]:
    """The port-forward through the tunnel instance to the API endpoint."""
    params = f"host={host},portNumber=443,localPortNumber={local_port}"
    return aws.argv("ssm", "start-session", "--target", instance_id, "--document-name", DOCUMENT,
                    "--parameters", params)


def port_open(port: int, host: str = TUNNEL_HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def api_answers(port: int, server_name: str, ca_data: str, timeout: float = 10) -> str | None:
    """None when an HTTPS request through the local port reaches the API (any HTTP answer: the TLS session with the
    cluster's certificate is what matters); else why not."""
    try:
        context = ssl.create_default_context(cadata=base64.b64decode(ca_data).decode())
    except (ValueError, ssl.SSLError) as e:
        return f"the cluster's CA certificate is unusable ({e})"
    try:
        with socket.create_connection((TUNNEL_HOST, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=server_name) as tls:
            tls.sendall(f"GET /livez HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            first = tls.recv(64)
    except ssl.SSLCertVerificationError as e:
        return f"the API's certificate does not match {server_name} ({e.verify_message})"
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None if first.startswith(b"HTTP/") else "no HTTP answer"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_session(pid: int, instance: str) -> bool:
    """The process is our `aws ssm start-session` to ``instance``: a session file outlives a reboot, and its pid may
    since belong to another program (which must be neither reused nor stopped). `ps` reads it on Linux and macOS."""
    if not _alive(pid):
        return False
    try:
        # /proc where there is one; else ps, at full width (-ww: without a terminal it cuts the line at 80 columns)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") \
            if Path("/proc/self/cmdline").exists() else \
            subprocess.run(["ps", "-ww", "-p", str(pid), "-o", "command="], capture_output=True, text=True,
                           timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "start-session" in command and bool(instance) and instance in command


def read_session(cfg: AppConfig) -> dict | None:
    """The running tunnel of this deployment (its process, port), if there is one."""
    try:
        info = json.loads(session_file(cfg).read_text())
    except (OSError, ValueError):
        return None
    if not _is_session(int(info.get("pid", 0)), str(info.get("instance", ""))):
        session_file(cfg).unlink(missing_ok=True)
        return None
    return info


def infra_endpoint(cfg: AppConfig) -> tuple[str, str, str]:
    """The deployed infra stack's tunnel instance, the endpoint's host and the cluster CA (TunnelError when it is not
    deployed)."""
    outputs = Terraform(cfg).outputs(INFRA_STACK)
    endpoint, instance = outputs.get("cluster_endpoint"), outputs.get("api_tunnel_instance_id")
    if not endpoint:
        raise TunnelError(not_deployed(cfg))
    if not instance:
        raise TunnelError("the deployed infra stack has no API tunnel instance (it was applied with another "
                          "cluster.endpoint_access): run `make deploy`")
    return str(instance), str(urlsplit(str(endpoint)).hostname), str(outputs.get("cluster_certificate_authority_data"))


def check_can_open(cfg: AppConfig) -> None:
    """What opening the tunnel needs from this machine, without AWS: the Session Manager plugin, and the local port
    free (or held by this deployment's own tunnel). TunnelError, one line, otherwise."""
    if not shutil.which(PLUGIN):
        raise TunnelError(f"{PLUGIN} is not on PATH: {INSTALL_PLUGIN}")
    port = cfg.cluster.tunnel_local_port
    running = read_session(cfg)
    if port_open(port) and not (running and int(running.get("port", 0)) == port):
        raise TunnelError(f"{TUNNEL_HOST}:{port} is in use by another program: stop it, or set "
                          f"cluster.tunnel_local_port to a free port")


def _not_reusable(running: dict, instance: str, port: int, host: str, ca: str) -> str | None:
    """None when the open session is this deployment's tunnel as deployed now; else why not."""
    if running.get("instance") != instance:
        return f"it goes through {running.get('instance')}, the infra stack's tunnel instance is {instance}"
    if int(running.get("port", 0)) != port:
        return f"it listens on port {running.get('port')}, cluster.tunnel_local_port is {port}"
    problem = api_answers(port, host, ca)
    return None if problem is None else f"the API does not answer through it: {problem}"


def open_tunnel(cfg: AppConfig) -> tuple[dict, bool]:
    """Open this deployment's tunnel unless it is open (to the deployed tunnel instance, on the config's port, with
    the API answering through it: any other session is stopped and a new one started). Returns its session and
    whether this call opened it."""
    port = cfg.cluster.tunnel_local_port
    instance, host, ca = infra_endpoint(cfg)
    running = read_session(cfg)
    if running:
        why = _not_reusable(running, instance, port, host, ca)
        if why is None:
            return running, False
        print(f"tunnel: stopping the open session (pid {running.get('pid')}; {why}) and starting a new one",
              flush=True)
        close_tunnel(cfg)
    if not Aws.installed():
        raise TunnelError(f"the AWS CLI is not on PATH: {INSTALL_AWS_CLI}")
    check_can_open(cfg)
    aws = Aws(cfg)
    TUNNEL_DIR.mkdir(parents=True, exist_ok=True)
    log = session_file(cfg).with_suffix(".log")
    # SSM Agent registers with Systems Manager a minute or two after the instance boots; until then StartSession
    # answers TargetNotConnected. Retried until CONNECT_TIMEOUT_S; any other end of the session is final.
    connect_deadline = time.monotonic() + CONNECT_TIMEOUT_S
    tries = 0
    while True:
        tries += 1
        with open(log, "w") as out:
            proc = subprocess.Popen(start_session_argv(aws, instance, host, port), env=aws.env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        info = {"pid": proc.pid, "port": port, "instance": instance, "host": host, "log": str(log)}
        try:
            opened = _wait_open(proc, info, ca, log)
        except BaseException:  # Ctrl-C or an error: the session, in its own process group, must not outlive us
            _stop(proc.pid)
            raise
        if opened:
            session_file(cfg).write_text(json.dumps(info))
            return info, True
        if time.monotonic() + CONNECT_RETRY_S >= connect_deadline:
            raise TunnelError(f"SSM Agent on the tunnel instance {instance} is not connected to Systems Manager "
                              f"after {tries} tries in {CONNECT_TIMEOUT_S:.0f}s ({_last_line(log)}): check that the "
                              f"instance is running (it registers a minute or two after boot), then run `make tunnel` "
                              f"again")
        time.sleep(CONNECT_RETRY_S)


def _wait_open(proc: subprocess.Popen, info: dict, ca: str, log: Path) -> bool:
    """Wait for the session to forward the port with the API answering: True; False when it ended because the
    instance's agent is not connected yet (TargetNotConnected); TunnelError for anything else."""
    instance, host, port = info["instance"], info["host"], info["port"]
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    why = "the port never opened"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if NOT_CONNECTED in log.read_text(errors="replace"):
                return False
            raise TunnelError(f"aws ssm start-session to {instance} ended ({_last_line(log)}): check that SSM Agent "
                              f"on it is online (`aws ssm describe-instance-information`) and that you may start "
                              f"sessions (ssm:StartSession)")
        if port_open(port):
            problem = api_answers(port, host, ca)
            if problem is None:
                return True
            why = problem
        time.sleep(1)
    _stop(proc.pid)
    raise TunnelError(f"the tunnel to {host} did not answer within {OPEN_TIMEOUT_S:.0f}s ({why}; log: {log}): check "
                      f"that the instance {instance} is running and its SSM Agent online")


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _stop(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):  # gone, or not ours
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
        with contextlib.suppress(ChildProcessError):  # our own child: reap it, or it stays a zombie that looks alive
            os.waitpid(pid, os.WNOHANG)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def close_tunnel(cfg: AppConfig) -> bool:
    """End this deployment's tunnel; False when none was open."""
    info = read_session(cfg)
    if info is None:
        return False
    _stop(int(info["pid"]))
    session_file(cfg).unlink(missing_ok=True)
    return True


def write_kubeconfig(cfg: AppConfig) -> str:
    """aws eks update-kubeconfig for the cluster, then (tunnel) its server through the tunnel with the endpoint's
    host as TLS server name (kubeconfig tls-server-name). Returns the context's name."""
    if not Aws.installed():
        raise TunnelError(f"the AWS CLI is not on PATH: {INSTALL_AWS_CLI}")
    if not shutil.which("kubectl"):
        raise TunnelError("kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/)")
    aws = Aws(cfg)
    try:
        cluster = aws("eks", "describe-cluster", "--name", cfg.name)["cluster"]
    except AwsError as e:
        if "ResourceNotFound" in str(e):
            raise TunnelError(f"there is no EKS cluster {cfg.name} in {cfg.region}: run `make deploy`") from None
        raise TunnelError(str(e)) from None
    r = subprocess.run(aws.argv("eks", "update-kubeconfig", "--name", cfg.name), env=aws.env, capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        raise TunnelError(f"aws eks update-kubeconfig failed: {_stderr_line(r.stderr)}")
    if cfg.cluster.endpoint_access == "tunnel":
        host = urlsplit(cluster["endpoint"]).hostname
        r = subprocess.run(["kubectl", "config", "set-cluster", cluster["arn"],
                            f"--server={tunnel_url(cfg.cluster.tunnel_local_port)}", f"--tls-server-name={host}"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise TunnelError(f"kubectl config set-cluster failed: {_stderr_line(r.stderr)}")
    return str(cluster["arn"])


def _stderr_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("open", "close", "status", "kubeconfig"))
    ns = ap.parse_args(argv)
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    tunnel = cfg.cluster.endpoint_access == "tunnel"
    try:
        if ns.command == "kubeconfig":
            context = write_kubeconfig(cfg)
            how = f" through the tunnel (`make tunnel` first): {tunnel_url(cfg.cluster.tunnel_local_port)}" \
                if tunnel else ""
            print(f"kubeconfig: context {context}{how}")
            return 0
        if not tunnel:
            print(f"tunnel: not used (cluster.endpoint_access is {cfg.cluster.endpoint_access}): the API is the "
                  f"endpoint itself", file=sys.stderr)
            return 0
        if ns.command == "open":
            check_terraform()
            info, opened = open_tunnel(cfg)
            state = "open" if opened else "already open"
            print(f"tunnel {state}: {tunnel_url(info['port'])} -> {info['host']}:443 through {info['instance']} "
                  f"(pid {info['pid']}); `make tunnel-close` ends it")
        elif ns.command == "close":
            print("tunnel closed" if close_tunnel(cfg) else "tunnel: none open")
        else:
            running = read_session(cfg)
            if running is None:
                print("tunnel: none open (`make tunnel` opens it)", file=sys.stderr)
                return 1
            print(f"tunnel open: {tunnel_url(running['port'])} -> {running['host']}:443 (pid {running['pid']})")
    except (TunnelError, TerraformError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (a session we started is stopped on the way)
        print("error: interrupted: no tunnel was left running", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
