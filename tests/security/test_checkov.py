"""The checkov gate: every synthesized stack passes checkov with no failed check.

checkov runs from its own environment (tools/checkov/.venv, `make checkov-env`; `make test` builds it).
A missing environment fails these tests rather than skipping them: an unscanned stack is not a clean one.
Deliberate exceptions are inline skips on the resource (constructs_lib/checkov.py), each with its
reason; tools/checkov/scan.py applies them, and a skip whose check passes anyway is reported as stale.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import stack_items

# checkov passes this many checks on the infra stack today (171 default, 161 dev); a big drop means
# resources vanished from the scan (a parse problem, a framework change), not that they got safer.
MIN_PASSED = {"infra": 140}


def scan_synth(scan, outdir: Path, names: list[str]) -> dict:
    """Scan every stack of one synth, in parallel (each checkov run is a separate process)."""
    try:
        scan.require_checkov()
    except scan.ScanError as e:
        pytest.fail(str(e), pytrace=False)
    dirs = [outdir / "stacks" / name for name in names]
    with ThreadPoolExecutor(max_workers=3) as pool:
        reports = list(pool.map(scan.scan_stack, dirs))
    return {r.stack: r for r in reports}


def _assert_clean(reports: dict, label: str) -> None:
    bad = [r.details() for r in reports.values() if not r.ok]
    summaries = "\n".join(r.summary() for r in reports.values())
    print(f"checkov, {label} synth:\n{summaries}")
    for r in reports.values():
        for f in r.skipped:
            print(f"  skipped {f.line()}")
    assert not bad, f"checkov findings in the {label} synth (fix them, or skip with a reason):\n" + "\n".join(bad)
    for stack, floor in MIN_PASSED.items():
        assert reports[stack].passed >= floor, f"{stack}: only {reports[stack].passed} checks passed (floor {floor})"


@pytest.fixture(scope="session")
def default_reports(scan, default_synth) -> dict:
    return scan_synth(scan, default_synth["_outdir"], [n for n, _ in stack_items(default_synth)])


@pytest.fixture(scope="session")
def dev_reports(scan, dev_synth) -> dict:
    return scan_synth(scan, dev_synth["_outdir"], [n for n, _ in stack_items(dev_synth)])


def test_checkov_environment_is_installed(scan):
    try:
        path = scan.require_checkov()
    except scan.ScanError as e:
        pytest.fail(str(e), pytrace=False)
    assert path.name == "checkov"


def test_missing_checkov_fails_with_the_fix(scan, monkeypatch, tmp_path):
    monkeypatch.setattr(scan, "CHECKOV", scan.ROOT / "tools" / "checkov" / ".venv-missing" / "bin" / "checkov")
    with pytest.raises(scan.ScanError, match=r"run `make checkov-env`"):
        scan.require_checkov()


def test_default_synth_passes_checkov(default_synth, default_reports):
    assert set(default_reports) == {n for n, _ in stack_items(default_synth)}
    _assert_clean(default_reports, "default")


def test_dev_example_passes_checkov(dev_synth, dev_reports):
    assert set(dev_reports) == {n for n, _ in stack_items(dev_synth)}
    _assert_clean(dev_reports, "dev example")


def test_karpenter_example_passes_checkov(scan, app_synth):
    """cluster.autoscaler: karpenter adds IAM, an SQS queue, EventBridge rules and Karpenter's custom resources."""
    synth = app_synth("karpenter")
    reports = scan_synth(scan, synth["_outdir"], [n for n, _ in stack_items(synth)])
    _assert_clean(reports, "karpenter example")


def test_the_gate_fails_an_open_api_endpoint(scan, open_synth):
    """0.0.0.0/0 is allowed by the config (with a warning) but is a finding: the gate must say so."""
    rep = scan.scan_stack(open_synth["_outdir"] / "stacks" / "infra")
    assert not rep.ok
    failed = {(f.check_id, f.address) for f in rep.failed}
    assert ("CKV_AWS_38", "aws_eks_cluster.ray") in failed, rep.details()
    # Readable: check id, resource address and what the check wants, one line each.
    assert "FAILED  CKV_AWS_38 on aws_eks_cluster.ray (Ensure Amazon EKS public endpoint not accessible to 0.0.0.0/0)" \
        in rep.details()


# Every deliberate exception, by synth: (check, address). Adding one means adding it here too, so a new
# skip is a reviewed decision; each carries its reason in the JSON (printed by the tests above).
EXPECTED_SKIPS = {
    "default": {
        ("CKV_AWS_145", "aws_s3_bucket.data"), ("CKV_AWS_145", "aws_s3_bucket.access_logs"),
        ("CKV_AWS_144", "aws_s3_bucket.data"), ("CKV_AWS_144", "aws_s3_bucket.access_logs"),
        ("CKV2_AWS_62", "aws_s3_bucket.data"), ("CKV2_AWS_62", "aws_s3_bucket.access_logs"),
        ("CKV_AWS_394", "data.aws_availability_zones.available"),
        # The orchestrator's function: invoked synchronously (no DLQ), package built at synth (no code signing).
        ("CKV_AWS_116", "aws_lambda_function.ray_orchestrator"),
        ("CKV_AWS_272", "aws_lambda_function.ray_orchestrator"),
        ("CKV_AWS_316", "aws_codebuild_project.ray_image"),  # privileged: Docker in Docker builds the image
        # No reserved concurrency by default (a new account cannot reserve any); the API tunnel: basic monitoring.
        ("CKV_AWS_115", "aws_lambda_function.ray_orchestrator"),
        ("CKV_AWS_126", "aws_instance.api_tunnel"),
    },
    "dev": {
        ("CKV_AWS_145", "aws_s3_bucket.data"), ("CKV_AWS_145", "aws_s3_bucket.access_logs"),
        ("CKV_AWS_144", "aws_s3_bucket.data"), ("CKV_AWS_144", "aws_s3_bucket.access_logs"),
        ("CKV2_AWS_62", "aws_s3_bucket.data"), ("CKV2_AWS_62", "aws_s3_bucket.access_logs"),
        ("CKV_AWS_190", "aws_fsx_lustre_file_system.ray"),  # SCRATCH_2 cannot take a customer key
        ("CKV_AWS_316", "aws_codebuild_project.ray_image"),
        ("CKV_AWS_126", "aws_instance.api_tunnel"),  # the example reaches its private API through the tunnel
    },
}


