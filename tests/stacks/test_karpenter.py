"""cluster.autoscaler: karpenter across the three stacks (the example config/examples/karpenter-gpu.yaml and the
defaults' shape): what goes where, the controller's least privilege, the custom resources against Karpenter's
v1.14.1 CRDs, and the order that lets `destroy` leave no instance behind."""

from __future__ import annotations

import json
import re

import pytest

from constructs_lib.karpenter import INTERRUPTION_EVENTS, KarpenterAws, KarpenterAwsProps
from stacks.contract import INFRA_OUTPUTS, KARPENTER_INFRA_OUTPUTS
from tests.helpers import attrs, one, outputs, ref, resources, tf_json
from tests.k8s_schemas import KARPENTER_REFERENCE, validate_crd_object

INFRA = "${data.terraform_remote_state.infra.outputs"
KARPENTER_VALUES = json.loads((KARPENTER_REFERENCE / "karpenter.values.json").read_text())


@pytest.fixture(scope="module")
def karp(app_synth) -> dict:
    return app_synth("karpenter")


def _manifests(synth: dict, kind: str) -> dict[str, dict]:
    return {k: m for k, m in resources(synth["ray-cluster"], "kubernetes_manifest").items()
            if m["manifest"]["kind"] == kind}


# ------------------------------------------------------------------------------------------------ which stack
def test_only_the_core_group_is_a_managed_node_group(karp):
    assert list(resources(karp["infra"], "aws_eks_node_group")) == ["core"]
    assert sorted(m["manifest"]["metadata"]["name"] for m in _manifests(karp, "NodePool").values()) == ["cpu", "gpu"]


def test_karpenter_replaces_cluster_autoscaler_in_the_ray_stack(karp, default_synth):
    releases = resources(karp["ray"], "helm_release")
    assert "cluster_autoscaler" not in releases and not resources(karp["ray"], "aws_iam_role").get("cluster_autoscaler")
    assert {"karpenter", "karpenter_crd"} <= set(releases)
    assert "karpenter" not in resources(default_synth["ray"], "helm_release")
    assert not _manifests(default_synth, "NodePool")


def test_infra_outputs_what_the_ray_stacks_read(karp, default_synth):
    assert set(outputs(karp["infra"])) == {*INFRA_OUTPUTS, *KARPENTER_INFRA_OUTPUTS}
    assert set(outputs(default_synth["infra"])) == set(INFRA_OUTPUTS)
    read = set(re.findall(r"remote_state\.infra\.outputs\.(\w+)", json.dumps([karp["ray"], karp["ray-cluster"]])))
    assert {"karpenter_controller_role_arn", "karpenter_interruption_queue", "karpenter_node_instance_profile"} <= read
    assert read <= set(outputs(karp["infra"]))


# ------------------------------------------------------------------------------------------------ AWS side
def test_nodes_join_with_their_own_role_and_an_ec2_linux_access_entry(karp):
    infra = karp["infra"]
    role = one(infra, "aws_iam_role", "karpenter_node")
    assert json.loads(role["assume_role_policy"])["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {attrs(a)["policy_arn"].rsplit("/", 1)[1] for n, a in resources(infra, "aws_iam_role_policy_attachment")
                .items() if n.startswith("karpenter_node_")}
    # A managed group's node policies (node_groups.py): the CNI's is the vpc-cni add-on's own role's, Session
    # Manager only with cluster.node_ssm_access.
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}
    assert one(infra, "aws_iam_instance_profile", "karpenter_node_profile")["role"] == ref(
        "aws_iam_role", "karpenter_node", "name")
    entry = one(infra, "aws_eks_access_entry", "karpenter_node_access")
    assert entry["type"] == "EC2_LINUX" and entry["principal_arn"] == ref("aws_iam_role", "karpenter_node", "arn")


def test_the_controller_role_trusts_karpenters_service_account_only(karp):
    trust = tf_json(one(karp["infra"], "aws_iam_role", "karpenter_controller")["assume_role_policy"],
                    placeholder="ISSUER")
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {
        "ISSUER:sub": "system:serviceaccount:kube-system:karpenter", "ISSUER:aud": "sts.amazonaws.com"}
    values = json.loads(one(karp["ray"], "helm_release", "karpenter")["values"][0])
    assert values["serviceAccount"]["name"] == "karpenter"  # the chart's service account the trust names


