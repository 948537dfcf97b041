"""The architecture picture: scripts/diagram_model.py reads the synthesized stacks (default, dev-cpu, prod-gpu,
an existing VPC, each API access mode) into an Architecture -- what is configured shows, what is off does not -- and
scripts/diagram.py draws it with `diagrams` and Graphviz (`make diagram`, `make graphviz`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from config import AppConfig
from config.versions import DEFAULT_KUBERNETES_VERSION
from conventions.api_access import TUNNEL_INSTANCE_TYPE, tunnel_url
from scripts import diagram
from scripts.diagram_model import Architecture, SynthError, model_digest, read_architecture
from tests.helpers import ROOT, one

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def default_arch(default_synth) -> Architecture:
    return read_architecture(default_synth["_outdir"])


@pytest.fixture(scope="module")
def dev_arch(dev_synth) -> Architecture:
    return read_architecture(dev_synth["_outdir"])


@pytest.fixture(scope="module")
def prod_arch(prod_synth) -> Architecture:
    return read_architecture(prod_synth["_outdir"])


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height


def dot_labels(dot: str) -> str:
    """Every node, box and edge label of a laid-out Graphviz source, one per line."""
    dot = dot.replace("\\\n", "")  # dot continues long strings on the next line after a backslash
    found = re.findall(r'\blabel=(?:"((?:[^"\\]|\\.)*)"|([\w.]+))', dot)  # quoted, or a bare word
    return "\n".join(" ".join((q or bare).replace("\\n", "\n").split()) for q, bare in found)


ATTRS = r'\[((?:[^\]"]|"(?:[^"\\]|\\.)*")*)\]'  # a node's or an edge's [attributes], quoted strings kept whole


def _label(attrs: str) -> str:
    m = re.search(r'\blabel=(?:"((?:[^"\\]|\\.)*)"|([\w.]+))', attrs)
    return " ".join((m[1] or m[2]).replace("\\n", "\n").split()) if m else ""


def dot_edges(dot: str) -> set[tuple[str, str, str]]:
    """Every edge drawn, as (its tail's label, its head's label, its own label)."""
    dot = dot.replace("\\\n", "")
    nodes = {name: _label(attrs) for name, attrs in re.findall(r"^\s*(n\d+)\s+" + ATTRS, dot, re.M)}
    return {(nodes[tail], nodes[head], _label(attrs))
            for tail, head, attrs in re.findall(r"^\s*(n\d+) -> (n\d+)\s+" + ATTRS, dot, re.M)}


def dot_icons(dot: str) -> set[str]:
    """The icons drawn, as ``<provider>/<group>/<file>`` (``aws/compute/elastic-kubernetes-service.png``)."""
    return {"/".join(Path(p).parts[-3:]) for p in re.findall(r'\bimage="([^"]+)"', dot)}


def drawn(arch: Architecture, tmp_path: Path) -> str:
    """The picture's laid-out Graphviz source (same drawing code as the PNG; text to assert on)."""
    return diagram.render(arch, tmp_path / "architecture.png", fmt="dot").read_text()


