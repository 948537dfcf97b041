"""scripts/ray_commands.py, what `make dashboard`, `make token` and `make submit` run: the commands work the way the
Makefile runs them (eval in bash), with the real kubectl decoding a Secret like the one KubeRay creates."""

from __future__ import annotations

import base64
import shlex
import shutil
import subprocess
import sys

from tests.helpers import ROOT, app_env

TOKEN = base64.b64encode(bytes(range(200, 232))).decode()  # like KubeRay's: base64 of 32 random bytes


def _run(*args: str) -> subprocess.CompletedProcess:
    """The command alone (--no-check: no cluster here; tests/scripts/test_after_deploy.py runs the checks)."""
    return subprocess.run([sys.executable, "-m", "scripts.ray_commands", "--no-check", *args], cwd=ROOT, env=app_env(),
                          capture_output=True, text=True, timeout=60)


def test_token_command_decodes_the_secret_kuberay_creates():
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is a prerequisite of the user guide and of this test"
    r = _run("token")
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout)
    assert argv[:6] == ["kubectl", "get", "secret", "-n", "ray", "kuberay"]
    output = argv[argv.index("-o") + 1]
    # The same Secret KubeRay writes (stringData.auth_token), decoded by kubectl's own template function.
    decoded = subprocess.run([kubectl, "create", "secret", "generic", "kuberay", "-n", "ray",
                              f"--from-literal=auth_token={TOKEN}", "--dry-run=client", "-o", output],
                             capture_output=True, text=True, timeout=60)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout == TOKEN


def _eval_submit(kubectl_body: str) -> subprocess.CompletedProcess:
    """What `make submit` evals (set -e, as its recipe), with kubectl and ray standing in."""
    r = _run("submit")
    assert r.returncode == 0, r.stderr
    script = (f"set -e\nkubectl() {{ {kubectl_body}; }}\n"
              f"ray() {{ printf '%s|%s|%s' \"$RAY_AUTH_MODE\" \"$RAY_AUTH_TOKEN\" \"$*\"; }}\n"
              f"eval {shlex.quote(r.stdout)}\n")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


def test_submit_exports_the_token_for_ray_job_submit():
    """ray sees RAY_AUTH_MODE and RAY_AUTH_TOKEN."""
    out = _eval_submit(f"printf '%s' {shlex.quote(TOKEN)}")
    assert out.returncode == 0, out.stderr
    mode, token, argv = out.stdout.split("|")
    assert (mode, token) == ("token", TOKEN)
    assert argv.startswith("job submit --address http://localhost:8265 --working-dir training -- python "
                           "pytorch_training_e2e.py")


def test_submit_stops_when_the_token_cannot_be_read():
    """kubectl failing (the Secret gone between the check and the read): no ray job submit with an empty token."""
    out = _eval_submit("echo 'Error from server (NotFound): secrets \"kuberay\" not found' >&2; return 1")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines()[-1] == "error: could not read the Ray token (above): run `make token` to see why"


def test_dashboard_runs_only_the_port_forward_and_points_at_the_token():
    r = _run("dashboard")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "kubectl port-forward -n ray svc/kuberay-head-svc 8265:8265"
    assert "make token" in r.stderr
