"""Data safety: the stateful resources survive a careless `destroy` by default.

FSx, the data bucket (and its access-log bucket) and the ECR repository carry Terraform's
``prevent_destroy`` and no force-delete; a persistent file system leaves a final backup. The one
documented switch, ``protection.prevent_destroy: false`` (throwaway environments), turns all of it off
and main.py says so on every synth.
"""

from __future__ import annotations

from tests.helpers import one

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


def test_default_persistent_file_system_keeps_a_final_backup(infra):
    fs = one(infra, "aws_fsx_lustre_file_system", "ray")
    assert fs["deployment_type"].startswith("PERSISTENT")
    assert fs["skip_final_backup"] is False
    assert fs["final_backup_tags"] == {"Name": "ray-eks-final-backup", "final-backup-of": "ray-eks"}
    assert fs["automatic_backup_retention_days"] >= 1  # daily backups too, not only the last one
    assert fs["copy_tags_to_backups"] is True


def test_data_bucket_keeps_overwritten_and_deleted_objects(infra):
    versioning = one(infra, "aws_s3_bucket_versioning", "data")
    assert versioning["versioning_configuration"]["status"] == "Enabled"


def test_the_switch_turns_protection_off(open_synth):
    """protection.prevent_destroy: false on a persistent file system: destroy really removes everything."""
    infra = open_synth.stacks["infra"]
    for rtype, name in STATEFUL:
        assert one(infra, rtype, name).get("lifecycle", {}).get("prevent_destroy") is False, f"{rtype}.{name}"
    assert one(infra, "aws_s3_bucket", "data")["force_destroy"] is True
    assert one(infra, "aws_ecr_repository", "ray")["force_delete"] is True
    fs = one(infra, "aws_fsx_lustre_file_system", "ray")
    assert fs["deployment_type"] == "PERSISTENT_2"
    assert fs["skip_final_backup"] is True
    assert "final_backup_tags" not in fs
    assert "protection.prevent_destroy is false" in open_synth.run.stderr


def test_scratch_file_system_has_no_backup_settings(dev_synth):
    """SCRATCH_2 cannot be backed up: the provider must not be asked for a final backup."""
    fs = one(dev_synth["infra"], "aws_fsx_lustre_file_system", "ray")
    assert fs["deployment_type"] == "SCRATCH_2"
    for key in ("skip_final_backup", "final_backup_tags", "automatic_backup_retention_days"):
        assert key not in fs


def test_defaults_raise_no_protection_or_exposure_warning():
    """Those warnings are for the dangerous settings only; the defaults are protected and private."""
    from config import AppConfig

    cfg = AppConfig()
    assert cfg.protection.prevent_destroy is True
    assert cfg.cluster.public_access_cidrs == []
    assert not [w for w in cfg.warnings() if "prevent_destroy is false" in w or "contains 0.0.0.0/0" in w]