# ------------------------------------------------------------------------------------------------ model
def test_default_model_is_the_complete_gpu_deployment(default_arch, default_synth):
    a, infra = default_arch, default_synth["infra"]
    eks = one(infra, "aws_eks_cluster", "ray")
    assert (a.cluster.name, a.cluster.version) == (eks["name"], eks["version"])
    assert a.region == "us-west-2"
    net = a.network
    assert not net.existing and net.cidr == one(infra, "aws_vpc", "ray")["cidr_block"]
    assert (net.az_count, net.private_subnets, net.nat_gateways) == (3, 3, 3) and net.az_names == ()
    groups = {g.name: g for g in a.node_groups}
    assert set(groups) == {"core", "gpu"}
    assert (groups["core"].instance_types, groups["core"].min_size, groups["core"].max_size) == (("m6i.2xlarge",), 2, 4)
    assert not groups["core"].gpu and groups["gpu"].gpu and groups["gpu"].instance_types == ("g5.xlarge",)
    assert (groups["gpu"].min_size, groups["gpu"].max_size) == (0, 4) and groups["gpu"].autoscaled
    ray = a.ray
    assert ray is not None and ray.head_service == "kuberay-head-svc" and ray.dashboard_port == 8265
    assert a.node_group_for(ray.head.node_selector) == groups["core"]
    [workers] = ray.workers
    assert (workers.name, workers.min_replicas, workers.max_replicas, workers.gpus) == ("gpu-group", 0, 4, 1)
    assert a.node_group_for(workers.node_selector) == groups["gpu"]
    assert ray.image_from_ecr and ray.fsx_claim == "fsx-lustre"  # the image the deploy built (ray.image build)
    assert a.fsx is not None and (a.fsx.deployment_type, a.fsx.capacity_gib) == ("PERSISTENT_2", 1200)
    assert {(r.s3_prefix, r.imports, r.exports) for r in a.fsx.repositories} == {
        ("ray/import/", True, False), ("ray/export/", False, True)}
    assert a.data_bucket == "ray-eks-data-*" and a.ecr_repository == "ray-eks/ray-custom"
    assert a.kuberay_operator and a.cluster_autoscaler and a.device_plugin
    assert a.node_group_for(a.device_plugin.node_selector) == groups["gpu"]
    assert a.node_group_for(a.kuberay_operator.node_selector) == groups["core"]
    assert a.orchestrator is not None and a.orchestrator.name == "ray-eks-ray-orchestrator"
    assert a.orchestrator.integrations == ("lambda:invoke",) and a.orchestrator.submits_to == ("kuberay-head-svc",)
    assert a.orchestrator.function == "ray-eks-ray-orchestrator" and a.orchestrator.function_in_vpc
    # off by default: no observability stack; on by default: the image build
    assert a.kube_prometheus_stack is None and not a.container_insights and a.image_build == "ray-eks-ray-image"
    # The operator in its own namespace, acting in the Ray namespace only (single-namespace mode).
    assert a.kuberay_operator.namespace == "kuberay-system" != ray.namespace == "ray"
    assert a.kuberay_operator.watches == (ray.namespace,)


def test_default_model_reaches_the_api_through_the_ssm_tunnel(default_arch):
    """endpoint_access tunnel (the default): no public endpoint and no network admitted; an instance the API admits
    on 443 with no inbound rule, SSM Agent's interface endpoints, and the ray stacks' providers at its local end."""
    access = default_arch.api_access
    assert access.public_cidrs == () and access.network_cidrs == ()
    assert access.tunnel is not None
    assert (access.tunnel.instance_type, access.tunnel.inbound_rules) == (TUNNEL_INSTANCE_TYPE, 0)
    assert access.tunnel.ssm_endpoints == ("ec2messages", "ssm", "ssmmessages")
    assert access.tunnel.local_address == tunnel_url(AppConfig().cluster.tunnel_local_port)


def test_public_and_private_modes_reach_the_api_their_own_way(prod_arch, open_synth, tmp_path):
    """endpoint_access private (the prod example): its VPN network admitted to the private endpoint; public (an open
    endpoint): the public endpoint's CIDRs. Neither has a tunnel, and each is drawn as the way from the laptop."""
    prod = prod_arch.api_access
    assert prod.network_cidrs == ("10.100.0.0/16",) and prod.public_cidrs == () and prod.tunnel is None
    public = read_architecture(open_synth["_outdir"]).api_access
    assert public.public_cidrs == ("0.0.0.0/0",) and public.network_cidrs == () and public.tunnel is None
    edges = dot_edges(drawn(prod_arch, tmp_path / "prod"))
    network = "your network (VPN, peering, Direct Connect) 10.100.0.0/16"
    assert {("you (laptop)", network, ""), (network, "EKS API", "private endpoint :443")} <= edges, edges
    assert not any("Session Manager" in tail or "public endpoint" in label for tail, _, label in edges)
    edges = dot_edges(drawn(read_architecture(open_synth["_outdir"]), tmp_path / "open"))
    assert ("you (laptop)", "EKS API", "public endpoint :443 from 0.0.0.0/0") in edges, edges
    assert not any("Session Manager" in tail or "your network" in tail for tail, _, _ in edges)


def test_tunnel_in_an_existing_vpc_reaches_ssm_the_vpcs_own_way(app_synth, tmp_path):
    """In an existing VPC the stacks create no Systems Manager endpoints: the session reaches the instance through the
    VPC's NAT gateway or endpoints, and the picture says so."""
    a = read_architecture(app_synth("existing-tunnel")["_outdir"])
    assert a.network.existing and a.api_access.tunnel is not None and a.api_access.tunnel.ssm_endpoints == ()
    edges = dot_edges(drawn(a, tmp_path))
    assert ("Systems Manager Session Manager", f"API tunnel {TUNNEL_INSTANCE_TYPE} (SSM Agent, no inbound port)",
            "session (the VPC's own way to SSM)") in edges, edges
    assert not any("VPC endpoints" in tail for tail, _, _ in edges)


