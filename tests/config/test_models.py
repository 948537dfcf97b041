"""Unit tests of the typed config (config/models.py, loaded through config/loading.py): defaults, examples,
derived values, messages."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import CONFIG_ENV_VAR, AppConfig, ConfigError, load_config, parse_config
from config.instances import gpu_families
from config.models import NetworkConfig
from config.types import GPU_AMI_TYPES
from config.versions import RAY_IMAGE_CUDA, RAY_VERSION
from tests.helpers import ROOT

EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.yaml"))


# ---------------------------------------------------------------- defaults
def test_defaults_are_a_complete_gpu_deployment():
    cfg = AppConfig()
    groups = {g.name: g for g in cfg.cluster.node_groups}
    assert cfg.cluster.core_group.name == "core" and groups["core"].min_size >= 1
    gpu = groups["gpu"]
    assert gpu.role == "gpu" and gpu.eks_ami_type in GPU_AMI_TYPES
    assert all(t.split(".")[0] in gpu_families() for t in gpu.instance_types)
    # GPU nodes scale from zero and carry the taint that keeps CPU pods off them.
    assert gpu.min_size == 0 and gpu.max_size >= 1
    assert [(t.key, t.effect) for t in gpu.kubernetes_taints] == [("nvidia.com/gpu", "NO_SCHEDULE")]
    assert gpu.kubernetes_labels == {"usage": "gpu", "ray-eks/node-group": "gpu", "nvidia.com/gpu.present": "true",
                                     "k8s.amazonaws.com/accelerator": "nvidia-a10g"}
    [workers] = cfg.ray.worker_groups
    assert workers.node_group == "gpu" and workers.gpus == 1
    assert cfg.cluster.has_gpu
    assert cfg.fsx.is_persistent and cfg.fsx.throughput == 125
    assert cfg.network.zone_count == 3 and not cfg.network.single_nat_gateway
    assert set(cfg.cluster.log_types) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    # Safe by default: private API endpoint, protected data.
    assert cfg.cluster.public_access_cidrs == [] and cfg.protection.prevent_destroy
    # The image is built in the deploy (CodeBuild), from the CUDA 13.0 Ray image.
    assert cfg.ray.image.source == "build" and cfg.ray.image.bundles_job_requirements
    assert cfg.stock_ray_image == f"rayproject/ray:{RAY_VERSION}-py311-{RAY_IMAGE_CUDA}"


def test_no_file_means_defaults(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    assert load_config() == AppConfig()
    assert parse_config({}) == AppConfig() == parse_config(None)


def test_config_is_frozen():
    cfg = AppConfig()
    with pytest.raises(ValidationError):
        cfg.name = "other"  # type: ignore[misc]


# ---------------------------------------------------------------- examples
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load(path: Path, monkeypatch):
    monkeypatch.setenv(CONFIG_ENV_VAR, str(path))
    cfg = load_config()
    assert cfg.name != AppConfig().name  # an example names its own deployment
    assert cfg == load_config(str(path))


def test_examples_cover_the_two_profiles():
    assert {p.name for p in EXAMPLES} >= {"dev-cpu.yaml", "prod-gpu.yaml"}
    dev = load_config(str(ROOT / "config" / "examples" / "dev-cpu.yaml"))
    assert not dev.cluster.has_gpu and dev.fsx.deployment_type == "SCRATCH_2" and dev.network.single_nat_gateway
    assert all(w.gpus == 0 for w in dev.ray.worker_groups)
    prod = load_config(str(ROOT / "config" / "examples" / "prod-gpu.yaml"))
    assert prod.cluster.has_gpu and prod.fsx.is_persistent and prod.backend.type == "s3"
    assert prod.protection.prevent_destroy


# ---------------------------------------------------------------- derived CIDRs
def _nets(cidrs):
    return [ipaddress.ip_network(c) for c in cidrs]


@pytest.mark.parametrize("vpc,azs",
                         [("10.0.0.0/16", 3), ("10.20.0.0/16", 2), ("172.16.0.0/20", 6), ("192.168.16.0/20", 2)])
def test_derived_subnets_fit_the_vpc_and_do_not_overlap(vpc, azs):
    net = NetworkConfig(vpc_cidr=vpc, az_count=azs)
    private, public = _nets(net.private_cidrs()), _nets(net.public_cidrs())
    assert len(private) == len(public) == azs
    vpc_net = ipaddress.ip_network(vpc)
    everything = private + public
    assert all(s.subnet_of(vpc_net) for s in everything)
    assert not any(a.overlaps(b) for i, a in enumerate(everything) for b in everything[i + 1:])
    # Private subnets are the big ones (pods take an IP each); public ones only hold NAT and load balancers.
    assert all(p.prefixlen == vpc_net.prefixlen + 3 for p in private)
    assert all(p.prefixlen == vpc_net.prefixlen + 8 for p in public)
    assert all(16 <= s.prefixlen <= 28 for s in everything)  # what AWS accepts for a subnet


def test_a_small_vpc_takes_explicit_public_subnets():
    """A /24 VPC derives /32 public subnets, which AWS refuses: it needs them given, at /28 or larger."""
    with pytest.raises(ValueError, match="would be /32, smaller than AWS's smallest subnet"):
        NetworkConfig(vpc_cidr="192.168.0.0/24", az_count=2)
    net = NetworkConfig(vpc_cidr="192.168.0.0/24", availability_zones=["us-west-2a", "us-west-2b"],
                        public_subnet_cidrs=["192.168.0.224/28", "192.168.0.240/28"])
    assert net.public_cidrs() == ["192.168.0.224/28", "192.168.0.240/28"]


def test_default_derived_cidrs_are_stable():
    """Subnet CIDRs are part of the deployed state: changing the derivation would replace subnets."""
    net = AppConfig().network
    assert net.private_cidrs() == ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
    assert net.public_cidrs() == ["10.0.224.0/24", "10.0.225.0/24", "10.0.226.0/24"]


def test_explicit_cidrs_and_azs_win():
    net = NetworkConfig(vpc_cidr="10.1.0.0/16", availability_zones=["eu-west-1a", "eu-west-1c"],
                        private_subnet_cidrs=["10.1.0.0/18", "10.1.64.0/18"],
                        public_subnet_cidrs=["10.1.200.0/24", "10.1.201.0/24"])
    assert net.zone_count == 2
    assert net.private_cidrs() == ["10.1.0.0/18", "10.1.64.0/18"]
    assert net.public_cidrs() == ["10.1.200.0/24", "10.1.201.0/24"]


def test_cidrs_are_normalised():
    assert NetworkConfig(vpc_cidr="10.0.0.0/16").vpc_cidr == "10.0.0.0/16"
    cluster = AppConfig.model_validate({"cluster": {"endpoint_access": "public",
                                                    "public_access_cidrs": ["1.2.3.4/32"]}}).cluster
    assert cluster.public_access_cidrs == ["1.2.3.4/32"]


# ---------------------------------------------------------------- ray_image
CPU_ONLY = {
    "cluster": {"node_groups": [{"name": "core", "role": "core", "instance_types": ["m6i.xlarge"]},
                                {"name": "cpu", "role": "cpu", "instance_types": ["m6i.2xlarge"]}]},
    "ray": {"worker_groups": [{"name": "cpu-group", "node_group": "cpu", "gpus": 0}]},
}


def test_ray_image_choice():
    built = "123456789012.dkr.ecr.us-west-2.amazonaws.com/ray-custom:2.58.0-0123456789ab"
    # build (default): the infra stack's output, nothing else; without it there is no image to name.
    assert AppConfig().ray_image(built) == built
    with pytest.raises(ValueError, match="ray_image output"):
        AppConfig().ray_image()
    # stock: rayproject/ray at ray_version, CUDA 13.0 on GPU clusters, CPU otherwise; the build output is unused.
    stock = parse_config({"ray": {"image": {"source": "stock"}}})
    assert stock.ray_image(built) == f"rayproject/ray:{RAY_VERSION}-py311-cu130"
    assert parse_config({**CPU_ONLY, "ray": {**CPU_ONLY["ray"], "image": {"source": "stock"}}}).ray_image() == \
        f"rayproject/ray:{RAY_VERSION}-py311"
    assert parse_config({"ray": {"image": {"source": "stock"}, "ray_version": "2.57.0"}}).ray_image() == \
        "rayproject/ray:2.57.0-py311-cu130"
    # custom: the uri as given.
    custom = parse_config({"ray": {"image": {"source": "custom", "uri": "my.registry/ray:custom-1"}}})
    assert custom.ray_image(built) == "my.registry/ray:custom-1"
    assert [c.ray.image.bundles_job_requirements for c in (stock, custom)] == [False, False]


def test_frozen_ray_ml_image_is_refused():
    with pytest.raises(ConfigError, match=r"ray\.image\.uri: must be a container image reference \(not the frozen "
                                          r"rayproject/ray-ml\)"):
        parse_config({"ray": {"image": {"source": "custom", "uri": "rayproject/ray-ml:2.9.0-gpu"}}})


# ---------------------------------------------------------------- warnings and messages
def test_dangerous_settings_warn():
    open_api = parse_config({"cluster": {"endpoint_access": "public", "public_access_cidrs": ["1.2.3.0/24",
                                                                                              "0.0.0.0/0"]}})
    assert any("0.0.0.0/0" in w and "whole internet" in w for w in open_api.warnings())
    restricted = parse_config({"cluster": {"endpoint_access": "public", "public_access_cidrs": ["1.2.3.0/24"]}})
    assert not any("contains 0.0.0.0/0" in w for w in restricted.warnings())
    unprotected = parse_config({"protection": {"prevent_destroy": False}})
    assert any(w.startswith("protection.prevent_destroy is false") for w in unprotected.warnings())


def test_errors_name_list_items_by_position_and_stay_on_one_line():
    with pytest.raises(ConfigError) as e:
        parse_config({"cluster": {"node_groups": [
            {"name": "core", "role": "core", "instance_types": ["m6i.xlarge"]},
            {"name": "cpu", "instance_types": ["m6i.xlarge"], "min_size": 4, "max_size": 2}]}})
    assert str(e.value) == "config: cluster.node_groups[1].min_size: 4 is greater than max_size 2"
    assert "\n" not in str(ConfigError("a\nb   c"))


def test_long_values_are_shortened_in_messages():
    with pytest.raises(ConfigError) as e:
        parse_config({"network": {"az_count": "x" * 500}})
    assert len(str(e.value)) < 200 and str(e.value).startswith("config: network.az_count: must be a valid integer")


def test_duplicate_yaml_keys_are_an_error(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("network:\n  az_count: 2\n  az_count: 3\n")
    with pytest.raises(ConfigError, match="line 3, column 3: duplicate key 'az_count'"):
        load_config(str(f))


def test_file_source_prefixes_the_message(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("region: mars-1\n")
    with pytest.raises(ConfigError, match=rf"^{f}: region: must be an AWS region"):
        load_config(str(f))


def test_head_memory_rule_of_thumb_grows_with_the_workers():
    from config.models import head_memory_needed

    assert [head_memory_needed(n) for n in (1, 16, 17, 64, 65, 256, 257, 2000)] == [
        4096, 4096, 8192, 8192, 16384, 16384, 32768, 32768]
    # the defaults (4 workers, 8Gi) and prod (8 workers, 16Gi) pass; 17 workers need 8Gi
    gpu_17 = {"name": "gpu", "role": "gpu", "instance_types": ["g5.xlarge"], "min_size": 0, "desired_size": 0,
              "max_size": 17}  # room for 17 one-GPU workers (the capacity check)
    core = {"name": "core", "role": "core", "instance_types": ["m6i.2xlarge"]}
    workers = [{"name": "g", "node_group": "gpu", "max_replicas": 17}]
    assert parse_config({"cluster": {"node_groups": [core, gpu_17]},
                         "ray": {"head": {"memory": "8Gi"}, "worker_groups": workers}}).ray.head.memory == "8Gi"


@pytest.mark.parametrize("observability, mode", [
    ({}, "annotations"),
    ({"kube_prometheus_stack": True}, "monitors"),  # turning on kube-prometheus-stack is enough
    ({"kube_prometheus_stack": True, "metrics_scrape": "none"}, "none"),
    ({"metrics_scrape": "monitors"}, "monitors"),  # an existing Prometheus Operator
    ({"metrics_scrape": "none"}, "none"),
])
def test_metrics_scrape_defaults_to_what_the_chosen_prometheus_reads(observability, mode):
    assert parse_config({"observability": observability}).observability.scrape_mode == mode


def test_only_the_config_reads_metrics_scrape_unresolved():
    """Every reader takes the resolved ``scrape_mode``: ``metrics_scrape`` itself may be unset (None)."""
    import ast

    readers = []
    for d in ("stacks", "constructs_lib", "scripts", "lambdas", "observability", "conventions", "config"):
        for f in sorted((ROOT / d).rglob("*.py")):
            if f == ROOT / "config" / "models.py":
                continue
            tree = ast.parse(f.read_text(), str(f))
            readers += [f"{f.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree)
                        if isinstance(n, ast.Attribute) and n.attr == "metrics_scrape"]
    assert readers == []


def test_the_prod_example_relies_on_the_derived_scrape_mode():
    """prod-gpu.yaml turns kube-prometheus-stack on without metrics_scrape: its synth (tests/constructs_lib/
    test_observability.py, tests/stacks/test_ray_access.py) proves the stacks scrape by PodMonitor from that alone."""
    obs = load_config(str(ROOT / "config" / "examples" / "prod-gpu.yaml")).observability
    assert obs.kube_prometheus_stack and obs.metrics_scrape is None and obs.scrape_mode == "monitors"
