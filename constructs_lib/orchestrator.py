"""The Ray orchestrator: an AWS Step Functions pipeline that trains, then runs batch inference, on the cluster.

Each step is a Kubernetes Job started with ``arn:aws:states:::eks:runJob.sync`` (Step Functions waits for the
Job to finish): the Job runs ``ray job submit`` against the head service with the cluster's own Ray image,
like ``make submit`` does from a laptop. Both steps share a per-execution run directory on the FSx export
mount (``/ray/export/orchestrator/<run id>``): training writes its Ray Train checkpoints there, inference
loads the newest one and writes its predictions next to it.

``state_machine_definition`` is a pure function (the tests validate its ASL and the Jobs inside); the
``RayOrchestrator`` construct adds the AWS and Kubernetes side: state machine, its role, an encrypted log
group, the EKS access entry (Kubernetes group ``ray-orchestrator``) and a namespaced Role + RoleBinding.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from constructs import Construct

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.eks_access_entry import EksAccessEntry
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.sfn_state_machine import (
    SfnStateMachine,
    SfnStateMachineLoggingConfiguration,
    SfnStateMachineTracingConfiguration,
)
from cdktf_cdktf_provider_kubernetes.config_map_v1 import ConfigMapV1, ConfigMapV1Metadata
from cdktf_cdktf_provider_kubernetes.role_binding_v1 import (
    RoleBindingV1,
    RoleBindingV1Metadata,
    RoleBindingV1RoleRef,
    RoleBindingV1Subject,
)
from cdktf_cdktf_provider_kubernetes.role_v1 import RoleV1, RoleV1Metadata, RoleV1Rule

from conventions.kubernetes import CORE_ROLE, node_selector

from .iam import policy_document, service_assume_role_policy, statement
from .ray_manifests import (
    EXPORT_MOUNT,
    container_security_context,
    dashboard_url,
    submitter_command,
    submitter_resources,
)

RUN_JOB_SYNC = "arn:aws:states:::eks:runJob.sync"
KUBERNETES_GROUP = "ray-orchestrator"
SCRIPTS_CONFIG_MAP = "ray-orchestrator-scripts"
RUN_ROOT = f"{EXPORT_MOUNT}/orchestrator"
LOG_TAIL_LINES = "200"  # runJob.sync output is capped at 256 KiB: keep only the end of the submit log
FINISHED_JOB_TTL_SECONDS = 7 * 86400
# Namespaced verbs the runJob.sync integration needs: create the Job, watch it, read its pods' logs, and
# delete it when an execution is stopped.
RBAC_RULES = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
)


@dataclass(frozen=True)
class PipelineProps:
    """What the state machine definition needs (strings may be Terraform references)."""

    cluster_name: str
    cluster_endpoint: str
    cluster_ca: str  # base64, as EKS reports it
    namespace: str
    head_service: str
    image: str
    training_script: str  # entrypoints, files of the scripts ConfigMap
    inference_script: str
    training_args: tuple[str, ...]
    inference_args: tuple[str, ...]
    step_timeout_seconds: int
    retries: int
    pip: tuple[str, ...]  # runtime_env pip of both steps: what the image lacks (stacks.contract.job_pip)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def dashboard_address(self) -> str:
        return dashboard_url(self.head_service)


def run_dir() -> str:
    # $RUN_ID is expanded by the submitter's shell (plain $NAME: `${` would be a Terraform interpolation).
    return f"{RUN_ROOT}/$RUN_ID"


def submit_command(props: PipelineProps, step: str) -> str:
    """The shell command of a step's submitter container."""
    if step == "train":
        entry = ["python", props.training_script, *props.training_args]
        managed = f"--storage-path {run_dir()}"
    else:
        entry = ["python", props.inference_script, *props.inference_args]
        managed = f"--checkpoint {run_dir()} --output-path {run_dir()}/predictions"
    return submitter_command(props.dashboard_address, f"{shlex.join(entry)} {managed}", props.pip)


