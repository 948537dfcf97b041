"""Bad input, through the real entry point: `python main.py` with RAY_EKS_CONFIG, as users run it.

Every case must exit non-zero with exactly one human-readable line on stderr that names the field
(no traceback), before cdktf is imported (main.py validates first), and leave a previous cdktf.out
byte for byte as it was. How fast that is belongs to benchmarks, not to these tests.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, app_env, run_app

CORE = {"name": "core", "role": "core", "instance_types": ["m6i.xlarge"]}
GPU = {"name": "gpu", "role": "gpu", "instance_types": ["g5.2xlarge"], "ami_type": "AL2023_x86_64_NVIDIA",
       "min_size": 0, "desired_size": 0}


@dataclass(frozen=True)
class Bad:
    id: str
    config: object = None  # dumped to YAML; ignored when text is set
    text: str | None = None  # the file's exact content
    expect: str = ""  # the field path (or file problem) the message must name
    missing_file: bool = False  # RAY_EKS_CONFIG names a file that does not exist


CASES = [
    # types
    Bad("type-int", {"network": {"az_count": "three"}}, expect="network.az_count: must be a valid integer"),
    Bad("type-fraction", {"network": {"az_count": 2.5}}, expect="network.az_count:"),
    Bad("type-bool", {"protection": {"prevent_destroy": "maybe"}},
        expect="protection.prevent_destroy: must be a valid boolean"),
    Bad("type-tag-value", {"tags": {"team": 5}}, expect="tags.team: must be a valid string"),
    Bad("type-section-null", {"cluster": None}, expect="cluster: must be a mapping of keys, got None"),
    Bad("type-list-for-map", {"tags": ["a", "b"]}, expect="tags: must be a mapping of keys"),
    Bad("type-top-level-list", [1, 2], expect="the top level must be a mapping"),
    # ranges
    Bad("range-az-count", {"network": {"az_count": 9}}, expect="network.az_count: must be less than or equal to 6"),
    Bad("range-disk", {"cluster": {"node_groups": [{**CORE, "disk_size_gib": 5}]}},
        expect="cluster.node_groups[0].disk_size_gib: must be greater than or equal to 20"),
    Bad("range-head-memory", {"ray": {"head": {"memory": "2Gi"}}}, expect="ray.head.memory: must be at least 4Gi"),
    Bad("head-memory-for-workers", {"ray": {"head": {"memory": "8Gi"}, "worker_groups": [
        {"name": "gpu-group", "node_group": "gpu", "max_replicas": 100}]}, "cluster": {"node_groups": [
            {**CORE, "instance_types": ["m6i.4xlarge"]}, {**GPU, "max_size": 100}]}},
        expect="ray.head.memory: 8Gi is too small a Ray head for up to 100 workers"),
    # enums
    Bad("enum-fsx-type", {"fsx": {"deployment_type": "SCRATCH_1"}}, expect="fsx.deployment_type: must be 'SCRATCH_2'"),
    Bad("enum-k8s-version", {"cluster": {"kubernetes_version": "1.20"}},
        expect="cluster.kubernetes_version: must be '1.33', '1.34' or '1.35'"),
    Bad("enum-capacity-type", {"cluster": {"node_groups": [{**CORE, "capacity_type": "RESERVED"}]}},
        expect="cluster.node_groups[0].capacity_type: must be 'ON_DEMAND', 'SPOT' or 'SPOT_OR_ON_DEMAND'"),
    # CIDRs
    Bad("cidr-host-bits", {"network": {"vpc_cidr": "10.0.0.1/16"}}, expect="network.vpc_cidr: must be an IPv4 CIDR"),
    Bad("cidr-prefix", {"cluster": {"public_access_cidrs": ["10.0.0.0/33"]}},
        expect="cluster.public_access_cidrs[0]: must be an IPv4 CIDR"),
    Bad("cidr-ipv6-vpc", {"network": {"vpc_cidr": "2001:db8::/56"}}, expect="network.vpc_cidr: must be an IPv4 CIDR"),
    Bad("cidr-ipv6-subnet", {"network": {"az_count": 2, "private_subnet_cidrs": ["2001:db8::/64", "10.0.32.0/19"]}},
        expect="network.private_subnet_cidrs[0]: must be an IPv4 CIDR"),
    Bad("cidr-vpc-too-big", {"network": {"vpc_cidr": "10.0.0.0/8"}},
        expect="network.vpc_cidr: must be a /16 to /24 network"),
    Bad("cidr-overlap", {"network": {"az_count": 2, "private_subnet_cidrs": ["10.0.0.0/19", "10.0.32.0/19"],
                                     "public_subnet_cidrs": ["10.0.0.0/24", "10.0.255.0/24"]}},
        expect="network.public_subnet_cidrs: 10.0.0.0/24 overlaps 10.0.0.0/19"),
    Bad("cidr-outside-vpc", {"network": {"az_count": 2, "private_subnet_cidrs": ["10.1.0.0/19", "10.0.32.0/19"]}},
        expect="network.private_subnet_cidrs: 10.1.0.0/19 is not inside vpc_cidr"),
    # names
    Bad("name-app", {"name": "Ray_EKS"}, expect="name: must be 3-32 lowercase letters"),
    Bad("name-ecr", {"ecr": {"repository_name": "Ray Custom"}},
        expect="ecr.repository_name: must be a lowercase ECR repository name"),
    Bad("name-region", {"region": "us-west"}, expect="region: must be an AWS region"),
    Bad("name-tag", {"tags": {"aws:owner": "me"}}, expect="tags: aws:owner='me' is not a valid AWS tag"),
    Bad("name-instance-type", {"cluster": {"node_groups": [{**CORE, "instance_types": ["large"]}]}},
        expect="cluster.node_groups[0].instance_types: must be EC2 instance types"),
    Bad("name-admin-arn", {"cluster": {"admin_principal_arns": ["arn:aws:iam::123:role/x"]}},
        expect="cluster.admin_principal_arns: must be IAM role or user ARNs"),
    # unknown keys
    Bad("unknown-top", {"clustr": {}}, expect="clustr: unknown key"),
    Bad("unknown-nested", {"cluster": {"node_group": []}}, expect="cluster.node_group: unknown key"),
    # cross-field rules
    Bad("gpu-group-on-cpu-instances", {"cluster": {"node_groups": [
        CORE, {"name": "gpu", "role": "gpu", "instance_types": ["m6i.xlarge"], "ami_type": "AL2023_x86_64_NVIDIA",
               "min_size": 0, "desired_size": 0}]}},
        expect="cluster.node_groups[1].instance_types: a gpu group needs NVIDIA GPU instance families"),
    Bad("min-greater-than-max", {"cluster": {"node_groups": [{**CORE, "min_size": 5, "max_size": 3}]}},
        expect="cluster.node_groups[0].min_size: 5 is greater than max_size 3"),
    Bad("fsx-capacity-for-type", {"fsx": {"deployment_type": "PERSISTENT_2", "storage_capacity_gib": 1000}},
        expect="fsx.storage_capacity_gib: PERSISTENT_2 allows 1200 or a multiple of 2400"),
    Bad("fsx-throughput-for-type", {"fsx": {"deployment_type": "PERSISTENT_1", "per_unit_storage_throughput": 125}},
        expect="fsx.per_unit_storage_throughput: PERSISTENT_1 allows 50, 100, 200"),
    Bad("fewer-than-2-azs", {"network": {"availability_zones": ["us-west-2a"]}},
        expect="network.availability_zones: at least 2 AZs are required"),
    Bad("az-count-1", {"network": {"az_count": 1}}, expect="network.az_count: must be greater than or equal to 2"),
    Bad("azs-of-another-region", {"network": {"availability_zones": ["us-east-1a", "us-east-1b"]}},
        expect="network.availability_zones: us-east-1a is not an AZ of region us-west-2"),
    Bad("duplicate-node-groups", {"cluster": {"node_groups": [CORE, {**CORE, "role": "cpu"}]}},
        expect="cluster.node_groups: names must be unique, core repeats"),
    Bad("no-core-group", {"cluster": {"node_groups": [{**CORE, "role": "cpu"}]}},
        expect="cluster.node_groups: exactly one group must have role core"),
    Bad("worker-on-unknown-group", {"ray": {"worker_groups": [{"name": "w", "node_group": "nope"}]}},
        expect="ray.worker_groups[0].node_group: no node group named 'nope'"),
    Bad("gpus-on-cpu-group", {"cluster": {"node_groups": [CORE]}, "ray": {"worker_groups": [
        {"name": "w", "node_group": "core", "gpus": 1}]}},
        expect="ray.worker_groups[0].gpus: node group 'core' has no GPUs"),
    Bad("default-workers-need-the-gpu-group", {"cluster": {"node_groups": [CORE]}},
        expect="ray.worker_groups[0].node_group: no node group named 'gpu'"),
    Bad("s3-backend-without-bucket", {"backend": {"type": "s3"}}, expect="backend.bucket: required when type is s3"),
    # issue 12: one access entry per principal; names S3 reserves; FSx backups only where FSx takes them
    Bad("admin-listed-twice", {"cluster": {"admin_principal_arns": [
        "arn:aws:iam::123456789012:role/Admin", "arn:aws:iam::123456789012:role/Ops",
        "arn:aws:iam::123456789012:role/Admin"]}},
        expect="cluster.admin_principal_arns: lists arn:aws:iam::123456789012:role/Admin more than once"),
    Bad("name-s3-reserved", {"name": "xn--ray"}, expect="name: must not start with xn--"),
    Bad("fsx-backups-on-linked", {"fsx": {"backup_retention_days": 7}},
        expect="fsx.backup_retention_days: FSx backs up only PERSISTENT file systems not linked to S3"),
    Bad("fsx-final-backup-on-scratch", {"fsx": {"deployment_type": "SCRATCH_2", "data_repository": False,
                                                "final_backup": True}},
        expect="fsx.final_backup: FSx backs up only PERSISTENT file systems not linked to S3: SCRATCH_2 is not"),
    Bad("fsx-retention-range", {"fsx": {"data_repository": False, "backup_retention_days": 91}},
        expect="fsx.backup_retention_days: must be less than or equal to 90"),
    Bad("addon-version-unknown-addon", {"cluster": {"addon_versions": {"vpc_cni": "v1.20.4-eksbuild.2"}}},
        expect="cluster.addon_versions: vpc_cni is not an add-on of the cluster"),
    Bad("addon-version-format", {"cluster": {"addon_versions": {"vpc-cni": "latest"}}},
        expect="cluster.addon_versions.vpc-cni: must be an EKS add-on version"),
    # instance types and what fits on them
    Bad("instance-type-not-catalogued", {"cluster": {"node_groups": [{**CORE, "instance_types": ["m6i.3xlarge"]}]}},
        expect="cluster.node_groups[0].instance_types: must be instance types of the catalogue "
               "(config/instance_types.yaml; m6i comes in large, xlarge"),
    Bad("instance-family-unknown", {"cluster": {"node_groups": [{**CORE, "instance_types": ["x9.large"]}]}},
        expect="cluster.node_groups[0].instance_types: must be instance types of the catalogue "
               "(config/instance_types.yaml; families: m5, m5a"),
    Bad("instance-sizes-mixed",
        {"cluster": {"node_groups": [CORE, {**GPU, "instance_types": ["g5.2xlarge", "g5.4xlarge"]}]}},
        expect="cluster.node_groups[1].instance_types: g5.4xlarge (16 vCPU, 64 GiB, 1 NVIDIA A10G) differs from "
               "g5.2xlarge (8 vCPU, 32 GiB, 1 NVIDIA A10G)"),
    Bad("gpu-models-mixed",
        {"cluster": {"node_groups": [CORE, {**GPU, "instance_types": ["g5.2xlarge", "g6.2xlarge"]}]}},
        expect="cluster.node_groups[1].instance_types: a gpu group's types have one GPU model (its nodes are "
               "labelled with it), got A10G, L4"),
    Bad("arm-type-on-x86-ami", {"cluster": {"node_groups": [
        {**CORE, "instance_types": ["m7g.xlarge"], "ami_type": "AL2023_x86_64_STANDARD"}]}},
        expect="cluster.node_groups[0].instance_types: m7g.xlarge is not x86_64, the architecture of ami_type "
               "AL2023_x86_64_STANDARD"),
    Bad("platform-label", {"cluster": {"node_groups": [{**CORE, "labels": {"k8s.amazonaws.com/accelerator": "x"}}]}},
        expect="cluster.node_groups[0].labels: k8s.amazonaws.com/accelerator is set by the platform"),
    Bad("tainted-core", {"cluster": {"node_groups": [{**CORE, "taints": [{"key": "dedicated", "value": "x"}]}]}},
        expect="cluster.node_groups[0].taints: the core group runs system pods and the Ray head"),
    Bad("cpu-workers-on-gpu-nodes", {"cluster": {"node_groups": [CORE, GPU]}, "ray": {"worker_groups": [
        {"name": "w", "node_group": "gpu", "gpus": 0}]}},
        expect="ray.worker_groups[0].node_group: node group 'gpu' is tainted nvidia.com/gpu=true:NoSchedule"),
    Bad("worker-memory-too-big", {"cluster": {"node_groups": [CORE, GPU]}, "ray": {"worker_groups": [
        {"name": "w", "node_group": "gpu", "memory": "30Gi"}]}},
        expect="ray.worker_groups[0].memory: 30Gi does not fit one g5.2xlarge node of node group 'gpu'"),
    Bad("worker-cpu-too-big", {"cluster": {"node_groups": [CORE, GPU]}, "ray": {"worker_groups": [
        {"name": "w", "node_group": "gpu", "cpu": "8"}]}},
        expect="ray.worker_groups[0].cpu: 8 does not fit one g5.2xlarge node of node group 'gpu'"),
    Bad("worker-gpus-too-many", {"cluster": {"node_groups": [CORE, GPU]}, "ray": {"worker_groups": [
        {"name": "w", "node_group": "gpu", "gpus": 4}]}},
        expect="ray.worker_groups[0].gpus: 4 GPUs do not fit one g5.2xlarge node of node group 'gpu' "
               "(8 vCPU, 32 GiB, 1 NVIDIA A10G); at most 1"),
    Bad("head-too-big-for-core", {"ray": {"head": {"memory": "30Gi"}}},
        expect="ray.head.memory: 30Gi does not fit one m6i.2xlarge node of node group 'core'"),
    Bad("ray-without-token-auth", {"ray": {"ray_version": "2.51.0"}},
        expect="ray.ray_version: the RayCluster's job API requires a token (KubeRay authOptions), which needs Ray "
               "2.52.0 or later, got 2.51.0"),
    # the image switch (ray.image.source)
    Bad("image-source-unknown", {"ray": {"image": {"source": "docker"}}},
        expect="ray.image.source: must be 'build', 'stock' or 'custom'"),
    Bad("image-custom-without-uri", {"ray": {"image": {"source": "custom"}}},
        expect="ray.image.uri: required when source is custom"),
    Bad("image-uri-without-custom", {"ray": {"image": {"uri": "x/y:1"}}},
        expect="ray.image.uri: only used when source is custom"),
    Bad("image-old-string-form", {"ray": {"image": "x/y:1"}},
        expect="ray.image: is a section now: write image: {source: custom, uri: x/y:1}"),
    Bad("image-old-use-ecr-image", {"ray": {"use_ecr_image": True}},
        expect="ray.use_ecr_image: replaced by ray.image.source: build"),
    Bad("image-docker-hub-secret-name", {"ray": {"image": {
        "docker_hub_secret_arn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:dockerhub"}}},
        expect="ray.image.docker_hub_secret_arn: must be the ARN of a Secrets Manager secret named "
               "ecr-pullthroughcache/"),
    Bad("image-docker-hub-secret-region", {"ray": {"image": {
        "docker_hub_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecr-pullthroughcache/hub"}}},
        expect="ray.image.docker_hub_secret_arn: the secret must be in the deployment's region us-west-2"),
    Bad("image-docker-hub-secret-with-stock", {"ray": {"image": {"source": "stock", "docker_hub_secret_arn":
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:ecr-pullthroughcache/hub"}}},
        expect="ray.image.docker_hub_secret_arn: only used when source is build"),
    Bad("image-build-timeout", {"ray": {"image": {"build_timeout_minutes": 3}}},
        expect="ray.image.build_timeout_minutes: must be greater than or equal to 5"),
    Bad("fsx-prefix-over-image-build", {"fsx": {"import_prefix": "image-build/"}},
        expect="fsx.import_prefix: must not overlap image-build/"),
    # what AWS, Kubernetes and KubeRay refuse at apply time (found by fuzzing)
    Bad("trailing-newline", {"region": "us-west-2\n"}, expect="region: must be an AWS region"),
    Bad("non-ascii-digit", {"ray": {"ray_version": "2.\u0665\u0668.0"}}, expect="ray.ray_version: must be a Ray 2.x"),
    Bad("quantity-newline", {"ray": {"head": {"memory": "8Gi\n"}}}, expect="ray.head.memory: must be a Kubernetes"),
    Bad("unquoted-k8s-version", text="cluster: {kubernetes_version: 1.30}\n",
        expect="cluster.kubernetes_version: must be '1.33', '1.34' or '1.35' (got the number 1.3: quote the value)"),
    Bad("subnet-below-28", {"network": {"vpc_cidr": "10.0.0.0/24"}},
        expect="network.vpc_cidr: the public subnets derived from a /24 would be /32"),
    Bad("explicit-subnet-below-28", {"network": {"availability_zones": ["us-west-2a", "us-west-2b"],
                                                 "private_subnet_cidrs": ["10.0.0.0/29", "10.0.0.8/29"]}},
        expect="network.private_subnet_cidrs: 10.0.0.0/29 is smaller than AWS's smallest subnet"),
    Bad("derived-subnet-overlaps-given", {"network": {
        "vpc_cidr": "192.168.0.0/24", "availability_zones": ["us-west-2a", "us-west-2b"],
        "public_subnet_cidrs": ["192.168.0.0/28", "192.168.0.16/28"]}},
        expect="network.public_subnet_cidrs: 192.168.0.0/28 overlaps 192.168.0.0/27 (private_subnet_cidrs, derived)"),
    Bad("existing-subnet-twice", {"network": {"existing": {"vpc_id": "vpc-0123456789abcdef0", "private_subnet_ids": [
        "subnet-0123456789abcdef0", "subnet-0123456789abcdef0"]}}}, expect="network.existing.private_subnet_ids"),
    Bad("label-kubelet-namespace", {"cluster": {"node_groups": [
        {**CORE, "labels": {"node-role.kubernetes.io/worker": "true"}}]}},
        expect="cluster.node_groups[0].labels: node-role.kubernetes.io/worker: kubelet sets or refuses"),
    Bad("label-empty-value", {"cluster": {"node_groups": [{**CORE, "labels": {"team": ""}}]}},
        expect="cluster.node_groups[0].labels: team='': EKS takes label keys and values of 1-63"),
    Bad("label-key-over-63", {"cluster": {"node_groups": [{**CORE, "labels": {"a" * 50 + ".example.com/team": "x"}}]}},
        expect="cluster.node_groups[0].labels:"),
    Bad("label-prefix-empty-part", {"cluster": {"node_groups": [{**CORE, "labels": {"a..b/team": "x"}}]}},
        expect="cluster.node_groups[0].labels: a..b/team='x' is not a valid Kubernetes label"),
    Bad("taint-value", {"cluster": {"node_groups": [CORE, {**GPU, "name": "cpu", "role": "cpu", "instance_types": [
        "m6i.xlarge"], "ami_type": "AL2023_x86_64_STANDARD", "taints": [{"key": "a", "value": "has space"}]}]}},
        expect="cluster.node_groups[1].taints[0].value: must be empty or up to 63"),
    Bad("taint-twice", {"cluster": {"node_groups": [CORE, {**GPU, "taints": [
        {"key": "a", "effect": "PREFER_NO_SCHEDULE"}, {"key": "a", "effect": "PREFER_NO_SCHEDULE"}]}]}},
        expect="cluster.node_groups[1].taints: a with effect PREFER_NO_SCHEDULE appears twice"),
    Bad("gpu-taint-no-execute", {"cluster": {"node_groups": [CORE, {**GPU, "taints": [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_EXECUTE"}]}]}},
        expect="cluster.node_groups[1].taints: nvidia.com/gpu=true:NoExecute: a gpu group's nvidia.com/gpu taint"),
    Bad("ray-cluster-name-digit", {"ray": {"cluster_name": "1ray"}},
        expect="ray.cluster_name: must start with a letter"),
    Bad("namespace-kube-system", {"ray": {"namespace": "kube-system"}}, expect="ray.namespace: must not be one of"),
    Bad("namespace-shared-with-monitoring", {"ray": {"namespace": "monitoring"},
                                             "observability": {"kube_prometheus_stack": True}},
        expect="observability.monitoring_namespace: 'monitoring' is also ray.namespace"),
    Bad("operator-namespace-is-rays", {"ray": {"operator_namespace": "ray"}},
        expect="ray.operator_namespace: 'ray' is also ray.namespace; the operator runs apart"),
    Bad("operator-namespace-kube-system", {"ray": {"operator_namespace": "kube-system"}},
        expect="ray.operator_namespace: must not be one of"),
    Bad("operator-namespace-shared-with-monitoring", {"ray": {"operator_namespace": "monitoring"},
                                                      "observability": {"kube_prometheus_stack": True}},
        expect="observability.monitoring_namespace: 'monitoring' is also ray.operator_namespace"),
    Bad("node-ssm-access-not-bool", {"cluster": {"node_ssm_access": "sometimes"}},
        expect="cluster.node_ssm_access:"),
    Bad("dcgm-exporter-without-gpus", {"cluster": {"node_groups": [CORE]}, "ray": {"worker_groups": [
        {"name": "cpu", "node_group": "core", "gpus": 0, "cpu": "1", "memory": "4Gi"}]},
        "observability": {"dcgm_exporter": True}},
        expect="observability.dcgm_exporter: the cluster has no gpu node group"),
    Bad("kube-prometheus-stack-with-annotations", {"observability": {"kube_prometheus_stack": True,
                                                                     "metrics_scrape": "annotations"}},
        expect="observability.metrics_scrape: kube_prometheus_stack's Prometheus reads PodMonitors"),
    Bad("alert-threshold-range", {"observability": {"alerts": {"gpu_idle_percent": 0}}},
        expect="observability.alerts.gpu_idle_percent: must be greater than or equal to 1"),
    Bad("node-group-over-50-tags", {"tags": {f"t{i}": "x" for i in range(40)}, "cluster": {"node_groups": [
        {**CORE, "labels": {f"l{i}": "x" for i in range(9)}}]}},
        expect="cluster.node_groups[0].labels: node group 'core' would carry 54 tags (41 of the deployment, 13 for"),
    # issue 18: capacity that can exist, a repeated worker group, Karpenter pools
    Bad("max-replicas-beyond-node-group", {"ray": {"worker_groups": [
        {"name": "gpu-group", "node_group": "gpu", "max_replicas": 9}]}},
        expect="ray.worker_groups[0].max_replicas: 9 workers never fit node group 'gpu' at its max_size 4: one "
               "g5.xlarge node holds 1, so 4 run and the rest stay Pending; lower max_replicas to 4 or raise "
               "cluster.node_groups[1].max_size to 9"),
    Bad("max-replicas-beyond-karpenter-limits", {
        "cluster": {"autoscaler": "karpenter", "node_groups": [CORE, {
            "name": "cpu", "role": "cpu", "instance_types": ["m6i.xlarge", "m6i.2xlarge"], "max_size": 2}]},
        "ray": {"worker_groups": [{"name": "w", "node_group": "cpu", "gpus": 0, "max_replicas": 5}]}},
        expect="ray.worker_groups[0].max_replicas: 5 workers never fit node group 'cpu' at its max_size 2: one "
               "m6i.2xlarge node holds 2, so 4 run"),
    # The DCGM exporter's requests on a Karpenter GPU pool's nodes: 4 fit a g5.12xlarge without it, 3 with it.
    Bad("max-replicas-beyond-karpenter-pool-with-dcgm", {
        "cluster": {"autoscaler": "karpenter", "node_groups": [CORE, {
            "name": "gpu", "role": "gpu", "instance_types": ["g5.12xlarge"], "max_size": 1}]},
        "ray": {"worker_groups": [{"name": "w", "node_group": "gpu", "max_replicas": 4, "cpu": "11900m",
                                   "memory": "40Gi", "gpus": 1}]},
        "observability": {"dcgm_exporter": True}},
        expect="ray.worker_groups[0].max_replicas: 4 workers never fit node group 'gpu' at its max_size 1: one "
               "g5.12xlarge node holds 3, so 3 run"),
    Bad("az-count-beyond-region", {"network": {"az_count": 5}},
        expect="network.az_count: 5 AZs, and us-west-2 has 4 (us-west-2a, us-west-2b, us-west-2c, us-west-2d): "
               "at most 4"),
    Bad("az-not-in-region", {"region": "us-west-1", "network": {"availability_zones": ["us-west-1a", "us-west-1c"]}},
        expect="network.availability_zones: us-west-1c is not an Availability Zone of us-west-1 (it has us-west-1a, "
               "us-west-1b)"),
    Bad("worker-group-name-twice", {"ray": {"worker_groups": [
        {"name": "gpu-group", "node_group": "gpu", "max_replicas": 2},
        {"name": "gpu-group", "node_group": "gpu", "max_replicas": 2}]}},
        expect="ray.worker_groups[1].name: 'gpu-group' is also worker_groups[0]'s name"),
    Bad("spot-fallback-without-karpenter", {"cluster": {"node_groups": [
        CORE, {**GPU, "capacity_type": "SPOT_OR_ON_DEMAND"}]}},
        expect="cluster.node_groups[1].capacity_type: SPOT_OR_ON_DEMAND (Spot, falling back to On-Demand) is for "
               "Karpenter pools (with cluster.autoscaler: karpenter)"),
    Bad("karpenter-pool-min-size", {"cluster": {"autoscaler": "karpenter", "node_groups": [
        CORE, {**GPU, "min_size": 1, "desired_size": 1}]}},
        expect="cluster.node_groups[1].min_size: a Karpenter pool (cluster.autoscaler: karpenter) has no min_size"),
    Bad("karpenter-pool-bottlerocket", {"cluster": {"autoscaler": "karpenter", "node_groups": [
        CORE, {**GPU, "ami_type": "BOTTLEROCKET_x86_64_NVIDIA"}]}},
        expect="cluster.node_groups[1].ami_type: Karpenter pools run AL2023"),
    Bad("karpenter-restricted-label", {"cluster": {"autoscaler": "karpenter", "node_groups": [
        CORE, {**GPU, "labels": {"karpenter.sh/team": "a"}}]}},
        expect="cluster.node_groups[1].labels: karpenter.sh/team: Karpenter keeps the karpenter.sh and "
               "karpenter.k8s.aws label domains"),
    Bad("architectures-mixed", {"cluster": {"node_groups": [{**CORE, "instance_types": ["m6i.xlarge", "m7g.xlarge"]}]}},
        expect="cluster.node_groups[0].instance_types: mixes architectures (arm64, x86_64)"),
    Bad("gpu-group-explicit-cpu-ami", {"cluster": {"node_groups": [
        CORE, {**GPU, "ami_type": "AL2023_x86_64_STANDARD"}]}},
        expect="cluster.node_groups[1].ami_type: a gpu group needs an NVIDIA AMI"),
    Bad("ecr-name-one-char", {"ecr": {"repository_name": "a"}}, expect="ecr.repository_name: must be a lowercase ECR"),
    # issue 17: how the deployer reaches the API
    Bad("access-unknown-mode", {"cluster": {"endpoint_access": "vpn"}},
        expect="cluster.endpoint_access: must be 'tunnel', 'public' or 'private'"),
    Bad("access-public-without-cidrs", {"cluster": {"endpoint_access": "public"}},
        expect="cluster.public_access_cidrs: endpoint_access public needs the internet CIDRs"),
    Bad("access-public-rfc1918", {"cluster": {"endpoint_access": "public", "public_access_cidrs": ["10.1.0.0/16"]}},
        expect="cluster.public_access_cidrs: 10.1.0.0/16 is a private (RFC 1918) range"),
    Bad("access-public-documentation", {"cluster": {"endpoint_access": "public",
                                                    "public_access_cidrs": ["1.2.3.4/32", "198.51.100.0/24"]}},
        expect="cluster.public_access_cidrs: 198.51.100.0/24 is a documentation (RFC 5737) range"),
    Bad("access-public-cidrs-with-tunnel", {"cluster": {"public_access_cidrs": ["1.2.3.4/32"]}},
        expect="cluster.public_access_cidrs: only used with endpoint_access: public (endpoint_access is tunnel)"),
    Bad("access-private-without-cidrs", {"cluster": {"endpoint_access": "private"}},
        expect="cluster.private_access_cidrs: endpoint_access private needs the networks"),
    Bad("access-private-open", {"cluster": {"endpoint_access": "private", "private_access_cidrs": ["0.0.0.0/0"]}},
        expect="cluster.private_access_cidrs: 0.0.0.0/0 is not a private network"),
    Bad("access-private-cidrs-with-public", {"cluster": {"endpoint_access": "public",
                                                         "public_access_cidrs": ["1.2.3.4/32"],
                                                         "private_access_cidrs": ["10.100.0.0/16"]}},
        expect="cluster.private_access_cidrs: only used with endpoint_access: private (endpoint_access is public)"),
    Bad("access-tunnel-port-privileged", {"cluster": {"tunnel_local_port": 443}},
        expect="cluster.tunnel_local_port: must be greater than or equal to 1024"),
    # the file itself
    Bad("list-as-key", text="? [a, b]\n: x\n", expect="not valid YAML at line 1, column 3: a key must be a plain"),
    Bad("nested-too-deeply", text="tags: " + "[" * 5000 + "]" * 5000 + "\n", expect="nested too deeply"),
    # A few lines of aliases make 10^8 items: the message shows a bounded sketch of it, at once.
    Bad("alias-expansion", text="".join(f"{a}: &{a} [{', '.join([f'*{p}' if p else 'x'] * 10)}]\n"
                                        for p, a in zip(["", *"abcdefg"], "abcdefgh", strict=True)) + "cluster: *h\n",
        expect="cluster: must be a mapping of keys, got [[[["),
    Bad("empty-file", text="", expect="the file is empty; remove RAY_EKS_CONFIG to use the defaults"),
    Bad("malformed-yaml", text="name: [unclosed\nregion: us-west-2\n", expect="not valid YAML at line 2, column 7"),
    Bad("tab-indent", text="name:\tx\n", expect="not valid YAML at line 1"),
    Bad("duplicate-key", text="name: ray-a\nname: ray-b\n",
        expect="not valid YAML at line 2, column 1: duplicate key 'name'"),
    Bad("not-utf8", text="\udcff\udcfename: x\n", expect="cannot read"),
    Bad("missing-file", missing_file=True, expect="RAY_EKS_CONFIG: no such file"),
]


def _digest(tree: Path) -> dict[str, str]:
    return {str(p.relative_to(tree)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(tree.rglob("*")) if p.is_file()}


@pytest.fixture
def previous_out(tmp_path) -> Path:
    """An outdir holding a previous synth's files and a marker: a bad run must not touch any of it."""
    out = tmp_path / "cdktf.out"
    (out / "stacks" / "infra").mkdir(parents=True)
    (out / "stacks" / "infra" / "cdk.tf.json").write_text('{"resource": {"aws_vpc": {"ray": {}}}}\n')
    (out / "manifest.json").write_text('{"version": "0.21.0", "stacks": {}}\n')
    (out / "MARKER").write_text("synthesized by an earlier, good run\n")
    return out


