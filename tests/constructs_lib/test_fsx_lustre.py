"""FSx for Lustre, alone from its props (``construct_synth``) and through the infra stack's JSON: placement, the
Lustre security group, deployment type and capacity from config, encryption, backups, and the S3 data repository
associations."""

from __future__ import annotations

import pytest
from cdktf_cdktf_provider_aws.fsx_data_repository_association import FsxDataRepositoryAssociation
from cdktf_cdktf_provider_aws.fsx_lustre_file_system import FsxLustreFileSystem
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule

from config.models import FSX_THROUGHPUT
from constructs_lib.fsx_lustre import FsxLustre, FsxLustreProps
from tests.helpers import attrs, one, outputs, ref, resources

CLUSTER_SG = "${aws_eks_cluster.ray.vpc_config[0].cluster_security_group_id}"
LUSTRE_PORT_RANGES = {(988, 988), (1018, 1023)}


def _fs(stack: dict) -> dict:
    found = resources(stack, "aws_fsx_lustre_file_system")
    assert list(found) == ["ray"]
    return attrs(found["ray"])


def _fsx_sg_ref(stack: dict) -> str:
    (sg,) = _fs(stack)["security_group_ids"]
    assert sg.startswith("${aws_security_group.") and sg.endswith(".id}")
    return sg


def _rules(stack: dict, rtype: str, sg: str) -> list[dict]:
    return [attrs(r) for r in resources(stack, rtype).values() if attrs(r)["security_group_id"] == sg]


def test_file_system_in_a_private_subnet(created_network_shape):
    n = created_network_shape.cfg.network.zone_count
    (subnet,) = _fs(created_network_shape.infra)["subnet_ids"]
    assert subnet in [ref("aws_subnet", f"private_{i}", "id") for i in range(n)]


def test_lustre_ports_open_from_cluster_security_group(shape):
    sg = _fsx_sg_ref(shape.infra)
    ingress = _rules(shape.infra, "aws_vpc_security_group_ingress_rule", sg)
    from_cluster = {(r["from_port"], r["to_port"]) for r in ingress
                    if r.get("referenced_security_group_id") == CLUSTER_SG and r["ip_protocol"] == "tcp"}
    assert from_cluster >= LUSTRE_PORT_RANGES, f"Lustre needs TCP 988 and 1018-1023 from the nodes, got {from_cluster}"
    # Nothing wider than Lustre, and nothing from outside the cluster or the file system itself.
    for r in ingress:
        assert r["ip_protocol"] == "tcp" and (r["from_port"], r["to_port"]) in LUSTRE_PORT_RANGES, r
        assert r.get("referenced_security_group_id") in (CLUSTER_SG, sg), r
        assert "cidr_ipv4" not in r and "cidr_ipv6" not in r, r


def test_file_system_waits_for_its_own_lustre_rules(shape):
    """FSx refuses CreateFileSystem (InvalidNetworkSettings) while the file system's group lacks Lustre from itself;
    the rules are separate resources, so only depends_on orders them before the file system."""
    st = shape.infra
    sg = _fsx_sg_ref(st)
    self_rules = {f"{rtype}.{name}" for rtype in ("aws_vpc_security_group_ingress_rule",
                                                  "aws_vpc_security_group_egress_rule")
                  for name, r in resources(st, rtype).items()
                  if attrs(r)["security_group_id"] == sg and attrs(r).get("referenced_security_group_id") == sg}
    assert len(self_rules) == 2 * len(LUSTRE_PORT_RANGES), self_rules
    fs = resources(st, "aws_fsx_lustre_file_system")["ray"]
    assert self_rules <= set(fs.get("depends_on", [])), fs.get("depends_on")


def test_lustre_security_group_in_the_vpc(created_network_shape):
    st = created_network_shape.infra
    sg = attrs(one(st, "aws_security_group", _fsx_sg_ref(st).split(".")[1]))
    assert sg["vpc_id"] == ref("aws_vpc", "ray", "id")
    # Inline rules would fight the standalone rule resources.
    assert not sg.get("ingress") and not sg.get("egress")


def test_deployment_type_and_capacity_from_config(shape):
    fs, cfg = _fs(shape.infra), shape.cfg.fsx
    assert fs["deployment_type"] == cfg.deployment_type
    assert fs["storage_capacity"] == cfg.storage_capacity_gib
    allowed = FSX_THROUGHPUT[cfg.deployment_type]
    if allowed is None:
        assert "per_unit_storage_throughput" not in fs
    else:
        expected = cfg.per_unit_storage_throughput or min(allowed)
        assert fs["per_unit_storage_throughput"] == expected


def test_prod_shape_uses_configured_throughput(existing_infra):
    fs = _fs(existing_infra)
    configured = (fs["deployment_type"], fs["storage_capacity"], fs["per_unit_storage_throughput"])
    assert configured == ("PERSISTENT_2", 2400, 250)