@pytest.mark.parametrize("label", ["default", "dev"])
def test_skips_are_the_reviewed_ones_and_give_reasons(label, request):
    reports = request.getfixturevalue(f"{label}_reports")
    skipped = [f for r in reports.values() for f in r.skipped]
    assert {(f.check_id, f.address) for f in skipped} == EXPECTED_SKIPS[label]
    for f in skipped:
        assert len(f.reason) >= 40, f"{f.check_id} on {f.address}: the reason is too thin: {f.reason!r}"


def test_skip_entries_merge_with_cdktf_metadata(infra):
    """The skip lives under "//" next to cdktf's metadata (which other tools read); nothing is clobbered."""
    for body in (infra["resource"]["aws_s3_bucket"]["data"], infra["data"]["aws_availability_zones"]["available"]):
        comment = body["//"]
        assert comment["metadata"]["path"].startswith("infra/"), comment
        assert comment["checkov"]["skip"] and all(set(e) == {"id", "comment"} for e in comment["checkov"]["skip"])
    ids = [e["id"] for e in infra["resource"]["aws_s3_bucket"]["data"]["//"]["checkov"]["skip"]]
    assert ids == ["CKV_AWS_145", "CKV_AWS_144", "CKV2_AWS_62"]  # accumulated, not overwritten


# ---------------------------------------------------------------- the scanner on a stack made by hand
def _bucket(name: str, skips: list[tuple[str, str]] | None = None) -> dict:
    body: dict = {"//": {"metadata": {"path": f"t/{name}", "uniqueId": name}}, "bucket": name}
    if skips:
        body["//"]["checkov"] = {"skip": [{"id": i, "comment": c} for i, c in skips]}
    return body


def test_scanner_applies_skips_reports_failures_and_stale_skips(scan, tmp_path):
    stack = {
        "provider": {"aws": [{"region": "us-west-2"}]},
        "resource": {"aws_s3_bucket": {
            "skipped": _bucket("skipped", [("CKV_AWS_144", "replication is not wanted for this test bucket")]),
            "plain": _bucket("plain"),
            # CKV_AWS_38 is an EKS check: it never fails on a bucket, so this skip is stale.
            "stale": _bucket("stale", [("CKV_AWS_38", "a skip for a check that does not fail here")]),
        }},
    }
    d = tmp_path / "stacks" / "t"
    d.mkdir(parents=True)
    (d / "cdk.tf.json").write_text(json.dumps(stack, indent=2))
    rep = scan.scan_stack(d)

    assert ("CKV_AWS_144", "aws_s3_bucket.skipped") in {(f.check_id, f.address) for f in rep.skipped}
    assert [f.reason for f in rep.skipped if f.address == "aws_s3_bucket.skipped"] == \
        ["replication is not wanted for this test bucket"]
    failed = {(f.check_id, f.address) for f in rep.failed}
    assert ("CKV_AWS_144", "aws_s3_bucket.plain") in failed
    assert ("CKV_AWS_144", "aws_s3_bucket.skipped") not in failed
    assert [(f.check_id, f.address) for f in rep.stale_skips] == [("CKV_AWS_38", "aws_s3_bucket.stale")]
    assert not rep.ok
    assert "FAILED  CKV_AWS_144 on aws_s3_bucket.plain (Ensure that S3 bucket has cross-region replication" \
        in rep.details()


def test_element_lines_name_resources_and_data_sources(scan):
    text = json.dumps({"data": {"aws_x": {"a": {"k": 1}}}, "resource": {"aws_y": {"b": {"k": 2}}}}, indent=2)
    lines = scan.element_lines(text)
    assert sorted(lines.values()) == ["aws_y.b", "data.aws_x.a"]
    for n, address in lines.items():
        assert f'"{address.split(".")[-1]}": {{' in text.splitlines()[n - 1]


# ---------------------------------------------------------------- the skip() helper
def test_skip_helper_refuses_unexplained_or_misplaced_skips():
    from cdktf import App, TerraformStack
    from cdktf_cdktf_provider_aws.data_aws_availability_zones import DataAwsAvailabilityZones
    from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket

    from constructs_lib.checkov import skip, skippable

    stack = TerraformStack(App(), "t")
    bucket = S3Bucket(stack, "b", bucket="b")
    with pytest.raises(ValueError, match="not a checkov check id"):
        skip(bucket, "AWS_144", "a perfectly good reason for it")
    with pytest.raises(ValueError, match="give the reason"):
        skip(bucket, "CKV_AWS_144", "because")
    skip(bucket, "CKV_AWS_144", "a perfectly good reason for it")
    with pytest.raises(ValueError, match="already skipped"):
        skip(bucket, "CKV_AWS_144", "a perfectly good reason for it")
    # cdktf rewrites a data source's "//" at synth: a plain one would silently lose the skip.
    with pytest.raises(TypeError, match="skippable"):
        skip(DataAwsAvailabilityZones(stack, "plain"), "CKV_AWS_394", "a perfectly good reason for it")
    skip(skippable(DataAwsAvailabilityZones)(stack, "azs"), "CKV_AWS_394", "a perfectly good reason for it")