def test_the_table_is_wide():
    assert len(CASES) >= 15 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_clear_line_and_changes_nothing(case: Bad, tmp_path, previous_out):
    config = tmp_path / f"{case.id}.yaml"
    if case.missing_file:
        config = tmp_path / "does-not-exist.yaml"
    elif case.text is not None:
        config.write_bytes(case.text.encode("utf-8", "surrogateescape"))
    else:
        config.write_text(yaml.safe_dump(case.config, sort_keys=False))
    before = _digest(previous_out)

    r = run_app(config=config, outdir=previous_out, timeout=60)

    lines = r.stderr.splitlines()
    assert r.returncode != 0, f"accepted: {r.stderr}"
    assert len(lines) == 1, f"want exactly one line on stderr, got:\n{r.stderr}"
    line = lines[0]
    assert "Traceback" not in r.stderr and "ValidationError" not in line and "pydantic" not in line.lower()
    assert line.startswith("error: ")
    assert case.expect in line, f"the message should name {case.expect!r}: {line}"
    assert _digest(previous_out) == before, "a rejected config changed the previous cdktf.out"


def test_merge_keys_build_a_node_group_from_another(tmp_path):
    """YAML merge keys (<<: *anchor) are plain YAML: the explicit keys win, and a key given twice is still an error."""
    from config import load_config

    text = ("cluster:\n  node_groups:\n    - &core {name: core, role: core, instance_types: [m6i.2xlarge]}\n"
            "    - <<: *core\n      name: cpu\n      role: cpu\n"
            "ray:\n  worker_groups: [{name: w, node_group: cpu, gpus: 0}]\n")
    path = tmp_path / "merge.yaml"
    path.write_text(text)
    groups = load_config(str(path)).cluster.node_groups
    assert [(g.name, g.role, g.instance_types) for g in groups] == [("core", "core", ["m6i.2xlarge"]),
                                                                    ("cpu", "cpu", ["m6i.2xlarge"])]


