"""The Ray orchestrator: an AWS Step Functions pipeline that trains, then runs batch inference, on the cluster.

Each step is a Kubernetes Job that runs ``ray job submit`` against the head service with the cluster's own Ray
image, like ``make submit`` does from a laptop. The function builds those Jobs itself from templates packaged with
it (``function_steps``) and the image in its environment; the state machine passes only the step, the run id and
the Job's name, and only the state machine's role is granted invocation in the function's resource policy. Both
steps share a per-execution run directory on the FSx export mount (``/ray/export/orchestrator/<run id>``):
training writes its Ray Train checkpoints there, inference loads the newest one and writes its predictions next
to it.

Step Functions' ``eks:runJob`` reaches only public Kubernetes endpoints, and ours is private by default. So a
Lambda function in the cluster's private subnets (``lambdas/ray_orchestrator.py``) makes the Kubernetes calls
through the private endpoint, and the state machine drives it with ``lambda:invoke`` and a Wait/Choice loop per
step: submit the Job, poll its status until it succeeded or failed (its activeDeadlineSeconds, the function's
overdue check and the state machine's TimeoutSeconds bound the loop), then fetch the pod's log tail into the
execution history; a failed attempt is retried with a new Job.

``state_machine_definition`` and ``function_steps`` are pure functions (the tests validate the ASL, and the Jobs the
function's code builds from the steps). ``RayOrchestrator`` adds the AWS side: state machine and its role (may
invoke the function, nothing else of note), the function with its role, its resource policy (the state machine's
role may invoke it), security group and the cluster security group rule for HTTPS from it, KMS-encrypted log
groups, and the EKS access entry that maps the function's role to the Kubernetes group ``ray-orchestrator``.
``RayOrchestratorKubernetes`` adds the namespaced Role + RoleBinding for that group and the scripts ConfigMap.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from cdktf import AssetType, TerraformAsset, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.eks_access_entry import EksAccessEntry
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionEnvironment,
    LambdaFunctionLoggingConfig,
    LambdaFunctionTracingConfig,
    LambdaFunctionVpcConfig,
)
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.sfn_state_machine import (
    SfnStateMachine,
    SfnStateMachineLoggingConfiguration,
    SfnStateMachineTracingConfiguration,
)
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from cdktf_cdktf_provider_kubernetes.config_map_v1 import ConfigMapV1, ConfigMapV1Metadata
from cdktf_cdktf_provider_kubernetes.role_binding_v1 import (
    RoleBindingV1,
    RoleBindingV1Metadata,
    RoleBindingV1RoleRef,
    RoleBindingV1Subject,
)
from cdktf_cdktf_provider_kubernetes.role_v1 import RoleV1, RoleV1Metadata, RoleV1Rule
from constructs import Construct

from conventions.kubernetes import CORE_ROLE, node_selector, submitter_labels
from conventions.ray import dashboard_url
from lambdas import ray_orchestrator as function_code
from lambdas.ray_orchestrator import DEADLINE_GRACE_SECONDS, FAILED, RUN_ID_ENV, RUNNING, STEPS_FILE, SUCCEEDED

from .checkov import skip
from .iam import policy_document, service_assume_role_policy, service_assume_role_policy_from, statement
from .kms import MAX_DELETION_WINDOW_DAYS
from .manifests.jobs import submitter_command
from .manifests.pods import (
    EXPORT_MOUNT,
    container_security_context,
    pod_security_context,
    submitter_resources,
    token_auth_env,
)

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
KUBERNETES_GROUP = "ray-orchestrator"
SCRIPTS_CONFIG_MAP = "ray-orchestrator-scripts"
RUN_ROOT = f"{EXPORT_MOUNT}/orchestrator"
FINISHED_JOB_TTL_SECONDS = 7 * 86400
# Namespaced verbs: create a step's Job and read it, list its pods and read their logs; list/watch/delete
# let an operator's tooling acting as the group follow and clean up its Jobs.
RBAC_RULES = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
)
STEPS = (("train", "Train", "Ray Train job; checkpoints under the run directory"),
         ("infer", "Infer", "Ray Data batch inference with the newest checkpoint of the run"))
# The function: one Kubernetes call set per invoke (the waiting happens in the state machine).
FUNCTION_RUNTIME = "python3.12"
FUNCTION_MODULE = Path(function_code.__file__)  # packaged alone, at the zip's root
FUNCTION_HANDLER = f"{FUNCTION_MODULE.stem}.{function_code.handler.__name__}"
FUNCTION_TIMEOUT_SECONDS = 30
FUNCTION_MEMORY_MB = 256
# Invocation errors worth retrying: Lambda's own transient ones (as AWS recommends for lambda:invoke) and the
# function's TransientApiError (API server unreachable, throttled, 5xx).
TRANSIENT_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                    "Lambda.TooManyRequestsException", "TransientApiError"]
RETRY_BACKOFF_SECONDS = 60  # between a failed attempt and the next one
# A Standard execution fails at 25,000 history events; a poll iteration (Wait, Task, Choice) writes 9. Polling
# slower for long steps keeps a whole execution (2 steps x (retries + 1) attempts) well under the limit.
MAX_POLLS_PER_ATTEMPT = 200
MIN_POLL_SECONDS = 30
HISTORY_EVENT_LIMIT = 25_000


@dataclass(frozen=True)
class PipelineProps:
    """What the pipeline needs: its Jobs, and where the function finds the cluster (strings may be Terraform
    references)."""

    cluster_name: str
    cluster_endpoint: str
    cluster_ca: str  # base64, as EKS reports it
    namespace: str
    head_service: str
    image: str
    ray_cluster: str  # its name: the token Secret and the submitter label the head's NetworkPolicy admits
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
    # $RUN_ID is expanded by the submitter's shell; the function sets it (a DNS label: no spaces, no dots).
    return f"{RUN_ROOT}/${RUN_ID_ENV}"


def submit_command(props: PipelineProps, step: str) -> str:
    """The shell command of a step's submitter container."""
    if step == "train":
        entry = ["python", props.training_script, *props.training_args]
        managed = f"--storage-path {run_dir()}"
    else:
        entry = ["python", props.inference_script, *props.inference_args]
        managed = f"--checkpoint {run_dir()} --output-path {run_dir()}/predictions"
    return submitter_command(props.dashboard_address, f"{shlex.join(entry)} {managed}", props.pip)