def test_dev_model_has_no_gpu_no_orchestrator_no_device_plugin(dev_arch):
    a = dev_arch
    assert a.network.az_names == ("us-west-2a", "us-west-2b") and a.network.nat_gateways == 1
    assert not any(g.gpu for g in a.node_groups)
    assert {g.name: g.spot for g in a.node_groups} == {"core": False, "cpu": True}
    assert a.ray is not None and [(w.name, w.gpus) for w in a.ray.workers] == [("cpu-group", 0)]
    assert a.device_plugin is None and a.orchestrator is None
    assert a.kuberay_operator is not None and a.cluster_autoscaler is not None
    assert a.fsx is not None and a.fsx.deployment_type == "SCRATCH_2"
    assert a.kube_prometheus_stack is None and not a.container_insights


def test_prod_model_has_observability_and_pulls_from_ecr(prod_arch):
    a = prod_arch
    assert a.kube_prometheus_stack is not None and a.container_insights
    # its components all pin the core nodes (no top-level nodeSelector in its values)
    assert a.node_group_for(a.kube_prometheus_stack.node_selector).name == "core"
    assert a.ray is not None and a.ray.image_from_ecr
    assert {g.name: g.instance_types for g in a.node_groups}["gpu"] == ("g5.2xlarge",)
    assert a.orchestrator and a.device_plugin


def test_existing_vpc_model_creates_no_vpc(existing_synth):
    net = read_architecture(existing_synth["_outdir"]).network
    assert net.existing and net.vpc_id == "vpc-0a1b2c3d4e5f60718" and net.cidr is None
    assert (net.private_subnets, net.az_count, net.nat_gateways) == (3, None, 0)


def test_image_build_shows_only_when_the_stacks_have_one(default_synth, tmp_path):
    synth = tmp_path / "cdktf.out"
    shutil.copytree(default_synth["_outdir"], synth)
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    arch = read_architecture(synth)
    assert arch.image_build == "ray-eks-ray-image"
    labels = dot_labels(drawn(arch, tmp_path / "with"))
    assert "CodeBuild ray-eks-ray-image" in labels and "push image" in labels
    infra_json = synth / "stacks" / "infra" / "cdk.tf.json"
    doc = json.loads(infra_json.read_text())
    del doc["resource"]["aws_codebuild_project"]  # as with ray.image.source stock or custom
    infra_json.write_text(json.dumps(doc))
    arch = read_architecture(synth)
    assert arch.image_build is None
    labels = dot_labels(drawn(arch, tmp_path / "without"))
    assert "CodeBuild" not in labels and "push image" not in labels


