"""EKS managed add-ons: networking before compute, the rest once nodes exist.

The FSx for Lustre CSI driver is an EKS add-on (aws-fsx-csi-driver), so it is installed here with
its own IRSA role rather than by Helm in the ray stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional, Sequence

from cdktf import ITerraformDependable
from constructs import Construct

from cdktf_cdktf_provider_aws.eks_addon import EksAddon
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy

from .iam import irsa_assume_role_policy, policy_document, statement

# Add-ons the nodes need to join (vpc-cni) or that pods need from their first minute.
BEFORE_COMPUTE = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# Add-ons with Deployments: they need schedulable nodes or they sit DEGRADED until timeout.
AFTER_COMPUTE = ("coredns", "aws-fsx-csi-driver")


# Add-on configuration (the add-on's JSON schema). vpc-cni: its network policy agent enforces NetworkPolicies (the
# ray-cluster stack's policy on the Ray head); the value is the string "true" (EKS user guide, cni-network-policy).
ADDON_CONFIGURATION = {"vpc-cni": json.dumps({"enableNetworkPolicy": "true"})}


@dataclass(frozen=True)
class EksAddonsProps:
    cluster_name: str
    oidc_provider_arn: str
    oidc_issuer_host: str
    # Pin versions here (addon name -> version); None: the default version for the cluster's Kubernetes.
    versions: dict[str, str] = field(default_factory=dict)


class EksAddons(Construct):
    fsx_csi_role_arn: str

    def __init__(self, scope: Construct, id: str, props: EksAddonsProps,
                 node_groups: Sequence[ITerraformDependable] = ()) -> None:
        super().__init__(scope, id)
        # Static provisioning (our PV names an existing file system) needs only describe rights; the
        # role also puts AWS_REGION into the controller, which cannot reach IMDS (hop limit 1).
        fsx_role = IamRole(self, "fsx_csi_driver", name=f"{props.cluster_name}-fsx-csi-driver",
                           assume_role_policy=irsa_assume_role_policy(
                               props.oidc_provider_arn, props.oidc_issuer_host, "kube-system", "fsx-csi-controller-sa"))
        IamRolePolicy(self, "fsx_csi_driver_policy", role=fsx_role.id, name="describe-file-systems",
                      policy=policy_document([statement(["fsx:DescribeFileSystems"], ["*"])]))
        self.fsx_csi_role_arn = fsx_role.arn

        def addon(name: str, depends: Sequence[ITerraformDependable], role_arn: Optional[str] = None) -> EksAddon:
            return EksAddon(
                self, name.replace("-", "_"), cluster_name=props.cluster_name, addon_name=name,
                addon_version=props.versions.get(name), service_account_role_arn=role_arn,
                configuration_values=ADDON_CONFIGURATION.get(name),
                # Our config wins over manual edits; on delete, keep the running pods until the cluster goes.
                resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE",
                depends_on=list(depends) or None,
            )

        for name in BEFORE_COMPUTE:
            addon(name, ())
        addon("coredns", node_groups)
        addon("aws-fsx-csi-driver", node_groups, fsx_role.arn)
