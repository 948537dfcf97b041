"""moto's AWS emulator, patched where it falls short of what Terraform's AWS provider (5.100) needs.

Run as a script: ``python tests/deploy/emulator.py [--port N]``. It binds 127.0.0.1 only (port 0: a
free one), prints ``PORT <n>`` once it accepts connections, and serves until killed.

Every deviation from plain moto 5.2.5 is listed here, and each fixes moto's *responses* so that the
provider sees what real AWS returns; no resource or step of the deploy test is skipped:

FSx
  1. ``DescribeFileSystems`` omits ``Lifecycle`` (the provider then waits forever for AVAILABLE),
     ``CreationTime``, ``OwnerId``, ``VpcId``, ``NetworkInterfaceIds``, ``FileSystemTypeVersion``
     (force-new: every plan would replace the file system) and ``LustreConfiguration.MountName``.
     They are filled in; the file system is AVAILABLE at once.
  2. A describe of a file system id that does not exist returns an empty list instead of
     ``FileSystemNotFound``; it now raises ``FileSystemNotFound``, as AWS does (the provider's
     refresh relies on it to notice a deleted file system).
  3. Data repository associations are not implemented (``Create``/``Describe``/``Delete``
     ``DataRepositoryAssociation(s)`` and their tags). Served here from memory: AVAILABLE on
     create, gone on delete, ``DataRepositoryAssociationNotFound`` for unknown ids.
  4. ``DeleteFileSystem`` answers 200/DELETING, after which the provider (5.100) sleeps its delete
     waiter's fixed initial delay before the first describe: no request reached the emulator for
     over 4 minutes (a goroutine dump shows ``retry.StateChangeConf`` still in its initial
     ``time.After(Delay)``), so no describe response can end the wait. moto deletes at once; the
     emulator performs the delete and answers ``FileSystemNotFound`` -- what AWS answers for a file
     system that is already gone, which the provider treats as deleted. The file system really is
     removed (the test checks none remain after destroy).
EKS
  5. ``CreateCluster`` returns no ``resourcesVpcConfig.clusterSecurityGroupId``/``vpcId``; every
     rule that references the cluster security group then fails. A real security group is created
     in the subnets' VPC (EC2 emulator), as EKS does, and deleted with the cluster.
  6. ``CreateCluster`` ignores ``accessConfig``; ``DescribeCluster`` then has none, and the
     provider plans a replacement (``bootstrap_cluster_creator_admin_permissions`` forces new).
     Kept and returned.
  7. ``CreateNodegroup`` ignores ``updateConfig`` (only ``UpdateNodegroupConfig`` sets it); every
     plan then wants to add it. Kept and returned.
  8. ``CreateNodegroup`` invents a ``remoteAccess`` block (``ec2SshKey: eksKeypair``) when none
     was asked for; the provider sees drift and replaces the node group on every plan. Omitted.
  9. Add-ons are not implemented (``Create``/``Describe``/``Update``/``Delete``/``ListAddons``).
     Served here from memory: ACTIVE on create, gone on delete, ``ResourceNotFoundException``
     for unknown ones; deleted with their cluster.
  10. Access entries and their access policies are not implemented (``Create``/``Describe``/``Delete``
      ``AccessEntry``, ``Associate``/``Disassociate``/``ListAssociated`` ``AccessPolicies``). Served here
      from memory, one entry per principal (a second answers 409 ``ResourceInUseException``, as EKS
      does), deleted with their cluster.
  11. ``DescribeAddonVersions`` is not implemented. Every add-on is served, for any Kubernetes version,
      with two made-up builds (the emulator knows no real ones): ``v0.0.2-eksbuild.1`` first (EKS lists
      the newest first) and ``v0.0.1-eksbuild.1``, the default version for the Kubernetes version asked
      about (each build also lists the next Kubernetes version, where ``v0.0.2`` is the default).
  12. ``TagResource``/``UntagResource``/``ListTagsForResource`` know only cluster ARNs (moto says so); a
      node group's, add-on's or access entry's ARN answers 404, so a changed tag (a new provider
      default tag) fails the apply. Every EKS resource type is taggable (Service Authorization Reference;
      research notes aws_eks.md section 9): node groups (``nodegroup/<cluster>/<name>/<uuid>``), add-ons
      (``addon/<cluster>/<name>/<uuid>``, the ``addonArn`` CreateAddon returns) and access entries are
      tagged here; describing them returns the tags. An ARN of nothing answers 404 ``NotFoundException``.
  29. Every cluster gets the same OIDC issuer and API endpoint (moto draws them once, when it is imported): a
      second deployment's IAM OIDC provider then fails with 409 ``EntityAlreadyExists``. Each cluster gets its
      own, shaped as EKS's (``oidc.eks.<region>.amazonaws.com/id/<32 hex>``, ``<32 hex>.<3>.<region>.eks...``).
  13. ``UpdateNodegroupVersion`` is not implemented (a new launch template version: a changed tag on the
      instances rolls the group), and ``DescribeUpdate`` knows no update, so the provider cannot wait for
      an ``UpdateNodegroupConfig`` (a new max size) either. The version update sets the node group's
      launch template version (and ``version``/``releaseVersion`` when given); every node group and
      add-on update is kept and ``DescribeUpdate`` returns it, ``Successful`` at once (no nodes run here).
  14. ``DescribeAddonConfiguration`` is not implemented. Each add-on's configuration schema is served
      from the facts recorded in tests/reference/eks-addons/<add-on>.yaml (``configuration_schema``), for
      every version. Only coredns's is a real schema EKS published (v1.10.1-eksbuild.11, its keys; the
      types of keys we do not set are not recorded); vpc-cni's holds the one key the EKS user guide
      documents; aws-fsx-csi-driver's and amazon-cloudwatch-observability's are NOT from EKS: they accept
      the keys the add-on's Helm chart documents (values.yaml), as recorded there (``verified: false``).
      An add-on with no recorded schema (kube-proxy, eks-pod-identity-agent: we configure neither) gets
      one that accepts any object. ``--addon-schema ADDON@VERSION=FILE`` serves another schema for one
      version (an add-on version whose schema lacks a key we set; an empty file: a version with no schema).
S3
  15. ``PutBucketLogging`` crashes (HTTP 500, retried by the provider for minutes) when the target
      bucket's policy has a statement whose ``Principal`` is the string ``"*"`` (our
      DenyInsecureTransport statement). Such statements are skipped, as they grant nothing.
  16. Bucket policy conditions other than ``StringEquals`` are ignored, so our DenyInsecureTransport
      statement (Deny s3:* when ``aws:SecureTransport`` is false) denies every object write, TLS or
      not: the image build's ``aws_s3_object`` upload gets 403. The provider reaches AWS over TLS (the
      emulator's plain HTTP stands in for it), so a Deny conditioned on ``aws:SecureTransport=false``
      alone is left out of the evaluation; every other statement is evaluated as moto does.
EC2
  17. ``CreateLaunchTemplate`` copies the tags of the template itself (``TagSpecifications`` of type
      ``launch-template``: the provider's default tags) into the version's ``LaunchTemplateData``;
      every plan then wants to remove them. They stay on the template only.
  18. ``DescribeSecurityGroupRules`` drops the description of rules that reference a security
      group (moto keeps it only for CIDR rules); every plan then wants to set it again. Returned.
  19. ``DescribeLaunchTemplates`` returns the tags a template was created with: ``CreateTags`` on it (a new
      provider default tag) is kept but never shown, so every plan wants to add the tag again. The template's
      current tags are returned.
  27. ``DescribeInstances`` gives a network interface without a public address an empty ``Association``; AWS
      gives none, and the provider reads its presence as ``associate_public_ip_address = true``, so every plan
      replaces an instance launched without one (the API tunnel). Omitted when there is no public address.
  28. ``RunInstances`` with the security groups on the primary network interface (how the provider launches an
      instance whose ``associate_public_ip_address`` is set) leaves the instance's own ``SecurityGroups`` empty;
      AWS shows the primary interface's, and every plan wants to add them again. They are the instance's.
CodeBuild
  20. ``DeleteProject`` takes a project name or ARN; moto matches names only, so the provider's delete
      (by ARN, its resource id) left the project behind. An ARN is resolved to its project's name.
  21. ``UpdateProject`` is not implemented (HTTP 500, which the provider retries for minutes): a changed
      tag on the image build's project fails the apply. As CodeBuild does, the fields the request gives
      replace the project's and the others stay.
IAM
  22. AWS managed policies (``AmazonEKSClusterPolicy``...) exist only with
      ``MOTO_IAM_LOAD_MANAGED_POLICIES=true``, which this launcher sets.
Service Quotas
  23. Only VPC quotas are known. EC2's instance vCPU and Elastic IP quotas, Lambda's concurrent executions and
      CodeBuild's concurrent builds per Linux compute type (``QUOTAS``) are served with the values AWS gives a
      new account (5 standard and 0 G/P vCPUs, 5 Elastic IPs, 10 concurrent executions, 0 concurrent builds: a
      new account's CodeBuild refuses builds with AccountLimitExceededException), or with the applied values
      ``--quota CODE=VALUE`` names (an account whose increases were granted).
STS
  24. A presigned GetCallerIdentity URL (query-string SigV4, how ``aws eks get-token`` tokens carry the
      caller's identity to EKS) is routed by moto to S3 (it routes by the ``Authorization`` header, which a
      presigned GET has none of), and moto checks no signature anyway. Such GETs are answered here as STS
      does: the signature is verified (an independent SigV4 implementation, with the secret moto issued for
      the access key, over the headers the URL says are signed), the URL expires 15 minutes after
      ``X-Amz-Date``, and the answer is the caller identity, in JSON when the request accepts it (EKS asks
      for JSON). A wrong signature, an unsigned header value that differs, an unknown key or an expired URL
      gets STS's 403.
Lambda
  26. ``GetAccountSettings`` is not implemented. It is served as Lambda answers it: ``AccountLimit`` with the
      concurrency quota (23's ``L-B99A9384``) and what functions leave unreserved of it (their reserved
      concurrency subtracted), and ``AccountUsage`` with the functions' count.
Server
  30. EKS's creates are idempotent on ``clientRequestToken`` (the provider sends one per create and resends
      it when an answer is lost); here a create of ours repeated with a token already answered gets that
      answer again, where it got 409 ``ResourceInUseException`` for its own first attempt (CI-like runs:
      CreateAddon, CreateAccessEntry).
  25. moto's backends are not thread-safe (getmoto/moto#372), and its threaded server runs requests at
      once: one request can iterate a dict (IAM's roles) while another adds to it and answer 500, and
      the provider's SDK then resends a non-idempotent create. A CI run's ``CreateRole`` got 409
      ``EntityAlreadyExists`` for a role whose generated name only that one resource uses -- most likely
      its own first attempt, answered with an error after the role was made. Requests are served one at
      a time (the provider still sends up to ten at once; they wait their turn).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # 22.

ACCOUNT_ID = "123456789012"
FSX_TARGET_PREFIX = "AWSSimbaAPIService_v20180301."
_CRED_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")

# 25. One request at a time: moto's backends and the stores below are read and written only under it.
_serve_lock = threading.Lock()
_addons: dict[tuple[str, str, str], dict[str, Any]] = {}  # (region, cluster, addon) -> addon
_eks_replies: dict[tuple[str, str, str], tuple] = {}  # 30. (region, path, clientRequestToken) -> the answer given
_access_entries: dict[tuple[str, str, str], dict[str, Any]] = {}  # (region, cluster, principal) -> entry
_updates: dict[tuple[str, str, str], dict[str, Any]] = {}  # 13. (region, cluster, update id) -> update
# 14. --addon-schema: (add-on, version) -> the schema served for that version instead of the recorded one
_addon_schemas: dict[tuple[str, str], dict[str, Any]] = {}
ADDON_FACTS = Path(__file__).resolve().parent.parent / "reference" / "eks-addons"
# 23. Quota code -> (service code, name, value for a new account); --quota overrides the value.
QUOTAS: dict[str, tuple[str, str, float]] = {
    "L-1216C47A": ("ec2", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 5.0),
    "L-DB2E81BA": ("ec2", "Running On-Demand G and VT instances", 0.0),
    "L-417A185B": ("ec2", "Running On-Demand P instances", 0.0),
    "L-34B43A08": ("ec2", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 5.0),
    "L-3819A6DF": ("ec2", "All G and VT Spot Instance Requests", 0.0),
    "L-7212CCBC": ("ec2", "All P Spot Instance Requests", 0.0),
    "L-0263D0A3": ("ec2", "EC2-VPC Elastic IPs", 5.0),
    "L-B99A9384": ("lambda", "Concurrent executions", 10.0),
    "L-9D07B6EF": ("codebuild", "Concurrently running builds for Linux/Small environment", 0.0),
    "L-2DC20C30": ("codebuild", "Concurrently running builds for Linux/Medium environment", 0.0),
    "L-4DDC4A99": ("codebuild", "Concurrently running builds for Linux/Large environment", 0.0),
    "L-04E5CA62": ("codebuild", "Concurrently running builds for Linux/XLarge environment", 0.0),
    "L-0397D009": ("codebuild", "Concurrently running builds for Linux/2XLarge environment", 0.0),
}
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"
_applied_quotas: dict[str, float] = {}
_dras: dict[str, dict[str, Any]] = {}  # association id -> association


# ----------------------------------------------------------------------------------- model patches
def _patch_models() -> None:
    from moto.ec2.models import ec2_backends
    from moto.ec2.models import launch_templates as lt_models
    from moto.eks import models as eks_models
    from moto.fsx import models as fsx_models
    from moto.fsx.exceptions import FileSystemNotFound
    from moto.s3 import models as s3_models

    # 1. FSx describe: the fields the provider reads.
    orig_fs_init = fsx_models.FileSystem.__init__
    orig_fs_to_dict = fsx_models.FileSystem.to_dict

    def fs_init(self, *args, **kwargs):
        orig_fs_init(self, *args, **kwargs)
        self.creation_time = time.time()
        self.vpc_id = None
        self.network_interface_ids = []
        self.mount_name = uuid.uuid4().hex[:8]
        subnet_ids = self.subnet_ids or []
        if subnet_ids:
            ec2 = ec2_backends[kwargs.get("account_id", ACCOUNT_ID)][kwargs.get("region_name", "us-east-1")]
            with contextlib.suppress(Exception):  # unknown subnet: leave VpcId out, as moto did
                self.vpc_id = ec2.get_subnet(subnet_ids[0]).vpc_id
            self.network_interface_ids = [f"eni-{uuid.uuid4().hex[:17]}"]

    def fs_to_dict(self):
        d = orig_fs_to_dict(self)
        d["Lifecycle"] = "AVAILABLE"
        d["CreationTime"] = self.creation_time
        d["OwnerId"] = ACCOUNT_ID
        d["FileSystemTypeVersion"] = getattr(self, "file_system_type_version", None) or "2.15"
        if self.vpc_id:
            d["VpcId"] = self.vpc_id
        d["NetworkInterfaceIds"] = self.network_interface_ids
        if self.file_system_type == "LUSTRE":
            lustre = dict(d.get("LustreConfiguration") or {})
            lustre.setdefault("MountName", self.mount_name)
            d["LustreConfiguration"] = lustre
        return d

    orig_create_fs = fsx_models.FSxBackend.create_file_system

    def create_fs(self, *args, **kwargs):
        fs = orig_create_fs(self, *args, **kwargs)
        fs.file_system_type_version = kwargs.get("file_system_type_version")
        return fs

    fsx_models.FileSystem.__init__ = fs_init
    fsx_models.FileSystem.to_dict = fs_to_dict
    fsx_models.FSxBackend.create_file_system = create_fs

    # 2. Unknown file system ids are an error, not an empty list.
    orig_describe_fs = fsx_models.FSxBackend.describe_file_systems

    def describe_fs(self, file_system_ids, **kwargs):
        for fid in file_system_ids or []:
            if fid not in self.file_systems:
                raise FileSystemNotFound(fid)
        return orig_describe_fs(self, file_system_ids=file_system_ids, **kwargs)

    fsx_models.FSxBackend.describe_file_systems = describe_fs

    # 5. The cluster security group, created in the subnets' VPC and deleted with the cluster.
    orig_create_cluster = eks_models.EKSBackend.create_cluster
    orig_delete_cluster = eks_models.EKSBackend.delete_cluster

    def create_cluster(self, *args, **kwargs):
        cluster = orig_create_cluster(self, *args, **kwargs)
        unique = uuid.uuid4().hex.upper()  # 29. its own issuer and endpoint
        cluster.identity = {"oidc": {"issuer": f"https://oidc.eks.{self.region_name}.amazonaws.com/id/{unique}"}}
        cluster.endpoint = f"https://{unique}.{unique[:3].lower()}.{self.region_name}.eks.amazonaws.com"
        vpc_cfg = cluster.resources_vpc_config = dict(cluster.resources_vpc_config or {})
        subnets = vpc_cfg.get("subnetIds") or []
        if subnets and not vpc_cfg.get("clusterSecurityGroupId"):
            ec2 = ec2_backends[self.account_id][self.region_name]
            vpc_id = ec2.get_subnet(subnets[0]).vpc_id
            sg = ec2.create_security_group(
                name=f"eks-cluster-sg-{cluster.name}-{uuid.uuid4().hex[:10]}",
                description="EKS created security group applied to ENI that is attached to EKS Control Plane "
                            "master nodes, as well as any managed workloads.",
                vpc_id=vpc_id, tags={"aws:eks:cluster-name": cluster.name})
            vpc_cfg.update(clusterSecurityGroupId=sg.id, vpcId=vpc_id)
            vpc_cfg.setdefault("securityGroupIds", [])
        return cluster

    def delete_cluster(self, name):
        cluster = orig_delete_cluster(self, name)
        sg_id = (cluster.resources_vpc_config or {}).get("clusterSecurityGroupId")
        if sg_id:
            ec2_backends[self.account_id][self.region_name].delete_security_group(group_id=sg_id)
        for key in [k for k in _addons if k[:2] == (self.region_name, name)]:
            del _addons[key]
        for key in [k for k in _access_entries if k[:2] == (self.region_name, name)]:  # 10.
            del _access_entries[key]
        for key in [k for k in _updates if k[:2] == (self.region_name, name)]:  # 13.
            del _updates[key]
        return cluster

    eks_models.EKSBackend.create_cluster = create_cluster

    # 6. The cluster's access configuration (authentication mode) is kept and returned.
    from moto.eks import responses as eks_responses

    orig_create_cluster_response = eks_responses.EKSResponse.create_cluster

    def create_cluster_response(self):
        result = orig_create_cluster_response(self)
        requested = self._get_param("accessConfig") or {}
        cluster = self.eks_backend.clusters[self._get_param("name")]
        cluster.access_config = {
            "authenticationMode": requested.get("authenticationMode", "CONFIG_MAP"),
            "bootstrapClusterCreatorAdminPermissions": requested.get("bootstrapClusterCreatorAdminPermissions", True),
        }
        return result

    eks_responses.EKSResponse.create_cluster = create_cluster_response

    # 7. The node group's update configuration (max unavailable) is kept and returned.
    orig_create_nodegroup_response = eks_responses.EKSResponse.create_nodegroup

    def create_nodegroup_response(self):
        result = orig_create_nodegroup_response(self)
        update_config = self._get_param("updateConfig")
        if update_config:
            cluster = self.eks_backend.clusters[self._get_param("name")]
            cluster.nodegroups[self._get_param("nodegroupName")].update_config = update_config
        return result

    eks_responses.EKSResponse.create_nodegroup = create_nodegroup_response
    eks_models.EKSBackend.delete_cluster = delete_cluster

    # 13. moto's node group config updates are kept for DescribeUpdate.
    orig_update_nodegroup_config = eks_models.EKSBackend.update_nodegroup_config

    def update_nodegroup_config(self, cluster_name, nodegroup_name, *args, **kwargs):
        update = orig_update_nodegroup_config(self, cluster_name, nodegroup_name, *args, **kwargs)
        created = update["createdAt"]
        _updates[(self.region_name, cluster_name, update["id"])] = {
            **update, "createdAt": created.timestamp() if hasattr(created, "timestamp") else created}
        return update

    eks_models.EKSBackend.update_nodegroup_config = update_nodegroup_config

    # 8. No invented SSH access on node groups.
    eks_models.DEFAULT_REMOTE_ACCESS = None

    # 15. PutBucketLogging with a Principal "*" statement in the target's policy.
    orig_log_policy = s3_models.FakeBucket._log_permissions_enabled_policy

    def log_policy(target_bucket, target_prefix):
        policy = target_bucket.policy
        if policy:
            doc = json.loads(policy.decode())
            stmts = doc.get("Statement", [])
            stmts = [stmts] if isinstance(stmts, dict) else stmts
            kept = [s for s in stmts if isinstance(s.get("Principal", {}), dict)]
            if len(kept) != len(stmts):
                saved = target_bucket.policy
                target_bucket.policy = json.dumps({**doc, "Statement": kept}).encode()
                try:
                    return orig_log_policy(target_bucket, target_prefix)
                finally:
                    target_bucket.policy = saved
        return orig_log_policy(target_bucket, target_prefix)

    s3_models.FakeBucket._log_permissions_enabled_policy = staticmethod(log_policy)

    # 16. Object writes into a bucket whose policy denies aws:SecureTransport=false (our data bucket).
    orig_get_permission = s3_models.FakeBucket.get_permission

    def get_permission(self, action, resource):
        policy = self.policy
        if policy:
            doc = json.loads(policy.decode())
            stmts = doc.get("Statement", [])
            stmts = [stmts] if isinstance(stmts, dict) else stmts
            kept = [s for s in stmts if not _denies_plain_http_only(s)]
            if len(kept) != len(stmts):
                self.policy = json.dumps({**doc, "Statement": kept}).encode()
                try:
                    return orig_get_permission(self, action, resource)
                finally:
                    self.policy = policy
        return orig_get_permission(self, action, resource)

    s3_models.FakeBucket.get_permission = get_permission

    # 20. DeleteProject by ARN (the provider's id for a CodeBuild project).
    from moto.codebuild import models as codebuild_models

    orig_delete_project = codebuild_models.CodeBuildBackend.delete_project

    def delete_project(self, project_name):
        for name, project in list(self.codebuild_projects.items()):
            if project.arn == project_name:
                project_name = name
        return orig_delete_project(self, project_name)

    codebuild_models.CodeBuildBackend.delete_project = delete_project

    # 21. UpdateProject: the fields given replace the project's, the others stay.
    from moto.codebuild import responses as codebuild_responses
    from moto.codebuild.exceptions import ResourceNotFoundException as CodeBuildNotFound
    from moto.core.responses import ActionResult
    from moto.core.utils import unix_time

    def update_project(self):
        name = self._get_param("name")
        projects = self.codebuild_backend.codebuild_projects
        project = projects.get(name) or next((p for p in projects.values() if p.arn == name), None)
        if project is None:
            raise CodeBuildNotFound(f"Project cannot be found: {name}")
        meta = project.project_metadata
        for key in ("description", "source", "secondarySources", "sourceVersion", "artifacts", "environment",
                    "serviceRole", "timeoutInMinutes", "queuedTimeoutInMinutes", "encryptionKey", "tags", "cache",
                    "vpcConfig", "logsConfig", "concurrentBuildLimit"):
            value = self._get_param(key)
            if value is not None:
                meta[key] = value
        project.tags = meta.get("tags")
        meta["lastModifiedDate"] = unix_time()
        return ActionResult({"project": meta})

    codebuild_responses.CodeBuildResponse.update_project = update_project

    # 17. Launch template versions: the template's own tags are not part of its data.
    orig_ltv_init = lt_models.LaunchTemplateVersion.__init__

    def ltv_init(self, template, number, data, description):
        specs = data.get("TagSpecifications")
        if specs:
            data = {**data, "TagSpecifications": [t for t in specs if t.get("ResourceType") != "launch-template"]}
            if not data["TagSpecifications"]:
                del data["TagSpecifications"]
        orig_ltv_init(self, template, number, data, description)

    lt_models.LaunchTemplateVersion.__init__ = ltv_init

    # 18. Security group rules that reference a group keep their description.
    from moto.ec2.models import security_groups as sg_models

    sg_models.SecurityGroupRule.description = property(
        lambda self: self.ip_range.get("Description") or self.source_group.get("Description"))

    # 19. A launch template's tags are its current ones, not those it was created with.
    lt_models.LaunchTemplate.tags = property(lambda self: self.get_tags(), lambda self, value: None)

    # 27. No Association on a network interface without a public address.
    from moto.ec2.models import elastic_network_interfaces as eni_models

    orig_association = eni_models.NetworkInterface.association

    eni_models.NetworkInterface.association = property(
        lambda self: orig_association.fget(self) if self.public_ip else None)

    # 28. An instance's security groups are its primary network interface's.
    from moto.ec2.models import instances as instance_models

    orig_prep_nics = instance_models.Instance.prep_nics

    def prep_nics(self, *args, **kwargs):
        result = orig_prep_nics(self, *args, **kwargs)
        primary = self.nics.get(0)
        if not self.security_groups and primary is not None and primary._group_set:
            self.security_groups = list(primary._group_set)
        return result

    instance_models.Instance.prep_nics = prep_nics

    # 23. EC2, Lambda and CodeBuild quotas in Service Quotas.
    from moto.servicequotas import models as sq_models

    orig_get_quota = sq_models.ServiceQuotasBackend.get_service_quota

    def get_service_quota(self, service_code: str, quota_code: str) -> dict[str, Any]:
        if quota_code in QUOTAS and QUOTAS[quota_code][0] == service_code:
            _, name, default = QUOTAS[quota_code]
            return {"ServiceCode": service_code, "ServiceName": service_code,
                    "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:{service_code}/"
                                f"{quota_code}",
                    "QuotaCode": quota_code, "QuotaName": name, "Value": _applied_quotas.get(quota_code, default),
                    "Unit": "None", "Adjustable": True, "GlobalQuota": False}
        return orig_get_quota(self, service_code, quota_code)

    sq_models.ServiceQuotasBackend.get_service_quota = get_service_quota


def _denies_plain_http_only(statement: dict) -> bool:
    """A Deny whose only condition is aws:SecureTransport=false: it never matches a TLS request."""
    return (statement.get("Effect") == "Deny"
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}})


# ------------------------------------------------------------------------------- served from memory
def _json(status: int, body: Any, content_type: str = "application/json", headers: dict | None = None):
    h = {"Content-Type": content_type, "x-amzn-RequestId": str(uuid.uuid4())}
    h.update(headers or {})
    return status, h, json.dumps(body)


def _eks_error(status: int, code: str, message: str, **extra):
    return _json(status, {"message": message, **extra}, headers={"x-amzn-ErrorType": code})


def _eks_addons(method: str, path: str, region: str, body: dict) -> tuple | None:
    """9. EKS add-ons (REST JSON)."""
    from moto.eks.models import eks_backends

    m = re.fullmatch(r"/clusters/([^/]+)/addons(?:/([^/]+))?(/update)?", path)
    if not m:
        return None
    cluster_name, addon_name, update = m.groups()
    clusters = eks_backends[ACCOUNT_ID][region].clusters
    if cluster_name not in clusters:
        return _eks_error(404, "ResourceNotFoundException", f"No cluster found for name: {cluster_name}.",
                          clusterName=cluster_name)
    now = time.time()
    if addon_name is None and method == "GET":
        names = sorted(a for (r, c, a) in _addons if (r, c) == (region, cluster_name))
        return _json(200, {"addons": names})
    if addon_name is None and method == "POST":
        name = body["addonName"]
        key = (region, cluster_name, name)
        if key in _addons:
            return _eks_error(409, "ResourceInUseException", f"Addon {name} already exists.", addonName=name)
        _addons[key] = addon = {
            "addonName": name, "clusterName": cluster_name, "status": "ACTIVE",
            "addonVersion": body.get("addonVersion") or "v1.0.0-eksbuild.1", "health": {"issues": []},
            "addonArn": f"arn:aws:eks:{region}:{ACCOUNT_ID}:addon/{cluster_name}/{name}/{uuid.uuid4()}",
            "createdAt": now, "modifiedAt": now, "tags": body.get("tags") or {},
            "podIdentityAssociations": [],
            **{k: body[k] for k in ("serviceAccountRoleArn", "configurationValues") if body.get(k)},
        }
        return _json(200, {"addon": addon})
    key = (region, cluster_name, addon_name)
    addon = _addons.get(key)
    if addon is None:
        return _eks_error(404, "ResourceNotFoundException",
                          f"No addon: {addon_name} found in cluster: {cluster_name}",
                          clusterName=cluster_name, addonName=addon_name)
    if method == "GET":
        return _json(200, {"addon": addon})
    if method == "DELETE":
        del _addons[key]
        return _json(200, {"addon": {**addon, "status": "DELETING"}})
    if method == "POST" and update:
        for field in ("addonVersion", "serviceAccountRoleArn", "configurationValues"):
            if body.get(field) is not None:
                addon[field] = body[field]
        addon["modifiedAt"] = now
        upd = {"id": str(uuid.uuid4()), "status": "Successful", "type": "AddonUpdate", "params": [],
               "createdAt": now, "errors": []}
        _updates[(region, cluster_name, upd["id"])] = upd  # 13.
        return _json(200, {"update": upd})
    return None


def _eks_update(path: str, region: str) -> tuple | None:
    """13. DescribeUpdate of a node group or add-on update made here or by moto."""
    m = re.fullmatch(r"/clusters/([^/]+)/updates/([^/]+)", path)
    if not m:
        return None
    update = _updates.get((region, m.group(1), m.group(2)))
    if update is None:
        return _eks_error(404, "ResourceNotFoundException", f"No update found for ID: {m.group(2)}",
                          clusterName=m.group(1))
    return _json(200, {"update": update})


def _moto_cluster(region: str, cluster_name: str):
    from moto.eks.models import eks_backends

    return eks_backends[ACCOUNT_ID][region].clusters.get(cluster_name)


def _eks_nodegroup_version(region: str, cluster_name: str, nodegroup_name: str, body: dict) -> tuple:
    """13. UpdateNodegroupVersion: a new launch template version (or AMI release / Kubernetes version)."""
    cluster = _moto_cluster(region, cluster_name)
    ng = cluster.nodegroups.get(nodegroup_name) if cluster else None
    if ng is None:
        return _eks_error(404, "ResourceNotFoundException", f"No node group found for name: {nodegroup_name}.",
                          clusterName=cluster_name, nodegroupName=nodegroup_name)
    params = []
    template = body.get("launchTemplate")
    if template:
        ng.launch_template = {**(ng.launch_template or {}), "version": str(template["version"])}
        params.append({"type": "LaunchTemplateVersion", "value": str(template["version"])})
    if body.get("version"):
        ng.version = body["version"]
        params.append({"type": "Version", "value": body["version"]})
    if body.get("releaseVersion"):
        ng.release_version = body["releaseVersion"]
        params.append({"type": "ReleaseVersion", "value": body["releaseVersion"]})
    now = time.time()
    upd = {"id": str(uuid.uuid4()), "status": "Successful", "type": "VersionUpdate", "params": params,
           "createdAt": now, "errors": []}
    _updates[(region, cluster_name, upd["id"])] = upd
    return _json(200, {"update": upd})


_TAGGABLE_ARN_RE = re.compile(r"arn:[^:]+:eks:([^:]+):(\d+):(nodegroup|addon|access-entry)/([^/]+)/(.+)")


def _eks_tags(method: str, arn: str, body: dict, tag_keys: list[str]) -> tuple | None:
    """12. Tags of node groups, add-ons and access entries (clusters: moto's own)."""
    m = _TAGGABLE_ARN_RE.fullmatch(arn)
    if not m:
        return None
    region, _, kind, cluster_name, _ = m.groups()
    if kind == "nodegroup":
        cluster = _moto_cluster(region, cluster_name)
        owner = next((ng for ng in (cluster.nodegroups.values() if cluster else ()) if ng.arn == arn), None)
        tags = owner.tags if owner is not None else None
    else:
        store, field = (_addons, "addonArn") if kind == "addon" else (_access_entries, "accessEntryArn")
        owner = next((x for x in store.values() if x[field] == arn), None)
        tags = owner.setdefault("tags", {}) if owner is not None else None
    if tags is None:
        return _eks_error(404, "NotFoundException", f"Resource was not found: {arn}")
    if method == "GET":
        return _json(200, {"tags": dict(tags)})
    if method == "POST":
        tags.update(body.get("tags") or {})
    elif method == "DELETE":
        for key in tag_keys:
            tags.pop(key, None)
    return _json(200, {})


def _eks_addon_versions(query: dict[str, list[str]]) -> tuple:
    """11. DescribeAddonVersions: two made-up builds per add-on, newest first. As in AWS, each lists its
    compatibility with more than one cluster version, and the default differs between them: the older build is
    the default for the version asked about, the newer one for the next Kubernetes version."""
    name = (query.get("addonName") or [""])[0]
    k8s = (query.get("kubernetesVersion") or ["1.34"])[0]
    major, _, minor = k8s.partition(".")
    nxt = f"{major}.{int(minor) + 1}" if minor.isdigit() else k8s + ".1"
    names = [name] if name else sorted({a for (_, _, a) in _addons})
    addons = [{
        "addonName": n, "type": "networking", "owner": "aws", "publisher": "eks",
        "addonVersions": [
            {"addonVersion": v, "architecture": ["amd64", "arm64"], "computeTypes": ["ec2"],
             "requiresConfiguration": False, "requiresIamPermissions": False,
             "compatibilities": [{"clusterVersion": k8s, "platformVersions": ["*"], "defaultVersion": not newer},
                                 {"clusterVersion": nxt, "platformVersions": ["*"], "defaultVersion": newer}]}
            for v, newer in (("v0.0.2-eksbuild.1", True), ("v0.0.1-eksbuild.1", False))],
    } for n in names]
    return _json(200, {"addons": addons})


def _eks_addon_configuration(query: dict[str, list[str]]) -> tuple:
    """14. DescribeAddonConfiguration: the schema recorded for the add-on (or given for this version), as a string."""
    import yaml

    name = (query.get("addonName") or [""])[0]
    version = (query.get("addonVersion") or [""])[0]
    schema = _addon_schemas.get((name, version))
    if schema == {}:  # --addon-schema with an empty file: a version that publishes no schema
        return _json(200, {"addonName": name, "addonVersion": version, "configurationSchema": "",
                           "podIdentityConfiguration": []})
    if schema is None:
        facts = ADDON_FACTS / f"{name}.yaml"
        recorded = (yaml.safe_load(facts.read_text()).get("configuration_schema") or {}) if facts.is_file() else {}
        schema = recorded.get("schema") or {"type": "object"}
    schema = {"$schema": "http://json-schema.org/draft-06/schema#", **schema}
    return _json(200, {"addonName": name, "addonVersion": version, "configurationSchema": json.dumps(schema),
                       "podIdentityConfiguration": []})


def _eks_access_entries(method: str, segments: list[str], region: str, body: dict) -> tuple | None:
    """10. Access entries and their access policies (REST JSON; ARNs arrive URL-encoded in the path)."""
    from moto.eks.models import eks_backends

    # clusters/<name>/access-entries[/<principal>[/access-policies[/<policy>]]]
    if len(segments) < 3 or segments[0] != "clusters" or segments[2] != "access-entries":
        return None
    cluster_name = segments[1]
    principal = segments[3] if len(segments) > 3 else None
    policies = len(segments) > 4 and segments[4] == "access-policies"
    policy = segments[5] if len(segments) > 5 else None
    if cluster_name not in eks_backends[ACCOUNT_ID][region].clusters:
        return _eks_error(404, "ResourceNotFoundException", f"No cluster found for name: {cluster_name}.",
                          clusterName=cluster_name)
    now = time.time()
    if principal is None:
        if method == "GET":
            return _json(200, {"accessEntries": sorted(p for (r, c, p) in _access_entries
                                                       if (r, c) == (region, cluster_name))})
        principal = body["principalArn"]
        key = (region, cluster_name, principal)
        if key in _access_entries:
            return _eks_error(409, "ResourceInUseException",
                              "The specified access entry resource is already in use on this cluster.",
                              clusterName=cluster_name)
        kind, _, ident = principal.split(":", 5)[-1].partition("/")
        _access_entries[key] = entry = {
            "clusterName": cluster_name, "principalArn": principal, "type": body.get("type") or "STANDARD",
            "kubernetesGroups": body.get("kubernetesGroups") or [],
            "username": body.get("username") or principal,
            "accessEntryArn": f"arn:aws:eks:{region}:{ACCOUNT_ID}:access-entry/{cluster_name}/{kind}/"
                              f"{ACCOUNT_ID}/{ident.split('/')[-1]}/{uuid.uuid4()}",
            "createdAt": now, "modifiedAt": now, "tags": body.get("tags") or {}, "_policies": {},
        }
        return _json(200, {"accessEntry": _public(entry)})
    key = (region, cluster_name, principal)
    entry = _access_entries.get(key)
    if entry is None:
        return _eks_error(404, "ResourceNotFoundException",
                          f"The specified principalArn could not be found: {principal}", clusterName=cluster_name)
    if not policies:
        if method == "GET":
            return _json(200, {"accessEntry": _public(entry)})
        if method == "DELETE":
            del _access_entries[key]
            return _json(200, {})
        return None
    if policy is None and method == "POST":
        assoc = {"policyArn": body["policyArn"], "accessScope": body.get("accessScope") or {"type": "cluster"},
                 "associatedAt": now, "modifiedAt": now}
        entry["_policies"][body["policyArn"]] = assoc
        return _json(200, {"clusterName": cluster_name, "principalArn": principal, "associatedAccessPolicy": assoc})
    if policy is None and method == "GET":
        return _json(200, {"clusterName": cluster_name, "principalArn": principal,
                           "associatedAccessPolicies": list(entry["_policies"].values())})
    if policy is not None and method == "DELETE":
        if entry["_policies"].pop(policy, None) is None:
            return _eks_error(404, "ResourceNotFoundException", f"The policy {policy} is not associated")
        return _json(200, {})
    return None


def _public(addon: dict) -> dict:
    return {k: v for k, v in addon.items() if not k.startswith("_")}


def _fsx_error(code: str, message: str):
    return _json(400, {"__type": code, "Message": message}, content_type="application/x-amz-json-1.1")


def _fsx(target: str, region: str, body: dict) -> tuple | None:
    """3. FSx data repository associations (JSON 1.1), and their tags; 4. DeleteFileSystem."""
    from moto.fsx.models import fsx_backends

    op = target[len(FSX_TARGET_PREFIX):]
    ok = lambda b: _json(200, b, content_type="application/x-amz-json-1.1")  # noqa: E731
    if op == "DeleteFileSystem":  # 4.
        backend = fsx_backends[ACCOUNT_ID][region]
        fs_id = body.get("FileSystemId", "")
        if fs_id in backend.file_systems:
            backend.delete_file_system(fs_id, body.get("ClientRequestToken", ""), None, None, None)
            backend.file_systems.pop(fs_id, None)
        return _fsx_error("FileSystemNotFound", f"File system '{fs_id}' does not exist.")
    if op == "CreateDataRepositoryAssociation":
        fs_id = body["FileSystemId"]
        if fs_id not in fsx_backends[ACCOUNT_ID][region].file_systems:
            return _fsx_error("FileSystemNotFound", f"File system '{fs_id}' does not exist.")
        assoc_id = f"dra-{uuid.uuid4().hex[:17]}"
        _dras[assoc_id] = dra = {
            "AssociationId": assoc_id,
            "ResourceARN": f"arn:aws:fsx:{region}:{ACCOUNT_ID}:association/{fs_id}/{assoc_id}",
            "FileSystemId": fs_id, "Lifecycle": "AVAILABLE", "FileSystemPath": body["FileSystemPath"],
            "DataRepositoryPath": body["DataRepositoryPath"],
            "BatchImportMetaDataOnCreate": bool(body.get("BatchImportMetaDataOnCreate", False)),
            "ImportedFileChunkSize": body.get("ImportedFileChunkSize") or 1024,
            "S3": body.get("S3") or {}, "Tags": body.get("Tags") or [], "CreationTime": time.time(),
        }
        return ok({"Association": dra})
    if op == "DescribeDataRepositoryAssociations":
        ids = body.get("AssociationIds") or []
        missing = [i for i in ids if i not in _dras]
        if missing:
            return _fsx_error("DataRepositoryAssociationNotFound",
                              f"Data repository association '{missing[0]}' does not exist.")
        found = [_dras[i] for i in ids] if ids else list(_dras.values())
        for f in body.get("Filters") or []:
            if f.get("Name") == "file-system-id":
                found = [d for d in found if d["FileSystemId"] in f.get("Values", [])]
        return ok({"Associations": found})
    if op == "DeleteDataRepositoryAssociation":
        dra = _dras.pop(body["AssociationId"], None)
        if dra is None:
            return _fsx_error("DataRepositoryAssociationNotFound",
                              f"Data repository association '{body['AssociationId']}' does not exist.")
        return ok({"AssociationId": dra["AssociationId"], "Lifecycle": "DELETING",
                   "DeleteDataInFileSystem": bool(body.get("DeleteDataInFileSystem", False))})
    if op == "UpdateDataRepositoryAssociation":
        dra = _dras.get(body["AssociationId"])
        if dra is None:
            return _fsx_error("DataRepositoryAssociationNotFound",
                              f"Data repository association '{body['AssociationId']}' does not exist.")
        for field in ("ImportedFileChunkSize", "S3"):
            if body.get(field) is not None:
                dra[field] = body[field]
        return ok({"Association": dra})
    # Tags of associations (moto's own tag calls know only file systems and backups).
    arn = body.get("ResourceARN", "")
    dra = next((d for d in _dras.values() if d["ResourceARN"] == arn), None) if ":association/" in arn else None
    if dra is not None:
        if op == "ListTagsForResource":
            return ok({"Tags": dra["Tags"]})
        if op == "TagResource":
            new = {t["Key"]: t["Value"] for t in body.get("Tags", [])}
            dra["Tags"] = [t for t in dra["Tags"] if t["Key"] not in new] + body.get("Tags", [])
            return ok({})
        if op == "UntagResource":
            dra["Tags"] = [t for t in dra["Tags"] if t["Key"] not in set(body.get("TagKeys", []))]
            return ok({})
    return None


def _lambda_account_settings(region: str):
    """26. GetAccountSettings: the concurrency quota (23) and what the functions leave unreserved of it."""
    from moto.awslambda.models import lambda_backends

    functions = list(lambda_backends[ACCOUNT_ID][region].list_functions())
    reserved = sum(int(getattr(f, "reserved_concurrency", None) or 0) for f in functions)
    total = int(_applied_quotas.get(LAMBDA_CONCURRENCY_QUOTA, QUOTAS[LAMBDA_CONCURRENCY_QUOTA][2]))
    return _json(200, {"AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000,
                                        "CodeSizeZipped": 52428800, "ConcurrentExecutions": total,
                                        "UnreservedConcurrentExecutions": total - reserved},
                       "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(functions)}})


class PatchedApp:
    """WSGI middleware: answers what moto lacks, hands everything else to moto."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        with _serve_lock:  # 25.
            response = self._serve(environ, start_response)
            try:
                return list(response)  # moto builds its body lazily for some answers: built under the lock
            finally:
                if hasattr(response, "close"):
                    response.close()

    def _serve(self, environ, start_response):
        m = _CRED_SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        presigned = None if m else _presigned_sts(environ)
        if presigned is not None:
            status, headers, body = presigned
            data = body.encode()
            headers["Content-Length"] = str(len(data))
            start_response(f"{status} {'OK' if status == 200 else 'Forbidden'}", list(headers.items()))
            return [data]
        if m:
            region, service = m.groups()
            result = None
            if service == "eks":
                result = self._eks(environ, region)
            elif service == "lambda" and environ.get("PATH_INFO", "").rstrip("/").endswith("/account-settings"):
                result = _lambda_account_settings(region)  # 26.
            elif service == "fsx" and environ.get("HTTP_X_AMZ_TARGET", "").startswith(FSX_TARGET_PREFIX):
                result = self._fsx(environ, region)
            if result is not None:
                status, headers, body = result
                data = body.encode()
                headers["Content-Length"] = str(len(data))
                start_response(f"{status} {'OK' if status == 200 else 'Error'}", list(headers.items()))
                return [data]
        return self.app(environ, start_response)

    @staticmethod
    def _body(environ) -> dict:
        n = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(n) if n else b""
        # Hand the body back in case moto has to answer after all.
        import io
        environ["wsgi.input"] = io.BytesIO(raw)
        return json.loads(raw) if raw.strip() else {}

    def _eks(self, environ, region):
        """30. A create that carries a clientRequestToken already answered gets that answer again."""
        token = self._body(environ).get("clientRequestToken") if environ["REQUEST_METHOD"] == "POST" else None
        key = (region, environ.get("PATH_INFO", ""), str(token))
        if token and key in _eks_replies:
            return _eks_replies[key]
        r = self._eks_route(environ, region)
        if token and r is not None and r[0] == 200:
            _eks_replies[key] = r
        return r

    def _eks_route(self, environ, region):
        from urllib.parse import parse_qs, unquote, urlsplit

        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if path == "/addons/supported-versions":  # 11.
            return _eks_addon_versions(query)
        if path == "/addons/configuration-schemas":  # 14.
            return _eks_addon_configuration(query)
        # ARNs hold '/' once decoded: split the raw path
        raw = urlsplit(environ.get("RAW_URI") or environ.get("REQUEST_URI") or path).path
        if raw.startswith("/tags/"):  # 12.
            body = self._body(environ) if method == "POST" else {}
            return _eks_tags(method, unquote(raw[len("/tags/"):]), body, query.get("tagKeys", []))
        if "/access-entries" in path:  # 10.
            body = self._body(environ) if method in ("POST", "PUT") else {}
            return _eks_access_entries(method, [unquote(p) for p in raw.strip("/").split("/")], region, body)
        m = re.fullmatch(r"/clusters/([^/]+)/node-groups/([^/]+)/update-version", path)
        if m and method == "POST":  # 13.
            return _eks_nodegroup_version(region, m.group(1), m.group(2), self._body(environ))
        if "/updates/" in path:  # 13.
            return _eks_update(path, region)
        if "/addons" not in path:
            return None
        body = self._body(environ) if method in ("POST", "PUT") else {}
        r = _eks_addons(method, path, region, body)
        if r is not None and r[0] == 200:
            status, headers, text = r
            doc = json.loads(text)
            if "addon" in doc:
                doc["addon"] = _public(doc["addon"])
            return status, headers, json.dumps(doc)
        return r

    def _fsx(self, environ, region):
        target = environ["HTTP_X_AMZ_TARGET"]
        ops = ("DataRepositoryAssociation", "TagResource", "UntagResource", "ListTagsForResource", "DeleteFileSystem")
        if not any(o in target for o in ops):
            return None
        return _fsx(target, region, self._body(environ))


# ------------------------------------------------------------------------------- presigned STS (24)
PRESIGNED_STS_VALIDITY_S = 15 * 60  # what STS grants a presigned GetCallerIdentity URL, whatever X-Amz-Expires says
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _sts_error(code: str, message: str):
    body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
            f"</ErrorResponse>")
    return 403, {"Content-Type": "text/xml"}, body


def _sigv4_query_signature(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
                           secret: str, payload_hash: str) -> str:
    """SigV4 of a presigned request (docs: "Create a signed AWS API request"), from the request as received."""
    import hashlib
    import hmac
    from urllib.parse import quote

    params = dict(query)
    enc = lambda v: quote(v, safe="-_.~")  # noqa: E731 -- RFC 3986 unreserved characters stay
    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query) if k != "X-Amz-Signature")
    signed = params["X-Amz-SignedHeaders"].split(";")
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    request = "\n".join([method, path or "/", canonical_query, canonical_headers, ";".join(signed), payload_hash])
    _, date, region, service, terminal = params["X-Amz-Credential"].split("/")
    to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], f"{date}/{region}/{service}/{terminal}",
                         hashlib.sha256(request.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, terminal):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _presigned_sts(environ) -> tuple | None:
    from datetime import datetime
    from urllib.parse import parse_qsl

    if environ["REQUEST_METHOD"] != "GET" or "X-Amz-Credential" not in environ.get("QUERY_STRING", ""):
        return None
    query = parse_qsl(environ["QUERY_STRING"], keep_blank_values=True)
    params = dict(query)
    try:
        key_id, _, _, service, _ = params["X-Amz-Credential"].split("/")
    except ValueError:
        return None
    if service != "sts" or params.get("Action") != "GetCallerIdentity":
        return None
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    role = sts_backends[ACCOUNT_ID]["aws"].get_assumed_role_from_access_key(key_id)
    if role is not None:
        secret, token = role.secret_access_key, role.session_token
        identity = {"Arn": role.arn, "UserId": role.user_id, "Account": role.account_id}
    else:
        iam = iam_backends[ACCOUNT_ID]["aws"]
        user = iam.get_user_from_access_key_id(key_id)
        if user is None:
            return _sts_error("InvalidClientTokenId", "The security token included in the request is invalid.")
        secret = next(k.secret_access_key for k in iam.list_access_keys(user.name) if k.access_key_id == key_id)
        token, identity = None, {"Arn": user.arn, "UserId": user.id, "Account": user.account_id}
    if params.get("X-Amz-Security-Token") != token:
        return _sts_error("InvalidClientTokenId", "The security token included in the request is invalid.")
    headers = {k[5:].lower().replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
    given = params.get("X-Amz-Signature", "")
    if not any(given == _sigv4_query_signature("GET", environ.get("PATH_INFO", "/"), query, headers, secret, h)
               for h in (_EMPTY_SHA256, "UNSIGNED-PAYLOAD")):
        return _sts_error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                                   "signature you provided.")
    signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (datetime.now(UTC) - signed_at).total_seconds() > PRESIGNED_STS_VALIDITY_S:
        return _sts_error("ExpiredToken", "Signature expired.")
    request_id = str(uuid.uuid4())
    if "application/json" in environ.get("HTTP_ACCEPT", ""):
        return _json(200, {"GetCallerIdentityResponse": {"GetCallerIdentityResult": identity,
                                                         "ResponseMetadata": {"RequestId": request_id}}})
    fields = "".join(f"<{k}>{v}</{k}>" for k, v in identity.items())
    return 200, {"Content-Type": "text/xml"}, (
        f'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
        f"{fields}</GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId>"
        f"</ResponseMetadata></GetCallerIdentityResponse>")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when stdin closes (the parent died)")
    ap.add_argument("--quota", action="append", default=[], metavar="CODE=VALUE",
                    help="23. an applied quota value (Service Quotas: EC2, Lambda, CodeBuild), e.g. L-DB2E81BA=64")
    ap.add_argument("--addon-schema", action="append", default=[], metavar="ADDON@VERSION=FILE",
                    help="14. the configuration schema (a JSON file; empty: none) served for one add-on version")
    args = ap.parse_args(argv)
    for item in args.addon_schema:
        key, _, path = item.partition("=")
        addon, _, version = key.partition("@")
        if not (addon and version and path):
            ap.error(f"--addon-schema {item}: expected ADDON@VERSION=FILE")
        text = Path(path).read_text()
        _addon_schemas[(addon, version)] = json.loads(text) if text.strip() else {}
    for item in args.quota:
        code, _, value = item.partition("=")
        if code not in QUOTAS:
            ap.error(f"--quota {item}: not one of {', '.join(QUOTAS)}")
        _applied_quotas[code] = float(value)

    _patch_models()
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", args.port, PatchedApp(DomainDispatcherApplication(create_backend_app)),
                         threaded=True, request_handler=MotoRequestHandler)
    if args.exit_on_stdin_eof:
        # The test holds our stdin: if it dies without stopping us, we go too (no orphaned server).
        def watch() -> None:
            sys.stdin.read()
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