def step_job(props: PipelineProps, step: str) -> dict:
    """The Job a step runs, in Step Functions' JSONPath parameter form (keys ending in ``.$`` are evaluated).

    The Job name is fresh per attempt (a retry must not collide with the failed Job, which stays for its
    logs); the run id (same for every attempt and both steps) goes into a label and the RUN_ID variable.
    """
    labels = {"app.kubernetes.io/name": "ray-orchestrator", "app.kubernetes.io/component": step, **props.labels}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name.$": f"States.Format('ray-{step}-{{}}', States.UUID())",
            "namespace": props.namespace,
            "labels": {**labels, "ray-orchestrator/run-id.$": "$.run_id"},
        },
        "spec": {
            "backoffLimit": 0,  # retries are the state machine's, with backoff and a visible history
            "activeDeadlineSeconds": props.step_timeout_seconds,
            "ttlSecondsAfterFinished": FINISHED_JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": node_selector(CORE_ROLE),
                    # Submitting talks HTTP to the Ray dashboard; the pod needs no Kubernetes API token.
                    "automountServiceAccountToken": False,
                    "containers": [{
                        "name": "submit",
                        "image": props.image,
                        "command": ["bash", "-c", submit_command(props, step)],
                        "env": [{"name": "RUN_ID", "value.$": "$.run_id"}],
                        "resources": submitter_resources(),
                        "securityContext": container_security_context(),
                        "volumeMounts": [{"name": "scripts", "mountPath": "/config", "readOnly": True},
                                         {"name": "job", "mountPath": "/tmp/job"}],
                    }],
                    "volumes": [{"name": "scripts", "configMap": {"name": SCRIPTS_CONFIG_MAP}},
                                {"name": "job", "emptyDir": {}}],
                },
            },
        },
    }


def _task(props: PipelineProps, step: str, comment: str) -> dict:
    return {
        "Type": "Task",
        "Comment": comment,
        "Resource": RUN_JOB_SYNC,
        "Parameters": {
            "ClusterName": props.cluster_name,
            "Endpoint": props.cluster_endpoint,
            "CertificateAuthority": props.cluster_ca,
            "Namespace": props.namespace,
            "LogOptions": {"RetrieveLogs": True, "LogParameters": {"tailLines": [LOG_TAIL_LINES]}},
            "Job": step_job(props, step),
        },
        # Keep the run id for the next step; the Job's final state and log tail land under $.steps.
        "ResultPath": f"$.steps.{step}",
        "TimeoutSeconds": props.step_timeout_seconds + 600,  # the Job's own deadline fires first
        "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 60, "MaxAttempts": props.retries,
                   "BackoffRate": 2.0}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "PipelineFailed"}],
    }


