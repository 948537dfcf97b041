"""The Ray orchestrator (constructs_lib/orchestrator.py) as the ray stack synthesizes it: the Step Functions
definition (ASL, walked with tests/asl.py), the Jobs inside it (as the API server receives them), the function that
reaches the private endpoint, IAM, network, logs, access entry and RBAC."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import uuid
import zipfile

import pytest

from config import ConfigError, parse_config
from constructs_lib.orchestrator import (
    FUNCTION_MODULE,
    HISTORY_EVENT_LIMIT,
    LAMBDA_INVOKE,
    RETRY_BACKOFF_SECONDS,
    poll_interval_seconds,
)
from lambdas import ray_orchestrator as fn
from lambdas.ray_orchestrator import DEADLINE_GRACE_SECONDS, STEPS_FILE, job_phase
from stacks.contract import ORCHESTRATOR_FILES
from tests import asl
from tests.helpers import ROOT, admits, network_policy_object, one, outputs, resources, tf_json
from tests.k8s_schemas import validate_core_object
from tests.orchestrator_objects import (
    COMPLETE,
    FAILED,
    NOW,
    RAY_NS,
    RUNNING,
    function_pipeline,
    job_object,
    packaged_steps,
    submitted_job,
)

INFRA = "data.terraform_remote_state.infra.outputs"
FUNCTION = "${aws_lambda_function.ray_orchestrator.arn}"
ARN_PREFIX = "arn:${data.aws_partition.current_partition.partition}"
ACCOUNT = "${data.aws_caller_identity.current.account_id}"


@pytest.fixture(scope="module")
def ray(default_synth) -> dict:
    return default_synth["ray"]


@pytest.fixture(scope="module")
def definition(ray) -> dict:
    return json.loads(one(ray, "aws_sfn_state_machine", "ray_orchestrator")["definition"])


@pytest.fixture(scope="module")
def pipeline(default_synth):
    return function_pipeline(default_synth)


# --------------------------------------------------------------------------------------------- ASL structure
def test_every_transition_targets_a_state_and_every_state_is_reachable(definition):
    states = definition["States"]
    assert definition["StartAt"] in states
    edges: dict[str, set[str]] = {}
    for name, s in states.items():
        assert s["Type"] in ("Pass", "Task", "Wait", "Choice", "Succeed", "Fail"), name
        targets = {s[k] for k in ("Next", "Default") if k in s}
        targets |= {r["Next"] for r in s.get("Choices", [])} | {c["Next"] for c in s.get("Catch", [])}
        for t in targets:
            assert t in states, f"{name} -> {t}, which does not exist"
        if s["Type"] in ("Succeed", "Fail"):
            assert not targets, name
        elif s["Type"] == "Choice":
            assert s["Choices"] and "Default" in s, name
        else:
            assert ("Next" in s) != bool(s.get("End")), f"{name}: exactly one of Next and End"
        edges[name] = targets
    seen, todo = set(), [definition["StartAt"]]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += edges[n]
    assert seen == set(states), f"unreachable: {set(states) - seen}"


def test_each_step_polls_its_job_until_it_succeeds_or_fails(definition):
    states = definition["States"]
    for title in ("Train", "Infer"):
        check = states[f"{title}Check"]
        rules = {r["StringEquals"]: r["Next"] for r in check["Choices"]}
        assert all(r["Variable"] == f"$.steps.{title.lower()}.status.phase" for r in check["Choices"])
        # Every phase the function reports has its own rule; anything else stops the execution.
        assert rules == {"Succeeded": f"{title}Logs", "Failed": f"{title}FailedLogs", "Running": f"{title}Wait"}
        assert states[check["Default"]]["Type"] == "Fail"
        assert states[f"{title}Wait"]["Next"] == f"{title}Poll" and states[f"{title}Poll"]["Next"] == f"{title}Check"
        retry = states[f"{title}RetryCheck"]
        assert retry["Choices"] == [{"Variable": f"$.attempts.{title.lower()}.count", "NumericLessThanEquals": 1,
                                     "Next": f"{title}Backoff"}]
        assert states[retry["Default"]]["Type"] == "Fail"


def test_every_task_invokes_the_function_with_retry_and_catch(definition):
    tasks = {n: s for n, s in definition["States"].items() if s["Type"] == "Task"}
    assert set(tasks) == {f"{t}{k}" for t in ("Train", "Infer") for k in ("Submit", "Poll", "Logs", "FailedLogs")}
    for t in tasks.values():
        assert t["Resource"] == LAMBDA_INVOKE == "arn:aws:states:::lambda:invoke"
        assert t["Parameters"]["FunctionName"] == FUNCTION
        assert t["Parameters"]["Payload"]["action"] in ("submit", "status", "logs")
        (retry,) = t["Retry"]
        # Lambda's transient invoke errors (as AWS recommends retrying) and the function's unreachable-API error.
        assert retry["ErrorEquals"] == ["Lambda.ServiceException", "Lambda.AWSLambdaException",
                                        "Lambda.SdkClientException", "Lambda.TooManyRequestsException",
                                        "TransientApiError"]
        assert retry["MaxAttempts"] >= 3 and retry["BackoffRate"] >= 1
        (catch,) = t["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"]
        assert 0 < t["TimeoutSeconds"] <= 120
        # Results land beside the run id and the attempt counters, never over them.
        assert t["ResultPath"].startswith("$.steps.")


def test_the_loop_is_bounded_by_the_jobs_deadline_and_the_executions_timeout(definition, default_synth):
    step_timeout = parse_config({}).orchestrator.step_timeout_seconds
    for step in ("train", "infer"):
        job = submitted_job(default_synth, step)
        assert job["spec"]["activeDeadlineSeconds"] == step_timeout
    interval = definition["States"]["TrainWait"]["Seconds"]
    # 4 h and the function's 10 min grace in at most 200 polls: every 75 s (never under 30 s).
    assert (step_timeout, DEADLINE_GRACE_SECONDS, interval) == (4 * 3600, 600, 75)
    assert definition["States"]["InferWait"]["Seconds"] == interval
    # An attempt ends by the deadline plus the function's grace (it reports an overdue Job failed) plus a poll;
    # the execution's timeout leaves room for every attempt of both steps, and no more than twice that.
    attempt = step_timeout + DEADLINE_GRACE_SECONDS + interval + RETRY_BACKOFF_SECONDS
    needed = 2 * (1 + 1) * attempt
    assert needed <= definition["TimeoutSeconds"] <= 2 * needed


@pytest.mark.parametrize("step_timeout, interval", [(300, 30), (4 * 3600, 75), (7 * 24 * 3600, 3027)])
def test_polls_are_30_s_apart_or_slower_for_long_steps(step_timeout, interval):
    """At most 200 polls per attempt (deadline plus the function's 600 s grace), never more often than every 30 s."""
    assert poll_interval_seconds(step_timeout) == interval


@pytest.mark.parametrize("step_timeout, retries", [(300, 0), (4 * 3600, 1), (7 * 24 * 3600, 5)])
def test_the_longest_execution_stays_under_the_history_event_limit(step_timeout, retries):
    """A Standard execution fails at 25,000 history events; polling must not get there, whatever the config."""
    interval = poll_interval_seconds(step_timeout)
    polls = -(-(step_timeout + DEADLINE_GRACE_SECONDS) // interval) + 1
    # A poll iteration: Wait (entered, exited), Task (entered, scheduled, started, succeeded, exited), Choice
    # (entered, exited); per attempt also Attempt, Submit, FailedLogs, RetryCheck, Backoff and a few retried calls.
    per_attempt = polls * 9 + 2 + 5 + 5 + 2 + 2 + 6 * 3
    assert 2 * (retries + 1) * per_attempt + 20 < HISTORY_EVENT_LIMIT


# --------------------------------------------------------------------------------------------- ASL, executed
class Cluster:
    """Answers the function's calls with what the handler returns for real Job objects, in the order scripted per
    step: each attempt's statuses (conditions lists: [] is still running). A submit builds the Job as the function
    does, from its packaged steps."""

    def __init__(self, pipeline, attempts: dict[str, list[list[list[dict]]]], failing: tuple[str, ...] = ()) -> None:
        self.pipeline, self.attempts, self.failing = pipeline, attempts, failing
        self.submitted: list[dict] = []
        self.polls: dict[str, list[list[dict]]] = {}

    def __call__(self, state: str, params: dict) -> dict:
        payload = params["Payload"]
        if state in self.failing:
            raise asl.TaskError("KubernetesApiError", f"{state}: HTTP 403: forbidden")
        if payload["action"] == "submit":
            assert set(payload) == {"action", "step", "run_id", "job_name"}, "the state machine passes no pod spec"
            job = fn.step_job(self.pipeline, payload["step"], payload["run_id"], payload["job_name"])
            self.submitted.append(job)
            step = job["metadata"]["labels"]["app.kubernetes.io/component"]
            self.polls[job["metadata"]["name"]] = list(self.attempts[step].pop(0))
            return {"Payload": {"name": job["metadata"]["name"], "uid": str(uuid.uuid4())}}
        name = payload["name"]
        if payload["action"] == "status":
            conditions = self.polls[name].pop(0) if len(self.polls[name]) > 1 else self.polls[name][0]
            return {"Payload": job_phase(job_object(name, conditions), NOW)}
        return {"Payload": {"pod": f"{name}-abcde", "log": "Job 'raysubmit_1' succeeded"}}


def test_a_run_trains_then_infers_in_one_run_directory(definition, pipeline):
    cluster = Cluster(pipeline, {"train": [[RUNNING, RUNNING, COMPLETE]], "infer": [[RUNNING, COMPLETE]]})
    ex = asl.run(definition, {"note": "from the user"}, cluster)
    assert ex.status == "SUCCEEDED", (ex.error, ex.cause)
    train, infer = cluster.submitted
    run_ids = {job["metadata"]["labels"]["ray-orchestrator/run-id"] for job in (train, infer)}
    assert len(run_ids) == 1
    assert ex.states.count("TrainPoll") == 3 and ex.states.count("InferPoll") == 2
    assert ex.output["input"] == {"note": "from the user"}
    assert ex.output["steps"]["train"]["log"]["log"].endswith("succeeded")
    assert ex.output["steps"]["infer"]["status"]["phase"] == "Succeeded"


def test_a_failed_attempt_is_retried_with_a_new_job(definition, pipeline):
    cluster = Cluster(pipeline, {"train": [[RUNNING, FAILED], [COMPLETE]], "infer": [[COMPLETE]]})
    ex = asl.run(definition, {}, cluster)
    assert ex.status == "SUCCEEDED", (ex.error, ex.cause)
    first, second, _ = cluster.submitted
    assert first["metadata"]["name"] != second["metadata"]["name"], "a retry must not reuse the failed Job's name"
    assert first["metadata"]["labels"] == second["metadata"]["labels"]
    assert "TrainBackoff" in ex.states and ex.output["attempts"]["train"]["count"] == 2


def test_a_step_out_of_retries_fails_the_execution_with_the_jobs_reason(definition, pipeline):
    cluster = Cluster(pipeline, {"train": [[FAILED], [RUNNING, FAILED]], "infer": []})
    ex = asl.run(definition, {}, cluster)
    assert ex.status == "FAILED" and ex.error == "JobFailed"
    assert cluster.submitted[-1]["metadata"]["name"] in ex.cause and "BackoffLimitExceeded" in ex.cause
    assert "InferAttempt" not in ex.states


def test_a_refused_call_fails_the_execution_with_its_error(definition, pipeline):
    ex = asl.run(definition, {}, Cluster(pipeline, {"train": [[COMPLETE]], "infer": []}, failing=("TrainSubmit",)))
    assert ex.status == "FAILED" and ex.error == "KubernetesApiError" and "403" in ex.cause


def test_an_unreadable_log_does_not_fail_a_step(definition, pipeline):
    ex = asl.run(definition, {}, Cluster(pipeline, {"train": [[COMPLETE]], "infer": [[COMPLETE]]},
                                         failing=("TrainLogs",)))
    assert ex.status == "SUCCEEDED"
    assert ex.output["steps"]["train"]["log_error"]["Error"] == "KubernetesApiError"


# --------------------------------------------------------------------------------------------- the Jobs
@pytest.mark.parametrize("step", ["train", "infer"])
def test_the_state_machine_passes_the_step_and_ids_only(definition, step):
    payload = definition["States"][f"{step.title()}Submit"]["Parameters"]["Payload"]
    assert payload == {"action": "submit", "step": step, "run_id.$": "$.run_id",
                       "job_name.$": f"$.attempts.{step}.job_name"}


def test_the_package_carries_a_job_template_per_step(default_synth):
    steps = packaged_steps(default_synth)
    assert set(steps) == {"train", "infer"}
    for template in steps.values():
        # What varies per attempt is the function's to fill in: no name, namespace, run id or image here.
        assert set(template["metadata"]) == {"labels"}
        assert "ray-orchestrator/run-id" not in template["metadata"]["labels"]
        assert all("image" not in c for c in template["spec"]["template"]["spec"]["containers"])


@pytest.mark.parametrize("step", ["train", "infer"])
def test_jobs_the_function_builds_are_valid_kubernetes_jobs(default_synth, step):
    job = submitted_job(default_synth, step)
    validate_core_object(job)
    assert job["metadata"]["name"].startswith(f"ray-{step}-") and len(job["metadata"]["name"]) <= 63
    assert job["metadata"]["namespace"] == "ray"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert "serviceAccountName" not in pod, "the namespace's default ServiceAccount, without its token"
    (c,) = pod["containers"]
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["env"][0] == {"name": "RUN_ID", "value": job["metadata"]["labels"]["ray-orchestrator/run-id"]}


@pytest.mark.parametrize("step", ["train", "infer"])
def test_jobs_carry_the_token_and_pass_the_heads_network_policy(default_synth, step):
    pod = submitted_job(default_synth, step)["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "kuberay", "key": "auth_token"}}
    policy = network_policy_object(default_synth["ray-cluster"])
    assert admits(policy, pod["metadata"]["labels"], 8265) and not admits(policy, pod["metadata"]["labels"], 6379)


def test_jobs_submit_to_the_head_service_with_the_clusters_image(default_synth):
    rc = one(default_synth["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]
    image = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    for step in ("train", "infer"):
        (c,) = submitted_job(default_synth, step)["spec"]["template"]["spec"]["containers"]
        assert c["image"] == image
        assert "ray job submit --address http://kuberay-head-svc:8265 " in c["command"][2]


def _entrypoint_args(synth, step: str, script: str) -> list[str]:
    (c,) = submitted_job(synth, step)["spec"]["template"]["spec"]["containers"]
    assert c["command"][:2] == ["bash", "-c"]
    argv = shlex.split(c["command"][2].split(" -- ", 1)[1].replace("$RUN_ID", "RUN"))
    assert argv[:2] == ["python", script]
    return argv[2:]


def test_inference_reads_the_checkpoints_training_writes(default_synth):
    from training import batch_inference, pytorch_training_e2e

    train = pytorch_training_e2e.parse_args(_entrypoint_args(default_synth, "train", "pytorch_training_e2e.py"))
    infer = batch_inference.parse_args(_entrypoint_args(default_synth, "infer", "batch_inference.py"))
    assert train.storage_path == infer.checkpoint == "/ray/export/orchestrator/RUN"
    assert infer.output_path.startswith(infer.checkpoint + "/")
    assert (train.data_size_gb, train.num_epochs, train.num_workers) == (1, 2, 1)


def test_scripts_config_map_carries_the_job_files(ray):
    cm = one(ray, "kubernetes_config_map_v1", "ray_orchestrator_scripts")
    assert cm["metadata"]["name"] == "ray-orchestrator-scripts" and cm["metadata"]["namespace"] == RAY_NS
    assert set(cm["data"]) == set(ORCHESTRATOR_FILES)
    for name, text in cm["data"].items():
        assert text.replace("$${", "${").replace("%%{", "%{") == (ROOT / "training" / name).read_text()


# --------------------------------------------------------------------------------------------- the function
def test_function_runs_the_packaged_handler_in_the_private_subnets(ray, default_synth):
    fn = one(ray, "aws_lambda_function", "ray_orchestrator")
    assert fn["runtime"] == "python3.12" and fn["handler"] == "ray_orchestrator.handler"
    # No reserved concurrency by default (orchestrator.reserved_concurrency: null): a new account cannot reserve any.
    assert 0 < fn["timeout"] <= 60 and "reserved_concurrent_executions" not in fn
    assert fn["vpc_config"] == {"subnet_ids": f"${{{INFRA}.private_subnet_ids}}",
                                "security_group_ids": ["${aws_security_group.ray_orchestrator_lambda.id}"]}
    assert fn["environment"]["variables"] == {
        "CLUSTER_NAME": f"${{{INFRA}.cluster_name}}", "CLUSTER_ENDPOINT": f"${{{INFRA}.cluster_endpoint}}",
        "CLUSTER_CA_DATA": f"${{{INFRA}.cluster_certificate_authority_data}}", "NAMESPACE": RAY_NS,
        "IMAGE": f"${{{INFRA}.ray_image}}"}
    assert fn["kms_key_arn"] == "${aws_kms_key.ray_orchestrator.arn}" and fn["tracing_config"] == {"mode": "Active"}
    assert fn["logging_config"]["log_group"] == "${aws_cloudwatch_log_group.ray_orchestrator_lambda.name}"
    assert "aws_iam_role_policy.ray_orchestrator_lambda" in fn["depends_on"]
    # The package: the handler module alone, at the zip's root, and the hash Terraform compares is the zip's.
    package = default_synth["_outdir"] / "stacks" / "ray" / fn["filename"]
    data = package.read_bytes()
    assert fn["source_code_hash"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    with zipfile.ZipFile(package) as zf:
        assert zf.namelist() == ["ray_orchestrator.py", STEPS_FILE]
        assert zf.read("ray_orchestrator.py") == FUNCTION_MODULE.read_bytes()
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_function_reaches_the_cluster_api_and_nothing_else(ray):
    sg = one(ray, "aws_security_group", "ray_orchestrator_lambda")
    assert sg["vpc_id"] == f"${{{INFRA}.vpc_id}}"
    assert "egress" not in sg and "ingress" not in sg, "rules are separate resources (Terraform drops AWS's allow-all)"
    cluster_sg = f"${{{INFRA}.cluster_security_group_id}}"
    own = "${aws_security_group.ray_orchestrator_lambda.id}"
    egress = resources(ray, "aws_vpc_security_group_egress_rule")
    ingress = resources(ray, "aws_vpc_security_group_ingress_rule")
    assert [(r["security_group_id"], r["referenced_security_group_id"], r["ip_protocol"], r["from_port"], r["to_port"])
            for r in egress.values()] == [(own, cluster_sg, "tcp", 443, 443)]
    assert [(r["security_group_id"], r["referenced_security_group_id"], r["ip_protocol"], r["from_port"], r["to_port"])
            for r in ingress.values()] == [(cluster_sg, own, "tcp", 443, 443)]
    for r in (*egress.values(), *ingress.values()):
        assert "cidr_ipv4" not in r and "cidr_ipv6" not in r


def test_dev_example_has_no_orchestrator(dev_synth):
    ray = dev_synth["ray"]
    for rtype in ("aws_sfn_state_machine", "aws_lambda_function", "aws_lambda_permission", "aws_security_group",
                  "aws_eks_access_entry", "kubernetes_role_v1", "kubernetes_config_map_v1"):
        assert not resources(ray, rtype), rtype
    assert "state_machine_arn" not in outputs(ray) and "start_execution_command" not in outputs(ray)
    assert not (dev_synth["_outdir"] / "stacks" / "ray" / "assets").exists()


# --------------------------------------------------------------------------------------------- IAM, logs
def _statements(ray, name: str) -> list[dict]:
    return tf_json(one(ray, "aws_iam_role_policy", name)["policy"], placeholder="X")["Statement"]


def _actions(s: dict) -> list[str]:
    return s["Action"] if isinstance(s["Action"], list) else [s["Action"]]


def test_state_machine_may_only_invoke_the_function(ray):
    trust = json.loads(one(ray, "aws_iam_role", "ray_orchestrator")["assume_role_policy"])
    assert trust["Statement"] == [{
        "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {
            "aws:SourceArn": f"{ARN_PREFIX}:states:us-west-2:{ACCOUNT}:stateMachine:ray-eks-ray-orchestrator"}}}]
    raw = one(ray, "aws_iam_role_policy", "ray_orchestrator")["policy"]
    statements = tf_json(raw)["Statement"]
    (invoke,) = [s for s in statements if any(a.startswith("lambda:") for a in _actions(s))]
    assert invoke["Action"] == ["lambda:InvokeFunction"]
    assert invoke["Resource"] == f"{ARN_PREFIX}:lambda:us-west-2:{ACCOUNT}:function:ray-eks-ray-orchestrator"
    assert one(ray, "aws_lambda_function", "ray_orchestrator")["function_name"] == "ray-eks-ray-orchestrator"
    # Actions AWS offers no resource-level permissions for: the only ones allowed on "*" (logs delivery, X-Ray).
    star_ok = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
               "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
               "logs:DescribeLogGroups", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
               "xray:GetSamplingRules", "xray:GetSamplingTargets"}
    for s in statements:
        assert s["Effect"] == "Allow" and not any("*" in a for a in _actions(s)), s
        if s is not invoke:
            assert s["Resource"] == "*" and set(_actions(s)) <= star_ok, s
    assert not any(a.startswith(("eks:", "ec2:", "iam:")) for s in statements for a in _actions(s))


def test_function_role_has_no_kubernetes_admin_and_logs_only_to_its_group(ray):
    trust = json.loads(one(ray, "aws_iam_role", "ray_orchestrator_lambda")["assume_role_policy"])
    # No condition: Lambda documents none for execution roles, and one can break CreateFunction in a VPC.
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                   "Action": "sts:AssumeRole"}]
    statements = tf_json(one(ray, "aws_iam_role_policy", "ray_orchestrator_lambda")["policy"])["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    allowed = [a for s in statements if s["Effect"] == "Allow" for a in _actions(s)]
    assert not any(a.startswith(("eks:", "iam:", "sts:", "lambda:", "states:", "s3:")) for a in allowed), allowed
    logs = [s for s in statements if any(a.startswith("logs:") for a in _actions(s))]
    assert logs == [by_sid["OwnLogGroup"]]
    assert by_sid["OwnLogGroup"]["Resource"] == "${aws_cloudwatch_log_group.ray_orchestrator_lambda.arn}:*"
    assert set(_actions(by_sid["OwnLogGroup"])) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert by_sid["OwnEnvironment"]["Resource"] == "${aws_kms_key.ray_orchestrator.arn}"
    # Lambda's network interfaces: only the Describe calls (no resource-level permissions) on "*"; the others are
    # held to this VPC; and the function's own code can make none of them.
    star = {a for s in statements if s["Effect"] == "Allow" and s["Resource"] == "*" for a in _actions(s)}
    assert star == {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords"}
    vpc = f"{ARN_PREFIX}:ec2:us-west-2:{ACCOUNT}:vpc/${{{INFRA}.vpc_id}}"
    for sid in ("CreateInterfaceInThisVpc", "ManageInterfacesInThisVpc"):
        assert by_sid[sid]["Condition"] == {"ArnEquals": {"ec2:Vpc": vpc}}
    assert by_sid["CreateInterface"]["Resource"] == f"{ARN_PREFIX}:ec2:us-west-2:{ACCOUNT}:network-interface/*"
    deny = by_sid["NoNetworkChangesFromTheCode"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Null": {"lambda:SourceFunctionArn": "false"}}


def test_only_the_state_machines_role_is_granted_invocation(ray):
    (permission,) = resources(ray, "aws_lambda_permission").values()
    assert permission == {**permission, "action": "lambda:InvokeFunction", "statement_id": "StateMachineInvokes",
                          "function_name": "${aws_lambda_function.ray_orchestrator.function_name}",
                          "principal": "${aws_iam_role.ray_orchestrator.arn}"}
    assert "source_arn" not in permission and "source_account" not in permission


def test_access_entry_maps_the_function_role_to_a_kubernetes_group_only(ray):
    entry = one(ray, "aws_eks_access_entry", "ray_orchestrator")
    assert entry["principal_arn"] == "${aws_iam_role.ray_orchestrator_lambda.arn}"
    assert entry["cluster_name"] == f"${{{INFRA}.cluster_name}}"
    assert entry["kubernetes_groups"] == ["ray-orchestrator"] and entry["type"] == "STANDARD"
    assert not resources(ray, "aws_eks_access_policy_association"), "no EKS access policy: RBAC decides"


def test_rbac_is_a_namespaced_role_bound_to_the_group(ray):
    assert not resources(ray, "kubernetes_cluster_role_v1") and not resources(ray, "kubernetes_cluster_role_binding_v1")
    role = one(ray, "kubernetes_role_v1", "ray_orchestrator")
    assert role["metadata"] == {"name": "ray-orchestrator", "namespace": RAY_NS}
    # Exactly these rules, once each (tests/lambdas/test_ray_orchestrator.py maps each to the function's requests).
    assert [(r["api_groups"], r["resources"], r["verbs"]) for r in role["rule"]] == [
        (["batch"], ["jobs"], ["create", "get", "list", "watch", "delete"]),
        ([""], ["pods"], ["get", "list"]),
        ([""], ["pods/log"], ["get"]),
    ]
    binding = one(ray, "kubernetes_role_binding_v1", "ray_orchestrator")
    assert binding["metadata"]["namespace"] == RAY_NS
    assert binding["role_ref"] == {"api_group": "rbac.authorization.k8s.io", "kind": "Role",
                                   "name": "${kubernetes_role_v1.ray_orchestrator.metadata[0].name}"}
    assert binding["subject"] == [{"api_group": "rbac.authorization.k8s.io", "kind": "Group",
                                   "name": "ray-orchestrator"}]


def test_logs_go_to_encrypted_log_groups(ray):
    sm = one(ray, "aws_sfn_state_machine", "ray_orchestrator")
    assert sm["role_arn"] == "${aws_iam_role.ray_orchestrator.arn}" and sm["type"] == "STANDARD"
    assert sm["logging_configuration"]["log_destination"] == "${aws_cloudwatch_log_group.ray_orchestrator.arn}:*"
    logging = sm["logging_configuration"]
    assert logging["level"] == "ALL" and logging["include_execution_data"] is True
    assert sm["tracing_configuration"]["enabled"] is True
    groups = {n: one(ray, "aws_cloudwatch_log_group", n) for n in ("ray_orchestrator", "ray_orchestrator_lambda")}
    assert groups["ray_orchestrator_lambda"]["name"] == "/aws/lambda/ray-eks-ray-orchestrator"
    for lg in groups.values():
        assert lg["retention_in_days"] == 365 and lg["kms_key_id"] == "${aws_kms_key.ray_orchestrator.arn}"
    key = one(ray, "aws_kms_key", "ray_orchestrator")
    assert key["enable_key_rotation"] is True
    policy = tf_json(key["policy"], placeholder="TF_EXPR")
    logs = next(s for s in policy["Statement"] if s["Sid"] == "CloudWatchLogsEncrypt")
    assert logs["Principal"] == {"Service": "logs.us-west-2.amazonaws.com"}
    (contexts,) = logs["Condition"]["ArnEquals"].values()
    assert sorted(c.rsplit(":log-group:", 1)[1] for c in contexts) == sorted(lg["name"] for lg in groups.values())


def test_outputs_say_how_to_start_an_execution(ray):
    out = outputs(ray)
    assert out["state_machine_arn"]["value"] == "${aws_sfn_state_machine.ray_orchestrator.arn}"
    assert out["start_execution_command"]["value"] == (
        "aws stepfunctions start-execution --region us-west-2 "
        "--state-machine-arn ${aws_sfn_state_machine.ray_orchestrator.arn}")


# --------------------------------------------------------------------------------------------- config
def test_orchestrator_defaults_follow_the_gpu_profile():
    assert parse_config({}).orchestrator_enabled is True
    cpu_only = {"cluster": {"node_groups": [{"name": "core", "role": "core", "instance_types": ["m6i.xlarge"]}]},
                "ray": {"worker_groups": [{"name": "cpu", "node_group": "core", "gpus": 0, "max_replicas": 2}]}}
    assert parse_config(cpu_only).orchestrator_enabled is False
    assert parse_config({**cpu_only, "orchestrator": {"enabled": True}}).orchestrator_enabled is True


@pytest.mark.parametrize("data, message", [
    ({"orchestrator": {"training_args": ["--storage-path", "/tmp"]}},
     "orchestrator.training_args: --storage-path is set by the orchestrator"),
    ({"orchestrator": {"inference_args": ["--checkpoint=/x"]}}, "orchestrator.inference_args: --checkpoint=/x is set"),
    ({"orchestrator": {"training_args": ["${evil}"]}}, "orchestrator.training_args: must be plain tokens"),
    ({"orchestrator": {"log_level": "DEBUG"}}, "orchestrator.log_level: must be 'ALL', 'ERROR', 'FATAL' or 'OFF'"),
    ({"orchestrator": {"log_retention_days": 10}}, "orchestrator.log_retention_days: must be one of the CloudWatch"),
    ({"orchestrator": {"retries": 9}}, "orchestrator.retries"),
    ({"orchestrator": {"reserved_concurrency": 0}},
     "orchestrator.reserved_concurrency: must be greater than or equal to 1"),
    ({"orchestrator": {"enable": True}}, "orchestrator.enable: unknown key"),
])
def test_bad_orchestrator_config_is_one_clear_error(data, message):
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_private_endpoint_needs_no_warning_and_no_open_endpoint():
    """The function reaches the private endpoint: no advice to open the API to 0.0.0.0/0 (the gate rejects that)."""
    assert parse_config({}).orchestrator_enabled and parse_config({}).cluster.public_access_cidrs == []
    assert parse_config({}).warnings() == []
    open_api = parse_config({"cluster": {"endpoint_access": "public", "public_access_cidrs": ["0.0.0.0/0"]}}).warnings()
    assert not any("Step Functions" in w or "orchestrator" in w for w in open_api)