def step_template(props: PipelineProps, step: str) -> dict:
    """The Job a step runs, as the function's package carries it: everything but what the function fills in per
    attempt (lambdas/ray_orchestrator.py step_job: the name -- fresh per attempt, so a retry does not collide with
    the failed Job, which stays for its logs --, the namespace, the run id's label and RUN_ID variable, the image).
    """
    labels = {"app.kubernetes.io/name": "ray-orchestrator", "app.kubernetes.io/component": step, **props.labels}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": dict(labels)},
        "spec": {
            "backoffLimit": 0,  # retries are the state machine's, with backoff and a visible history
            "activeDeadlineSeconds": props.step_timeout_seconds,
            "ttlSecondsAfterFinished": FINISHED_JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": {**labels, **submitter_labels(props.ray_cluster)}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": node_selector(CORE_ROLE),
                    # Submitting talks HTTP to the Ray dashboard; the pod needs no Kubernetes API token.
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "containers": [{
                        "name": "submit",
                        "command": ["bash", "-c", submit_command(props, step)],
                        "env": token_auth_env(props.ray_cluster),
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


def function_steps(props: PipelineProps) -> dict[str, dict]:
    """The function's step templates by step name: the content of its package's STEPS_FILE."""
    return {step: step_template(props, step) for step, _, _ in STEPS}


def function_steps_file(props: PipelineProps) -> tuple[str, bytes]:
    """STEPS_FILE and its bytes (stable: sorted keys), for the function's package."""
    return STEPS_FILE, (json.dumps(function_steps(props), indent=1, sort_keys=True) + "\n").encode()


def poll_interval_seconds(step_timeout_seconds: int) -> int:
    """Seconds between status polls: MIN_POLL_SECONDS, or slower when an attempt could outlast
    MAX_POLLS_PER_ATTEMPT polls."""
    return max(MIN_POLL_SECONDS, math.ceil((step_timeout_seconds + DEADLINE_GRACE_SECONDS) / MAX_POLLS_PER_ATTEMPT))


def attempt_budget_seconds(step_timeout_seconds: int) -> int:
    """The longest one attempt of a step can take: the function reports its Job failed once it is overdue."""
    return (step_timeout_seconds + DEADLINE_GRACE_SECONDS + poll_interval_seconds(step_timeout_seconds)
            + RETRY_BACKOFF_SECONDS + 4 * FUNCTION_TIMEOUT_SECONDS)


def _invoke(function_arn: str, payload: dict, selector: dict, result_path: str, next_state: str, comment: str,
            on_error: str = "PipelineFailed", error_path: str = "$.error") -> dict:
    return {
        "Type": "Task",
        "Comment": comment,
        "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": function_arn, "Payload": payload},
        "ResultSelector": selector,
        "ResultPath": result_path,
        "TimeoutSeconds": 2 * FUNCTION_TIMEOUT_SECONDS,
        "Retry": [{"ErrorEquals": TRANSIENT_ERRORS, "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2.0}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": error_path, "Next": on_error}],
        "Next": next_state,
    }


def _step_states(props: PipelineProps, function_arn: str, step: str, title: str, comment: str,
                 next_state: str) -> dict[str, dict]:
    """Attempt -> Submit -> (Wait -> Poll -> Check)* -> Logs -> next; a failed Job -> FailedLogs -> RetryCheck ->
    Backoff -> Attempt, or Failed once the retries are spent."""
    job = f"$.steps.{step}"
    name = {"name.$": f"{job}.job.name"}
    log = {"pod.$": "$.Payload.pod", "log.$": "$.Payload.log"}
    return {
        f"{title}Attempt": {
            "Type": "Pass",
            "Comment": "Counts the attempts and draws the attempt's Job name (a retried submit call reuses it)",
            "Parameters": {"count.$": f"States.MathAdd($.attempts.{step}.count, 1)",
                           "job_name.$": f"States.Format('ray-{step}-{{}}', States.UUID())"},
            "ResultPath": f"$.attempts.{step}",
            "Next": f"{title}Submit",
        },
        # The step's name and the ids: the function builds the Job itself.
        f"{title}Submit": _invoke(function_arn, {"action": "submit", "step": step, "run_id.$": "$.run_id",
                                                 "job_name.$": f"$.attempts.{step}.job_name"},
                                  {"name.$": "$.Payload.name", "uid.$": "$.Payload.uid"}, f"{job}.job",
                                  f"{title}Wait", f"{comment}: create the Job"),
        f"{title}Wait": {"Type": "Wait", "Seconds": poll_interval_seconds(props.step_timeout_seconds),
                         "Next": f"{title}Poll"},
        f"{title}Poll": _invoke(function_arn, {"action": "status", **name},
                                {"phase.$": "$.Payload.phase", "reason.$": "$.Payload.reason",
                                 "message.$": "$.Payload.message"}, f"{job}.status", f"{title}Check",
                                "Read the Job's status"),
        f"{title}Check": {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"{job}.status.phase", "StringEquals": SUCCEEDED, "Next": f"{title}Logs"},
                {"Variable": f"{job}.status.phase", "StringEquals": FAILED, "Next": f"{title}FailedLogs"},
                {"Variable": f"{job}.status.phase", "StringEquals": RUNNING, "Next": f"{title}Wait"},
            ],
            "Default": "UnknownJobPhase",
        },
        # A log tail that cannot be read does not change the step's outcome.
        f"{title}Logs": _invoke(function_arn, {"action": "logs", **name}, log, f"{job}.log", next_state,
                                "The submit log's tail, into the execution history", on_error=next_state,
                                error_path=f"{job}.log_error"),
        f"{title}FailedLogs": _invoke(function_arn, {"action": "logs", **name}, log, f"{job}.log",
                                      f"{title}RetryCheck", "The failed attempt's log tail",
                                      on_error=f"{title}RetryCheck", error_path=f"{job}.log_error"),
        f"{title}RetryCheck": {
            "Type": "Choice",
            "Choices": [{"Variable": f"$.attempts.{step}.count", "NumericLessThanEquals": props.retries,
                         "Next": f"{title}Backoff"}],
            "Default": f"{title}Failed",
        },
        f"{title}Backoff": {"Type": "Wait", "Seconds": RETRY_BACKOFF_SECONDS, "Next": f"{title}Attempt"},
        f"{title}Failed": {
            "Type": "Fail",
            "Comment": "The step's last attempt failed: its Job stays (ttlSecondsAfterFinished) for kubectl logs",
            "Error": "JobFailed",
            "CausePath": f"States.Format('Job {{}} failed: {{}} {{}}', {job}.job.name, {job}.status.reason, "
                         f"{job}.status.message)",
        },
    }