def test_persistent_file_system_encrypted_with_data_key(shape):
    fs = _fs(shape.infra)
    if fs["deployment_type"].startswith("PERSISTENT"):
        assert fs["kms_key_id"] == ref("aws_kms_key", "data", "arn")
    else:
        # Scratch file systems only take the FSx-managed key; setting ours fails at create.
        assert "kms_key_id" not in fs


def test_dev_scratch_without_kms_key(dev_infra):
    fs = _fs(dev_infra)
    assert fs["deployment_type"] == "SCRATCH_2"
    assert "kms_key_id" not in fs
    assert "automatic_backup_retention_days" not in fs  # scratch has no backups


def test_data_repository_associations_link_the_data_bucket(shape):
    dras = {attrs(d)["file_system_path"]: attrs(d)
            for d in resources(shape.infra, "aws_fsx_data_repository_association").values()}
    bucket = ref("aws_s3_bucket", "data", "bucket")
    paths = {p: d["data_repository_path"] for p, d in dras.items()}
    assert sorted(paths.values()) == sorted([f"s3://{bucket}/ray/export/", f"s3://{bucket}/ray/import/"])
    for d in dras.values():
        assert d["file_system_id"] == ref("aws_fsx_lustre_file_system", "ray", "id")
    imp = next(d for d in dras.values() if d["data_repository_path"].endswith("/ray/import/"))
    exp = next(d for d in dras.values() if d["data_repository_path"].endswith("/ray/export/"))
    s3_imp = imp["s3"][0] if isinstance(imp["s3"], list) else imp["s3"]
    s3_exp = exp["s3"][0] if isinstance(exp["s3"], list) else exp["s3"]
    # New objects under the import prefix appear in the file system; results written to /export reach S3.
    assert "NEW" in s3_imp["auto_import_policy"]["events"]
    assert "NEW" in s3_exp["auto_export_policy"]["events"]
    assert imp["file_system_path"] != exp["file_system_path"]


def test_fsx_outputs(shape):
    out = outputs(shape.infra)
    fs = "aws_fsx_lustre_file_system"
    assert out["fsx_file_system_id"]["value"] == ref(fs, "ray", "id")
    assert out["fsx_dns_name"]["value"] == ref(fs, "ray", "dns_name")
    assert out["fsx_mount_name"]["value"] == ref(fs, "ray", "mount_name")


BACKUP_SETTINGS = ("automatic_backup_retention_days", "copy_tags_to_backups", "skip_final_backup", "final_backup_tags")


def test_linked_file_systems_ask_for_no_backups(shape):
    """FSx backs up no Lustre file system linked to S3; every example links it (data_repository: true)."""
    assert shape.cfg.fsx.data_repository
    fs = _fs(shape.infra)
    assert not [k for k in BACKUP_SETTINGS if k in fs], shape.name


def test_without_data_repository_no_associations_and_configured_backups(edge_shape):
    f = edge_shape.cfg.fsx
    assert (f.data_repository, f.deployment_type) == (False, "PERSISTENT_2")
    assert resources(edge_shape.infra, "aws_fsx_data_repository_association") == {}
    fs = _fs(edge_shape.infra)
    assert fs["automatic_backup_retention_days"] == f.backup_retention_days
    assert fs["skip_final_backup"] is (not f.final_backup)
    assert fs["copy_tags_to_backups"] is True


def test_names(shape):
    from conventions import naming

    st, name = shape.infra, shape.cfg.name
    sg = attrs(one(st, "aws_security_group", _fsx_sg_ref(st).split(".")[1]))
    assert sg["name_prefix"] == naming.security_group_name_prefix(name, "fsx")
    assert attrs(one(st, "aws_cloudwatch_log_group", "fsx_logs"))["name"] == f"/aws/fsx/{name}"


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
CLIENTS = "sg-0clients"
KEY = "arn:aws:kms:us-west-2:111122223333:key/data"


def _props(**kw) -> FsxLustreProps:
    base = dict(name="unit", security_group_name_prefix="unit-fsx-", log_group_name="/aws/fsx/unit", vpc_id="vpc-1",
                subnet_id="subnet-a", client_security_group_id=CLIENTS, data_bucket_name="unit-data",
                deployment_type="PERSISTENT_2", storage_capacity_gib=2400, per_unit_storage_throughput=250,
                kms_key_arn=KEY, persistent=True, data_repository=True, import_prefix="in/", export_prefix="out/",
                backup_retention_days=0, final_backup=False, log_retention_days=30, prevent_destroy=True)
    return FsxLustreProps(**{**base, **kw})


@pytest.fixture(scope="module")
def linked(construct_synth):
    return construct_synth(lambda stack: FsxLustre(stack, "fsx", _props()),
                           outputs=("file_system_id", "dns_name", "mount_name", "security_group_id"))


