"""The AWS side of cluster.autoscaler: karpenter, for real: the synthesized infra stack, real terraform and the real
AWS provider against moto's emulator (tests/deploy/emulator.py lists what it patches). Apply, check what the
controller and its nodes will rely on, re-plan empty, destroy, nothing left.

What the ray and ray-cluster stacks add (the controller's chart, the NodePools) needs a Kubernetes API: the tests
of those stacks check their objects (tests/stacks/test_karpenter.py, tests/cluster_model/test_karpenter.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from constructs_lib.karpenter import INTERRUPTION_EVENTS
from conventions import naming
from tests.helpers import Emulator, run_app, terraform, terraform_env

NAME = "ray-karp-e2e"
REGION = "us-east-1"


def _config(emulator: Emulator) -> dict:
    """The defaults' shape with Karpenter, small: a managed core group, a Spot-or-On-Demand GPU pool."""
    return {
        "name": NAME, "region": REGION,
        "endpoints": {"url": emulator.url},
        "network": {"vpc_cidr": "10.40.0.0/16", "availability_zones": [f"{REGION}a", f"{REGION}b"],
                    "single_nat_gateway": True, "flow_log_retention_days": 7},
        "cluster": {"kubernetes_version": "1.34", "log_retention_days": 7, "autoscaler": "karpenter",
                    "node_groups": [
                        {"name": "core", "role": "core", "instance_types": ["m6i.xlarge"], "min_size": 1,
                         "desired_size": 1, "max_size": 2, "disk_size_gib": 50},
                        {"name": "gpu", "role": "gpu", "instance_types": ["g5.xlarge", "g5.2xlarge"],
                         "capacity_type": "SPOT_OR_ON_DEMAND", "max_size": 2}]},
        "fsx": {"deployment_type": "SCRATCH_2", "storage_capacity_gib": 1200},
        "protection": {"prevent_destroy": False},
        "ray": {"image": {"source": "stock"},  # no image build: this test is about Karpenter's side
                "worker_groups": [{"name": "gpu-group", "node_group": "gpu", "max_replicas": 2}]},
    }


def test_karpenter_aws_side_applies_replans_empty_and_destroys(emulator: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "karpenter.yaml"
    config.write_text(yaml.safe_dump(_config(emulator)))
    out = tmp_path / "cdktf.out"
    r = run_app(config=config, outdir=out)
    assert r.returncode == 0, r.stderr[-3000:]
    stack_dir = out / "stacks" / "infra"
    env = terraform_env(tmp_path, tmp_path / "tf-data", REGION)
    terraform(["init", "-input=false"], stack_dir, env)
    started = time.monotonic()
    terraform(["apply", "-auto-approve", "-input=false"], stack_dir, env)
    print(f"apply: {time.monotonic() - started:.0f}s")
    state = json.loads(terraform(["show", "-json"], stack_dir, env).stdout)
    values = state["values"]["outputs"]

    # The queue Karpenter reads, fed by the five rules, readable only as the controller's policy says.
    sqs, events = emulator.client("sqs", REGION), emulator.client("events", REGION)
    queue_name = naming.karpenter_interruption_queue(NAME)
    assert values["karpenter_interruption_queue"]["value"] == queue_name
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["MessageRetentionPeriod"] == "300" and attrs["SqsManagedSseEnabled"] == "true"
    policy = json.loads(attrs["Policy"])
    rules = {e: events.describe_rule(Name=naming.karpenter_event_rule(NAME, e)) for e in INTERRUPTION_EVENTS}
    allow = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert sorted(allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(r["Arn"] for r in rules.values())
    for event, (source, detail) in INTERRUPTION_EVENTS.items():
        assert json.loads(rules[event]["EventPattern"]) == {"source": [source], "detail-type": [detail]}
        (target,) = events.list_targets_by_rule(Rule=rules[event]["Name"])["Targets"]
        assert target["Arn"] == attrs["QueueArn"]

    # The nodes' role, its instance profile (what the EC2NodeClasses name) and its access entry.
    iam, eks, ec2 = emulator.client("iam"), emulator.client("eks", REGION), emulator.client("ec2", REGION)
    profile = iam.get_instance_profile(InstanceProfileName=values["karpenter_node_instance_profile"]["value"])
    (role,) = profile["InstanceProfile"]["Roles"]
    assert role["Arn"] == values["karpenter_node_role_arn"]["value"]
    entry = eks.describe_access_entry(clusterName=NAME, principalArn=role["Arn"])["accessEntry"]
    assert entry["type"] == "EC2_LINUX"
    controller = values["karpenter_controller_role_arn"]["value"].rsplit("/", 1)[1]
    (policy_name,) = iam.list_role_policies(RoleName=controller)["PolicyNames"]
    document = iam.get_role_policy(RoleName=controller, PolicyName=policy_name)["PolicyDocument"]
    passrole = next(s for s in document["Statement"] if s["Action"] == ["iam:PassRole"])
    assert passrole["Resource"] == role["Arn"]

    # Discovery: the private subnets and the cluster security group carry karpenter.sh/discovery=<cluster>.
    found = ec2.describe_subnets(Filters=[{"Name": "tag:karpenter.sh/discovery", "Values": [NAME]}])["Subnets"]
    assert sorted(s["SubnetId"] for s in found) == sorted(values["private_subnet_ids"]["value"])
    groups = ec2.describe_security_groups(Filters=[{"Name": "tag:karpenter.sh/discovery", "Values": [NAME]}])
    assert [g["GroupId"] for g in groups["SecurityGroups"]] == [values["cluster_security_group_id"]["value"]]
    assert [n["nodegroupName"].split("-")[0] for n in [eks.describe_nodegroup(
        clusterName=NAME, nodegroupName=g)["nodegroup"] for g in eks.list_nodegroups(clusterName=NAME)["nodegroups"]]
        ] == ["core"]

    plan = terraform(["plan", "-detailed-exitcode", "-input=false"], stack_dir, env, ok=(0, 2))
    assert plan.returncode == 0, f"plan after apply is not empty:\n{plan.stdout[-6000:]}"

    terraform(["destroy", "-auto-approve", "-input=false"], stack_dir, env)
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert not [r for r in events.list_rules()["Rules"] if r["Name"].startswith(NAME)]
    assert not [p for p in iam.list_instance_profiles()["InstanceProfiles"]
                if p["InstanceProfileName"].startswith(NAME)]
    assert eks.list_clusters()["clusters"] == []
    # Every answer was the emulator's own, none a crash the provider's retries went past (werkzeug's and
    # socketserver's crash formats, as tests/deploy/test_deploy_cycle.py reads them).
    log = emulator.log.read_text(errors="replace")
    assert "Error on request" not in log and "Exception occurred during processing" not in log, log[-3000:]
