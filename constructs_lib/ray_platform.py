"""The Ray namespace and what Ray pods use in it: a service account with IRSA limited to the data
bucket, and the FSx file system as a static PersistentVolume + ReadWriteMany claim."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1, NamespaceV1Metadata
from cdktf_cdktf_provider_kubernetes.persistent_volume_claim_v1 import (
    PersistentVolumeClaimV1,
    PersistentVolumeClaimV1Metadata,
    PersistentVolumeClaimV1Spec,
    PersistentVolumeClaimV1SpecResources,
)
from cdktf_cdktf_provider_kubernetes.persistent_volume_v1 import (
    PersistentVolumeV1,
    PersistentVolumeV1Metadata,
    PersistentVolumeV1Spec,
    PersistentVolumeV1SpecClaimRef,
    PersistentVolumeV1SpecPersistentVolumeSource,
    PersistentVolumeV1SpecPersistentVolumeSourceCsi,
)
from cdktf_cdktf_provider_kubernetes.service_account_v1 import ServiceAccountV1, ServiceAccountV1Metadata
from constructs import Construct

from .iam import policy_document, statement
from .irsa_role import IrsaRole, IrsaRoleProps
from .manifests.storage import FsxVolumeProps, fsx_persistent_volume, fsx_persistent_volume_claim


@dataclass(frozen=True)
class RayPlatformProps:
    workload_role_name_prefix: str
    namespace: str
    service_account: str
    oidc_provider_arn: str
    oidc_issuer_host: str
    data_bucket_arn: str
    fsx: FsxVolumeProps


class RayPlatform(Construct):
    namespace: NamespaceV1
    service_account: ServiceAccountV1
    pvc: PersistentVolumeClaimV1

    def __init__(self, scope: Construct, id: str, props: RayPlatformProps) -> None:
        super().__init__(scope, id)
        self.namespace = NamespaceV1(self, "ray", metadata=NamespaceV1Metadata(
            name=props.namespace,
            # baseline, not restricted: the FSx permission init container runs as root to chown.
            labels={"pod-security.kubernetes.io/enforce": "baseline",
                    "pod-security.kubernetes.io/warn": "restricted"}))
        bucket = props.data_bucket_arn
        role = IrsaRole(self, "ray_workload", IrsaRoleProps(
            role_name_prefix=props.workload_role_name_prefix, oidc_provider_arn=props.oidc_provider_arn,
            oidc_issuer_host=props.oidc_issuer_host, namespace=props.namespace,
            service_account=props.service_account, policy_name="data-bucket",
            policy_json=policy_document([
                statement(["s3:ListBucket", "s3:GetBucketLocation"], [bucket], sid="ListDataBucket"),
                statement(["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                          [f"{bucket}/*"], sid="ReadWriteDataObjects"),
            ])))
        self.service_account = ServiceAccountV1(
            Construct(self, "service_account"), "ray", metadata=ServiceAccountV1Metadata(
                name=props.service_account, namespace=self.namespace.metadata.name,
                annotations={"eks.amazonaws.com/role-arn": role.role_arn}))

        pv = fsx_persistent_volume(props.fsx)["spec"]
        pvc = fsx_persistent_volume_claim(props.fsx)["spec"]
        # The same objects as ray_manifests builds (validated there), in the provider's typed form.
        volume = PersistentVolumeV1(self, "fsx", metadata=PersistentVolumeV1Metadata(name=props.fsx.name), spec=[
            PersistentVolumeV1Spec(
                capacity=pv["capacity"], access_modes=pv["accessModes"], volume_mode=pv["volumeMode"],
                persistent_volume_reclaim_policy=pv["persistentVolumeReclaimPolicy"],
                storage_class_name=pv["storageClassName"], mount_options=pv["mountOptions"],
                claim_ref=PersistentVolumeV1SpecClaimRef(namespace=props.namespace, name=props.fsx.name),
                persistent_volume_source=PersistentVolumeV1SpecPersistentVolumeSource(
                    csi=PersistentVolumeV1SpecPersistentVolumeSourceCsi(
                        driver=pv["csi"]["driver"], volume_handle=pv["csi"]["volumeHandle"],
                        volume_attributes=pv["csi"]["volumeAttributes"])),
            )])
        self.pvc = PersistentVolumeClaimV1(
            Construct(self, "claim"), "fsx",
            metadata=PersistentVolumeClaimV1Metadata(name=props.fsx.name, namespace=self.namespace.metadata.name),
            spec=PersistentVolumeClaimV1Spec(
                access_modes=pvc["accessModes"], storage_class_name=pvc["storageClassName"],
                volume_name=volume.metadata.name,
                resources=PersistentVolumeClaimV1SpecResources(requests=pvc["resources"]["requests"])),
            wait_until_bound=True)
