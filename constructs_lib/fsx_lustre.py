"""FSx for Lustre: the shared file system Ray mounts at /ray/export, linked to the data bucket.

Two data repository associations, as in the original deployment's import/export paths:
``/import`` <- s3://<bucket>/ray/import/ (auto-import) and ``/export`` -> s3://<bucket>/ray/export/
(auto-export). Pods mount ``/export`` at /ray/export and ``/import`` at /ray/import.

Data safety: FSx backs up only persistent Lustre file systems *not linked to a data repository* (CreateBackup
API reference; the Lustre guide: "File system backups aren't supported on file systems that are linked to an
Amazon S3 data repository"). A linked file system therefore gets no backup settings at all: its durable copy
is what auto-export writes to the versioned bucket. Without associations, a persistent file system takes the
configured daily and final backups.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.fsx_data_repository_association import (
    FsxDataRepositoryAssociation,
    FsxDataRepositoryAssociationS3,
    FsxDataRepositoryAssociationS3AutoExportPolicy,
    FsxDataRepositoryAssociationS3AutoImportPolicy,
)
from cdktf_cdktf_provider_aws.fsx_lustre_file_system import (
    FsxLustreFileSystem,
    FsxLustreFileSystemLogConfiguration,
)
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from .checkov import skip

# Lustre: 988 for clients and servers, 1018-1023 for LNet.
LUSTRE_PORTS = ((988, 988), (1018, 1023))
FILE_SYSTEM_IMPORT_PATH = "/import"
FILE_SYSTEM_EXPORT_PATH = "/export"


@dataclass(frozen=True)
class FsxLustreProps:
    name: str
    security_group_name_prefix: str
    log_group_name: str  # FSx logs only to groups named /aws/fsx/...
    vpc_id: str
    subnet_id: str
    client_security_group_id: str  # the EKS cluster security group (all nodes carry it)
    data_bucket_name: str
    deployment_type: str
    storage_capacity_gib: int
    per_unit_storage_throughput: int | None
    kms_key_arn: str
    persistent: bool  # PERSISTENT_* deployment types: customer key, backups
    data_repository: bool  # the import/export associations with the data bucket
    import_prefix: str
    export_prefix: str
    backup_retention_days: int  # daily backups (0: none); config allows them only when backups_possible
    final_backup: bool
    log_retention_days: int
    prevent_destroy: bool


class FsxLustre(Construct):
    file_system_id: str
    dns_name: str
    mount_name: str
    security_group_id: str

    def __init__(self, scope: Construct, id: str, props: FsxLustreProps) -> None:
        super().__init__(scope, id)
        sg = SecurityGroup(self, "fsx", name_prefix=props.security_group_name_prefix, vpc_id=props.vpc_id,
                           description=f"FSx for Lustre of {props.name}: Lustre from the EKS cluster",
                           tags={"Name": f"{props.name}-fsx"},
                           lifecycle=TerraformResourceLifecycle(create_before_destroy=True))
        # The file system's own Lustre rules (servers to each other): FSx checks them at CreateFileSystem and refuses
        # with InvalidNetworkSettings while they are missing (the FSx for Lustre user guide, "File system access
        # control with Amazon VPC"), so the file system waits for them (depends_on below).
        self_rules: list[VpcSecurityGroupIngressRule | VpcSecurityGroupEgressRule] = []
        for low, high in LUSTRE_PORTS:
            ports = f"{low}" if low == high else f"{low}_{high}"
            for source, peer in (("cluster", props.client_security_group_id), ("self", sg.id)):
                rule = VpcSecurityGroupIngressRule(
                    self, f"fsx_lustre_{ports}_from_{source}", security_group_id=sg.id, ip_protocol="tcp",
                    from_port=low, to_port=high, referenced_security_group_id=peer,
                    description=f"Lustre {low}-{high} from the {source if source == 'self' else 'EKS cluster'}")
                if source == "self":
                    self_rules.append(rule)
            VpcSecurityGroupEgressRule(
                self, f"fsx_lustre_{ports}_to_cluster", security_group_id=sg.id, ip_protocol="tcp",
                from_port=low, to_port=high, referenced_security_group_id=props.client_security_group_id,
                description=f"Lustre {low}-{high} replies to the EKS cluster")
            # The FSx for Lustre user guide, "File system access control with Amazon VPC": the clients' security
            # group admits Lustre traffic from the file system's too (the servers open connections back to them).
            VpcSecurityGroupIngressRule(
                self, f"cluster_lustre_{ports}_from_fsx", security_group_id=props.client_security_group_id,
                ip_protocol="tcp", from_port=low, to_port=high, referenced_security_group_id=sg.id,
                description=f"Lustre {low}-{high} from the FSx for Lustre file system of {props.name}")
            self_rules.append(VpcSecurityGroupEgressRule(
                self, f"fsx_lustre_{ports}_to_self", security_group_id=sg.id, ip_protocol="tcp",
                from_port=low, to_port=high, referenced_security_group_id=sg.id,
                description=f"Lustre {low}-{high} between file servers"))

        persistent = props.persistent
        backups = persistent and not props.data_repository
        if not backups and (props.backup_retention_days or props.final_backup):
            raise ValueError("FSx backs up only PERSISTENT file systems without data repository associations")
        logs = CloudwatchLogGroup(self, "fsx_logs", name=props.log_group_name,
                                  retention_in_days=props.log_retention_days, kms_key_id=props.kms_key_arn)
        fs = FsxLustreFileSystem(
            self, "ray",
            deployment_type=props.deployment_type,
            storage_capacity=props.storage_capacity_gib,
            per_unit_storage_throughput=props.per_unit_storage_throughput,
            storage_type="SSD",
            file_system_type_version="2.15",
            data_compression_type="LZ4",
            subnet_ids=[props.subnet_id],
            security_group_ids=[sg.id],
            # Scratch file systems are always encrypted with an FSx-managed key; only persistent ones take ours.
            kms_key_id=props.kms_key_arn if persistent else None,
            # Backup settings only where FSx can take backups; elsewhere none at all (scratch, or linked to S3).
            # 0 is explicit: the provider would otherwise keep whatever the API reports.
            automatic_backup_retention_days=props.backup_retention_days if backups else None,
            copy_tags_to_backups=True if backups else None,
            skip_final_backup=(not props.final_backup) if backups else None,
            final_backup_tags={"Name": f"{props.name}-final-backup", "final-backup-of": props.name}
            if backups and props.final_backup else None,
            log_configuration=FsxLustreFileSystemLogConfiguration(level="WARN_ERROR", destination=logs.arn),
            tags={"Name": props.name},
            lifecycle=TerraformResourceLifecycle(prevent_destroy=props.prevent_destroy),
            depends_on=self_rules,
        )
        if not persistent:
            skip(fs, "CKV_AWS_190",
                 "SCRATCH file systems are always encrypted at rest with an FSx-managed key and cannot take a "
                 "customer-managed one; PERSISTENT types (the default) use the data KMS key")
        self.file_system_id = fs.id
        self.dns_name = fs.dns_name
        self.mount_name = fs.mount_name
        self.security_group_id = sg.id
        if not props.data_repository:
            return
        bucket = f"s3://{props.data_bucket_name}"
        FsxDataRepositoryAssociation(
            self, "import", file_system_id=fs.id, file_system_path=FILE_SYSTEM_IMPORT_PATH,
            data_repository_path=f"{bucket}/{props.import_prefix}", batch_import_meta_data_on_create=True,
            s3=FsxDataRepositoryAssociationS3(auto_import_policy=FsxDataRepositoryAssociationS3AutoImportPolicy(
                events=["NEW", "CHANGED", "DELETED"])),
            tags={"Name": f"{props.name}-import"},
        )
        FsxDataRepositoryAssociation(
            self, "export", file_system_id=fs.id, file_system_path=FILE_SYSTEM_EXPORT_PATH,
            data_repository_path=f"{bucket}/{props.export_prefix}",
            s3=FsxDataRepositoryAssociationS3(auto_export_policy=FsxDataRepositoryAssociationS3AutoExportPolicy(
                events=["NEW", "CHANGED", "DELETED"])),
            tags={"Name": f"{props.name}-export"},
        )
