"""EKS control plane: access entries (API mode, no aws-auth), KMS envelope encryption of secrets,
control-plane logging, private endpoint + CIDR-restricted public endpoint (or 443 from private networks), and the
IAM OIDC provider for IRSA.

Cluster admins as terraform-aws-eks v21 grants them: EKS's one-time creator bootstrap is off, and every admin
is an explicit access entry in state -- the listed principals (``admin_<i>``) and, with ``creator_is_admin``,
the principal running the apply (``cluster_creator``: the IAM role behind an assumed-role session, from
``aws_iam_session_context``). EKS allows one entry per principal, so the creator's entry is counted out when
the creator is listed anyway; Terraform decides that at plan time, when the caller is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import Fn, Token
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_iam_session_context import DataAwsIamSessionContext
from cdktf_cdktf_provider_aws.eks_access_entry import EksAccessEntry
from cdktf_cdktf_provider_aws.eks_access_policy_association import (
    EksAccessPolicyAssociation,
    EksAccessPolicyAssociationAccessScope,
)
from cdktf_cdktf_provider_aws.eks_cluster import (
    EksCluster,
    EksClusterAccessConfig,
    EksClusterEncryptionConfig,
    EksClusterEncryptionConfigProvider,
    EksClusterVpcConfig,
)
from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from .checkov import skip
from .iam import service_assume_role_policy_from


@dataclass(frozen=True)
class EksClusterProps:
    name: str
    role_name_prefix: str
    log_group_name: str  # EKS writes to /aws/eks/<name>/cluster: created first, it gets our retention and key
    kubernetes_version: str
    subnet_ids: list[str]
    secrets_kms_key_arn: str
    logs_kms_key_arn: str
    partition: str
    public_access_cidrs: list[str]
    # Networks outside the cluster (VPN, peering, Direct Connect) that may call the private endpoint on 443.
    private_access_cidrs: list[str]
    admin_principal_arns: list[str]  # unique (config checks)
    creator_is_admin: bool
    caller_arn: str  # data.aws_caller_identity's arn: who runs the apply
    log_types: list[str]
    log_retention_days: int
    account_id: str  # the cluster role trusts EKS for this cluster only
    region: str


class RayEksCluster(Construct):
    cluster: EksCluster
    name: str
    endpoint: str
    certificate_authority_data: str
    oidc_issuer_url: str
    oidc_issuer_host: str
    oidc_provider_arn: str
    cluster_security_group_id: str
    role_arn: str

    def __init__(self, scope: Construct, id: str, props: EksClusterProps) -> None:
        super().__init__(scope, id)
        p = props.partition
        # EKS assumes the role for this cluster only (aws:SourceArn, aws:SourceAccount: EKS user guide,
        # cross-service confused deputy prevention, 2025-08-19).
        cluster_arn = f"arn:{p}:eks:{props.region}:{props.account_id}:cluster/{props.name}"
        role = IamRole(self, "cluster", name_prefix=props.role_name_prefix,
                       assume_role_policy=service_assume_role_policy_from(
                           "eks.amazonaws.com", props.account_id, cluster_arn))
        attachments = [
            IamRolePolicyAttachment(self, "cluster_policy", role=role.name,
                                    policy_arn=f"arn:{p}:iam::aws:policy/AmazonEKSClusterPolicy"),
        ]
        # Created before the cluster so retention and encryption apply from the first log line.
        logs = CloudwatchLogGroup(self, "cluster_logs", name=props.log_group_name,
                                  retention_in_days=props.log_retention_days, kms_key_id=props.logs_kms_key_arn)
        public = bool(props.public_access_cidrs)
        cluster = EksCluster(
            self, "ray",
            name=props.name,
            version=props.kubernetes_version,
            role_arn=role.arn,
            vpc_config=EksClusterVpcConfig(
                subnet_ids=props.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=public,
                public_access_cidrs=props.public_access_cidrs if public else None,
            ),
            access_config=EksClusterAccessConfig(
                authentication_mode="API",
                # The creator's admin is the explicit cluster_creator entry below: visible in state, removable,
                # and no 409 when the creator is also listed.
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            # No unmanaged vpc-cni/kube-proxy/coredns for the managed add-ons (eks_addons.py) to fight over.
            bootstrap_self_managed_addons=False,
            encryption_config=EksClusterEncryptionConfig(
                resources=["secrets"],
                provider=EksClusterEncryptionConfigProvider(key_arn=props.secrets_kms_key_arn),
            ),
            enabled_cluster_log_types=props.log_types,
            depends_on=[*attachments, logs],
        )
        if public:
            # CKV_AWS_38 (no 0.0.0.0/0) still applies and fails an open endpoint; the config warns loudly too.
            skip(cluster, "CKV_AWS_39",
                 "The public endpoint is on only because cluster.public_access_cidrs names the CIDRs allowed to "
                 "reach it (" + ", ".join(props.public_access_cidrs) + "); leave the list empty for private only")
        # EKS user guide, "Cluster API server endpoint": a private endpoint admits what its cluster security group
        # admits, which is the cluster itself; a network that reaches the VPC needs 443 from its CIDR.
        for i, cidr in enumerate(props.private_access_cidrs):
            VpcSecurityGroupIngressRule(
                self, f"cluster_api_from_private_{i}", ip_protocol="tcp", from_port=443, to_port=443,
                security_group_id=cluster.vpc_config.cluster_security_group_id, cidr_ipv4=cidr,
                description=f"HTTPS to the private EKS API from {cidr} (cluster.private_access_cidrs)")
        admin_policy = f"arn:{p}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
        for i, principal in enumerate(props.admin_principal_arns):
            entry = EksAccessEntry(self, f"admin_{i}", cluster_name=cluster.name, principal_arn=principal,
                                   type="STANDARD")
            EksAccessPolicyAssociation(
                self, f"admin_{i}_cluster_admin", cluster_name=cluster.name, principal_arn=entry.principal_arn,
                policy_arn=admin_policy, access_scope=EksAccessPolicyAssociationAccessScope(type="cluster"),
            )
        self.creator_arn: str | None = None
        if props.creator_is_admin:
            # An assumed-role session ARN (arn:aws:sts::...:assumed-role/R/s) is not a principal EKS accepts;
            # issuer_arn is the role's IAM ARN (users pass through unchanged).
            session = DataAwsIamSessionContext(self, "current", arn=props.caller_arn)
            creator = session.issuer_arn
            # 0 when the creator is listed in admin_principal_arns: its admin_<i> entry already exists.
            count = Token.as_number(Fn.conditional(Fn.contains(props.admin_principal_arns, creator), 0, 1))
            entry = EksAccessEntry(self, "cluster_creator", count=count, cluster_name=cluster.name,
                                   principal_arn=creator, type="STANDARD")
            EksAccessPolicyAssociation(
                self, "cluster_creator_admin", count=count, cluster_name=cluster.name, principal_arn=creator,
                policy_arn=admin_policy, access_scope=EksAccessPolicyAssociationAccessScope(type="cluster"),
                depends_on=[entry])
            self.creator_arn = creator

        issuer = cluster.identity.get(0).oidc.get(0).issuer
        # Since 2023 IAM trusts the EKS OIDC issuer through its CA; no thumbprint (and no tls provider) needed.
        oidc = IamOpenidConnectProvider(self, "eks", url=issuer, client_id_list=["sts.amazonaws.com"])

        self.cluster = cluster
        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority_data = cluster.certificate_authority.get(0).data
        self.oidc_issuer_url = issuer
        self.oidc_issuer_host = Fn.replace(issuer, "https://", "")
        self.oidc_provider_arn = oidc.arn
        self.cluster_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.role_arn = role.arn