def state_machine_definition(props: PipelineProps, function_arn: str) -> dict:
    """Amazon States Language: Prepare (run id) -> Train -> Infer, each a polled Job; errors -> PipelineFailed."""
    states: dict[str, dict] = {
        "Prepare": {
            "Type": "Pass",
            "Comment": "One id per execution: the run directory of both steps",
            "Parameters": {"run_id.$": "States.UUID()", "input.$": "$",
                           "attempts": {step: {"count": 0} for step, _, _ in STEPS},
                           "steps": {step: {} for step, _, _ in STEPS}},
            "Next": f"{STEPS[0][1]}Attempt",
        },
    }
    for i, (step, title, comment) in enumerate(STEPS):
        following = f"{STEPS[i + 1][1]}Attempt" if i + 1 < len(STEPS) else "PipelineSucceeded"
        states.update(_step_states(props, function_arn, step, title, comment, following))
    states.update({
        "PipelineSucceeded": {"Type": "Succeed"},
        "PipelineFailed": {"Type": "Fail", "Comment": "A call to the cluster failed for good",
                           "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
        "UnknownJobPhase": {"Type": "Fail", "Error": "UnknownJobPhase",
                            "Cause": f"the orchestrator function reported a phase other than {RUNNING}, {SUCCEEDED} "
                                     f"or {FAILED}"},
    })
    return {
        "Comment": f"Ray on EKS: train on {props.namespace}/{props.head_service}, then batch inference "
                   f"from the checkpoint under {RUN_ROOT}/<run id>",
        "StartAt": "Prepare",
        "TimeoutSeconds": len(STEPS) * (props.retries + 1) * attempt_budget_seconds(props.step_timeout_seconds),
        "States": states,
    }


def escape_terraform(text: str) -> str:
    """File contents in Terraform JSON: ``${`` and ``%{`` would be interpolations/directives."""
    return text.replace("${", "$${").replace("%{", "%%{")


# ------------------------------------------------------------------------------------------ construct
@dataclass(frozen=True)
class FunctionPackage:
    """The function's deployment package: a zip the stack built (deterministic bytes) and its base64 SHA-256."""

    path: str
    sha256_base64: str


@dataclass(frozen=True)
class FunctionNetwork:
    """Where the function runs: the cluster's private subnets, next to the private API endpoint."""

    vpc_id: str
    subnet_ids: list[str]
    cluster_security_group_id: str  # EKS puts it on the endpoint's network interfaces


@dataclass(frozen=True)
class OrchestratorNames:
    """The AWS names of the orchestrator's resources (conventions/naming.py derives them from the deployment)."""

    state_machine: str
    state_machine_log_group: str
    state_machine_role_prefix: str
    function: str
    function_log_group: str
    function_role_prefix: str
    function_security_group_prefix: str
    kms_alias: str


@dataclass(frozen=True)
class RayOrchestratorProps:
    name: str  # deployment name (descriptions)
    names: OrchestratorNames
    region: str
    account_id: str
    partition: str
    pipeline: PipelineProps
    package: FunctionPackage
    network: FunctionNetwork
    reserved_concurrency: int | None  # None: the function draws on the account's unreserved concurrency
    log_retention_days: int
    log_level: str
    key_deletion_window_days: int = MAX_DELETION_WINDOW_DAYS


class RayOrchestrator(Construct):
    """The AWS side. Addresses: ``aws_sfn_state_machine.ray_orchestrator`` and
    ``aws_iam_role(_policy).ray_orchestrator`` (its role), ``aws_lambda_function.ray_orchestrator`` (and
    ``aws_lambda_permission.ray_orchestrator``, its resource policy) with
    ``aws_iam_role(_policy).ray_orchestrator_lambda``, ``aws_security_group.ray_orchestrator_lambda`` and its
    rules, ``aws_cloudwatch_log_group.ray_orchestrator(_lambda)``, ``aws_kms_key.ray_orchestrator`` (+ alias),
    ``aws_eks_access_entry.ray_orchestrator``."""

    state_machine: SfnStateMachine
    role: IamRole
    function: LambdaFunction
    function_role: IamRole
    definition: dict

    def __init__(self, scope: Construct, id: str, props: RayOrchestratorProps) -> None:
        super().__init__(scope, id)
        p, net = props.pipeline, props.network
        fn_id = f"{id}_lambda"
        arn = f"arn:{props.partition}"
        region_account = f"{props.region}:{props.account_id}"
        names = props.names
        function_name = names.function
        function_arn = f"{arn}:lambda:{region_account}:function:{function_name}"
        log_group_names = {id: names.state_machine_log_group, fn_id: names.function_log_group}

        # The ray stack sees no KMS key of the infra stack (not an output), so the orchestrator brings its own:
        # the logs service may use it for exactly these two log groups; the function's environment is
        # encrypted with it too (IAM, through the account statement, lets the function decrypt it).
        root = f"{arn}:iam::{props.account_id}:root"
        key = KmsKey(Construct(self, "key"), id, description=f"{props.name}: Ray orchestrator logs and function",
                     enable_key_rotation=True, deletion_window_in_days=props.key_deletion_window_days,
                     policy=policy_document([
                         {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": root},
                          "Action": "kms:*", "Resource": "*"},
                         {"Sid": "CloudWatchLogsEncrypt", "Effect": "Allow",
                          "Principal": {"Service": f"logs.{props.region}.amazonaws.com"},
                          "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                     "kms:Describe*"],
                          "Resource": "*",
                          "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": [
                              f"{arn}:logs:{region_account}:log-group:{n}" for n in log_group_names.values()]}}},
                     ]))
        KmsAlias(Construct(self, "alias"), id, name=names.kms_alias, target_key_id=key.key_id)
        logs = {lid: CloudwatchLogGroup(Construct(self, f"logs_{lid}"), lid, name=n,
                                        retention_in_days=props.log_retention_days, kms_key_id=key.arn)
                for lid, n in log_group_names.items()}

        # ---- the function: private subnets, HTTPS to the cluster's API endpoint and nowhere else
        sg = SecurityGroup(Construct(self, "sg"), fn_id, name_prefix=names.function_security_group_prefix,
                           vpc_id=net.vpc_id,
                           description=f"Ray orchestrator function of {props.name}: HTTPS to the EKS API only",
                           tags={"Name": f"{props.name}-ray-orchestrator"},
                           lifecycle=TerraformResourceLifecycle(create_before_destroy=True))
        VpcSecurityGroupEgressRule(
            self, f"{fn_id}_to_cluster_api", security_group_id=sg.id, ip_protocol="tcp", from_port=443, to_port=443,
            referenced_security_group_id=net.cluster_security_group_id,
            description="HTTPS to the EKS API endpoint (its network interfaces carry the cluster security group)")
        VpcSecurityGroupIngressRule(
            self, f"cluster_api_from_{fn_id}", security_group_id=net.cluster_security_group_id, ip_protocol="tcp",
            from_port=443, to_port=443, referenced_security_group_id=sg.id,
            description=f"HTTPS to the EKS API from the Ray orchestrator function of {props.name}")

        # The Lambda service principal and no condition: the Lambda developer guide ("Defining Lambda function
        # permissions with an execution role") documents no confused-deputy key for execution roles, and one on the
        # trust can break CreateFunction in a VPC (aws/aws-parallelcluster#6926). Who may hand Lambda this role is
        # what guards it: iam:PassRole, which cannot cross accounts.
        self.function_role = IamRole(Construct(self, "fn_role"), fn_id, name_prefix=names.function_role_prefix,
                                     assume_role_policy=service_assume_role_policy("lambda.amazonaws.com"))
        vpc_arn = f"{arn}:ec2:{region_account}:vpc/{net.vpc_id}"
        in_vpc = {"ArnEquals": {"ec2:Vpc": vpc_arn}}
        fn_policy = IamRolePolicy(Construct(self, "fn_policy"), fn_id, role=self.function_role.id, name="run",
                                  policy=policy_document([
            statement(["logs:CreateLogStream", "logs:PutLogEvents"], [f"{logs[fn_id].arn}:*"], sid="OwnLogGroup"),
            statement(["kms:Decrypt"], [key.arn], sid="OwnEnvironment"),
            # Lambda creates the function's network interfaces with its role. Describe* have no resource-level
            # permissions; the rest are held to this VPC (a new interface's own ARN has no VPC key yet).
            statement(["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], ["*"], sid="DescribeVpcNetwork"),
            statement(["ec2:CreateNetworkInterface"], [f"{arn}:ec2:{region_account}:network-interface/*"],
                      sid="CreateInterface"),
            statement(["ec2:CreateNetworkInterface"], [f"{arn}:ec2:{region_account}:subnet/*",
                                                       f"{arn}:ec2:{region_account}:security-group/*"],
                      sid="CreateInterfaceInThisVpc", condition=in_vpc),
            statement(["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
                      [f"{arn}:ec2:{region_account}:network-interface/*"], sid="ManageInterfacesInThisVpc",
                      condition=in_vpc),
            # Lambda makes those calls outside the function's code, without lambda:SourceFunctionArn in the
            # request context; the code itself (which carries it) gets none of them.
            statement(["ec2:*"], ["*"], sid="NoNetworkChangesFromTheCode", effect="Deny",
                      condition={"Null": {"lambda:SourceFunctionArn": "false"}}),
            # Active tracing: the segment APIs have no resource-level permissions.
            statement(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"], sid="Tracing"),
        ]))
        asset = TerraformAsset(self, f"{fn_id}_package", path=props.package.path, type=AssetType.FILE)
        self.function = LambdaFunction(
            Construct(self, "fn"), id, function_name=function_name, role=self.function_role.arn,
            description="Ray orchestrator: creates and follows the pipeline's Jobs through the private EKS endpoint",
            runtime=FUNCTION_RUNTIME, handler=FUNCTION_HANDLER, filename=asset.path,
            source_code_hash=props.package.sha256_base64, timeout=FUNCTION_TIMEOUT_SECONDS,
            memory_size=FUNCTION_MEMORY_MB, reserved_concurrent_executions=props.reserved_concurrency,
            vpc_config=LambdaFunctionVpcConfig(subnet_ids=net.subnet_ids, security_group_ids=[sg.id]),
            # Lambda's network interfaces outlive the function for a while; moving them to the VPC's default
            # group on destroy lets Terraform delete this security group without waiting for them.
            replace_security_groups_on_destroy=True,
            environment=LambdaFunctionEnvironment(variables={
                "CLUSTER_NAME": p.cluster_name, "CLUSTER_ENDPOINT": p.cluster_endpoint,
                "CLUSTER_CA_DATA": p.cluster_ca, "NAMESPACE": p.namespace, "IMAGE": p.image}),
            kms_key_arn=key.arn,
            tracing_config=LambdaFunctionTracingConfig(mode="Active"),
            logging_config=LambdaFunctionLoggingConfig(log_format="Text", log_group=logs[fn_id].name),
            # The network permissions must exist when Lambda checks them at create time.
            depends_on=[fn_policy, logs[fn_id]])
        skip(self.function, "CKV_AWS_116",
             "Step Functions invokes the function synchronously and handles its errors (retry, catch); a dead-letter "
             "queue only receives failed asynchronous invocations, of which there are none")
        skip(self.function, "CKV_AWS_272",
             "The package is built from this repository at synth (a deterministic zip whose SHA-256 is the "
             "source_code_hash); code signing would need an AWS Signer profile outside these stacks")
        if props.reserved_concurrency is None:
            skip(self.function, "CKV_AWS_115",
                 "orchestrator.reserved_concurrency is null: accounts whose concurrency quota is still the new-account "
                 "default cannot reserve any; the state machine's role is its only invoker")

        # The function's role becomes a member of one Kubernetes group; RBAC (RayOrchestratorKubernetes) says
        # what it may do there. No EKS access policy: nothing cluster-wide.
        EksAccessEntry(Construct(self, "access"), id, cluster_name=p.cluster_name, principal_arn=self.function_role.arn,
                       type="STANDARD", kubernetes_groups=[KUBERNETES_GROUP])

        # ---- the state machine: invokes the function, nothing else. Step Functions assumes its role for this
        # state machine only (aws:SourceArn, aws:SourceAccount: Step Functions' confused-deputy conditions).
        state_machine_arn = f"{arn}:states:{region_account}:stateMachine:{names.state_machine}"
        self.role = IamRole(Construct(self, "role"), id, name_prefix=names.state_machine_role_prefix,
                            assume_role_policy=service_assume_role_policy_from(
                                "states.amazonaws.com", props.account_id, state_machine_arn))
        IamRolePolicy(Construct(self, "policy"), id, role=self.role.id, name="run-ray-jobs", policy=policy_document([
            statement(["lambda:InvokeFunction"], [function_arn], sid="InvokeOrchestratorFunction"),
            # CloudWatch Logs vended delivery: these APIs have no resource-level permissions (AWS requires *).
            statement(["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                       "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                       "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"], ["*"], sid="LogDelivery"),
            # X-Ray trace segments: PutTraceSegments and friends have no resource-level permissions either.
            statement(["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                       "xray:GetSamplingTargets"], ["*"], sid="Tracing"),
        ]))

        # The function's resource policy: invocation by the state machine's role (Step Functions' lambda:invoke
        # calls with the execution role's credentials, so the role is the principal; a service principal with
        # aws:SourceArn would match no call). Within the account this adds to identity policies, it cannot take
        # away: a principal whose own policy allows lambda:InvokeFunction on the function may still invoke it
        # (docs/security.md says what that gets them).
        LambdaPermission(Construct(self, "permission"), id, statement_id="StateMachineInvokes",
                         function_name=self.function.function_name, action="lambda:InvokeFunction",
                         principal=self.role.arn)

        self.definition = state_machine_definition(p, self.function.arn)
        self.state_machine = SfnStateMachine(
            self, id, name=names.state_machine, role_arn=self.role.arn, type="STANDARD",
            definition=json.dumps(self.definition, indent=2),
            logging_configuration=SfnStateMachineLoggingConfiguration(
                # Inputs/outputs of each state (Job specs, the submit log tail): no secrets, and what an
                # operator needs to see why a step failed; the log group is KMS-encrypted.
                log_destination=f"{logs[id].arn}:*", level=props.log_level, include_execution_data=True),
            tracing_configuration=SfnStateMachineTracingConfiguration(enabled=True))


@dataclass(frozen=True)
class RayOrchestratorKubernetesProps:
    namespace: str
    scripts: dict[str, str]  # file name -> content, mounted at /config in the submitter pods


class RayOrchestratorKubernetes(Construct):
    """The Kubernetes side: ``kubernetes_role_v1.ray_orchestrator`` (and binding) for the function's group,
    ``kubernetes_config_map_v1.ray_orchestrator_scripts``."""

    ADDRESS = "ray_orchestrator"  # its resources' addresses, whatever this construct's id

    def __init__(self, scope: Construct, id: str, props: RayOrchestratorKubernetesProps) -> None:
        super().__init__(scope, id)
        ns, id = props.namespace, self.ADDRESS
        rbac_role = RoleV1(Construct(self, "rbac"), id, metadata=RoleV1Metadata(name=KUBERNETES_GROUP, namespace=ns),
                           rule=[RoleV1Rule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
                                 for r in RBAC_RULES])
        RoleBindingV1(Construct(self, "binding"), id,
                      metadata=RoleBindingV1Metadata(name=KUBERNETES_GROUP, namespace=ns),
                      role_ref=RoleBindingV1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                                    name=rbac_role.metadata.name),
                      subject=[RoleBindingV1Subject(kind="Group", name=KUBERNETES_GROUP,
                                                    api_group="rbac.authorization.k8s.io")])
        ConfigMapV1(self, f"{id}_scripts", metadata=ConfigMapV1Metadata(name=SCRIPTS_CONFIG_MAP, namespace=ns),
                    data={k: escape_terraform(v) for k, v in sorted(props.scripts.items())})


def start_execution_command(state_machine_arn: str, region: str) -> str:
    return f"aws stepfunctions start-execution --region {region} --state-machine-arn {state_machine_arn}"
