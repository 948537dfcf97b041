"""Data safety: the stateful resources survive a careless `destroy` by default.

FSx, the data bucket (and its access-log bucket) and the ECR repository carry Terraform's
``prevent_destroy`` and no force-delete. FSx's durable copy is what auto-export writes to the versioned data
bucket: FSx cannot back up a file system linked to S3, so it asks for no backups (a deployment without data
repository associations can, and is validated as such). The one documented switch,
``protection.prevent_destroy: false`` (throwaway environments), turns the protection off and main.py says so
on every synth.
"""

from __future__ import annotations

from tests.helpers import attrs, one, resources

STATEFUL = (
    ("aws_fsx_lustre_file_system", "ray"),
    ("aws_s3_bucket", "data"),
    ("aws_s3_bucket", "access_logs"),
    ("aws_ecr_repository", "ray"),
)


def test_defaults_protect_every_stateful_resource(infra):
    for rtype, name in STATEFUL:
        body = one(infra, rtype, name)
        assert body.get("lifecycle", {}).get("prevent_destroy") is True, f"{rtype}.{name} is not protected"
    assert one(infra, "aws_s3_bucket", "data")["force_destroy"] is False
    assert one(infra, "aws_s3_bucket", "access_logs")["force_destroy"] is False
    assert one(infra, "aws_ecr_repository", "ray")["force_delete"] is False


BACKUP_SETTINGS = ("automatic_backup_retention_days", "copy_tags_to_backups", "skip_final_backup", "final_backup_tags",
                   "daily_automatic_backup_start_time")


def test_default_file_system_is_copied_to_the_versioned_bucket_not_backed_up(infra):
    """FSx backs up only Lustre file systems not linked to S3 (CreateBackup API): the default PERSISTENT_2 file
    system is linked, so it asks for no backups; its results reach the versioned bucket through auto-export."""
    fs = one(infra, "aws_fsx_lustre_file_system", "ray")
    assert fs["deployment_type"].startswith("PERSISTENT")
    assert not [k for k in BACKUP_SETTINGS if k in fs], "backup settings on a file system FSx cannot back up"
    dras = [attrs(d) for d in resources(infra, "aws_fsx_data_repository_association").values()]
    (export,) = [d for d in dras if d["file_system_path"] == "/export"]
    s3 = export["s3"][0] if isinstance(export["s3"], list) else export["s3"]
    assert sorted(s3["auto_export_policy"]["events"]) == ["CHANGED", "DELETED", "NEW"]
    assert export["data_repository_path"].startswith("s3://${aws_s3_bucket.data.bucket}/")
    assert one(infra, "aws_s3_bucket_versioning", "data")["versioning_configuration"]["status"] == "Enabled"


def test_data_bucket_keeps_overwritten_and_deleted_objects(infra):
    versioning = one(infra, "aws_s3_bucket_versioning", "data")
    assert versioning["versioning_configuration"]["status"] == "Enabled"


def test_the_switch_turns_protection_off(open_synth):
    """protection.prevent_destroy: false on a persistent file system: destroy really removes everything."""
    infra = open_synth["infra"]
    for rtype, name in STATEFUL:
        assert one(infra, rtype, name).get("lifecycle", {}).get("prevent_destroy") is False, f"{rtype}.{name}"
    assert one(infra, "aws_s3_bucket", "data")["force_destroy"] is True
    assert one(infra, "aws_ecr_repository", "ray")["force_delete"] is True
    fs = one(infra, "aws_fsx_lustre_file_system", "ray")
    assert fs["deployment_type"] == "PERSISTENT_2"
    assert not [k for k in BACKUP_SETTINGS if k in fs]
    assert "protection.prevent_destroy is false" in open_synth["_stderr"]


def test_scratch_file_system_has_no_backup_settings(dev_synth):
    """SCRATCH_2 cannot be backed up: the provider must not be asked for a final backup."""
    fs = one(dev_synth["infra"], "aws_fsx_lustre_file_system", "ray")
    assert fs["deployment_type"] == "SCRATCH_2"
    for key in BACKUP_SETTINGS:
        assert key not in fs


def test_defaults_raise_no_protection_or_exposure_warning():
    """Those warnings are for the dangerous settings only; the defaults are protected and private."""
    from config import AppConfig

    cfg = AppConfig()
    assert cfg.protection.prevent_destroy is True
    assert cfg.cluster.public_access_cidrs == []
    assert not [w for w in cfg.warnings() if "prevent_destroy is false" in w or "contains 0.0.0.0/0" in w]


def test_backups_only_without_data_repository(edge_synth):
    """Lustre backups are a deployment without data repository associations (tests/helpers.py edge_config):
    daily backups kept as configured and a final backup when the file system is deleted."""
    infra = edge_synth["infra"]
    fs = one(infra, "aws_fsx_lustre_file_system", "ray")
    assert resources(infra, "aws_fsx_data_repository_association") == {}
    assert fs["automatic_backup_retention_days"] == 7 and fs["copy_tags_to_backups"] is True
    assert fs["skip_final_backup"] is False and fs["final_backup_tags"]["final-backup-of"]


def test_a_file_system_with_no_durable_copy_is_warned_about():
    """Without data repository associations and without backups, nothing outside FSx holds Ray's results."""
    from config import parse_config

    bare = parse_config({"fsx": {"data_repository": False}})
    assert any("holds the only copy" in w for w in bare.warnings())
    backed_up = parse_config({"fsx": {"data_repository": False, "backup_retention_days": 7}})
    assert not any("holds the only copy" in w for w in backed_up.warnings())
    assert not any("holds the only copy" in w for w in parse_config({}).warnings())
