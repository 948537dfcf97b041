"""Draw the architecture from the synthesized stacks: the RENDER step (the ``diagrams`` package, Graphviz ``dot``).

    python -m scripts.diagram [--synth-dir cdktf.out] [--out docs/architecture.png]   # or: make diagram

``scripts/diagram_model.py`` reads ``<synth-dir>/stacks/*/cdk.tf.json`` into an ``Architecture``; this draws it
with AWS and Kubernetes icons: the VPC and its subnets, the EKS cluster with one box per node group and the pods the
stacks schedule there (Ray head and workers, the Helm add-ons, placed by their nodeSelector), FSx for Lustre linked
to the S3 data bucket, ECR (and the image build when the stacks have one), the Step Functions orchestrator,
observability, and the deployer's way to the Kubernetes API in the deployed access mode (the SSM tunnel, a public
endpoint limited to CIDRs, or a VPN/peering network) with the port-forward to the Ray dashboard through it. What the
stacks do not contain is not drawn.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
import textwrap
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from scripts.diagram_model import (
    AUTOSCALER_CHART,
    DCGM_EXPORTER_CHART,
    DEVICE_PLUGIN_CHART,
    KARPENTER_CHART,
    KUBERAY_CHART,
    PROMETHEUS_CHART,
    ApiTunnel,
    Architecture,
    HelmRelease,
    NodeGroup,
    RayGroup,
    SynthError,
    model_digest,
    read_architecture,
)

TITLE = "Ray on Amazon EKS"
FONT = "DejaVu Sans"
GRAPH = {"fontsize": "22", "fontname": FONT, "labelloc": "t", "pad": "0.6", "nodesep": "0.35", "ranksep": "0.9",
         "splines": "spline"}
NODE = {"fontsize": "12", "fontname": FONT}
EDGE = {"fontsize": "11", "fontname": FONT, "fontcolor": "#34495e"}
COLORS = {"vpc": "#eaf4e4", "subnets": "#e3f0fa", "eks": "#fdf3e1", "group": "#ffffff"}
DATA = "#1e8449"  # the data path: pods -> FSx <-> S3
WRAP = 22  # label characters per line: an icon is 1.4in wide, a longer line spills over its box's border


def wrap(label: str) -> str:
    lines = [textwrap.wrap(line, WRAP, break_long_words=False, break_on_hyphens=False) or [""]
             for line in label.split("\n")]
    return "\n".join(part for parts in lines for part in parts)


# ------------------------------------------------------------------------------------------------ labels
def span(low: int, high: int) -> str:
    return f"{low}" if low == high else f"{low}–{high}"


def node_group_label(group: NodeGroup) -> str:
    return f"Karpenter NodePool {group.name}" if group.karpenter else f"node group {group.name}"


def instances_label(group: NodeGroup) -> str:
    kind = ", ".join(k for k, on in (("GPU", group.gpu), ("spot", group.spot)) if on)
    types = ", ".join(group.instance_types) + (f" ({kind})" if kind else "")
    return f"{types}\n×{span(group.min_size, group.max_size)} nodes"


def head_label(head: RayGroup, group: NodeGroup | None, namespace: str = "") -> str:
    where = f"namespace {namespace}\n" if namespace else ""
    return f"Ray head ({group.name if group else 'any node'})\n{where}{head.cpu} CPU, {head.memory}"


def workers_label(group: RayGroup) -> str:
    gpus = f"{group.gpus} GPU, " if group.gpus else ""
    return f"Ray workers\n{group.name} ×{span(group.min_replicas, group.max_replicas)}\n{gpus}{group.cpu} CPU, " \
           f"{group.memory}"


def operator_label(release: HelmRelease) -> str:
    """The KubeRay operator, with its namespace when it has its own (and the namespaces it alone acts in)."""
    where = f"\nnamespace {release.namespace}" if release.namespace else ""
    watches = f"\nwatches only {', '.join(release.watches)}" if release.watches else ""
    return f"KubeRay operator {release.version}{where}{watches}"


def release_label(release: HelmRelease) -> str:
    return {KUBERAY_CHART: operator_label(release),
            AUTOSCALER_CHART: "cluster-autoscaler",
            KARPENTER_CHART: f"Karpenter {release.version}",
            DEVICE_PLUGIN_CHART: "NVIDIA device plugin",
            DCGM_EXPORTER_CHART: "NVIDIA DCGM exporter\n(GPU metrics)",
            PROMETHEUS_CHART: "Prometheus, Grafana\nkube-prometheus-stack"}.get(release.chart, f"{release.name} (Helm)")


def tunnel_label(tunnel: ApiTunnel) -> str:
    closed = ", no inbound port" if tunnel.inbound_rules == 0 else ""
    return f"API tunnel {tunnel.instance_type}\n(SSM Agent{closed})"


def session_label(tunnel: ApiTunnel) -> str:
    local = f"\n{tunnel.local_address} (kubectl, Terraform)" if tunnel.local_address else ""
    return f"make tunnel: SSM port-forward{local}"


def network_label(arch: Architecture) -> str:
    net = arch.network
    if net.existing:
        return f"existing VPC {net.vpc_id}" if net.vpc_id else "existing VPC"
    return f"VPC {net.cidr}" if net.cidr else "VPC"


def subnets_label(arch: Architecture) -> str:
    net = arch.network
    if net.az_names:
        return f"private subnets: {', '.join(net.az_names)}"
    if net.az_count:
        return f"private subnets in {net.az_count} AZs"
    return f"{net.private_subnets} private subnets"


# ------------------------------------------------------------------------------------------------ drawing
def render(arch: Architecture, out: Path, fmt: str = "png") -> Path:
    """Draw ``arch`` to ``out`` with its suffix set to ``fmt`` ("png"; "dot": the laid-out Graphviz source); return it.

    diagrams also writes a transient source file next to it (``out`` without a suffix) and removes it.
    """
    from diagrams import Cluster, Diagram, Edge
    from diagrams.aws.compute import EC2, EC2ContainerRegistry, ElasticKubernetesService, Lambda
    from diagrams.aws.devtools import Codebuild
    from diagrams.aws.integration import StepFunctions
    from diagrams.aws.management import Cloudwatch, SystemsManager
    from diagrams.aws.network import Endpoint, NATGateway, SiteToSiteVpn
    from diagrams.aws.storage import FsxForLustre, SimpleStorageServiceS3Bucket
    from diagrams.k8s.compute import DS, Deploy, Job, Pod
    from diagrams.k8s.network import SVC
    from diagrams.onprem.client import User

    counter = iter(range(1_000_000))

    def node(cls: Any, label: str) -> Any:  # fixed ids: the same stacks give the same picture
        return cls(wrap(label), nodeid=f"n{next(counter)}")

    def box(label: str, color: str, **extra: str) -> Any:
        return Cluster(label, graph_attr={"bgcolor": color, "fontsize": "14", "fontname": FONT, "margin": "20",
                                          **extra})

    ray = arch.ray
    access, tunnel = arch.api_access, arch.api_access.tunnel
    # What runs on which node group ("" = no nodeSelector that matches one): by the pods' nodeSelector.
    placed: dict[str, list[tuple[str, Any]]] = {}

    def place(selector: tuple[tuple[str, str], ...], item: tuple[str, Any]) -> None:
        group = arch.node_group_for(selector)
        placed.setdefault(group.name if group else "", []).append(item)

    if ray:
        place(ray.head.node_selector, ("head", ray.head))
        for w in ray.workers:
            place(w.node_selector, ("workers", w))
    for release in arch.releases:
        place(release.node_selector, ("release", release))

    n: dict[str, Any] = {}  # drawn nodes by role
    instances: list[tuple[NodeGroup, Any]] = []
    workers: list[Any] = []
    title = f"{TITLE} ({arch.region})" if arch.region else TITLE
    with Diagram(title, filename=str(out.with_suffix("")), outformat=fmt, show=False, direction="LR",
                 graph_attr=GRAPH, node_attr=NODE, edge_attr=EDGE):
        with box(network_label(arch), COLORS["vpc"]):
            if arch.network.nat_gateways:
                with box("public subnets", COLORS["subnets"]):
                    n["nat"] = node(NATGateway, f"NAT gateway ×{arch.network.nat_gateways}")
            with box(subnets_label(arch), COLORS["subnets"]):
                if arch.orchestrator and arch.orchestrator.function and arch.orchestrator.function_in_vpc:
                    n["fn"] = node(Lambda, f"Lambda {arch.orchestrator.function}\n(Kubernetes calls)")
                if tunnel:
                    if tunnel.ssm_endpoints:
                        n["ssm-vpce"] = node(Endpoint, f"VPC endpoints\n{', '.join(tunnel.ssm_endpoints)}")
                    n["tunnel"] = node(EC2, tunnel_label(tunnel))
                with box(f"EKS {arch.cluster.name} (Kubernetes {arch.cluster.version})", COLORS["eks"]):
                    n["eks"] = node(ElasticKubernetesService, "EKS API")
                    if ray:
                        n["svc"] = node(SVC, f"{ray.head_service}\n:{ray.dashboard_port}")
                    if arch.orchestrator and ray and ray.head_service in arch.orchestrator.submits_to:
                        n["jobs"] = node(Job, "submitter Jobs\n(ray job submit)")
                    if arch.container_insights:
                        n["cw-agent"] = node(DS, "CloudWatch agent\n(Container Insights add-on)")
                    for group in [*arch.node_groups, None]:
                        items = placed.get(group.name if group else "", [])
                        if group is None and not items:
                            continue
                        ctx: AbstractContextManager[Any] = (
                            box(node_group_label(group), COLORS["group"], style="rounded,dashed")
                            if group else nullcontext())
                        with ctx:
                            if group:
                                instances.append((group, node(EC2, instances_label(group))))
                            for kind, item in items:
                                if kind == "head" and ray:
                                    n["head"] = node(Pod, head_label(item, group, ray.namespace))
                                elif kind == "workers":
                                    workers.append(node(Pod, workers_label(item)))
                                else:
                                    per_node = item.chart in (DEVICE_PLUGIN_CHART, DCGM_EXPORTER_CHART)
                                    icon = DS if per_node else Deploy
                                    n[item.chart] = node(icon, release_label(item))
            if arch.fsx:
                claim = f"\nPVC {ray.fsx_claim}" if ray and ray.fsx_claim else ""
                claim += f"\n{', '.join(ray.fsx_mounts)}" if ray and ray.fsx_claim else ""
                n["fsx"] = node(FsxForLustre, f"FSx for Lustre\n{arch.fsx.deployment_type}, {arch.fsx.capacity_gib} GiB"
                                              f"{claim}")
        if arch.data_bucket:
            n["s3"] = node(SimpleStorageServiceS3Bucket, f"S3 data bucket\n{arch.data_bucket}")
        if arch.image_build:
            n["build"] = node(Codebuild, f"CodeBuild {arch.image_build}\n(image build)")
        if arch.ecr_repository:
            use = "Ray image, pulled by the pods" if ray and ray.image_from_ecr else "for a custom Ray image"
            n["ecr"] = node(EC2ContainerRegistry, f"ECR {arch.ecr_repository}\n({use})")
        if arch.orchestrator:
            n["sfn"] = node(StepFunctions, f"Step Functions\n{arch.orchestrator.name}")
        if arch.container_insights:
            n["cw"] = node(Cloudwatch, "CloudWatch\nContainer Insights")
        if tunnel:
            n["ssm"] = node(SystemsManager, "Systems Manager\nSession Manager")
        if access.network_cidrs:
            n["vpn"] = node(SiteToSiteVpn, f"your network (VPN, peering, Direct Connect)\n"
                                           f"{', '.join(access.network_cidrs)}")
        user = node(User, "you (laptop)")

        eks, svc, head, fsx = n["eks"], n.get("svc"), n.get("head"), n.get("fsx")
        pods = ([head] if head is not None else []) + workers
        # The deployer's way to the API (kubectl, the ray stacks' Terraform, the make targets): what the stacks open.
        if tunnel:
            user >> Edge(label=session_label(tunnel)) >> n["ssm"]
            if "ssm-vpce" in n:
                n["ssm"] >> n["ssm-vpce"] >> Edge(label="session") >> n["tunnel"]
            else:  # an existing VPC: SSM Agent leaves through its NAT gateway or its own endpoints
                n["ssm"] >> Edge(label="session (the VPC's own\nway to SSM)") >> n["tunnel"]
            n["tunnel"] >> Edge(label="private endpoint :443") >> eks
        if access.public_cidrs:
            user >> Edge(label=f"public endpoint :443\nfrom {', '.join(access.public_cidrs)}") >> eks
        if "vpn" in n:
            user >> n["vpn"] >> Edge(label="private endpoint :443") >> eks
        if ray and svc is not None:
            eks >> Edge(label=f"kubectl port-forward\n{ray.dashboard_port} (dashboard)") >> svc
            if head is not None:
                svc >> head
        if head is not None:
            for w in workers:
                head >> Edge(label="schedules tasks") >> w
            if KUBERAY_CHART in n:
                n[KUBERAY_CHART] >> Edge(label="reconciles\nRayCluster", style="dashed") >> head
            if PROMETHEUS_CHART in n:
                n[PROMETHEUS_CHART] >> Edge(label="scrapes", style="dotted") >> head
        if AUTOSCALER_CHART in n:
            scaled = [ec2 for group, ec2 in instances if group.autoscaled and group.min_size != group.max_size]
            for i, ec2 in enumerate(scaled):  # one label: the others would sit on box borders
                n[AUTOSCALER_CHART] >> Edge(label="scales" if i == 0 else "", style="dashed") >> ec2
        if KARPENTER_CHART in n:
            launched = [ec2 for group, ec2 in instances if group.karpenter]
            for i, ec2 in enumerate(launched):
                n[KARPENTER_CHART] >> Edge(label="launches" if i == 0 else "", style="dashed") >> ec2
        if fsx is not None:
            for pod in pods:
                pod >> Edge(color=DATA) >> fsx
            if "s3" in n and arch.fsx:
                for repo in arch.fsx.repositories:
                    if repo.imports:
                        n["s3"] >> Edge(label=f"import {repo.s3_prefix}", color=DATA) >> fsx
                    if repo.exports:
                        fsx >> Edge(label=f"export {repo.s3_prefix}", color=DATA) >> n["s3"]
        if "build" in n and "ecr" in n:
            n["build"] >> Edge(label="push image") >> n["ecr"]
        if "ecr" in n and ray and ray.image_from_ecr:
            for pod in pods:
                n["ecr"] >> Edge(style="dashed") >> pod
        elif "ecr" in n and fsx is not None:  # not pulled from: park it on the right, with the bucket
            fsx >> Edge(style="invis") >> n["ecr"]
        if arch.orchestrator and "fn" in n:
            n["sfn"] >> Edge(label="lambda:invoke") >> n["fn"]
            n["fn"] >> Edge(label="private endpoint :443") >> eks
        elif arch.orchestrator:
            n["sfn"] >> Edge(label=", ".join(i for i in arch.orchestrator.integrations if i.startswith("eks:"))) >> eks
        if arch.orchestrator and "jobs" in n and svc is not None:
            eks >> n["jobs"] >> Edge(label=f":{ray.dashboard_port}" if ray else "") >> svc
        if "cw" in n:
            n["cw-agent"] >> Edge(style="dashed") >> n["cw"]
    drawn = out.with_suffix(f".{fmt}")
    if fmt == "png":
        stamp(drawn, model_digest(arch))
    return drawn


# A PNG text chunk (tEXt: keyword, NUL, Latin-1 text) after the header chunk: the digest of the model drawn.
STAMP_KEY = b"ray-eks:model"


def _chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, body, offset of the next chunk) of each chunk after the 8-byte signature."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        out.append((kind, body, pos))
    return out


def stamp(png: Path, digest: str) -> None:
    import zlib

    data = png.read_bytes()
    body = STAMP_KEY + b"\0" + digest.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    after_header = _chunks(data)[0][2]  # IHDR comes first
    png.write_bytes(data[:after_header] + chunk + data[after_header:])


def stamped_digest(png: Path) -> str | None:
    """The model digest a picture was drawn from (None: not stamped)."""
    for kind, body, _ in _chunks(png.read_bytes()):
        key, _, text = body.partition(b"\0")
        if kind == b"tEXt" and key == STAMP_KEY:
            return text.decode("latin-1")
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Render the architecture diagram from the synthesized stacks.")
    ap.add_argument("--synth-dir", default="cdktf.out", help="cdktf output directory (default cdktf.out)")
    ap.add_argument("--out", default="docs/architecture.png", help="PNG to write (default docs/architecture.png)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.suffix != ".png":
        print(f"error: --out must name a .png file, got {out}", file=sys.stderr)
        return 2
    try:
        arch = read_architecture(Path(args.synth_dir))
    except SynthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if shutil.which("dot") is None:
        print("error: Graphviz `dot` is not installed (`make graphviz` installs it)", file=sys.stderr)
        return 2
    try:
        import diagrams  # noqa: F401
    except ImportError:
        print("error: the `diagrams` package is missing (`make diagram` installs the Pipfile's diagram category)",
              file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # diagrams writes its dot source next to the picture: not in docs/
        shutil.copyfile(render(arch, Path(tmp) / out.name), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
