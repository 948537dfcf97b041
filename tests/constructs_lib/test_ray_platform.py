"""What Ray pods use in their namespace, alone from its props (``construct_synth``): the namespace under Pod
Security, the head's and the workers' service accounts (no token automounted) sharing an IRSA role limited to the
data bucket, and the FSx file system as a static volume bound to one ReadWriteMany claim."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1
from cdktf_cdktf_provider_kubernetes.persistent_volume_claim_v1 import PersistentVolumeClaimV1
from cdktf_cdktf_provider_kubernetes.persistent_volume_v1 import PersistentVolumeV1
from cdktf_cdktf_provider_kubernetes.service_account_v1 import ServiceAccountV1

from constructs_lib.manifests.storage import FsxVolumeProps
from constructs_lib.ray_platform import RayPlatform, RayPlatformProps
from tests.helpers import ref

BUCKET = "arn:aws:s3:::unit-data"
FSX = FsxVolumeProps(name="fsx-unit", namespace="ray-unit", file_system_id="fs-0123",
                     dns_name="fs-0123.fsx.us-west-2.amazonaws.com", mount_name="abcd", capacity_gib=1200)
ALONE = RayPlatformProps(workload_role_name_prefix="unit-ray-", namespace="ray-unit",
                         head_service_account="head-sa", worker_service_account="worker-sa",
                         oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/o/id/A",
                         oidc_issuer_host="o/id/A", data_bucket_arn=BUCKET, fsx=FSX, read_only_prefixes=("build/",))
NAMESPACE = "${kubernetes_namespace_v1.ray.metadata[0].name}"


@pytest.fixture(scope="module")
def alone(construct_synth):
    return construct_synth(lambda stack: RayPlatform(stack, "platform", ALONE), providers=("aws", "kubernetes"))


def test_namespace_enforces_the_baseline_pod_security_level_and_warns_at_restricted(alone):
    assert alone.has_resource(NamespaceV1, {"metadata": {"name": "ray-unit", "labels": {
        "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted"}}})


@pytest.mark.parametrize("key, name", [("ray_head", "head-sa"), ("ray_worker", "worker-sa")])
def test_service_accounts_share_a_role_for_the_data_bucket_and_mount_no_token(alone, key, name):
    assert alone.has_resource(ServiceAccountV1, {"metadata": {
        "name": name, "namespace": NAMESPACE,
        "annotations": {"eks.amazonaws.com/role-arn": ref("aws_iam_role", "ray_workload", "arn")}},
        "automount_service_account_token": False})
    assert set(alone.resources("kubernetes_service_account_v1")) == {"ray_head", "ray_worker"}


def test_the_role_reads_and_writes_the_data_bucket_but_not_the_image_build_source(alone):
    trust = json.loads(alone.one("aws_iam_role", "ray_workload")["assume_role_policy"])["Statement"][0]
    assert trust["Condition"]["StringEquals"]["o/id/A:sub"] == [
        "system:serviceaccount:ray-unit:head-sa", "system:serviceaccount:ray-unit:worker-sa"]
    statements = json.loads(alone.one("aws_iam_role_policy", "ray_workload")["policy"])["Statement"]
    allow = [s for s in statements if s["Effect"] == "Allow"]
    assert {s["Resource"] for s in allow} == {BUCKET, f"{BUCKET}/*"}
    assert {a for s in allow for a in s["Action"]} == {
        "s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
        "s3:AbortMultipartUpload"}
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Resource"] == f"{BUCKET}/build/*"
    assert set(deny["Action"]) == {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}


def test_the_file_system_is_a_retained_volume_reserved_for_its_claim(alone):
    assert alone.has_resource(PersistentVolumeV1, {"metadata": {"name": "fsx-unit"}, "spec": [{
        "capacity": {"storage": "1200Gi"}, "access_modes": ["ReadWriteMany"], "storage_class_name": "",
        "persistent_volume_reclaim_policy": "Retain", "mount_options": ["flock"],
        "claim_ref": {"namespace": "ray-unit", "name": "fsx-unit"},
        "persistent_volume_source": {"csi": {
            "driver": "fsx.csi.aws.com", "volume_handle": "fs-0123",
            "volume_attributes": {"dnsname": "fs-0123.fsx.us-west-2.amazonaws.com", "mountname": "abcd"}}}}]})
    assert alone.has_resource(PersistentVolumeClaimV1, {
        "metadata": {"name": "fsx-unit", "namespace": NAMESPACE}, "wait_until_bound": True,
        "spec": {"access_modes": ["ReadWriteMany"], "storage_class_name": "",
                 "volume_name": "${kubernetes_persistent_volume_v1.fsx.metadata[0].name}",
                 "resources": {"requests": {"storage": "1200Gi"}}}})
