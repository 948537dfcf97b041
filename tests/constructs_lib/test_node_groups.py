"""EKS managed node groups, alone from their props (``construct_synth``) and through the infra stack's JSON:
labels, the GPU taint and AMI, sizes, capacity type, disk size and IMDSv2 via the launch template, autoscaler
discovery tags (scale from zero), desired_size ownership."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.eks_node_group import EksNodeGroup
from cdktf_cdktf_provider_aws.launch_template import LaunchTemplate

from constructs_lib.node_groups import NodeGroup, NodeGroupProps, TaintProps
from tests.helpers import attrs, one, outputs, ref, resources, tf_json

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
CLUSTER_NAME = ref("aws_eks_cluster", "ray", "name")


def _group(stack: dict, name: str) -> dict:
    return attrs(one(stack, "aws_eks_node_group", name))


def _taints(group: dict) -> list[dict]:
    t = group.get("taint") or []
    return [t] if isinstance(t, dict) else list(t)


def _template_for(stack: dict, group: dict) -> dict:
    lt = group["launch_template"]
    lt = lt[0] if isinstance(lt, list) else lt
    ref_id = lt["id"]
    assert ref_id.startswith("${aws_launch_template.") and ref_id.endswith(".id}"), ref_id
    name = ref_id.split(".")[1]
    # Pin the version the template is at, so a template change rolls the group.
    assert lt["version"] in (ref("aws_launch_template", name, "latest_version"),
                             ref("aws_launch_template", name, "default_version"))
    return attrs(one(stack, "aws_launch_template", name))


def test_one_node_group_per_configured_group(shape):
    assert sorted(resources(shape.infra, "aws_eks_node_group")) == sorted(g.name for g in shape.cfg.cluster.node_groups)
    for name, g in resources(shape.infra, "aws_eks_node_group").items():
        assert attrs(g)["cluster_name"] == CLUSTER_NAME, name


def test_core_group_labelled_core(shape):
    core = shape.cfg.cluster.core_group
    group = _group(shape.infra, core.name)
    assert group["labels"]["usage"] == "core"
    assert _taints(group) == [], "system pods and the Ray head must schedule on core nodes"


def test_gpu_group_nvidia_ami_taint_and_label(gpu_shape):
    gpu = [g for g in gpu_shape.cfg.cluster.node_groups if g.role == "gpu"]
    assert gpu, f"{gpu_shape.name} config has a gpu group"
    for g in gpu:
        group = _group(gpu_shape.infra, g.name)
        assert group["ami_type"] == "AL2023_x86_64_NVIDIA"
        assert group["labels"]["usage"] == "gpu"
        assert GPU_TAINT in _taints(group)
        assert group["instance_types"] == list(g.instance_types)


def test_dev_runs_its_workers_on_an_untainted_cpu_group(dev_infra):
    """The dev example has no GPU: its Ray workers' group is a plain CPU group (standard AMI, usage=cpu, no taint
    for them to tolerate), and nothing in the stack is GPU-shaped."""
    groups = {n: attrs(g) for n, g in resources(dev_infra, "aws_eks_node_group").items()}
    assert sorted(groups) == ["core", "cpu"]
    cpu = groups["cpu"]
    assert (cpu["ami_type"], cpu["labels"], _taints(cpu)) == (
        "AL2023_x86_64_STANDARD", {"usage": "cpu", "ray-eks/node-group": "cpu"}, [])
    for name, g in groups.items():
        assert "NVIDIA" not in g["ami_type"], name
        assert GPU_TAINT not in _taints(g), name
        assert not any("nvidia" in k for k in g["tags"]), name


def test_sizes_capacity_and_instance_types_follow_config(shape):
    for g in shape.cfg.cluster.node_groups:
        group = _group(shape.infra, g.name)
        scaling = group["scaling_config"]
        scaling = scaling[0] if isinstance(scaling, list) else scaling
        assert (scaling["min_size"], scaling["desired_size"], scaling["max_size"]) == (
            g.min_size, g.desired_size, g.max_size), g.name
        assert group["capacity_type"] == g.capacity_type, g.name
        assert group["instance_types"] == list(g.instance_types), g.name
        assert group["ami_type"] == g.eks_ami_type, g.name
        assert group["labels"] == g.kubernetes_labels, g.name


def test_dev_cpu_group_is_spot(dev_infra):
    assert _group(dev_infra, "cpu")["capacity_type"] == "SPOT"


def test_disk_size_set_through_launch_template(shape):
    for g in shape.cfg.cluster.node_groups:
        group = _group(shape.infra, g.name)
        # EKS rejects disk_size on a group that has a launch template; the size lives in the template.
        assert "disk_size" not in group, g.name
        template = _template_for(shape.infra, group)
        (bdm,) = template["block_device_mappings"]
        ebs = bdm["ebs"][0] if isinstance(bdm["ebs"], list) else bdm["ebs"]
        assert bdm["device_name"] == "/dev/xvda"  # the AL2023 root volume
        assert ebs["volume_size"] == g.disk_size_gib, g.name
        assert str(ebs["encrypted"]).lower() == "true", g.name


def test_launch_templates_require_imdsv2(shape):
    templates = resources(shape.infra, "aws_launch_template")
    assert templates
    for name, t in templates.items():
        md = attrs(t)["metadata_options"]
        md = md[0] if isinstance(md, list) else md
        assert md["http_tokens"] == "required", name
        assert md.get("http_endpoint", "enabled") == "enabled", name
        # Hop limit 1: pods cannot reach IMDS and borrow the node role (they use IRSA).
        assert md.get("http_put_response_hop_limit", 1) == 1, name


def test_every_group_uses_a_launch_template(shape):
    used = {_template_for(shape.infra, attrs(g))["name_prefix"]
            for g in resources(shape.infra, "aws_eks_node_group").values()}
    assert len(used) == len(resources(shape.infra, "aws_eks_node_group")), "each group needs its own template"


def test_cluster_autoscaler_discovery_tags(shape):
    for g in shape.cfg.cluster.node_groups:
        tags = _group(shape.infra, g.name)["tags"]
        assert tags.get("k8s.io/cluster-autoscaler/enabled") == "true", g.name
        assert tags.get(f"k8s.io/cluster-autoscaler/{CLUSTER_NAME}") == "owned", g.name


def test_each_group_is_labelled_with_its_name(shape):
    """Ray worker groups select their node group by this label (two groups of one role stay apart)."""
    for g in shape.cfg.cluster.node_groups:
        assert _group(shape.infra, g.name)["labels"]["ray-eks/node-group"] == g.name


def test_a_gpu_groups_nvidia_ami_is_derived_from_its_role():
    """As pulumi-eks does: a gpu group left without ami_type gets AL2023's NVIDIA AMI for its architecture."""
    from config import parse_config

    cfg = parse_config({"cluster": {"node_groups": [
        {"name": "core", "role": "core", "instance_types": ["m6i.xlarge"]},
        {"name": "gpu", "role": "gpu", "instance_types": ["g5.xlarge"], "min_size": 0, "desired_size": 0},
        {"name": "arm-gpu", "role": "gpu", "instance_types": ["g5g.xlarge"], "min_size": 0, "desired_size": 0},
        {"name": "arm", "role": "cpu", "instance_types": ["m7g.xlarge"], "min_size": 0, "desired_size": 0}]},
        "ray": {"worker_groups": [{"name": "g", "node_group": "gpu", "max_replicas": 3}]}})
    assert {g.name: g.eks_ami_type for g in cfg.cluster.node_groups} == {
        "core": "AL2023_x86_64_STANDARD", "gpu": "AL2023_x86_64_NVIDIA", "arm-gpu": "AL2023_ARM_64_NVIDIA",
        "arm": "AL2023_ARM_64_STANDARD"}


