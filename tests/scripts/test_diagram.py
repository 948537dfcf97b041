"""scripts/diagram.py draws the architecture from the current synth (the default_synth session output)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import ROOT

SVG_NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def drawn(default_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("diagram")
    svg, png = out / "architecture.svg", out / "architecture.png"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "diagram.py"), "--synth-dir", str(default_synth["_outdir"]),
                        "--out", str(svg), "--png", str(png)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return svg, png


def nodes(svg_path) -> dict[str, str]:
    """node id -> its visible text."""
    root = ET.parse(svg_path).getroot()
    return {g.get("id"): " ".join(t.text or "" for t in g.iter("{http://www.w3.org/2000/svg}text"))
            for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"}


def test_diagram_is_a_well_formed_svg_and_png(drawn):
    svg, png = drawn
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and float(root.get("width")) > 500
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_diagram_has_the_key_nodes(drawn):
    found = nodes(drawn[0])
    for node_id in ("infra:aws_vpc.ray", "infra:aws_eks_cluster.ray", "infra:aws_eks_node_group.core",
                    "infra:aws_eks_node_group.gpu", "infra:aws_fsx_lustre_file_system.ray",
                    "infra:aws_ecr_repository.ray", "infra:aws_s3_bucket.data",
                    "ray:helm_release.kuberay_operator", "ray:helm_release.cluster_autoscaler",
                    "ray:aws_sfn_state_machine.ray_orchestrator", "ray-cluster:rayhead", "ray-cluster:worker:gpu-group"):
        assert node_id in found, f"{node_id} missing; have {sorted(found)}"
    assert "kuberay-operator" in found["ray:helm_release.kuberay_operator"]
    assert "head" in found["ray-cluster:rayhead"] and "1 GPU" in found["ray-cluster:worker:gpu-group"]
    groups = {t.text for t in ET.parse(drawn[0]).getroot().iter("{http://www.w3.org/2000/svg}text")}
    assert {"Network", "EKS", "Node groups", "FSx for Lustre", "ECR", "S3", "Orchestrator", "RayCluster",
            "Cluster add-ons (Helm)"} <= groups


def test_edges_follow_references_and_remote_state(default_synth):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import diagram
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    g = diagram.build(diagram.load(default_synth["_outdir"]))
    edges = {(a, b) for a, b, _ in g.edges}
    # In-stack reference: the node groups use the cluster.
    assert ("infra:aws_eks_node_group.gpu", "infra:aws_eks_cluster.ray") in edges
    # Across stacks through terraform_remote_state outputs: the access entry names the infra cluster.
    assert ("ray:aws_eks_access_entry.ray_orchestrator", "infra:aws_eks_cluster.ray") in edges
    assert ("ray:aws_sfn_state_machine.ray_orchestrator", "infra:aws_eks_cluster.ray") in edges
    # Runtime links: jobs submit to the head; the operator reconciles the RayCluster; head -> workers.
    runtime = {(a, b) for a, b, k in g.edges if k == "runtime"}
    assert ("ray:aws_sfn_state_machine.ray_orchestrator", "ray-cluster:rayhead") in runtime
    assert ("ray-cluster:rayhead", "ray:helm_release.kuberay_operator") in runtime
    assert ("ray-cluster:rayhead", "ray-cluster:worker:gpu-group") in runtime


def test_committed_diagram_is_current(drawn):
    committed = ROOT / "docs" / "architecture.svg"
    assert committed.is_file(), "run `make diagram` and commit docs/architecture.svg"
    assert set(nodes(committed)) == set(nodes(drawn[0])), "docs/architecture.svg is stale: run `make diagram`"


def test_missing_synth_is_one_clear_error(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "diagram.py"), "--synth-dir", str(tmp_path),
                        "--out", str(tmp_path / "x.svg")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no stacks under" in r.stderr and "Traceback" not in r.stderr
