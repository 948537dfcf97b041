"""README's user guide shows the names, ports and commands the default deployment really has.

Each step's code block is read from README.md and compared with what the stacks synthesize, what KubeRay v1.7.0 and
its chart derive from them (naming rules read in the v1.7.0 sources: pod names ``<cluster>-head-``/
``<cluster>-<group>-worker-``, head service ports sorted by name), and what ``make`` runs (scripts/ray_commands.py).
The rest of the README (and docs/) is held to what can be checked: every `make` target it names exists, the access
modes and the default one are the config's, the versions are the pinned ones, and every config field, output and
Terraform block it names in backticks exists.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from config import AppConfig
from conventions.ray import HEAD_PORTS
from scripts.render_jobs import documents, job_props
from tests.helpers import ROOT, app_env, one, outputs

README = (ROOT / "README.md").read_text()
DOCS = {"README.md": README, **{f"docs/{p.name}": p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}}
GUIDE = README[README.index("## User guide"):]


def block(step: int) -> str:
    """The first code block of numbered step ``step`` of the user guide."""
    start = re.search(rf"^{step}\. ", GUIDE, re.M)
    assert start, f"user guide step {step} not found"
    nxt = re.search(rf"^{step + 1}\. ", GUIDE[start.end():], re.M)
    text = GUIDE[start.end(): start.end() + nxt.start()] if nxt else GUIDE[start.end():]
    m = re.search(r"```\n(.*?)```", text, re.S)
    assert m, f"step {step} has no code block"
    return "\n".join(line[3:] if line.startswith("   ") else line for line in m.group(1).splitlines()).rstrip()


def make_prints(command: str) -> list[str]:
    """What `make <command>` runs (without its checks: there is no cluster here)."""
    r = subprocess.run([sys.executable, "-m", "scripts.ray_commands", "--no-check", command], cwd=ROOT, env=app_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()


@pytest.fixture(scope="module")
def cluster(default_synth) -> dict:
    return one(default_synth["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]


def test_the_guide_starts_by_installing_the_client_at_the_clusters_version():
    from scripts.client_env import requirement

    assert block(1).strip() == f'pip install "{requirement(AppConfig().ray.ray_version)}"'
    assert "`make client`" in GUIDE[:GUIDE.index("2. ")]


def test_connect_is_the_infra_output_for_the_default_deployment(default_synth, prod_synth):
    """The default (tunnel): the output is `make kubeconfig`, then `make tunnel`; public and private (the prod example):
    the AWS CLI's command, which the guide gives with the default's region and name."""
    cfg = AppConfig()
    assert cfg.cluster.endpoint_access == "tunnel"
    out = outputs(default_synth["infra"])["update_kubeconfig_command"]["value"]
    assert block(2).splitlines() == [out, "make tunnel"] == ["make kubeconfig", "make tunnel"]
    prod = outputs(prod_synth["infra"])["update_kubeconfig_command"]["value"]
    assert prod_synth["_cfg"].cluster.endpoint_access == "private"
    assert prod == ('${format("aws eks update-kubeconfig --region %s --name %s", "' + prod_synth["_cfg"].region
                    + '", aws_eks_cluster.ray.name)}')
    assert one(prod_synth["infra"], "aws_eks_cluster", "ray")["name"] == prod_synth["_cfg"].name
    step = GUIDE[GUIDE.index("2. "):GUIDE.index("3. ")]
    assert re.search(r"With `public` or `private` access the output is the AWS CLI's command alone .*:\s+"
                     rf"`aws eks update-kubeconfig --region {cfg.region} --name {cfg.name}`\.", step), step


def test_pods_are_named_as_kuberay_and_the_chart_name_them(cluster, default_synth):
    """Right after the deploy: the head (the operator runs in its own namespace); workers scale from zero
    (minReplicas 0), none yet."""
    lines = block(3).splitlines()
    assert lines[0].strip() == f"kubectl get pods -n {cluster['metadata']['namespace']}"
    operator_ns = one(default_synth["ray"], "kubernetes_namespace_v1", "kuberay_operator")["metadata"]["name"]
    assert f"kubectl get pods -n {operator_ns}" in README  # the operator, in its own namespace
    rows = {line.split()[0]: line.split()[1] for line in lines[1:] if line and not line.startswith("NAME")}
    name = cluster["metadata"]["name"]
    (group,) = cluster["spec"]["workerGroupSpecs"]
    # the head runs Ray and, with in-tree autoscaling, the autoscaler sidecar KubeRay adds
    head_containers = len(cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"])
    head_containers += 1 if cluster["spec"]["enableInTreeAutoscaling"] else 0
    assert group["minReplicas"] == 0
    assert rows == {f"{name}-head-...": f"{head_containers}/{head_containers}"}
    assert f"`{name}-{group['groupName']}-worker-...`" in GUIDE  # named where the guide says when they appear


def test_services_and_their_ports(cluster):
    lines = [line.split() for line in block(4).splitlines()[1:] if line and not line.startswith("NAME")]
    rows = {cols[0]: cols for cols in lines}
    head = cluster["spec"]["headGroupSpec"]
    ports = head["template"]["spec"]["containers"][0]["ports"]
    assert {p["name"]: p["containerPort"] for p in ports} == HEAD_PORTS
    # KubeRay v1.7.0 builds the head service from the head container's ports, sorted by port name, headless.
    expected = ",".join(f"{p['containerPort']}/TCP" for p in sorted(ports, key=lambda p: p["name"]))
    assert rows["kuberay-head-svc"][1:5] == [head["serviceType"], "None", "<none>", expected]
    assert rows["kuberay-head-svc"][0] == f"{cluster['metadata']['name']}-head-svc"
    assert set(rows) == {"kuberay-head-svc"}, "the operator's service is in the operator's namespace"


def test_port_forward_token_and_submit_are_what_make_runs(default_synth):
    out = {k: v["value"] for k, v in outputs(default_synth["ray-cluster"]).items()}
    assert block(5).strip() == make_prints("dashboard")[0] == out["dashboard_port_forward_command"]
    read_token, export, submit = make_prints("submit")
    assert block(6).strip() == out["ray_auth_export_command"]
    # make submit reads the token with the same command, and stops when it cannot.
    token = make_prints("token")[0]
    assert f"$({token})" in block(6) and read_token.startswith(f'RAY_AUTH_TOKEN="$({token})" || ')
    assert export == "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN"
    assert block(8).strip() == submit == out["ray_job_submit_command"]
    assert f"localhost:{HEAD_PORTS['dashboard']}" in block(7)


def test_in_cluster_job_names():
    docs = documents(job_props(AppConfig(), image="registry.example/ray:test"))
    job = next(d for d in docs["submit-job.yaml"] if d["kind"] == "Job")
    assert "rendered/submit-job.yaml" in block(10) and "rendered/rayjob.yaml" in GUIDE
    assert block(10).splitlines()[-1].strip() == (
        f"kubectl logs -n {job['metadata']['namespace']} job/{job['metadata']['name']} -f")


def test_checkpoints_go_where_the_job_writes_them():
    from training.pytorch_training_e2e import DEFAULT_STORAGE_PATH

    assert f"`{DEFAULT_STORAGE_PATH}/ray_train_run-" in GUIDE
    assert "s3://<data bucket>/ray/export/" in GUIDE and AppConfig().fsx.export_prefix == "ray/export/"


# ------------------------------------------------------------------------------------------------ the rest of README
def section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start: end if end > 0 else None]


def test_every_make_target_the_docs_name_exists():
    """`make <target>` in backticks, or a command line of a code block: a target the Makefile defines."""
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))
    assert {"synth", "deploy", "tunnel", "client", "submit"} <= targets  # the reader below reads the Makefile
    missing = []
    for name, text in DOCS.items():
        named = re.findall(r"`(?:[A-Z_]+=\S+ )*make ([a-z][a-z0-9-]*)", text)
        named += re.findall(r"^\s*(?:[A-Z_]+=\S+ )*make ([a-z][a-z0-9-]*)", text, re.M)
        missing += [f"{name}: make {t}" for t in named if t not in targets]
    assert not missing, f"targets the Makefile does not have: {missing}"


def test_deploy_names_the_access_modes_and_the_default_the_config_has(default_synth):
    from config.models import ENDPOINT_ACCESS_MODES, ClusterConfig
    from conventions.api_access import tunnel_url

    deploy = section("Deploy")
    rows = re.findall(r"^\| `([a-z]+)`( \(default\))? \|", deploy, re.M)
    assert [mode for mode, _ in rows] == list(ENDPOINT_ACCESS_MODES)
    default = ClusterConfig.model_fields["endpoint_access"].default
    assert [mode for mode, marked in rows if marked] == [default] and f"you get `{default}`" in deploy
    # ... and the default synth has that path: the tunnel instance, the providers at the local address the README gives
    assert one(default_synth["infra"], "aws_instance", "api_tunnel")
    address = tunnel_url(AppConfig().cluster.tunnel_local_port)
    assert default_synth["ray"]["provider"]["kubernetes"][0]["host"] == address
    assert address in deploy and f"server {address}" in GUIDE


def test_versions_the_readme_names_are_the_pinned_ones():
    from config import versions
    from stacks.state import REQUIRED_TERRAFORM

    assert set(re.findall(r"Terraform ≥ (\d+(?:\.\d+)*)", README)) == {REQUIRED_TERRAFORM.removeprefix(">= ")}
    assert f"KubeRay operator {versions.KUBERAY_OPERATOR_CHART}" in README
    assert f"KubeRay {versions.KUBERAY_OPERATOR_CHART}" in README
    karpenter = re.findall(r"Karpenter (\d+\.\d+)", README)
    assert karpenter and all(versions.KARPENTER_VERSION.startswith(f"{v}.") for v in karpenter)


def test_names_in_backticks_exist(default_synth):
    """A dotted name is a config field; any other snake_case name a stack's output or a Terraform block it uses."""
    stacks = [default_synth[s] for s in ("infra", "ray", "ray-cluster")]
    known = {name for stack in stacks for name in outputs(stack)}
    known |= {block for stack in stacks for block in stack.get("data", {})}
    names = set(re.findall(r"`([a-z][a-z0-9_.]*_[a-z0-9_.]*)`", README))
    assert {"data_bucket_name", "update_kubeconfig_command", "cluster.endpoint_access"} <= names
    for name in sorted(names):
        if "." not in name:
            assert name in known, f"README names `{name}`: no stack has such an output or block"
            continue
        node = AppConfig()
        for part in name.split("."):
            assert part in type(node).model_fields, f"README names `{name}`: no such config field"
            node = getattr(node, part)