def test_gpu_group_template_tags_let_autoscaler_scale_from_zero(infra):
    tags = _group(infra, "gpu")["tags"]
    assert tags.get("k8s.io/cluster-autoscaler/node-template/label/usage") == "gpu"
    assert tags.get("k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu") == "true:NoSchedule"
    # The labels the device plugin selects and cluster-autoscaler reads as the GPU type (g5: A10G).
    assert tags.get("k8s.io/cluster-autoscaler/node-template/label/nvidia.com/gpu.present") == "true"
    assert tags.get("k8s.io/cluster-autoscaler/node-template/label/k8s.amazonaws.com/accelerator") == "nvidia-a10g"


def test_gpu_groups_carry_the_gpu_labels_and_cpu_groups_do_not(shape):
    for g in shape.cfg.cluster.node_groups:
        labels = _group(shape.infra, g.name)["labels"]
        if g.role == "gpu":
            assert labels["nvidia.com/gpu.present"] == "true", g.name
            assert labels["k8s.amazonaws.com/accelerator"] == "nvidia-a10g", g.name  # g5 in every shape we synth
        else:
            assert not {"nvidia.com/gpu.present", "k8s.amazonaws.com/accelerator"} & set(labels), g.name


def test_groups_follow_the_clusters_kubernetes_version(shape):
    """After the control plane (the reference orders them): EKS keeps a group at the version it was created with,
    so a cluster.kubernetes_version upgrade without this leaves every node on the old one."""
    for g in shape.cfg.cluster.node_groups:
        assert _group(shape.infra, g.name)["version"] == ref("aws_eks_cluster", "ray", "version"), g.name


