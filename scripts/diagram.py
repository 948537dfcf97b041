#!/usr/bin/env python
"""Draw the architecture from the synthesized stacks: an SVG (standard library only) and, when Pillow is
importable, a PNG of the same layout. No graphviz or other binary.

    python scripts/diagram.py [--synth-dir cdktf.out] [--out docs/architecture.svg] [--png docs/architecture.png]

What it reads is what Terraform applies (``<synth-dir>/stacks/*/cdk.tf.json``):

- nodes: resources, grouped by concern (network, EKS, node groups, FSx, ECR, S3, KMS/logs, IAM; the ray
  stack's add-ons, platform, orchestrator, observability; the RayCluster's head and worker groups, read from
  its manifest). Key resources get a node each; the rest one node per type with a count;
- solid edges: Terraform references (``${aws_x.y...}``), across stacks through ``terraform_remote_state``
  outputs, resolved to the resources those outputs reference;
- dashed edges: runtime links the JSON also states: the RayCluster reconciled by the KubeRay operator
  release, its pods mounting the FSx claim, the orchestrator's Jobs submitting to the head service.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from xml.sax.saxutils import escape

STACK_ORDER = ("infra", "ray", "ray-cluster")
REF = re.compile(r"\$\{([^{}]*)\}")
ADDR = re.compile(r"\b(data\.terraform_remote_state\.[a-z0-9_]+\.outputs\.[a-z0-9_]+|[a-z][a-z0-9_]*\.[a-z0-9_]+)")

# Types drawn one node per resource (the rest: one node per type and group, with a count).
SINGULAR = {"aws_vpc", "aws_eks_cluster", "aws_eks_node_group", "aws_fsx_lustre_file_system", "aws_ecr_repository",
            "aws_s3_bucket", "aws_sfn_state_machine", "helm_release", "aws_eks_addon", "aws_eks_access_entry",
            "kubernetes_namespace_v1", "kubernetes_persistent_volume_claim_v1", "kubernetes_role_v1",
            "aws_cloudwatch_log_group", "aws_kms_key"}
TYPE_GROUPS = [
    ("Network", ("aws_vpc", "aws_subnet", "aws_internet_gateway", "aws_nat_gateway", "aws_eip", "aws_route",
                 "aws_flow_log", "aws_vpc_endpoint", "aws_default_security_group")),
    ("EKS", ("aws_eks_cluster", "aws_eks_addon", "aws_iam_openid_connect_provider", "aws_security_group",
             "aws_vpc_security_group", "aws_eks_access")),
    ("Node groups", ("aws_eks_node_group", "aws_launch_template")),
    ("FSx for Lustre", ("aws_fsx_",)),
    ("ECR", ("aws_ecr_",)),
    ("S3", ("aws_s3_",)),
    ("KMS & logs", ("aws_kms_", "aws_cloudwatch_log_group")),
    ("IAM", ("aws_iam_",)),
    ("Cluster add-ons (Helm)", ("helm_release",)),
    ("Ray platform", ("kubernetes_",)),
]
GROUP_COLORS = {
    "Network": "#e8f1fb", "EKS": "#fdf0e2", "Node groups": "#fdf0e2", "FSx for Lustre": "#e9f7ef",
    "ECR": "#f3ecfa", "S3": "#e9f7ef", "KMS & logs": "#f5f5f5", "IAM": "#f5f5f5",
    "Cluster add-ons (Helm)": "#e8f1fb", "Ray platform": "#eef6fb", "Orchestrator": "#fdeceb",
    "Observability": "#fffbe6", "RayCluster": "#e6f6f4",
}


@dataclass
class Node:
    id: str
    stack: str
    group: str
    title: str
    subtitle: str
    addresses: list[str] = field(default_factory=list)
    x: float = 0
    y: float = 0
    column: int = 0


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)  # (from, to, "ref" | "runtime")
    by_address: dict[tuple[str, str], str] = field(default_factory=dict)  # (stack, address) -> node id

    def add(self, node: Node) -> Node:
        existing = self.nodes.get(node.id)
        if existing:
            existing.addresses += node.addresses
            return existing
        self.nodes[node.id] = node
        return node


def group_of(stack: str, rtype: str, name: str) -> str:
    if stack == "ray-cluster":
        return "RayCluster"
    if name.startswith("ray_orchestrator"):
        return "Orchestrator"
    if name in ("kube_prometheus_stack", "monitoring", "container_insights"):
        return "Observability"
    if stack == "ray" and rtype.startswith("aws_iam_role"):
        return "Cluster add-ons (Helm)" if name == "cluster_autoscaler" else "Ray platform"
    for group, prefixes in TYPE_GROUPS:
        if rtype.startswith(prefixes):
            return group
    return "Other"


def friendly(rtype: str) -> str:
    return rtype.split("_", 1)[1].replace("_", " ") if "_" in rtype else rtype


def load(synth_dir: Path) -> dict[str, dict]:
    stacks = {p.parent.name: json.loads(p.read_text()) for p in sorted(synth_dir.glob("stacks/*/cdk.tf.json"))}
    if not stacks:
        raise SystemExit(f"error: no stacks under {synth_dir}/stacks/ (run `make synth` first)")
    return stacks


def build(stacks: dict[str, dict]) -> Graph:
    g = Graph()
    counts: dict[tuple[str, str, str], int] = {}
    for stack, doc in stacks.items():
        for rtype, byname in doc.get("resource", {}).items():
            for name, body in byname.items():
                group = group_of(stack, rtype, name)
                if rtype == "kubernetes_manifest" and body.get("manifest", {}).get("kind") == "RayCluster":
                    _ray_cluster(g, stack, name, body["manifest"])
                    continue
                if rtype in SINGULAR or rtype == "kubernetes_manifest":
                    title = body.get("name") if rtype == "helm_release" else None
                    if rtype == "kubernetes_manifest":
                        m = body.get("manifest", {})
                        title, sub = m.get("kind", "manifest"), m.get("metadata", {}).get("name", name)
                    else:
                        sub = name
                    node = Node(f"{stack}:{rtype}.{name}", stack, group, title or friendly(rtype), sub)
                else:
                    key = (stack, group, rtype)
                    counts[key] = counts.get(key, 0) + 1
                    node = Node(f"{stack}:{group}:{rtype}", stack, group, friendly(rtype), "")
                node.addresses.append(f"{rtype}.{name}")
                g.add(node)
                g.by_address[(stack, f"{rtype}.{name}")] = node.id
    for (stack, group, rtype), n in counts.items():
        g.nodes[f"{stack}:{group}:{rtype}"].subtitle = f"x {n}"
    _reference_edges(g, stacks)
    _runtime_edges(g, stacks)
    return g


def _ray_cluster(g: Graph, stack: str, name: str, rc: dict) -> None:
    spec = rc.get("spec", {})
    head = spec.get("headGroupSpec", {}).get("template", {}).get("spec", {})
    c = (head.get("containers") or [{}])[0]
    limits = c.get("resources", {}).get("limits", {})
    head_node = g.add(Node(f"{stack}:rayhead", stack, "RayCluster", f"RayCluster {rc['metadata']['name']}: head",
                           f"{limits.get('cpu', '?')} CPU, {limits.get('memory', '?')}; "
                           f"nodes usage={head.get('nodeSelector', {}).get('usage', '?')}"))
    head_node.addresses.append(f"kubernetes_manifest.{name}")
    g.by_address[(stack, f"kubernetes_manifest.{name}")] = head_node.id
    for w in spec.get("workerGroupSpecs", []):
        pod = w.get("template", {}).get("spec", {})
        lim = (pod.get("containers") or [{}])[0].get("resources", {}).get("limits", {})
        gpu = f", {lim['nvidia.com/gpu']} GPU" if "nvidia.com/gpu" in lim else ""
        wid = f"{stack}:worker:{w['groupName']}"
        g.add(Node(wid, stack, "RayCluster", f"worker group {w['groupName']}",
                   f"{w.get('minReplicas', 0)}-{w.get('maxReplicas', '?')} x ({lim.get('cpu', '?')} CPU{gpu})"))
        g.edges.add((head_node.id, wid, "runtime"))


def _outputs_targets(g: Graph, stacks: dict[str, dict], stack: str, output: str) -> set[str]:
    value = json.dumps(stacks.get(stack, {}).get("output", {}).get(output, {}).get("value", ""))
    return {g.by_address[(stack, a)] for a in _addresses(value) if (stack, a) in g.by_address}


def _addresses(text: str) -> set[str]:
    out = set()
    for expr in REF.findall(text):
        for a in ADDR.findall(expr):
            out.add(a if a.startswith("data.terraform_remote_state.") else ".".join(a.split(".")[:2]))
    return out


def _reference_edges(g: Graph, stacks: dict[str, dict]) -> None:
    for stack, doc in stacks.items():
        readers = {n: body for n, body in doc.get("data", {}).get("terraform_remote_state", {}).items()}
        for rtype, byname in doc.get("resource", {}).items():
            for name, body in byname.items():
                src = g.by_address[(stack, f"{rtype}.{name}")]
                for a in _addresses(json.dumps({k: v for k, v in body.items() if k != "//"})):
                    if a.startswith("data.terraform_remote_state."):
                        _, _, reader, _, output = a.split(".")
                        other = _remote_stack(readers.get(reader, {}), reader)
                        targets = _outputs_targets(g, stacks, other, output)
                    else:
                        targets = {g.by_address[(stack, a)]} if (stack, a) in g.by_address else set()
                    for t in targets:
                        if t != src:
                            g.edges.add((src, t, "ref"))


def _remote_stack(reader: dict, name: str) -> str:
    path = reader.get("config", {}).get("path") or reader.get("config", {}).get("key") or name
    return Path(path).name.removesuffix(".tfstate")


def _runtime_edges(g: Graph, stacks: dict[str, dict]) -> None:
    ray = stacks.get("ray", {}).get("resource", {})
    head = next((n for n in g.nodes if n.endswith(":rayhead")), None)
    if not head:
        return
    operator = g.by_address.get(("ray", "helm_release.kuberay_operator"))
    if operator:
        g.edges.add((head, operator, "runtime"))  # reconciled by the operator
    for name in ray.get("kubernetes_persistent_volume_claim_v1", {}):
        g.edges.add((head, g.by_address[("ray", f"kubernetes_persistent_volume_claim_v1.{name}")], "runtime"))
    head_service = stacks.get("ray-cluster", {}).get("output", {}).get("head_service", {}).get("value")
    for name, sm in ray.get("aws_sfn_state_machine", {}).items():
        if head_service and f"http://{head_service}:" in sm.get("definition", ""):
            g.edges.add((g.by_address[("ray", f"aws_sfn_state_machine.{name}")], head, "runtime"))


# ------------------------------------------------------------------------------------------ layout
NODE_W, NODE_H, GAP, PAD, TITLE_H, COLS = 210, 46, 12, 14, 26, 2
COLUMN_GAP, MARGIN, HEADER = 150, 30, 60


@dataclass
class Box:
    label: str
    x: float
    y: float
    w: float
    h: float
    color: str


def layout(g: Graph) -> tuple[list[Box], list[tuple[str, float]], float, float]:
    groups: dict[str, dict[str, list[Node]]] = {}
    for n in g.nodes.values():
        groups.setdefault(n.stack, {}).setdefault(n.group, []).append(n)
    boxes, headers = [], []
    col_w = COLS * NODE_W + (COLS - 1) * GAP + 2 * PAD
    x, height = MARGIN, 0.0
    stacks = [s for s in STACK_ORDER if s in groups] + sorted(s for s in groups if s not in STACK_ORDER)
    for column, stack in enumerate(stacks):
        headers.append((f"stack: {stack}", x))
        y = MARGIN + HEADER
        for group in sorted(groups[stack], key=lambda k: (_group_rank(k), k)):
            nodes = sorted(groups[stack][group], key=lambda n: (n.title, n.subtitle))
            rows = (len(nodes) + COLS - 1) // COLS
            h = TITLE_H + rows * NODE_H + (rows - 1) * GAP + PAD
            boxes.append(Box(group, x, y, col_w, h, GROUP_COLORS.get(group, "#f5f5f5")))
            for i, n in enumerate(nodes):
                n.x = x + PAD + (i % COLS) * (NODE_W + GAP)
                n.y = y + TITLE_H + (i // COLS) * (NODE_H + GAP)
                n.column = column
            y += h + 2 * GAP
        height = max(height, y)
        x += col_w + COLUMN_GAP
    return boxes, headers, x - COLUMN_GAP + MARGIN, height + MARGIN


def _group_rank(group: str) -> int:
    order = [g for g, _ in TYPE_GROUPS] + ["Orchestrator", "Observability", "RayCluster"]
    return order.index(group) if group in order else len(order)


def _edge_points(a: Node, b: Node) -> tuple[float, float, float, float, float, float, float, float]:
    """A cubic Bezier from a's side to b's side (right-to-left across columns, right-to-right within one)."""
    ay, by = a.y + NODE_H / 2, b.y + NODE_H / 2
    if a.column == b.column:  # same stack column: loop out to the right
        ax = bx = max(a.x, b.x) + NODE_W
        bend = 40 + abs(ay - by) * 0.15
        return ax, ay, ax + bend, ay, bx + bend, by, bx, by
    if a.x < b.x:
        ax, bx = a.x + NODE_W, b.x
    else:
        ax, bx = a.x, b.x + NODE_W
    mid = (ax + bx) / 2
    return ax, ay, mid, ay, mid, by, bx, by


def render_svg(g: Graph, title: str) -> str:
    boxes, headers, width, height = layout(g)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5b6b7b"/></marker></defs>',
           f'<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="{MARGIN}" y="{MARGIN + 4}" font-size="18" font-weight="bold" fill="#1b2733">{escape(title)}</text>']
    for label, x in headers:
        out.append(f'<text x="{x}" y="{MARGIN + HEADER - 12}" font-size="15" font-weight="bold" fill="#33475b">'
                   f'{escape(label)}</text>')
    for b in boxes:
        out.append(f'<g class="group"><rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" rx="8" fill="{b.color}" '
                   f'stroke="#b8c4ce"/><text x="{b.x + 10}" y="{b.y + 17}" font-size="12" font-weight="bold" '
                   f'fill="#33475b">{escape(b.label)}</text></g>')
    for src, dst, kind in sorted(g.edges):
        a, b = g.nodes[src], g.nodes[dst]
        x1, y1, c1x, c1y, c2x, c2y, x2, y2 = _edge_points(a, b)
        style = 'stroke="#c0392b" stroke-dasharray="6 4" stroke-width="1.6"' if kind == "runtime" else \
            'stroke="#5b6b7b" stroke-opacity="0.45" stroke-width="1"'
        out.append(f'<path class="edge {kind}" d="M{x1:.1f},{y1:.1f} C{c1x:.1f},{c1y:.1f} {c2x:.1f},{c2y:.1f} '
                   f'{x2:.1f},{y2:.1f}" fill="none" {style} marker-end="url(#arrow)"/>')
    for n in sorted(g.nodes.values(), key=lambda n: n.id):
        tip = escape(", ".join(sorted(n.addresses)))
        out.append(f'<g class="node" id="{escape(n.id)}"><title>{tip}</title>'
                   f'<rect x="{n.x}" y="{n.y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="#ffffff" stroke="#52667a"/>'
                   f'<text x="{n.x + 8}" y="{n.y + 19}" font-size="12" font-weight="bold" fill="#1b2733">'
                   f'{escape(_fit(n.title, 30))}</text>'
                   f'<text x="{n.x + 8}" y="{n.y + 36}" font-size="11" fill="#44576a">{escape(_fit(n.subtitle, 34))}</text></g>')
    legend_y = height - 12
    out.append(f'<text x="{MARGIN}" y="{legend_y}" font-size="11" fill="#44576a">grey arrow: Terraform reference '
               f'(A uses B; across stacks via terraform_remote_state) · red dashed: runtime link '
               f'(operator, volume claim, job submission)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _fit(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def render_png(g: Graph, title: str, path: Path) -> bool:
    """The same layout with Pillow (a dependency of the training environment); False when it is missing."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return False
    boxes, headers, width, height = layout(g)
    scale = 2
    img = Image.new("RGB", (int(width * scale), int(height * scale)), "white")
    d = ImageDraw.Draw(img)

    def font(size: int):
        try:
            return ImageFont.load_default(size=size * scale)
        except TypeError:  # Pillow < 10.1
            return ImageFont.load_default()

    s = lambda v: v * scale  # noqa: E731
    d.text((s(MARGIN), s(MARGIN - 12)), title, fill="#1b2733", font=font(18))
    for label, x in headers:
        d.text((s(x), s(MARGIN + HEADER - 26)), label, fill="#33475b", font=font(15))
    for b in boxes:
        d.rounded_rectangle([s(b.x), s(b.y), s(b.x + b.w), s(b.y + b.h)], radius=s(8), fill=b.color, outline="#b8c4ce")
        d.text((s(b.x + 10), s(b.y + 5)), b.label, fill="#33475b", font=font(12))
    for src, dst, kind in sorted(g.edges):
        x1, y1, c1x, c1y, c2x, c2y, x2, y2 = _edge_points(g.nodes[src], g.nodes[dst])
        pts = []
        for i in range(25):
            t = i / 24
            u = 1 - t
            pts.append((s(u**3 * x1 + 3 * u * u * t * c1x + 3 * u * t * t * c2x + t**3 * x2),
                        s(u**3 * y1 + 3 * u * u * t * c1y + 3 * u * t * t * c2y + t**3 * y2)))
        color = "#c0392b" if kind == "runtime" else "#aab4be"
        d.line(pts, fill=color, width=scale * (2 if kind == "runtime" else 1))
        d.ellipse([pts[-1][0] - 3 * scale, pts[-1][1] - 3 * scale, pts[-1][0] + 3 * scale, pts[-1][1] + 3 * scale],
                  fill=color)
    for n in g.nodes.values():
        d.rounded_rectangle([s(n.x), s(n.y), s(n.x + NODE_W), s(n.y + NODE_H)], radius=s(6), fill="white",
                            outline="#52667a")
        d.text((s(n.x + 8), s(n.y + 6)), _fit(n.title, 30), fill="#1b2733", font=font(12))
        d.text((s(n.x + 8), s(n.y + 25)), _fit(n.subtitle, 34), fill="#44576a", font=font(11))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)
    return True


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Render the architecture diagram from the synthesized stacks.")
    ap.add_argument("--synth-dir", default="cdktf.out", help="cdktf output directory (default cdktf.out)")
    ap.add_argument("--out", default="docs/architecture.svg", help="SVG to write (default docs/architecture.svg)")
    ap.add_argument("--png", default=None, help="also write a PNG here (needs Pillow)")
    ap.add_argument("--title", default="Ray on Amazon EKS: synthesized architecture")
    args = ap.parse_args(argv)
    graph = build(load(Path(args.synth_dir)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_svg(graph, args.title))
    print(f"wrote {out} ({len(graph.nodes)} nodes, {len(graph.edges)} edges)")
    if args.png:
        if not render_png(graph, args.title, Path(args.png)):
            print("error: --png needs Pillow (installed with the training packages: make deps-test)", file=sys.stderr)
            return 2
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
