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
    return subprocess.run([sys.executable, "-m", "scripts.ray_commands", *args], cwd=ROOT, env=app_env(),
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


def test_submit_exports_the_token_for_ray_job_submit():
    """Run what `make submit` evals, with kubectl and ray standing in: ray sees RAY_AUTH_MODE and RAY_AUTH_TOKEN."""
    r = _run("submit")
    assert r.returncode == 0, r.stderr
    script = (f"kubectl() {{ printf '%s' {shlex.quote(TOKEN)}; }}\n"
              f"ray() {{ printf '%s|%s|%s' \"$RAY_AUTH_MODE\" \"$RAY_AUTH_TOKEN\" \"$*\"; }}\n"
              f"eval {shlex.quote(r.stdout)}\n")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    mode, token, argv = out.stdout.split("|")
    assert (mode, token) == ("token", TOKEN)
    assert argv.startswith("job submit --address http://localhost:8265 --working-dir training -- python "
                           "pytorch_training_e2e.py")


def test_dashboard_runs_only_the_port_forward_and_points_at_the_token():
    r = _run("dashboard")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "kubectl port-forward -n ray svc/kuberay-head-svc 8265:8265"
    assert "make token" in r.stderr
