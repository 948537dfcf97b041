"""What Ray pods use in their namespace, alone from its props (``construct_synth``): the namespace under Pod
Security, a service account with IRSA limited to the data bucket, and the FSx file system as a static volume bound
to one ReadWriteMany claim."""

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
                         service_account="ray-sa", oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/o/id/A",
                         oidc_issuer_host="o/id/A", data_bucket_arn=BUCKET, fsx=FSX)
NAMESPACE = "${kubernetes_namespace_v1.ray.metadata[0].name}"


@pytest.fixture(scope="module")
def alone(construct_synth):
    return construct_synth(lambda stack: RayPlatform(stack, "platform", ALONE), providers=("aws", "kubernetes"))


def test_namespace_enforces_the_baseline_pod_security_level(alone):
    assert alone.has_resource(NamespaceV1, {"metadata": {"name": "ray-unit", "labels": {
        "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted"}}})


def test_service_account_assumes_a_role_for_the_data_bucket_only(alone):
    assert alone.has_resource(ServiceAccountV1, {"metadata": {
        "name": "ray-sa", "namespace": NAMESPACE,
        "annotations": {"eks.amazonaws.com/role-arn": ref("aws_iam_role", "ray_workload", "arn")}}})
    trust = json.loads(alone.one("aws_iam_role", "ray_workload")["assume_role_policy"])["Statement"][0]
    assert trust["Condition"]["StringEquals"]["o/id/A:sub"] == "system:serviceaccount:ray-unit:ray-sa"
    statements = json.loads(alone.one("aws_iam_role_policy", "ray_workload")["policy"])["Statement"]
    assert {s["Resource"] for s in statements} == {BUCKET, f"{BUCKET}/*"}
    assert {a for s in statements for a in s["Action"]} == {
        "s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
        "s3:AbortMultipartUpload"}


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