def test_desired_size_ignored_after_creation(shape):
    assert len(resources(shape.infra, "aws_eks_node_group")) == len(shape.cfg.cluster.node_groups)
    for name, g in resources(shape.infra, "aws_eks_node_group").items():
        lifecycle = attrs(g)["lifecycle"]
        assert "scaling_config[0].desired_size" in lifecycle["ignore_changes"], name


def test_groups_in_private_subnets(created_network_shape):
    n = created_network_shape.cfg.network.zone_count
    assert resources(created_network_shape.infra, "aws_eks_node_group")
    for name, g in resources(created_network_shape.infra, "aws_eks_node_group").items():
        assert attrs(g)["subnet_ids"] == [ref("aws_subnet", f"private_{i}", "id") for i in range(n)], name


@pytest.mark.parametrize("policies", [("AmazonEKSWorkerNodePolicy",),
                                      ("AmazonEC2ContainerRegistryPullOnly", "AmazonEC2ContainerRegistryReadOnly")])
def test_node_roles_have_required_policies(shape, policies):
    attachments = [attrs(a) for a in resources(shape.infra, "aws_iam_role_policy_attachment").values()]
    for g in shape.cfg.cluster.node_groups:
        group = _group(shape.infra, g.name)
        role_name = group["node_role_arn"].split(".")[1]
        trust = tf_json(attrs(one(shape.infra, "aws_iam_role", role_name))["assume_role_policy"])
        assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]
        mine = [a for a in attachments if a["role"] == ref("aws_iam_role", role_name, "name")]
        assert any(a["policy_arn"].split(":iam::aws:policy/")[-1] in policies for a in mine), (g.name, policies)
        # The group must not be created before its role can join nodes.
        assert set(group["depends_on"]) >= {f"aws_iam_role_policy_attachment.{n}"
                                            for n, a in resources(shape.infra, "aws_iam_role_policy_attachment").items()
                                            if attrs(a)["role"] == ref("aws_iam_role", role_name, "name")}


def test_node_group_outputs(shape):
    out = outputs(shape.infra)
    names = [g.name for g in shape.cfg.cluster.node_groups]
    assert sorted(out["node_group_names"]["value"]) == sorted(names)
    assert sorted(out["node_role_arns"]["value"]) == sorted(names)
    for n in names:
        assert out["node_group_names"]["value"][n] == ref("aws_eks_node_group", n, "node_group_name")


