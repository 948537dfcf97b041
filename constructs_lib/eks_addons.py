"""EKS managed add-ons, ordered as terraform-aws-eks orders them: networking before compute, the rest once
nodes exist.

The constructor installs ``ADDONS_BEFORE_COMPUTE`` (the node groups depend on ``before_compute``, so no node
starts without its CNI); ``after_compute(node_groups)`` installs the add-ons that run Deployments. Versions
are pinned in config or resolved per Kubernetes version at plan time (``data.aws_eks_addon_version``, newest
first), so a plan shows the version each add-on gets.

The FSx for Lustre CSI driver is an EKS add-on (aws-fsx-csi-driver), so it is installed here with
its own IRSA role rather than by Helm in the ray stack.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.data_aws_eks_addon_version import DataAwsEksAddonVersion
from cdktf_cdktf_provider_aws.eks_addon import EksAddon
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from constructs import Construct

from conventions.eks import ADDON_CONFIGURATION, addon_configuration
from conventions.eks import ADDONS_AFTER_COMPUTE as AFTER_COMPUTE
from conventions.eks import ADDONS_BEFORE_COMPUTE as BEFORE_COMPUTE

from .iam import irsa_assume_role_policy, policy_document, statement

__all__ = ["ADDON_CONFIGURATION", "AFTER_COMPUTE", "BEFORE_COMPUTE", "EksAddons", "EksAddonsProps",
           "addon_configuration_values"]


def addon_configuration_values(name: str, *, dcgm_exporter: bool = False) -> str | None:
    """The ``configuration_values`` JSON of an add-on (None: the add-on's defaults); ``dcgm_exporter``: ours is on
    (conventions/eks.py addon_configuration)."""
    values = addon_configuration(name, dcgm_exporter=dcgm_exporter)
    return json.dumps(values) if values is not None else None


@dataclass(frozen=True)
class EksAddonsProps:
    cluster_name: str
    kubernetes_version: str  # resolves the versions of the add-ons not pinned below
    oidc_provider_arn: str
    oidc_issuer_host: str
    fsx_csi_role_name_prefix: str
    # Pinned versions (add-on name -> version); the others get the newest for kubernetes_version.
    versions: dict[str, str]
    vpc_cni_role_name_prefix: str
    partition: str


# aws-node, the vpc-cni DaemonSet's ServiceAccount (the add-on's service_account_role_arn annotates it).
VPC_CNI_SERVICE_ACCOUNT = "aws-node"
VPC_CNI_POLICY = "AmazonEKS_CNI_Policy"


class EksAddons(Construct):
    fsx_csi_role_arn: str
    vpc_cni_role_arn: str
    before_compute: list[EksAddon]

    def __init__(self, scope: Construct, id: str, props: EksAddonsProps) -> None:
        super().__init__(scope, id)
        self._props = props
        self._versions = Construct(self, "versions")  # data.aws_eks_addon_version.<addon>, next to the add-on
        # Static provisioning (our PV names an existing file system) needs only describe rights; the
        # role also puts AWS_REGION into the controller, which cannot reach IMDS (hop limit 1).
        fsx_role = IamRole(self, "fsx_csi_driver", name_prefix=props.fsx_csi_role_name_prefix,
                           assume_role_policy=irsa_assume_role_policy(
                               props.oidc_provider_arn, props.oidc_issuer_host, "kube-system", "fsx-csi-controller-sa"))
        IamRolePolicy(self, "fsx_csi_driver_policy", role=fsx_role.id, name="describe-file-systems",
                      policy=policy_document([statement(["fsx:DescribeFileSystems"], ["*"])]))
        self.fsx_csi_role_arn = fsx_role.arn
        # The VPC CNI's ENI rights (AmazonEKS_CNI_Policy: create, attach and delete any ENI of the account) on an
        # IRSA role of its aws-node ServiceAccount, as AWS recommends and terraform-aws-eks does, instead of on
        # the node roles where every host-network pod would hold them.
        cni_role = IamRole(Construct(self, "cni_role"), "vpc_cni", name_prefix=props.vpc_cni_role_name_prefix,
                           assume_role_policy=irsa_assume_role_policy(
                               props.oidc_provider_arn, props.oidc_issuer_host, "kube-system", VPC_CNI_SERVICE_ACCOUNT))
        cni_policy = IamRolePolicyAttachment(Construct(self, "cni_policy"), "vpc_cni", role=cni_role.name,
                                             policy_arn=f"arn:{props.partition}:iam::aws:policy/{VPC_CNI_POLICY}")
        self.vpc_cni_role_arn = cni_role.arn
        roles = {"vpc-cni": (cni_role.arn, [cni_policy])}
        self.before_compute = [self.addon(name, roles.get(name, (None, []))[1], roles.get(name, (None, []))[0])
                               for name in BEFORE_COMPUTE]
        self.after: list[EksAddon] = []

    def addon(self, name: str, depends: Sequence[ITerraformDependable], role_arn: str | None = None) -> EksAddon:
        props = self._props
        key = name.replace("-", "_")
        version = props.versions.get(name)
        if version is None:
            version = DataAwsEksAddonVersion(self._versions, key, addon_name=name,
                                             kubernetes_version=props.kubernetes_version, most_recent=True).version
        return EksAddon(
            self, key, cluster_name=props.cluster_name, addon_name=name,
            addon_version=version, service_account_role_arn=role_arn,
            configuration_values=addon_configuration_values(name),
            # Our config wins over manual edits; on delete, keep the running pods until the cluster goes.
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE",
            depends_on=list(depends) or None,
        )

    def after_compute(self, node_groups: Sequence[ITerraformDependable]) -> list[EksAddon]:
        """The add-ons with Deployments, created once every node group exists (call once)."""
        if self.after:
            raise RuntimeError("after_compute was called twice")
        roles = {"aws-fsx-csi-driver": self.fsx_csi_role_arn}
        self.after = [self.addon(name, node_groups, roles.get(name)) for name in AFTER_COMPUTE]
        return self.after