def test_missing_synth_is_one_clear_error(tmp_path):
    with pytest.raises(SynthError, match="no stacks under"):
        read_architecture(tmp_path)
    r = subprocess.run([sys.executable, "-m", "scripts.diagram", "--synth-dir", str(tmp_path),
                        "--out", str(tmp_path / "x.png")], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "no stacks under" in r.stderr and "Traceback" not in r.stderr


def test_karpenter_model_draws_node_pools_and_the_controller(app_synth, tmp_path):
    """cluster.autoscaler: karpenter: the core managed group, one NodePool per worker group (its types, Spot, the nodes
    its limits hold), Karpenter (not cluster-autoscaler) on core launching their nodes; its CRD chart is not drawn."""
    a = read_architecture(app_synth("karpenter")["_outdir"])
    assert {g.name: g.karpenter for g in a.node_groups} == {"core": False, "gpu": True, "cpu": True}
    gpu = next(g for g in a.node_groups if g.name == "gpu")
    assert (gpu.instance_types, gpu.gpu, gpu.spot, gpu.min_size, gpu.max_size) == (
        ("g5.2xlarge", "g5.4xlarge", "g5.8xlarge"), True, True, 0, 4)
    assert a.cluster_autoscaler is None and a.karpenter is not None
    assert "karpenter-crd" not in {r.chart for r in a.releases}
    assert a.node_group_for(a.karpenter.node_selector).name == "core"
    assert a.ray is not None and [a.node_group_for(w.node_selector).name for w in a.ray.workers] == ["gpu", "cpu"]
    labels = dot_labels(drawn(a, tmp_path))
    for text in ("Karpenter NodePool gpu", "g5.2xlarge, g5.4xlarge, g5.8xlarge (GPU, spot) ×0–4 nodes",
                 "Karpenter NodePool cpu", "node group core", "Karpenter 1.14.1", "launches"):
        assert text in labels, f"{text!r} not drawn; labels:\n{labels}"
    assert "cluster-autoscaler" not in labels


# ------------------------------------------------------------------------------------------------ render
def test_default_picture_shows_what_is_configured(default_arch, tmp_path):
    dot = drawn(default_arch, tmp_path)
    labels = dot_labels(dot)
    for text in ("VPC 10.0.0.0/16", "private subnets in 3 AZs", "NAT gateway ×3",
                 f"EKS ray-eks (Kubernetes {DEFAULT_KUBERNETES_VERSION})",
                 "node group core", "m6i.2xlarge ×2–4 nodes", "node group gpu", "g5.xlarge (GPU) ×0–4 nodes",
                 "Ray head (core)", "Ray workers gpu-group ×0–4 1 GPU", "kuberay-head-svc :8265",
                 "kubectl port-forward 8265", "KubeRay operator 1.7.0", "cluster-autoscaler", "NVIDIA device plugin",
                 "FSx for Lustre PERSISTENT_2, 1200 GiB", "import ray/import/", "export ray/export/",
                 "S3 data bucket ray-eks-data-*", "ECR ray-eks/ray-custom", "Step Functions ray-eks-ray-orchestrator",
                 "Lambda ray-eks-ray-orchestrator (Kubernetes calls)", "lambda:invoke", "private endpoint :443",
                 "submitter Jobs (ray job submit)", "CodeBuild ray-eks-ray-image", "push image",
                 "pulled by the pods"):
        assert text in labels, f"{text!r} not drawn; labels:\n{labels}"
    for text in ("CloudWatch", "kube-prometheus-stack", "existing VPC", "public endpoint", "your network"):
        assert text not in labels, f"{text!r} drawn, but the default stacks have none"
    # The deployer's way to the API: laptop -> Session Manager -> SSM's endpoints -> the tunnel -> the private
    # endpoint, and the dashboard's port-forward through it.
    tunnel = f"API tunnel {TUNNEL_INSTANCE_TYPE} (SSM Agent, no inbound port)"
    assert {("you (laptop)", "Systems Manager Session Manager",
             "make tunnel: SSM port-forward https://127.0.0.1:8443 (kubectl, Terraform)"),
            ("Systems Manager Session Manager", "VPC endpoints ec2messages, ssm, ssmmessages", ""),
            ("VPC endpoints ec2messages, ssm, ssmmessages", tunnel, "session"),
            (tunnel, "EKS API", "private endpoint :443"),
            ("EKS API", "kuberay-head-svc :8265", "kubectl port-forward 8265 (dashboard)")} <= dot_edges(dot)
    assert not any(tail == "you (laptop)" and head == "EKS API" for tail, head, _ in dot_edges(dot))
    assert ("KubeRay operator 1.7.0 namespace kuberay-system watches only ray", "Ray head (core) namespace ray "
            "2 CPU, 8Gi", "reconciles RayCluster") in dot_edges(dot)
    assert dot_icons(dot) >= {
        "aws/compute/elastic-kubernetes-service.png", "aws/compute/ec2.png", "aws/network/nat-gateway.png",
        "aws/storage/fsx-for-lustre.png", "aws/storage/simple-storage-service-s3-bucket.png",
        "aws/compute/ec2-container-registry.png", "aws/integration/step-functions.png", "aws/compute/lambda.png",
        "k8s/compute/pod.png",
        "k8s/compute/deploy.png", "k8s/compute/ds.png", "k8s/compute/job.png", "k8s/network/svc.png",
        "onprem/client/user.png", "aws/management/systems-manager.png", "aws/network/endpoint.png"}


def test_dev_and_prod_pictures_follow_their_config(dev_arch, prod_arch, tmp_path):
    dev = dot_labels(drawn(dev_arch, tmp_path / "dev"))
    assert "private subnets: us-west-2a, us-west-2b" in dev and "m6i.2xlarge (spot) ×0–3 nodes" in dev
    for text in ("GPU", "NVIDIA device plugin", "Step Functions", "submitter Jobs", "CloudWatch", "Prometheus"):
        assert text not in dev, f"{text!r} drawn for dev-cpu"
    prod = dot_labels(drawn(prod_arch, tmp_path / "prod"))
    for text in ("Prometheus, Grafana kube-prometheus-stack", "CloudWatch Container Insights",
                 "CloudWatch agent (Container Insights add-on)", "pulled by the pods", "scrapes",
                 "g5.2xlarge (GPU) ×0–8 nodes", "NVIDIA DCGM exporter (GPU metrics)"):
        assert text in prod, f"{text!r} not drawn for prod-gpu; labels:\n{prod}"


def test_renders_a_real_png(default_synth, tmp_path):
    out = tmp_path / "docs" / "architecture.png"
    r = subprocess.run([sys.executable, "-m", "scripts.diagram", "--synth-dir",
                        str(default_synth["_outdir"]), "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    width, height = png_size(out)
    assert 1500 <= width <= 6000 and 800 <= height <= 4000, (width, height)
    assert out.stat().st_size > 100_000
    assert sorted(p.name for p in out.parent.iterdir()) == ["architecture.png"]  # no dot source left behind
    # Stamped with what it shows, and still a PNG whose chunks check out (Pillow verifies every CRC).
    from PIL import Image

    digest = model_digest(read_architecture(default_synth["_outdir"]))
    assert diagram.stamped_digest(out) == digest
    with Image.open(out) as im:
        assert im.info["ray-eks:model"] == digest
        im.verify()


def test_a_picture_of_another_model_has_another_stamp(dev_arch, default_arch, tmp_path):
    assert model_digest(dev_arch) != model_digest(default_arch)
    assert diagram.stamped_digest(diagram.render(dev_arch, tmp_path / "dev.png")) == model_digest(dev_arch)


def test_committed_picture_is_the_default_synth(default_arch):
    """The README's picture shows what `make synth` builds today: redraw it (`make diagram`, then look at it) when
    a change alters what it shows."""
    committed = ROOT / "docs" / "architecture.png"
    width, height = png_size(committed)
    assert width >= 1500 and height >= 800
    assert diagram.stamped_digest(committed) == model_digest(default_arch), (
        "docs/architecture.png no longer shows the default synth: run `make diagram` and look at the picture")


# ------------------------------------------------------------------------------------------------ Makefile
def make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)


def test_make_diagram_writes_docs_architecture_png(default_synth, tmp_path):
    planned = make("-n", "-o", "synth", "-o", ".venv/.synced-diagram", "diagram")
    assert planned.returncode == 0, planned.stderr
    assert "-m scripts.diagram --synth-dir cdktf.out --out docs/architecture.png" in planned.stdout
    # The same recipe, on the session's synth and into tmp (the committed picture stays untouched).
    out = tmp_path / "architecture.png"
    r = make("-o", "synth", "-o", ".venv/.synced-diagram", "diagram",
             f"DIAGRAM_SYNTH={default_synth['_outdir']}", f"DIAGRAM_OUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert png_size(out)[0] >= 1500


def _fake_bin(tmp_path: Path, apt_get: bool) -> dict:
    """A PATH without dot (and, optionally, an apt-get that logs its calls and 'installs' dot)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("env", "id"):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    if apt_get:
        fake = bin_dir / "apt-get"
        fake.write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/apt.log\n'
                        f'[ "$1" = install ] && printf "#!/bin/bash\\n" > {bin_dir}/dot && chmod +x {bin_dir}/dot\n'
                        "exit 0\n")
        fake.chmod(0o755)
    return {**os.environ, "PATH": str(bin_dir)}


def test_make_graphviz_installs_it_with_apt_get_when_dot_is_missing(tmp_path):
    env = _fake_bin(tmp_path, apt_get=True)
    r = subprocess.run([shutil.which("make") or "make", "--no-print-directory", "graphviz"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls[0].startswith("update") and re.fullmatch(r"install -y -qq graphviz", calls[-1]), calls


def test_make_graphviz_fails_clearly_without_apt_get(tmp_path):
    env = _fake_bin(tmp_path, apt_get=False)
    r = subprocess.run([shutil.which("make") or "make", "--no-print-directory", "graphviz"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Graphviz (the dot command) is missing" in r.stderr


def test_make_test_installs_graphviz_first():
    planned = make("-n", "-o", "deps-test", "-o", "checkov-env", "test")
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.splitlines()
    dot_checks = [i for i, line in enumerate(lines) if "command -v dot" in line]
    pytest_runs = [i for i, line in enumerate(lines) if "-m pytest " in line]
    assert dot_checks and pytest_runs and dot_checks[0] < pytest_runs[0], planned.stdout