def test_instances_volumes_and_interfaces_carry_the_deployment_tags(shape):
    """The provider's default_tags stop at the launch template; its tag_specifications carry them to what EKS
    launches (cost allocation, ownership). Without them an instance has only its Name."""
    (provider,) = shape.infra["provider"]["aws"]
    (default_tags,) = provider["default_tags"]
    expected = default_tags["tags"]
    assert expected["ray-eks/deployment"] == shape.cfg.name and all(expected[k] == v for k, v in shape.cfg.tags.items())
    for g in shape.cfg.cluster.node_groups:
        template = _template_for(shape.infra, _group(shape.infra, g.name))
        specs = {s["resource_type"]: s["tags"] for s in template["tag_specifications"]}
        assert sorted(specs) == ["instance", "network-interface", "volume"], g.name
        for kind, tags in specs.items():
            assert {k: tags.get(k) for k in expected} == expected, (g.name, kind)
            assert tags["Name"] == f"{CLUSTER_NAME}-{g.name}", (g.name, kind)


def test_names_have_generated_suffixes(shape):
    from conventions import naming

    for g in shape.cfg.cluster.node_groups:
        group = _group(shape.infra, g.name)
        role = attrs(one(shape.infra, "aws_iam_role", group["node_role_arn"].split(".")[1]))
        # IAM is global: a fixed name would collide with the same deployment name in another region.
        assert "name" not in role
        assert role["name_prefix"] == naming.iam_role_name_prefix(shape.cfg.name, f"node-{g.name}")
        template = _template_for(shape.infra, group)
        assert template["name_prefix"] == naming.launch_template_name_prefix(shape.cfg.name, g.name)
        assert group["node_group_name_prefix"] == f"{g.name}-"


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
def _props(**kw) -> NodeGroupProps:
    base = dict(cluster_name="unit-cluster", kubernetes_version="1.34", name="gpu", role_name_prefix="unit-node-gpu-",
                launch_template_name_prefix="unit-gpu-", node_group_name_prefix="gpu-",
                subnet_ids=["subnet-a", "subnet-b"],
                instance_types=["g6.2xlarge"], ami_type="AL2023_x86_64_NVIDIA", capacity_type="SPOT", min_size=0,
                desired_size=1, max_size=5, disk_size_gib=300,
                labels={"usage": "gpu", "nvidia.com/gpu.present": "true", "team": "vision"},
                taints=[TaintProps("nvidia.com/gpu", "true", "NO_SCHEDULE"),
                        TaintProps("dedicated", "ray", "NO_EXECUTE")],
                partition="aws-cn", tags={"ray-eks/deployment": "unit", "cost-center": "ml"},
                ebs_kms_key_arn="arn:aws-cn:kms:cn-north-1:111122223333:key/ebs")
    return NodeGroupProps(**{**base, **kw})


@pytest.fixture(scope="module")
def tainted(construct_synth):
    return construct_synth(lambda stack: NodeGroup(stack, "node_group_gpu", _props()), outputs=("role_arn",))


@pytest.fixture(scope="module")
def untainted(construct_synth):
    return construct_synth(lambda stack: NodeGroup(stack, "node_group_cpu", _props(
        name="cpu", ami_type="AL2023_x86_64_STANDARD", instance_types=["m6i.2xlarge"], labels={"usage": "cpu"},
        taints=[], ebs_kms_key_arn=None)))


def test_alone_group_from_the_props(tainted):
    assert tainted.has_resource(EksNodeGroup, {
        "cluster_name": "unit-cluster", "version": "1.34", "node_group_name_prefix": "gpu-",
        "subnet_ids": ["subnet-a", "subnet-b"],
        "instance_types": ["g6.2xlarge"], "ami_type": "AL2023_x86_64_NVIDIA", "capacity_type": "SPOT",
        "scaling_config": {"min_size": 0, "desired_size": 1, "max_size": 5},
        "labels": {"usage": "gpu", "nvidia.com/gpu.present": "true", "team": "vision"},
        "taint": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"},
                  {"key": "dedicated", "value": "ray", "effect": "NO_EXECUTE"}],
        "launch_template": {"id": ref("aws_launch_template", "gpu", "id"),
                            "version": ref("aws_launch_template", "gpu", "latest_version")},
        "lifecycle": {"ignore_changes": ["scaling_config[0].desired_size"], "create_before_destroy": True},
    })
    assert tainted.output("role_arn") == ref("aws_iam_role", "node_gpu", "arn")


