"""The Ray namespace and what Ray pods use in it: the head's and the workers' service accounts (no token
mounted by default; one IRSA role, limited to the data bucket, for both), and the FSx file system as a static
PersistentVolume + ReadWriteMany claim."""

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

from conventions.kubernetes import pod_security_labels

from .iam import policy_document, statement
from .irsa_role import IrsaRole, IrsaRoleProps
from .manifests.storage import FsxVolumeProps, fsx_persistent_volume, fsx_persistent_volume_claim


@dataclass(frozen=True)
class RayPlatformProps:
    workload_role_name_prefix: str
    namespace: str
    head_service_account: str  # KubeRay binds the Ray autoscaler's Role to it
    worker_service_account: str
    oidc_provider_arn: str
    oidc_issuer_host: str
    data_bucket_arn: str
    fsx: FsxVolumeProps
    # Prefixes of the data bucket the Ray pods must not write (the image build's source: what it builds, privileged).
    read_only_prefixes: tuple[str, ...] = ()


# enforce baseline, not restricted: the FSx permission init container runs as root with CHOWN/FOWNER (Lustre
# ignores fsGroup), which restricted forbids and baseline allows; baseline still refuses privileged pods, host
# namespaces, hostPath and added capabilities beyond the default set. Everything else warns at restricted.
RAY_POD_SECURITY = ("baseline", "restricted")


class RayPlatform(Construct):
    """Addresses: ``kubernetes_namespace_v1.ray``, ``aws_iam_role(_policy).ray_workload``,
    ``kubernetes_service_account_v1.ray_head`` and ``.ray_worker``, the FSx PV and claim."""

    namespace: NamespaceV1
    head_service_account: ServiceAccountV1
    worker_service_account: ServiceAccountV1
    pvc: PersistentVolumeClaimV1

    def __init__(self, scope: Construct, id: str, props: RayPlatformProps) -> None:
        super().__init__(scope, id)
        self.namespace = NamespaceV1(self, "ray", metadata=NamespaceV1Metadata(
            name=props.namespace, labels=pod_security_labels(*RAY_POD_SECURITY)))
        bucket = props.data_bucket_arn
        statements = [
            statement(["s3:ListBucket", "s3:GetBucketLocation"], [bucket], sid="ListDataBucket"),
            statement(["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                      [f"{bucket}/*"], sid="ReadWriteDataObjects"),
        ]
        if props.read_only_prefixes:
            statements.append(statement(["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                                        [f"{bucket}/{p}*" for p in props.read_only_prefixes],
                                        sid="NotTheImageBuildSource", effect="Deny"))
        # Head and workers share the data-bucket role: what one may reach in AWS, the other may too, so neither
        # gains a role by running as the other's ServiceAccount.
        role = IrsaRole(self, "ray_workload", IrsaRoleProps(
            role_name_prefix=props.workload_role_name_prefix, oidc_provider_arn=props.oidc_provider_arn,
            oidc_issuer_host=props.oidc_issuer_host, namespace=props.namespace,
            service_account=props.head_service_account, more_service_accounts=(props.worker_service_account,),
            policy_name="data-bucket", policy_json=policy_document(statements)))
        # No token is mounted from either by default (automount false): the RayCluster mounts the head's token
        # into the autoscaler container alone; Ray code in the head and worker containers has no Kubernetes API
        # identity. The IRSA web-identity token is injected whatever automount says.
        accounts = {}
        for key, name in (("ray_head", props.head_service_account), ("ray_worker", props.worker_service_account)):
            accounts[key] = ServiceAccountV1(
                Construct(self, f"sa_{key}"), key, metadata=ServiceAccountV1Metadata(
                    name=name, namespace=self.namespace.metadata.name,
                    annotations={"eks.amazonaws.com/role-arn": role.role_arn}),
                automount_service_account_token=False)
        self.head_service_account, self.worker_service_account = accounts["ray_head"], accounts["ray_worker"]

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
