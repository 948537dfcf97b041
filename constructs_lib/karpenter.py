"""Karpenter (cluster.autoscaler: karpenter), in the three stacks' order:

- ``KarpenterAws`` (infra stack, AWS only): the role its nodes run as (with an instance profile and the EKS access
  entry that lets them join), the controller's IRSA role, the SQS queue of interruption events and the EventBridge
  rules that fill it, and the discovery tag on the cluster security group (and on existing subnets);
- ``KarpenterController`` (ray stack): the CRDs' chart, then the controller's chart, on the core nodes;
- ``KarpenterNodePools`` (ray-cluster stack: custom kinds need their CRDs at plan time): one EC2NodeClass and one
  NodePool per gpu/cpu node group.

Destroy runs the other way (ray-cluster, ray, infra): the NodePools go while the controller still runs, and each
EC2NodeClass's deletion waits for its finalizer, which Karpenter releases only once no NodeClaim of the class is
left, i.e. every instance it launched is terminated (pkg/controllers/nodeclass/controller.go finalize); then the
controller goes, then its IAM and queue. No instance is left behind.

The controller's IAM policy is the getting-started CloudFormation's at v1.14.1 (website/content/en/preview/
getting-started/getting-started-with-karpenter/cloudformation.yaml, as the tag holds v1.14's docs; main's copy under
website/content/en/v1.14/ is the same file: NodeLifecyclePolicy, IAMIntegrationPolicy,
EKSIntegrationPolicy, InterruptionPolicy, ResourceDiscoveryPolicy), scoped to this cluster's tags, less what the
platform makes unnecessary: no instance-profile writes (the infra stack creates the profile and the EC2NodeClass names
it) and no zonal-shift reads (settings.enableZonalShift stays off).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktf_cdktf_provider_aws.ec2_tag import Ec2Tag
from cdktf_cdktf_provider_aws.eks_access_entry import EksAccessEntry
from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from cdktf_cdktf_provider_aws.sqs_queue_policy import SqsQueuePolicy
from cdktf_cdktf_provider_helm.release import Release
from cdktf_cdktf_provider_kubernetes.manifest import Manifest, ManifestTimeouts
from constructs import Construct

from conventions import karpenter as k

from .iam import policy_document, service_assume_role_policy, statement
from .irsa_role import IrsaRole, IrsaRoleProps
from .manifests.karpenter import NodePoolProps, ec2_node_class, node_pool
from .node_groups import NODE_POLICIES, SSM_POLICY

# EventBridge rules feeding the interruption queue: id -> (source, detail-type) (cloudformation.yaml above).
INTERRUPTION_EVENTS = {
    "scheduled-change": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}
# The queue keeps a message this long: an interruption older than that is moot (cloudformation.yaml: 300).
QUEUE_RETENTION_SECONDS = 300


def controller_policy(*, cluster_name: str, region: str, account_id: str, partition: str, node_role_arn: str,
                      queue_arn: str) -> str:
    """The controller's permissions: launch and tag instances, fleets and launch templates only with this cluster's
    tags, delete only what carries them, pass only the node role, read the interruption queue."""
    arn = f"arn:{partition}:ec2:{region}"
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}
    any_pool = {"aws:ResourceTag/karpenter.sh/nodepool": "*"}
    tagged_request = {f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}": "owned",
                      "aws:RequestTag/eks:eks-cluster-name": cluster_name}
    request_pool = {"aws:RequestTag/karpenter.sh/nodepool": "*"}
    launched = [f"{arn}:*:{t}/*" for t in ("fleet", "instance", "volume", "network-interface", "launch-template",
                                          "spot-instances-request")]
    return policy_document([
        statement(["ec2:RunInstances", "ec2:CreateFleet"],
                  [f"arn:{partition}:ec2:{region}::image/*", f"arn:{partition}:ec2:{region}::snapshot/*",
                   *(f"{arn}:*:{t}/*" for t in ("security-group", "subnet", "capacity-reservation",
                                                "placement-group"))],
                  sid="AllowScopedEC2InstanceAccessActions"),
        statement(["ec2:RunInstances", "ec2:CreateFleet"], [f"{arn}:*:launch-template/*"],
                  sid="AllowScopedEC2LaunchTemplateAccessActions",
                  condition={"StringEquals": owned, "StringLike": any_pool}),
        statement(["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"], launched,
                  sid="AllowScopedEC2InstanceActionsWithTags",
                  condition={"StringEquals": tagged_request, "StringLike": request_pool}),
        statement(["ec2:CreateTags"], launched, sid="AllowScopedResourceCreationTagging",
                  condition={"StringEquals": {**tagged_request, "ec2:CreateAction": [
                      "RunInstances", "CreateFleet", "CreateLaunchTemplate"]}, "StringLike": request_pool}),
        statement(["ec2:CreateTags"], [f"{arn}:*:instance/*"], sid="AllowScopedResourceTagging",
                  condition={"StringEquals": owned, "StringLike": any_pool,
                             "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster_name},
                             "ForAllValues:StringEquals": {"aws:TagKeys": [
                                 "eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]}}),
        statement(["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                  [f"{arn}:*:instance/*", f"{arn}:*:launch-template/*"], sid="AllowScopedDeletion",
                  condition={"StringEquals": owned, "StringLike": any_pool}),
        statement(["iam:PassRole"], [node_role_arn], sid="AllowPassingInstanceRole",
                  condition={"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}}),
        statement(["eks:DescribeCluster"], [f"arn:{partition}:eks:{region}:{account_id}:cluster/{cluster_name}"],
                  sid="AllowAPIServerEndpointDiscovery"),
        statement(["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"], [queue_arn],
                  sid="AllowInterruptionQueueActions"),
        # Reads: Describe* and pricing have no resource-level permissions (account-wide by API design).
        statement(["ec2:DescribeCapacityReservations", "ec2:DescribeImages", "ec2:DescribeInstances",
                   "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                   "ec2:DescribeLaunchTemplates", "ec2:DescribePlacementGroups", "ec2:DescribeSecurityGroups",
                   "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets"], ["*"], sid="AllowRegionalReadActions",
                  condition={"StringEquals": {"aws:RequestedRegion": region}}),
        statement(["ssm:GetParameter"], [f"arn:{partition}:ssm:{region}::parameter/aws/service/*"],
                  sid="AllowSSMReadActions"),
        statement(["pricing:GetProducts"], ["*"], sid="AllowPricingReadActions"),
        statement(["iam:ListInstanceProfiles"], ["*"], sid="AllowUnscopedInstanceProfileListAction"),
        statement(["iam:GetInstanceProfile"], [f"arn:{partition}:iam::{account_id}:instance-profile/*"],
                  sid="AllowInstanceProfileReadActions"),
    ])


def event_pattern(source: str, detail_type: str) -> str:
    return json.dumps({"source": [source], "detail-type": [detail_type]})


@dataclass(frozen=True)
class KarpenterAwsProps:
    cluster_name: str
    region: str
    account_id: str
    partition: str
    oidc_provider_arn: str
    oidc_issuer_host: str
    controller_role_name_prefix: str
    node_role_name_prefix: str
    instance_profile_name_prefix: str
    queue_name: str
    rule_names: dict[str, str]  # INTERRUPTION_EVENTS id -> the rule's name
    cluster_security_group_id: str  # EKS's cluster security group: every node's (the discovery tag goes on it)
    # Subnets this deployment does not create (an existing VPC) get the discovery tag here; created ones carry it
    # in their own tags (constructs_lib/network.py), where a second owner of the tag would fight the first.
    tag_subnet_ids: Sequence[str] = ()
    depends_on: Sequence[ITerraformDependable] = ()  # the cluster, before the access entry
    ssm_access: bool = False  # AmazonSSMManagedInstanceCore on the node role, as on the managed groups'


class KarpenterAws(Construct):
    controller_role_arn: str
    node_role_arn: str
    instance_profile_name: str
    queue_name: str

    def __init__(self, scope: Construct, id: str, props: KarpenterAwsProps) -> None:
        super().__init__(scope, id)

        # The nodes' role: what a managed node group's nodes get (node_groups.py), nothing more.
        node_role = IamRole(self, "karpenter_node", name_prefix=props.node_role_name_prefix,
                            assume_role_policy=service_assume_role_policy("ec2.amazonaws.com"))
        for key, policy in [*NODE_POLICIES.items(), *([SSM_POLICY] if props.ssm_access else [])]:
            IamRolePolicyAttachment(self, f"karpenter_node_{key}", role=node_role.name,
                                    policy_arn=f"arn:{props.partition}:iam::aws:policy/{policy}")
        profile = IamInstanceProfile(self, "karpenter_node_profile", name_prefix=props.instance_profile_name_prefix,
                                     role=node_role.name)
        # EC2_LINUX: EKS maps the role to system:nodes, so Karpenter's instances can register.
        EksAccessEntry(self, "karpenter_node_access", cluster_name=props.cluster_name,
                       principal_arn=node_role.arn, type="EC2_LINUX", depends_on=list(props.depends_on))

        queue = SqsQueue(self, "karpenter_interruption", name=props.queue_name,
                         message_retention_seconds=QUEUE_RETENTION_SECONDS, sqs_managed_sse_enabled=True)
        rules = {}
        for event, (source, detail_type) in INTERRUPTION_EVENTS.items():
            key = event.replace("-", "_")
            rules[event] = CloudwatchEventRule(
                self, f"karpenter_{key}", name=props.rule_names[event],
                description=f"{detail_type} to Karpenter's interruption queue",
                event_pattern=event_pattern(source, detail_type))
            CloudwatchEventTarget(self, f"karpenter_{key}_target", rule=rules[event].name,
                                  target_id="KarpenterInterruptionQueueTarget", arn=queue.arn)
        SqsQueuePolicy(self, "karpenter_interruption_policy", queue_url=queue.url, policy=policy_document([
            # Only this deployment's rules may send (the guide lets any EventBridge rule and SQS itself).
            statement(["sqs:SendMessage"], [queue.arn], sid="EventBridgeRules",
                      principal={"Service": "events.amazonaws.com"},
                      condition={"ArnEquals": {"aws:SourceArn": [r.arn for r in rules.values()]}}),
            statement(["sqs:*"], [queue.arn], sid="DenyHTTP", effect="Deny", principal={"AWS": "*"},
                      condition={"Bool": {"aws:SecureTransport": "false"}}),
        ]))

        controller = IrsaRole(self, "karpenter_controller", IrsaRoleProps(
            role_name_prefix=props.controller_role_name_prefix, oidc_provider_arn=props.oidc_provider_arn,
            oidc_issuer_host=props.oidc_issuer_host, namespace=k.NAMESPACE, service_account=k.SERVICE_ACCOUNT,
            policy_name="karpenter-controller",
            policy_json=controller_policy(cluster_name=props.cluster_name, region=props.region,
                                          account_id=props.account_id, partition=props.partition,
                                          node_role_arn=node_role.arn, queue_arn=queue.arn)))

        Ec2Tag(self, "karpenter_discovery_cluster_security_group", resource_id=props.cluster_security_group_id,
               key=k.DISCOVERY_TAG, value=props.cluster_name)
        for i, subnet in enumerate(props.tag_subnet_ids):
            Ec2Tag(self, f"karpenter_discovery_subnet_{i}", resource_id=subnet, key=k.DISCOVERY_TAG,
                   value=props.cluster_name)

        self.controller_role_arn = controller.role_arn
        self.node_role_arn = node_role.arn
        self.instance_profile_name = profile.name
        self.queue_name = queue.name


# ---------------------------------------------------------------------------------------------------- ray stack
@dataclass(frozen=True)
class KarpenterControllerProps:
    cluster_name: str
    version: str  # both charts' (config/versions.py KARPENTER_VERSION)
    controller_role_arn: str
    interruption_queue: str
    replicas: int  # one per core node, up to two (the chart's default)
    node_selector: dict[str, str]  # the core group's


def controller_values(p: KarpenterControllerProps) -> dict:
    """The karpenter chart's values: this cluster and queue, the IRSA role, on the core nodes only.

    The chart requires its replicas on separate nodes and zones (required pod anti-affinity on hostname, a
    DoNotSchedule zone spread); a core group of one node would leave the second replica Pending with no
    cluster-autoscaler to add a node, so both become preferences (``null`` deletes the chart's required term: Helm
    merges maps). Its default affinity (no node with karpenter.sh/nodepool) stays: never on its own nodes. Requests
    as the getting-started guide sets them (1 CPU, 1Gi)."""
    return {
        "settings": {"clusterName": p.cluster_name, "interruptionQueue": p.interruption_queue},
        "serviceAccount": {"name": k.SERVICE_ACCOUNT,
                           "annotations": {"eks.amazonaws.com/role-arn": p.controller_role_arn}},
        "replicas": p.replicas,
        "nodeSelector": dict(p.node_selector),
        "affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": None,
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                       "whenUnsatisfiable": "ScheduleAnyway"}],
        "controller": {"resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                     "limits": {"cpu": "1", "memory": "1Gi"}}},
    }


class KarpenterController(Construct):
    """``helm_release.karpenter_crd`` (the CRDs, upgraded with the chart: Helm never upgrades a chart's crds/), then
    ``helm_release.karpenter`` (skip_crds)."""

    def __init__(self, scope: Construct, id: str, props: KarpenterControllerProps) -> None:
        super().__init__(scope, id)

        crds = Release(self, "karpenter_crd", name=k.CRD_CHART, namespace=k.NAMESPACE,
                       repository=k.CHART_REPOSITORY, chart=k.CRD_CHART, version=props.version)
        self.release = Release(self, "karpenter", name=k.RELEASE, namespace=k.NAMESPACE,
                               repository=k.CHART_REPOSITORY, chart=k.CHART, version=props.version, skip_crds=True,
                               values=[json.dumps(controller_values(props))], depends_on=[crds])


# ---------------------------------------------------------------------------------------------- ray-cluster stack
class KarpenterNodePools(Construct):
    """Per node group: ``kubernetes_manifest.karpenter_node_class_<group>`` and ``.karpenter_node_pool_<group>``
    (the pool after its class; on destroy the pool first, then the class, whose deletion waits until Karpenter has
    terminated the class's instances)."""

    pools: list
    objects: list[dict]

    def __init__(self, scope: Construct, id: str, pools: Sequence[NodePoolProps]) -> None:
        super().__init__(scope, id)

        self.pools, self.objects = [], []
        for p in pools:
            key = p.name.replace("-", "_")
            node_class, pool = ec2_node_class(p), node_pool(p)
            nc = Manifest(self, f"karpenter_node_class_{key}", manifest=node_class,
                          timeouts=ManifestTimeouts(create="5m", update="5m", delete="30m"))
            self.pools.append(Manifest(self, f"karpenter_node_pool_{key}", manifest=pool,
                                       timeouts=ManifestTimeouts(create="5m", update="5m", delete="30m"),
                                       depends_on=[nc]))
            self.objects += [node_class, pool]
