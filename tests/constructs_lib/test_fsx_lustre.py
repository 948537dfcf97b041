"""FSx for Lustre, through the infra stack's JSON: placement, the Lustre security group, deployment type
and capacity from config, encryption, and the S3 data repository associations."""

from __future__ import annotations

from config.models import FSX_THROUGHPUT
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
    assert LUSTRE_PORT_RANGES <= from_cluster, f"Lustre needs TCP 988 and 1018-1023 from the nodes, got {from_cluster}"
    # Nothing wider than Lustre, and nothing from outside the cluster or the file system itself.
    for r in ingress:
        assert r["ip_protocol"] == "tcp" and (r["from_port"], r["to_port"]) in LUSTRE_PORT_RANGES, r
        assert r.get("referenced_security_group_id") in (CLUSTER_SG, sg), r
        assert "cidr_ipv4" not in r and "cidr_ipv6" not in r, r


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
    assert (fs["deployment_type"], fs["storage_capacity"], fs["per_unit_storage_throughput"]) == ("PERSISTENT_2", 2400, 250)


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
    dras = {attrs(d)["file_system_path"]: attrs(d) for d in resources(shape.infra, "aws_fsx_data_repository_association").values()}
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