def test_alone_labels_and_taints_become_the_autoscalers_node_template(tainted):
    """cluster-autoscaler scales a group up from zero nodes from these tags alone: the labels pods select and
    the taints they must tolerate, in Kubernetes' spelling of the effect."""
    assert tainted.one("aws_eks_node_group", "gpu")["tags"] == {
        "k8s.io/cluster-autoscaler/enabled": "true",
        "k8s.io/cluster-autoscaler/unit-cluster": "owned",
        "k8s.io/cluster-autoscaler/node-template/label/usage": "gpu",
        "k8s.io/cluster-autoscaler/node-template/label/nvidia.com/gpu.present": "true",
        "k8s.io/cluster-autoscaler/node-template/label/team": "vision",
        "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu": "true:NoSchedule",
        "k8s.io/cluster-autoscaler/node-template/taint/dedicated": "ray:NoExecute",
    }


def test_alone_no_taints_means_no_taint_and_no_taint_tags(untainted):
    group = untainted.one("aws_eks_node_group", "cpu")
    assert "taint" not in group
    assert not [k for k in group["tags"] if "/taint/" in k]
    assert group["tags"]["k8s.io/cluster-autoscaler/node-template/label/usage"] == "cpu"


def test_alone_launch_template_imdsv2_disk_key_and_tags(tainted):
    tags = {"ray-eks/deployment": "unit", "cost-center": "ml", "Name": "unit-cluster-gpu"}
    assert tainted.has_resource(LaunchTemplate, {
        "name_prefix": "unit-gpu-", "update_default_version": True,
        "metadata_options": {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1},
        "block_device_mappings": [{"device_name": "/dev/xvda", "ebs": {
            "volume_size": 300, "volume_type": "gp3", "encrypted": "true",
            "kms_key_id": "arn:aws-cn:kms:cn-north-1:111122223333:key/ebs"}}],
        "tag_specifications": [{"resource_type": t, "tags": tags} for t in ("instance", "volume", "network-interface")],
    })


def test_alone_without_a_key_the_volume_takes_the_accounts_default(untainted):
    (mapping,) = untainted.one("aws_launch_template", "cpu")["block_device_mappings"]
    assert mapping["ebs"]["encrypted"] == "true" and "kms_key_id" not in mapping["ebs"]


def test_alone_node_role_trusts_ec2_with_the_node_policies_before_the_group(tainted):
    role = tainted.one("aws_iam_role", "node_gpu")
    assert role["name_prefix"] == "unit-node-gpu-"
    assert json.loads(role["assume_role_policy"])["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {a["policy_arn"] for a in tainted.resources("aws_iam_role_policy_attachment").values()
                if a["role"] == ref("aws_iam_role", "node_gpu", "name")}
    assert attached == {f"arn:aws-cn:iam::aws:policy/{p}" for p in (
        "AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly")}
    assert set(tainted.one("aws_eks_node_group", "gpu")["depends_on"]) == {
        f"aws_iam_role_policy_attachment.{n}" for n in tainted.resources("aws_iam_role_policy_attachment")}


def test_node_roles_carry_neither_the_cni_policy_nor_ssm_by_default(shape):
    """The CNI's ENI rights live on the vpc-cni add-on's IRSA role; Session Manager is cluster.node_ssm_access."""
    attached = [attrs(a)["policy_arn"] for n, a in resources(shape.infra, "aws_iam_role_policy_attachment").items()
                if n.startswith("node_")]
    assert attached
    assert not [a for a in attached if a.endswith(("AmazonEKS_CNI_Policy", "AmazonSSMManagedInstanceCore"))]


def test_ssm_access_is_a_choice(construct_synth):
    ssm = construct_synth(lambda stack: NodeGroup(stack, "node_group_gpu", _props(ssm_access=True)))
    attached = {a["policy_arn"] for a in ssm.resources("aws_iam_role_policy_attachment").values()}
    assert "arn:aws-cn:iam::aws:policy/AmazonSSMManagedInstanceCore" in attached
    assert "node_gpu_ssm" in ssm.resources("aws_iam_role_policy_attachment")