def test_alone_file_system_from_the_props(linked):
    assert linked.has_resource(FsxLustreFileSystem, {
        "deployment_type": "PERSISTENT_2", "storage_capacity": 2400, "per_unit_storage_throughput": 250,
        "subnet_ids": ["subnet-a"], "security_group_ids": [ref("aws_security_group", "fsx", "id")], "kms_key_id": KEY,
        "log_configuration": {"level": "WARN_ERROR", "destination": ref("aws_cloudwatch_log_group", "fsx_logs", "arn")},
        "lifecycle": {"prevent_destroy": True}})
    assert linked.has_resource("aws_cloudwatch_log_group", {"name": "/aws/fsx/unit", "retention_in_days": 30,
                                                            "kms_key_id": KEY})
    for output, attribute in (("file_system_id", "id"), ("dns_name", "dns_name"), ("mount_name", "mount_name")):
        assert linked.output(output) == ref("aws_fsx_lustre_file_system", "ray", attribute)
    assert linked.output("security_group_id") == ref("aws_security_group", "fsx", "id")


def test_alone_linked_to_s3_it_asks_for_no_backups(linked):
    fs = linked.one("aws_fsx_lustre_file_system", "ray")
    assert not [k for k in BACKUP_SETTINGS if k in fs]


@pytest.mark.parametrize("path, prefix, policy", [("/import", "in/", "auto_import_policy"),
                                                  ("/export", "out/", "auto_export_policy")])
def test_alone_import_and_export_associations_with_the_props_bucket(linked, path, prefix, policy):
    assert linked.has_resource(FsxDataRepositoryAssociation, {
        "file_system_id": ref("aws_fsx_lustre_file_system", "ray", "id"), "file_system_path": path,
        "data_repository_path": f"s3://unit-data/{prefix}",
        "s3": {policy: {"events": ["NEW", "CHANGED", "DELETED"]}}})


@pytest.mark.parametrize("low, high", sorted(LUSTRE_PORT_RANGES))
def test_alone_lustre_ports_between_the_clients_and_the_file_servers_only(linked, low, high):
    sg = ref("aws_security_group", "fsx", "id")
    assert linked.has_resource(SecurityGroup, {"name_prefix": "unit-fsx-", "vpc_id": "vpc-1"})
    for peer in (CLIENTS, sg):
        common = {"security_group_id": sg, "ip_protocol": "tcp", "from_port": low, "to_port": high,
                  "referenced_security_group_id": peer}
        assert linked.has_resource(VpcSecurityGroupIngressRule, common)
        assert linked.has_resource(VpcSecurityGroupEgressRule, common)
    # The clients' group admits the file servers back (the FSx for Lustre user guide's client rules).
    assert linked.has_resource(VpcSecurityGroupIngressRule, {
        "security_group_id": CLIENTS, "ip_protocol": "tcp", "from_port": low, "to_port": high,
        "referenced_security_group_id": sg})
    rules = [*linked.resources("aws_vpc_security_group_ingress_rule").values(),
             *linked.resources("aws_vpc_security_group_egress_rule").values()]
    assert len(rules) == 10 and not [r for r in rules if "cidr_ipv4" in r or "cidr_ipv6" in r]


def test_alone_file_system_depends_on_its_self_rules(linked):
    fs = linked.one("aws_fsx_lustre_file_system", "ray")
    sg = ref("aws_security_group", "fsx", "id")
    rules = {f"{rtype}.{name}"
             for rtype in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule")
             for name, r in linked.resources(rtype).items()
             if r["referenced_security_group_id"] == r["security_group_id"] == sg}
    assert len(rules) == 4 and set(fs.get("depends_on", [])) == rules


def test_alone_persistent_without_data_repository_takes_the_props_backups(construct_synth):
    backed_up = construct_synth(lambda stack: FsxLustre(stack, "fsx", _props(
        data_repository=False, backup_retention_days=7, final_backup=True, prevent_destroy=False)))
    assert backed_up.has_resource(FsxLustreFileSystem, {
        "automatic_backup_retention_days": 7, "copy_tags_to_backups": True, "skip_final_backup": False,
        "final_backup_tags": {"Name": "unit-final-backup", "final-backup-of": "unit"},
        "lifecycle": {"prevent_destroy": False}})
    assert not backed_up.resources("aws_fsx_data_repository_association")


def test_alone_scratch_takes_no_key_and_no_backups(construct_synth):
    scratch = construct_synth(lambda stack: FsxLustre(stack, "fsx", _props(
        deployment_type="SCRATCH_2", per_unit_storage_throughput=None, persistent=False)))
    fs = scratch.one("aws_fsx_lustre_file_system", "ray")
    assert fs["deployment_type"] == "SCRATCH_2"
    assert "kms_key_id" not in fs and "per_unit_storage_throughput" not in fs
    assert not [k for k in BACKUP_SETTINGS if k in fs]


@pytest.mark.parametrize("kw", [dict(backup_retention_days=7), dict(final_backup=True)])
def test_alone_backups_where_fsx_takes_none_are_refused(construct_synth, kw):
    with pytest.raises(ValueError, match="backs up only PERSISTENT file systems without data repository"):
        construct_synth(lambda stack: FsxLustre(stack, "fsx", _props(**kw)))