def state_machine_definition(props: PipelineProps) -> dict:
    """Amazon States Language: Prepare (run id) -> Train -> Infer; any error -> PipelineFailed."""
    return {
        "Comment": f"Ray on EKS: train on {props.namespace}/{props.head_service}, then batch inference "
                   f"from the checkpoint under {RUN_ROOT}/<run id>",
        "StartAt": "Prepare",
        "TimeoutSeconds": 2 * (props.step_timeout_seconds + 600) * (props.retries + 1),
        "States": {
            "Prepare": {
                "Type": "Pass",
                "Comment": "One id per execution: the run directory of both steps",
                "Parameters": {"run_id.$": "States.UUID()", "input.$": "$"},
                "Next": "Train",
            },
            "Train": {**_task(props, "train", "Ray Train job; checkpoints under the run directory"),
                      "Next": "Infer"},
            "Infer": {**_task(props, "infer", "Ray Data batch inference with the newest checkpoint of the run"),
                      "End": True},
            "PipelineFailed": {"Type": "Fail", "Comment": "A step failed, timed out or could not start its Job",
                               "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
        },
    }


def escape_terraform(text: str) -> str:
    """File contents in Terraform JSON: ``${`` and ``%{`` would be interpolations/directives."""
    return text.replace("${", "$${").replace("%{", "%%{")


# ------------------------------------------------------------------------------------------ construct
@dataclass(frozen=True)
class RayOrchestratorProps:
    name: str  # deployment name: prefixes AWS names
    region: str
    account_id: str
    partition: str
    pipeline: PipelineProps
    scripts: dict[str, str]  # file name -> content, mounted at /config in the submitter pods
    log_retention_days: int
    log_level: str
    key_deletion_window_days: int = 30


class RayOrchestrator(Construct):
    """Addresses: ``aws_sfn_state_machine.ray_orchestrator``, ``aws_iam_role.ray_orchestrator``,
    ``aws_cloudwatch_log_group.ray_orchestrator``, ``aws_kms_key.ray_orchestrator``,
    ``aws_eks_access_entry.ray_orchestrator``, ``kubernetes_role_v1.ray_orchestrator`` (and binding),
    ``kubernetes_config_map_v1.ray_orchestrator_scripts``."""

    state_machine: SfnStateMachine
    role: IamRole
    definition: dict

    def __init__(self, scope: Construct, id: str, props: RayOrchestratorProps) -> None:
        super().__init__(scope, id)
        p = props.pipeline
        arn = f"arn:{props.partition}"
        cluster_arn = f"{arn}:eks:{props.region}:{props.account_id}:cluster/{p.cluster_name}"
        log_group_name = f"/aws/vendedlogs/states/{props.name}-ray-orchestrator"

        # The ray stack sees no KMS key of the infra stack (not an output), so the orchestrator brings its
        # own: its key policy names exactly this log group, nothing else can use it through the logs service.
        root = f"{arn}:iam::{props.account_id}:root"
        key = KmsKey(Construct(self, "key"), id, description=f"{props.name}: Ray orchestrator logs",
                     enable_key_rotation=True, deletion_window_in_days=props.key_deletion_window_days,
                     policy=policy_document([
                         {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": root},
                          "Action": "kms:*", "Resource": "*"},
                         {"Sid": "CloudWatchLogsEncrypt", "Effect": "Allow",
                          "Principal": {"Service": f"logs.{props.region}.amazonaws.com"},
                          "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                     "kms:Describe*"],
                          "Resource": "*",
                          "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn":
                                                      f"{arn}:logs:{props.region}:{props.account_id}:log-group:{log_group_name}"}}},
                     ]))
        KmsAlias(Construct(self, "alias"), id, name=f"alias/{props.name}-ray-orchestrator", target_key_id=key.key_id)
        logs = CloudwatchLogGroup(Construct(self, "logs"), id, name=log_group_name,
                                  retention_in_days=props.log_retention_days, kms_key_id=key.arn)

        self.role = IamRole(Construct(self, "role"), id, name=f"{props.name}-ray-orchestrator",
                            assume_role_policy=service_assume_role_policy("states.amazonaws.com"))
        IamRolePolicy(Construct(self, "policy"), id, role=self.role.id, name="run-ray-jobs", policy=policy_document([
            # runJob.sync looks the cluster up; the Kubernetes side is RBAC (below), not IAM.
            statement(["eks:DescribeCluster"], [cluster_arn], sid="DescribeOwnCluster"),
            # CloudWatch Logs vended delivery: these APIs have no resource-level permissions (AWS requires *).
            statement(["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                       "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                       "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"], ["*"], sid="LogDelivery"),
            # X-Ray trace segments: PutTraceSegments and friends have no resource-level permissions either.
            statement(["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                       "xray:GetSamplingTargets"], ["*"], sid="Tracing"),
        ]))

        self.definition = state_machine_definition(p)
        self.state_machine = SfnStateMachine(
            self, id, name=f"{props.name}-ray-orchestrator", role_arn=self.role.arn, type="STANDARD",
            definition=json.dumps(self.definition, indent=2),
            logging_configuration=SfnStateMachineLoggingConfiguration(
                # Inputs/outputs of each state (Job specs, the submit log tail): no secrets, and what an
                # operator needs to see why a step failed; the log group is KMS-encrypted.
                log_destination=f"{logs.arn}:*", level=props.log_level, include_execution_data=True),
            tracing_configuration=SfnStateMachineTracingConfiguration(enabled=True))

        # The state machine's role becomes a member of one Kubernetes group; RBAC below says what it may do.
        EksAccessEntry(Construct(self, "access"), id, cluster_name=p.cluster_name, principal_arn=self.role.arn,
                       type="STANDARD", kubernetes_groups=[KUBERNETES_GROUP])
        rbac_role = RoleV1(Construct(self, "rbac"), id, metadata=RoleV1Metadata(name=KUBERNETES_GROUP, namespace=p.namespace),
                           rule=[RoleV1Rule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
                                 for r in RBAC_RULES])
        RoleBindingV1(Construct(self, "binding"), id, metadata=RoleBindingV1Metadata(name=KUBERNETES_GROUP, namespace=p.namespace),
                      role_ref=RoleBindingV1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                                    name=rbac_role.metadata.name),
                      subject=[RoleBindingV1Subject(kind="Group", name=KUBERNETES_GROUP,
                                                    api_group="rbac.authorization.k8s.io")])
        ConfigMapV1(self, "ray_orchestrator_scripts",
                    metadata=ConfigMapV1Metadata(name=SCRIPTS_CONFIG_MAP, namespace=p.namespace),
                    data={k: escape_terraform(v) for k, v in sorted(props.scripts.items())})


def start_execution_command(state_machine_arn: str, region: str) -> str:
    return f"aws stepfunctions start-execution --region {region} --state-machine-arn {state_machine_arn}"