def test_comments_only_file_means_defaults_not_an_error():
    """A file with only comments is an empty mapping: the defaults, like no file (not a crash)."""
    from config import AppConfig, parse_config

    assert parse_config(yaml.safe_load("# nothing here\n")) == AppConfig()


def test_bad_input_fails_before_cdktf_is_imported(tmp_path, previous_out):
    """The speed comes from the order in main.py: validate, then import cdktf (seconds of jsii start-up)."""
    config = tmp_path / "bad.yaml"
    config.write_text("region: nowhere\n")
    r = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "main.py")], cwd=ROOT,
                       env=app_env(config=config, outdir=previous_out), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "error: " in r.stderr and "region:" in r.stderr
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "config" in imported  # the measurement works
    assert not imported & {"cdktf", "jsii", "constructs", "cdktf_cdktf_provider_aws", "stacks"}, sorted(imported)


# ------------------------------------------------------------------------------------------- through make (issue 17)
def test_main_help_prints_usage_and_synthesizes_nothing(tmp_path):
    out = tmp_path / "cdktf.out"
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--help"], cwd=ROOT, env=app_env(outdir=out),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("usage: main.py"), r.stderr
    assert "RAY_EKS_CONFIG" in r.stdout and not out.exists()


def test_make_synth_says_bad_input_in_one_line_and_warnings_as_warnings(tmp_path):
    """`make synth` runs main.py itself: no wrapper repeating the error or printing warnings as [ERROR]."""
    from tests.helpers import OPEN_UNPROTECTED, run_make

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"network": {"az_count": 9}}))
    r = run_make("synth", env=app_env(config=bad, outdir=tmp_path / "out"))
    ours = [ln for ln in r.stderr.splitlines() if not ln.startswith("make:")]
    assert r.returncode != 0, r.stderr
    assert ours == [f"error: {bad}: network.az_count: must be less than or equal to 6 (got 9)"], r.stderr
    risky = tmp_path / "open.yaml"
    risky.write_text(yaml.safe_dump(OPEN_UNPROTECTED))
    r = run_make("synth", env=app_env(config=risky, outdir=tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("warning: ") for ln in lines), lines
    assert "[ERROR]" not in r.stdout + r.stderr