def _controller_policy(karp) -> dict:
    return tf_json(one(karp["infra"], "aws_iam_role_policy", "karpenter_controller")["policy"])


def test_the_controller_writes_only_what_carries_this_clusters_tags(karp):
    """Launch, tag and delete are conditioned on kubernetes.io/cluster/<this cluster>=owned (and a NodePool tag);
    unconditioned statements are reads, the one role it may pass and the one queue it reads."""
    cluster = ref("aws_eks_cluster", "ray", "name")
    for s in _controller_policy(karp)["Statement"]:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        writes = [a for a in actions if a.startswith("ec2:") and a.split(":")[1].startswith(
            ("Run", "Create", "Terminate", "Delete"))]
        if s["Sid"] == "AllowScopedEC2InstanceAccessActions":  # images, subnets, SGs: what an instance uses
            assert all(":instance/" not in r for r in s["Resource"])
            continue
        if writes:
            keys = json.dumps(s.get("Condition", {}))
            assert f"kubernetes.io/cluster/{cluster}" in keys, s["Sid"]
            assert "karpenter.sh/nodepool" in keys, s["Sid"]
    passrole = next(s for s in _controller_policy(karp)["Statement"] if s["Action"] == ["iam:PassRole"])
    assert passrole["Resource"] == ref("aws_iam_role", "karpenter_node", "arn")
    queue = next(s for s in _controller_policy(karp)["Statement"] if s["Sid"] == "AllowInterruptionQueueActions")
    assert queue["Resource"] == ref("aws_sqs_queue", "karpenter_interruption", "arn")


