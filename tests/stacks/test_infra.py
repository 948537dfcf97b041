"""The infra stack as a whole: its output contract, what the config examples turn into, the backend, the
provider, and readable addresses in every stack."""

from __future__ import annotations

import re

import pytest

from stacks.contract import INFRA_OUTPUTS
from tests.helpers import attrs, outputs, ref, resources, stack_items

# cdktf's default address suffix: the hash of the construct path (what ReadableStack removes).
HASH_SUFFIX = re.compile(r"_[0-9A-F]{8}$")
SYNTHS = ["default_synth", "dev_synth", "existing_synth"]


@pytest.fixture(params=SYNTHS)
def any_infra(request) -> dict:
    return request.getfixturevalue(request.param)["infra"]


# ---------------------------------------------------------------------------------------------- outputs
def test_every_contract_output_present_with_description(any_infra):
    out = outputs(any_infra)
    missing = [n for n in INFRA_OUTPUTS if n not in out]
    assert not missing, f"missing outputs {missing}"
    for name in INFRA_OUTPUTS:
        assert out[name].get("description", "").strip(), f"output {name} has no description"
        assert "value" in out[name], name


def test_update_kubeconfig_command(any_infra):
    out = outputs(any_infra)
    value = out["update_kubeconfig_command"]["value"]
    if out["endpoint_access"]["value"] == "tunnel":
        # The API is private and reached through the tunnel: the AWS CLI's command alone would point kubectl at the
        # private endpoint; `make kubeconfig` points it at the tunnel.
        assert value == "make kubeconfig"
        assert "make tunnel" in out["update_kubeconfig_command"]["description"]
        return
    assert "aws eks update-kubeconfig" in value
    assert "aws_eks_cluster.ray.name" in value  # the cluster's name, whatever the template function
    assert "--region" in value and "--name" in value


def test_update_kubeconfig_command_follows_the_access_mode(default_synth, existing_synth):
    """Both kinds are among the synths above: the default's tunnel, the prod example's private endpoint."""
    modes = {outputs(s["infra"])["endpoint_access"]["value"]: outputs(s["infra"])["update_kubeconfig_command"]["value"]
             for s in (default_synth, existing_synth)}
    assert modes["tunnel"] == "make kubeconfig" and modes["private"].startswith('${format("aws eks update-kubeconfig')


def test_cluster_outputs_reference_the_cluster(any_infra):
    out = outputs(any_infra)
    assert out["cluster_name"]["value"] == ref("aws_eks_cluster", "ray", "name")
    assert out["cluster_endpoint"]["value"] == ref("aws_eks_cluster", "ray", "endpoint")
    assert out["cluster_version"]["value"] == ref("aws_eks_cluster", "ray", "version")
    assert out["cluster_certificate_authority_data"]["value"] == "${aws_eks_cluster.ray.certificate_authority[0].data}"
    assert out["cluster_oidc_issuer_url"]["value"] == "${aws_eks_cluster.ray.identity[0].oidc[0].issuer}"
    assert out["cluster_security_group_id"]["value"] == "${aws_eks_cluster.ray.vpc_config[0].cluster_security_group_id}"
    assert out["region"]["value"] == "us-west-2"


# --------------------------------------------------------------------------------------------- examples
def test_dev_example_shape(dev_synth):
    infra = dev_synth["infra"]
    azs = sorted(attrs(s)["availability_zone"] for s in resources(infra, "aws_subnet").values())
    assert azs == ["us-west-2a", "us-west-2a", "us-west-2b", "us-west-2b"]  # a public and a private subnet per AZ
    assert len(resources(infra, "aws_nat_gateway")) == 1
    (fs,) = resources(infra, "aws_fsx_lustre_file_system").values()
    assert attrs(fs)["deployment_type"] == "SCRATCH_2" and "kms_key_id" not in attrs(fs)
    groups = {n: attrs(g) for n, g in resources(infra, "aws_eks_node_group").items()}
    assert sorted(groups) == ["core", "cpu"]
    assert not any("NVIDIA" in g["ami_type"] or g["labels"].get("usage") == "gpu" for g in groups.values())


def test_default_is_a_gpu_deployment_in_three_azs(default_synth):
    infra = default_synth["infra"]
    assert len(resources(infra, "aws_nat_gateway")) == 3
    assert attrs(resources(infra, "aws_eks_node_group")["gpu"])["ami_type"] == "AL2023_x86_64_NVIDIA"


def test_local_backend_by_default(default_synth, dev_synth):
    for synth in (default_synth, dev_synth):
        for name, stack in stack_items(synth):
            backend = stack["terraform"]["backend"]
            assert list(backend) == ["local"], name
            assert backend["local"]["path"].endswith(f"{name}.tfstate"), name


def test_prod_example_s3_backend_with_native_locking(existing_synth):
    s3 = existing_synth["infra"]["terraform"]["backend"]["s3"]
    assert s3["bucket"] == "my-company-terraform-state"
    assert s3["key"] == "ray-eks/prod/ray-prod/us-west-2/infra.tfstate"  # <key_prefix>/<name>/<region>/<stack>
    assert s3["region"] == "us-west-2"
    assert s3["encrypt"] is True
    assert s3["use_lockfile"] is True
    assert "dynamodb_table" not in s3  # deprecated since Terraform 1.11; the lock file replaces it


def test_every_stack_has_its_own_state_key(existing_synth):
    keys = [stack["terraform"]["backend"]["s3"]["key"] for _, stack in stack_items(existing_synth)]
    assert len(set(keys)) == len(keys), keys


# ------------------------------------------------------------------------------------- provider, addresses
def test_infra_uses_only_the_pinned_aws_provider(any_infra):
    required = any_infra["terraform"]["required_providers"]
    assert list(required) == ["aws"]
    assert required["aws"]["version"] == "5.100.0"
    assert required["aws"].get("source", "hashicorp/aws") in ("aws", "hashicorp/aws",
                                                              "registry.terraform.io/hashicorp/aws")
    (provider,) = any_infra["provider"]["aws"]
    assert provider["region"] == "us-west-2"
    (tags,) = provider["default_tags"]
    assert tags["tags"]["ray-eks/deployment"]  # every resource is traceable to its deployment


@pytest.mark.parametrize("synth", SYNTHS)
def test_no_hash_suffixed_addresses_in_any_stack(synth, request):
    stacks = stack_items(request.getfixturevalue(synth))
    assert stacks
    bad = []
    for name, stack in stacks:
        for block in ("resource", "data"):
            for rtype, byname in stack.get(block, {}).items():
                bad += [f"{name}: {block}.{rtype}.{n}" for n in byname if HASH_SUFFIX.search(n)]
        bad += [f"{name}: output.{n}" for n in stack.get("output", {}) if HASH_SUFFIX.search(n)]
    assert not bad, f"construct-path hash suffixes in addresses: {bad}"


def test_hash_suffix_pattern_matches_cdktf_default():
    # Guard the guard: the pattern must catch what cdktf writes without ReadableStack.
    assert HASH_SUFFIX.search("network_ray_24D1B1A1")
    assert not HASH_SUFFIX.search("private_0_nat") and not HASH_SUFFIX.search("fsx_lustre_1018_1023_to_self")