def test_the_controller_cannot_make_or_change_instance_profiles(karp):
    """The infra stack creates the instance profile and the EC2NodeClasses name it: no IAM writes at all."""
    actions = {a for s in _controller_policy(karp)["Statement"]
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    iam = sorted(a for a in actions if a.startswith("iam:"))
    assert iam == ["iam:GetInstanceProfile", "iam:ListInstanceProfiles", "iam:PassRole"]


def test_interruption_events_reach_an_encrypted_queue_only_from_our_rules(karp):
    infra = karp["infra"]
    queue = one(infra, "aws_sqs_queue", "karpenter_interruption")
    assert queue["sqs_managed_sse_enabled"] is True and queue["message_retention_seconds"] == 300
    rules = resources(infra, "aws_cloudwatch_event_rule")
    assert {json.loads(r["event_pattern"])["detail-type"][0] for r in rules.values()} == {
        detail for _, detail in INTERRUPTION_EVENTS.values()}
    targets = resources(infra, "aws_cloudwatch_event_target")
    assert len(targets) == len(rules) == 5
    assert {t["arn"] for t in targets.values()} == {ref("aws_sqs_queue", "karpenter_interruption", "arn")}
    policy = json.loads(one(infra, "aws_sqs_queue_policy", "karpenter_interruption_policy")["policy"])
    send = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert send["Principal"] == {"Service": "events.amazonaws.com"} and send["Action"] == ["sqs:SendMessage"]
    assert sorted(send["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(
        ref("aws_cloudwatch_event_rule", n, "arn") for n in rules)


def test_subnets_and_the_cluster_security_group_carry_the_discovery_tag(karp, default_synth):
    infra = karp["infra"]
    private = {n: s for n, s in resources(infra, "aws_subnet").items() if n.startswith("private_")}
    assert private and all(s["tags"]["karpenter.sh/discovery"] == "ray-karpenter" for s in private.values())
    assert not any("karpenter.sh/discovery" in s["tags"] for n, s in resources(infra, "aws_subnet").items()
                   if n.startswith("public_"))
    tag = one(infra, "aws_ec2_tag", "karpenter_discovery_cluster_security_group")
    assert tag["key"] == "karpenter.sh/discovery" and tag["value"] == ref("aws_eks_cluster", "ray", "name")
    assert tag["resource_id"] == ref("aws_eks_cluster", "ray", "vpc_config[0].cluster_security_group_id")
    # cluster-autoscaler deployments are left as they were
    assert not any("karpenter.sh/discovery" in s["tags"] for s in resources(default_synth["infra"], "aws_subnet")
                   .values())


def _unit_props(**overrides) -> KarpenterAwsProps:
    """KarpenterAws alone, in a made-up account and cluster ``unit``."""
    return KarpenterAwsProps(
        cluster_name="unit", region="eu-west-1", account_id="111122223333", partition="aws",
        oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/x", oidc_issuer_host="x",
        controller_role_name_prefix="unit-karpenter-", node_role_name_prefix="unit-karpenter-node-",
        instance_profile_name_prefix="unit-karpenter-node-", queue_name="unit-karpenter",
        rule_names={e: f"unit-{e}" for e in INTERRUPTION_EVENTS}, cluster_security_group_id="sg-0c",
        **overrides)


def test_an_existing_vpcs_subnets_get_the_discovery_tag_from_us(construct_synth):
    subnets = ["subnet-0a", "subnet-0b"]
    synth = construct_synth(lambda stack: KarpenterAws(stack, "karpenter", _unit_props(tag_subnet_ids=subnets)))
    tags = {attrs(t)["resource_id"]: attrs(t) for t in synth.resources("aws_ec2_tag").values()}
    assert set(tags) == {"sg-0c", *subnets}
    assert all((t["key"], t["value"]) == ("karpenter.sh/discovery", "unit") for t in tags.values())


@pytest.mark.parametrize("ssm_access", [False, True])
def test_session_manager_on_karpenters_nodes_follows_node_ssm_access(construct_synth, ssm_access):
    """As on the managed groups' roles (cluster.node_ssm_access): whoever may start a session is root on the node."""
    synth = construct_synth(lambda stack: KarpenterAws(stack, "karpenter", _unit_props(ssm_access=ssm_access)))
    attached = {attrs(a)["policy_arn"].rsplit("/", 1)[1] for a in
                synth.resources("aws_iam_role_policy_attachment").values()}
    assert ("AmazonSSMManagedInstanceCore" in attached) is ssm_access
    assert "AmazonEKS_CNI_Policy" not in attached  # the vpc-cni add-on's own IRSA role holds it


# ------------------------------------------------------------------------------------------------ ray stack
def test_the_controller_runs_on_core_with_this_clusters_queue(karp):
    ray = karp["ray"]
    crds, release = one(ray, "helm_release", "karpenter_crd"), one(ray, "helm_release", "karpenter")
    for r in (crds, release):
        assert (r["repository"], r["version"], r["namespace"]) == ("oci://public.ecr.aws/karpenter", "1.14.1",
                                                                   "kube-system")
    assert crds["chart"] == "karpenter-crd" and release["chart"] == "karpenter"
    assert release["skip_crds"] is True and release["depends_on"] == ["helm_release.karpenter_crd"]
    values = json.loads(release["values"][0])
    assert values["settings"] == {"clusterName": f"{INFRA}.cluster_name}}",
                                  "interruptionQueue": f"{INFRA}.karpenter_interruption_queue}}"}
    assert values["serviceAccount"]["annotations"] == {
        "eks.amazonaws.com/role-arn": f"{INFRA}.karpenter_controller_role_arn}}"}
    assert values["nodeSelector"] == {"usage": "core"} and values["replicas"] == 2
    for key in values:  # every key is one the chart has
        assert key in KARPENTER_VALUES, key
    assert set(values["settings"]) <= set(KARPENTER_VALUES["settings"])


def test_one_core_node_gets_one_replica():
    """The chart runs two replicas on separate nodes; a core group of one node would leave the second Pending (no
    cluster-autoscaler adds a core node), so the stack asks for one per core node, up to two, and the required
    anti-affinity becomes a preference."""
    from config import parse_config
    from stacks.ray import karpenter_replicas

    def cfg(core_min: int):
        return parse_config({"cluster": {"autoscaler": "karpenter", "node_groups": [
            {"name": "core", "role": "core", "instance_types": ["m6i.2xlarge"], "min_size": core_min,
             "desired_size": max(core_min, 1)},
            {"name": "gpu", "role": "gpu", "instance_types": ["g5.xlarge"], "max_size": 4}]}})

    assert [karpenter_replicas(cfg(n)) for n in (0, 1, 2, 3)] == [1, 1, 2, 2]
    from constructs_lib.karpenter import KarpenterControllerProps, controller_values

    values = controller_values(KarpenterControllerProps(cluster_name="c", version="1.14.1", controller_role_arn="r",
                                                        interruption_queue="q", replicas=1, node_selector={}))
    assert values["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] is None
    assert values["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "ScheduleAnyway"


# ------------------------------------------------------------------------------------------------ ray-cluster
@pytest.mark.parametrize("name", ["karpenter", "karpenter-default", "karpenter-multi"])
def test_node_classes_and_pools_are_valid_karpenter_objects(app_synth, name):
    synth = app_synth(name)
    for kind in ("EC2NodeClass", "NodePool"):
        found = _manifests(synth, kind)
        assert len(found) == len(synth["_cfg"].cluster.karpenter_pools)
        for m in found.values():
            validate_crd_object(m["manifest"])


def test_each_pool_is_its_node_group(karp):
    cfg = karp["_cfg"]
    pools = {m["manifest"]["metadata"]["name"]: m["manifest"]["spec"] for m in _manifests(karp, "NodePool").values()}
    for g in cfg.cluster.karpenter_pools:
        spec = pools[g.name]
        assert spec["template"]["metadata"]["labels"] == g.kubernetes_labels
        req = {r["key"]: r["values"] for r in spec["template"]["spec"]["requirements"]}
        assert req["node.kubernetes.io/instance-type"] == list(g.instance_types)
        assert req["karpenter.sh/capacity-type"] == ["spot", "on-demand"]  # SPOT_OR_ON_DEMAND
        assert spec["template"]["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                            "name": g.name}
        # Drift never replaces a node with running Ray pods (0 for Drifted); nodes never expire by age.
        assert spec["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m", "budgets": [
            {"nodes": "10%"}, {"nodes": "0", "reasons": ["Drifted"]}]}
        assert spec["template"]["spec"]["expireAfter"] == "Never"
        # the workers' grace period (ray.worker_drain_seconds 60 + 30): a forced deletion drains them at once
        assert spec["template"]["spec"]["terminationGracePeriod"] == "90s"
    gpu = pools["gpu"]
    assert gpu["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    # max_size 4 nodes of the largest type (g5.8xlarge: 32 vCPU, 128 GiB, 1 GPU)
    assert gpu["limits"] == {"cpu": "128", "memory": "512Gi", "nvidia.com/gpu": "4"}
    assert "taints" not in pools["cpu"]["template"]["spec"] and "nvidia.com/gpu" not in pools["cpu"]["limits"]


def test_node_classes_launch_like_a_managed_groups_launch_template(karp):
    cfg = karp["_cfg"]
    for m in _manifests(karp, "EC2NodeClass").values():
        spec, name = m["manifest"]["spec"], m["manifest"]["metadata"]["name"]
        group = next(g for g in cfg.cluster.node_groups if g.name == name)
        assert spec["amiSelectorTerms"] == [{"alias": "al2023@v20260714"}]
        assert spec["instanceProfile"] == f"{INFRA}.karpenter_node_instance_profile}}" and "role" not in spec
        assert spec["subnetSelectorTerms"] == spec["securityGroupSelectorTerms"] == [
            {"tags": {"karpenter.sh/discovery": f"{INFRA}.cluster_name}}"}}]
        assert spec["metadataOptions"]["httpTokens"] == "required"
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
        (bdm,) = spec["blockDeviceMappings"]
        assert bdm["ebs"] == {"volumeSize": f"{group.disk_size_gib}Gi", "volumeType": "gp3", "encrypted": True,
                              "deleteOnTermination": True}
        assert {k: v for k, v in spec["tags"].items() if k != "Name"} == cfg.deployment_tags


def test_destroy_order_leaves_no_instance_behind(karp):
    """Destroy runs ray-cluster, ray, infra. In ray-cluster: the RayCluster first (its pods would hold a drain),
    then each NodePool, then its EC2NodeClass, whose deletion waits (30m) for Karpenter's finalizer, released once
    every instance of the class is terminated -- while the controller (ray stack) and its IAM (infra) still exist."""
    rc = karp["ray-cluster"]
    manifests = resources(rc, "kubernetes_manifest")
    pools = sorted(n for n, m in manifests.items() if m["manifest"]["kind"] == "NodePool")
    assert sorted(manifests["ray_cluster"]["depends_on"]) == sorted(f"kubernetes_manifest.{p}" for p in pools)
    for p in pools:
        cls = p.replace("karpenter_node_pool_", "karpenter_node_class_")
        assert manifests[p]["depends_on"] == [f"kubernetes_manifest.{cls}"]
        assert manifests[cls]["timeouts"]["delete"] == "30m"
    from stacks.contract import STACK_ORDER

    assert STACK_ORDER == ("infra", "ray", "ray-cluster")
    assert "aws_iam_role" not in rc.get("resource", {})  # nothing the pools' instances need goes with them


# ------------------------------------------------------------------------------------------------ addresses
KARPENTER_ADDRESSES = {
    "infra": {"aws_cloudwatch_event_rule.karpenter_" + e.replace("-", "_") for e in INTERRUPTION_EVENTS}
    | {"aws_cloudwatch_event_target.karpenter_" + e.replace("-", "_") + "_target" for e in INTERRUPTION_EVENTS}
    | {"aws_ec2_tag.karpenter_discovery_cluster_security_group", "aws_eks_access_entry.karpenter_node_access",
       "aws_iam_instance_profile.karpenter_node_profile", "aws_iam_role.karpenter_controller",
       "aws_iam_role.karpenter_node", "aws_iam_role_policy.karpenter_controller",
       "aws_sqs_queue.karpenter_interruption", "aws_sqs_queue_policy.karpenter_interruption_policy"}
    | {f"aws_iam_role_policy_attachment.karpenter_node_{k}" for k in ("worker", "ecr_pull")},
    "ray": {"helm_release.karpenter", "helm_release.karpenter_crd"},
    "ray-cluster": {"kubernetes_manifest.karpenter_node_class_gpu", "kubernetes_manifest.karpenter_node_pool_gpu"},
}
# What the defaults' GPU node group and cluster-autoscaler are, and Karpenter replaces.
REPLACED = {
    "infra": {"aws_eks_node_group.gpu", "aws_iam_role.node_gpu", "aws_launch_template.gpu"}
    | {f"aws_iam_role_policy_attachment.node_gpu_{k}" for k in ("worker", "ecr_pull")},
    "ray": {"helm_release.cluster_autoscaler", "aws_iam_role.cluster_autoscaler",
            "aws_iam_role_policy.cluster_autoscaler"},
    "ray-cluster": set(),
}


@pytest.mark.parametrize("stack", sorted(KARPENTER_ADDRESSES))
def test_karpenter_addresses_are_pinned(app_synth, default_synth, stack):
    """The defaults with cluster.autoscaler: karpenter, against the defaults' pinned addresses
    (tests/stacks/test_addresses.py): the GPU group and cluster-autoscaler go, Karpenter's parts come."""
    from tests.helpers import addresses

    ours = set(addresses(app_synth("karpenter-default")[stack]))
    theirs = set(addresses(default_synth[stack]))
    assert REPLACED[stack] <= theirs
    assert ours == (theirs - REPLACED[stack]) | KARPENTER_ADDRESSES[stack]


@pytest.mark.parametrize("name", ["karpenter", "karpenter-multi"])
def test_karpenters_aws_names_fit_and_global_ones_are_prefixes(app_synth, name):
    from conventions.naming import LIMITS
    from tests.stacks.test_names import GLOBAL_TYPES, aws_names

    names = aws_names(app_synth(name))
    karpenter = [n for n in names if "karpenter" in n[1]]
    assert {addr.split(".")[0] for _, addr, _, _ in karpenter} >= {
        "aws_sqs_queue", "aws_cloudwatch_event_rule", "aws_iam_role", "aws_iam_instance_profile"}
    for _, addr, attr, value in karpenter:
        key = f"{addr.split('.')[0]}.{attr}"
        assert len(value) <= LIMITS[key], (addr, value)
        assert addr.split(".")[0] not in GLOBAL_TYPES or attr.endswith("_prefix"), addr
