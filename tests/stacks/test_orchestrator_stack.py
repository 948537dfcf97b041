"""The Ray orchestrator (constructs_lib/orchestrator.py) as the ray stack synthesizes it: the Step Functions
definition (ASL), the Jobs inside it (as the API server receives them), IAM, logs, access entry and RBAC."""

from __future__ import annotations

import json
import re
import shlex
import uuid

import pytest

from config import ConfigError, parse_config
from constructs_lib.orchestrator import RBAC_RULES, RUN_JOB_SYNC
from stacks.contract import ORCHESTRATOR_FILES
from tests.helpers import ROOT, admits, network_policy_object, one, outputs, resources, tf_json
from tests.k8s_schemas import validate_core_object

INFRA = "data.terraform_remote_state.infra.outputs"
RAY_NS = "${kubernetes_namespace_v1.ray.metadata[0].name}"
INTRINSIC_FORMAT = re.compile(r"^States\.Format\('([^']*)', States\.UUID\(\)\)$")


@pytest.fixture(scope="module")
def ray(default_synth) -> dict:
    return default_synth["ray"]


@pytest.fixture(scope="module")
def asl(ray) -> dict:
    return json.loads(one(ray, "aws_sfn_state_machine", "ray_orchestrator")["definition"])


def tasks(asl: dict) -> dict[str, dict]:
    return {n: s for n, s in asl["States"].items() if s["Type"] == "Task"}


def evaluate(params, context: dict):
    """Step Functions' JSONPath parameter evaluation, for the expressions the definition uses (others fail)."""
    if isinstance(params, list):
        return [evaluate(v, context) for v in params]
    if not isinstance(params, dict):
        return params.replace(RAY_NS, "ray") if isinstance(params, str) else params
    out = {}
    for k, v in params.items():
        if k.endswith(".$"):
            m = INTRINSIC_FORMAT.match(v)
            if m:
                value = m.group(1).replace("{}", str(uuid.uuid4()), 1)
            elif v.startswith("$.") and v[2:] in context:
                value = context[v[2:]]
            else:
                raise AssertionError(f"unexpected expression {k}: {v}")
            out[k[:-2]] = value
        else:
            out[k] = evaluate(v, context)
    return out


def rendered_job(asl: dict, state: str) -> dict:
    return evaluate(asl["States"][state]["Parameters"]["Job"], {"run_id": str(uuid.uuid4())})


# ------------------------------------------------------------------------------------------- ASL
def test_definition_is_a_chain_prepare_train_infer(asl):
    states = asl["States"]
    assert asl["StartAt"] == "Prepare" and asl["StartAt"] in states
    chain, name = [], asl["StartAt"]
    while True:
        chain.append(name)
        s = states[name]
        if s.get("End"):
            break
        assert s["Next"] in states, f"{name}.Next -> {s['Next']} does not exist"
        name = s["Next"]
    assert chain == ["Prepare", "Train", "Infer"]
    for n, s in states.items():
        assert not ("Next" in s and "End" in s), n
        assert s["Type"] in ("Pass", "Task", "Fail", "Succeed"), n
    # The run id every step shares comes from the first state.
    assert states["Prepare"]["Parameters"]["run_id.$"] == "States.UUID()"
    assert isinstance(asl["TimeoutSeconds"], int) and asl["TimeoutSeconds"] > 0


def test_every_task_runs_a_job_on_the_cluster_with_retry_and_catch(asl):
    ts = tasks(asl)
    assert set(ts) == {"Train", "Infer"}
    for name, t in ts.items():
        assert t["Resource"] == RUN_JOB_SYNC == "arn:aws:states:::eks:runJob.sync"
        p = t["Parameters"]
        assert p["ClusterName"] == f"${{{INFRA}.cluster_name}}"
        assert p["Endpoint"] == f"${{{INFRA}.cluster_endpoint}}"
        assert p["CertificateAuthority"] == f"${{{INFRA}.cluster_certificate_authority_data}}"
        assert p["Namespace"] == RAY_NS
        assert p["LogOptions"]["RetrieveLogs"] is True
        (retry,) = t["Retry"]
        assert retry["ErrorEquals"] == ["States.TaskFailed"] and retry["MaxAttempts"] == 1 and retry["BackoffRate"] >= 1
        (catch,) = t["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"]
        failed = asl["States"][catch["Next"]]
        assert failed["Type"] == "Fail" and failed["ErrorPath"] == f"{catch['ResultPath']}.Error"
        assert t["TimeoutSeconds"] > t["Parameters"]["Job"]["spec"]["activeDeadlineSeconds"]
        # The step's result must not overwrite the run id the next step reads.
        assert t["ResultPath"].startswith("$.steps.")


@pytest.mark.parametrize("state", ["Train", "Infer"])
def test_jobs_in_the_definition_are_valid_kubernetes_jobs(asl, state):
    job = rendered_job(asl, state)
    validate_core_object(job)
    assert job["metadata"]["name"].startswith(f"ray-{state.lower()}-") and len(job["metadata"]["name"]) <= 63
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["env"][0]["name"] == "RUN_ID"


@pytest.mark.parametrize("state", ["Train", "Infer"])
def test_jobs_carry_the_token_and_pass_the_heads_network_policy(asl, default_synth, state):
    pod = rendered_job(asl, state)["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "kuberay", "key": "auth_token"}}
    policy = network_policy_object(default_synth["ray-cluster"])
    assert admits(policy, pod["metadata"]["labels"], 8265) and not admits(policy, pod["metadata"]["labels"], 6379)


def test_jobs_submit_to_the_head_service_with_the_clusters_image(asl, default_synth):
    rc = one(default_synth["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]
    image = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    for state in ("Train", "Infer"):
        (c,) = rendered_job(asl, state)["spec"]["template"]["spec"]["containers"]
        assert c["image"] == image
        assert "ray job submit --address http://kuberay-head-svc:8265 " in c["command"][2]


def _entrypoint_args(asl, state: str, script: str) -> list[str]:
    (c,) = rendered_job(asl, state)["spec"]["template"]["spec"]["containers"]
    assert c["command"][:2] == ["bash", "-c"]
    argv = shlex.split(c["command"][2].split(" -- ", 1)[1].replace("$RUN_ID", "RUN"))
    assert argv[:2] == ["python", script]
    return argv[2:]


def test_inference_reads_the_checkpoints_training_writes(asl):
    from training import batch_inference, pytorch_training_e2e

    train = pytorch_training_e2e.parse_args(_entrypoint_args(asl, "Train", "pytorch_training_e2e.py"))
    infer = batch_inference.parse_args(_entrypoint_args(asl, "Infer", "batch_inference.py"))
    assert train.storage_path == infer.checkpoint == "/ray/export/orchestrator/RUN"
    assert infer.output_path.startswith(infer.checkpoint + "/")
    assert (train.data_size_gb, train.num_epochs, train.num_workers) == (1, 2, 1)


def test_scripts_config_map_carries_the_job_files(ray):
    cm = one(ray, "kubernetes_config_map_v1", "ray_orchestrator_scripts")
    assert cm["metadata"]["name"] == "ray-orchestrator-scripts" and cm["metadata"]["namespace"] == RAY_NS
    assert set(cm["data"]) == set(ORCHESTRATOR_FILES)
    for name, text in cm["data"].items():
        assert text.replace("$${", "${").replace("%%{", "%{") == (ROOT / "training" / name).read_text()


# ------------------------------------------------------------------------------------------- AWS side
def test_state_machine_logs_to_an_encrypted_log_group(ray):
    sm = one(ray, "aws_sfn_state_machine", "ray_orchestrator")
    assert sm["role_arn"] == "${aws_iam_role.ray_orchestrator.arn}" and sm["type"] == "STANDARD"
    assert sm["logging_configuration"]["log_destination"] == "${aws_cloudwatch_log_group.ray_orchestrator.arn}:*"
    assert sm["logging_configuration"]["level"] == "ALL" and sm["logging_configuration"]["include_execution_data"] is True
    assert sm["tracing_configuration"]["enabled"] is True
    lg = one(ray, "aws_cloudwatch_log_group", "ray_orchestrator")
    assert lg["retention_in_days"] == 365
    assert lg["kms_key_id"] == "${aws_kms_key.ray_orchestrator.arn}"
    key = one(ray, "aws_kms_key", "ray_orchestrator")
    assert key["enable_key_rotation"] is True
    policy = tf_json(key["policy"], placeholder="TF_EXPR")
    logs = next(s for s in policy["Statement"] if s["Sid"] == "CloudWatchLogsEncrypt")
    assert logs["Principal"] == {"Service": "logs.us-west-2.amazonaws.com"}
    (context,) = logs["Condition"]["ArnEquals"].values()
    assert context.endswith(f":log-group:{lg['name']}")


def test_state_machine_role_is_least_privilege(ray):
    trust = json.loads(one(ray, "aws_iam_role", "ray_orchestrator")["assume_role_policy"])
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
                                   "Action": "sts:AssumeRole"}]
    policy = tf_json(one(ray, "aws_iam_role_policy", "ray_orchestrator")["policy"], placeholder="X")
    # Actions AWS offers no resource-level permissions for: the only ones allowed on "*".
    star_ok = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
               "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
               "logs:DescribeLogGroups", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
               "xray:GetSamplingRules", "xray:GetSamplingTargets"}
    for s in policy["Statement"]:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert s["Effect"] == "Allow" and not any("*" in a for a in actions), s
        if s["Resource"] == "*" or "*" in s["Resource"]:
            assert set(actions) <= star_ok, s
    (describe,) = [s for s in policy["Statement"] if "eks:DescribeCluster" in s["Action"]]
    assert describe["Action"] == ["eks:DescribeCluster"]
    raw = one(ray, "aws_iam_role_policy", "ray_orchestrator")["policy"]
    cluster_arn = ("arn:${data.aws_partition.current_partition.partition}:eks:us-west-2:"
                   "${data.aws_caller_identity.current.account_id}:cluster/"
                   f"${{{INFRA}.cluster_name}}")
    assert f'"Resource": "{cluster_arn}"' in raw


def test_access_entry_maps_the_role_to_a_kubernetes_group_only(ray):
    entry = one(ray, "aws_eks_access_entry", "ray_orchestrator")
    assert entry["principal_arn"] == "${aws_iam_role.ray_orchestrator.arn}"
    assert entry["cluster_name"] == f"${{{INFRA}.cluster_name}}"
    assert entry["kubernetes_groups"] == ["ray-orchestrator"] and entry["type"] == "STANDARD"
    assert not resources(ray, "aws_eks_access_policy_association"), "no EKS access policy: RBAC decides"


def test_rbac_is_a_namespaced_role_bound_to_the_group(ray):
    assert not resources(ray, "kubernetes_cluster_role_v1") and not resources(ray, "kubernetes_cluster_role_binding_v1")
    role = one(ray, "kubernetes_role_v1", "ray_orchestrator")
    assert role["metadata"] == {"name": "ray-orchestrator", "namespace": RAY_NS}
    rules = {(tuple(r["api_groups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rule"]}
    assert rules == {(("batch",), ("jobs",)): {"create", "get", "list", "watch", "delete"},
                     (("",), ("pods",)): {"get", "list"}, (("",), ("pods/log",)): {"get"}}
    assert len(RBAC_RULES) == len(role["rule"])
    binding = one(ray, "kubernetes_role_binding_v1", "ray_orchestrator")
    assert binding["metadata"]["namespace"] == RAY_NS
    assert binding["role_ref"] == {"api_group": "rbac.authorization.k8s.io", "kind": "Role",
                                   "name": "${kubernetes_role_v1.ray_orchestrator.metadata[0].name}"}
    assert binding["subject"] == [{"api_group": "rbac.authorization.k8s.io", "kind": "Group", "name": "ray-orchestrator"}]


def test_outputs_say_how_to_start_an_execution(ray):
    out = outputs(ray)
    assert out["state_machine_arn"]["value"] == "${aws_sfn_state_machine.ray_orchestrator.arn}"
    assert out["start_execution_command"]["value"] == (
        "aws stepfunctions start-execution --region us-west-2 "
        "--state-machine-arn ${aws_sfn_state_machine.ray_orchestrator.arn}")


def test_dev_example_has_no_orchestrator(dev_synth):
    ray = dev_synth["ray"]
    for rtype in ("aws_sfn_state_machine", "aws_eks_access_entry", "kubernetes_role_v1", "kubernetes_config_map_v1"):
        assert not resources(ray, rtype), rtype
    assert "state_machine_arn" not in outputs(ray) and "start_execution_command" not in outputs(ray)


# ------------------------------------------------------------------------------------------- config
def test_orchestrator_defaults_follow_the_gpu_profile():
    assert parse_config({}).orchestrator_enabled is True
    cpu_only = {"cluster": {"node_groups": [{"name": "core", "role": "core", "instance_types": ["m6i.xlarge"]}]},
                "ray": {"worker_groups": [{"name": "cpu", "node_group": "core", "gpus": 0}]}}
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
    ({"orchestrator": {"enable": True}}, "orchestrator.enable: unknown key"),
])
def test_bad_orchestrator_config_is_one_clear_error(data, message):
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_synth_warns_when_step_functions_cannot_reach_the_endpoint():
    assert any("Step Functions reaches only public EKS endpoints" in w for w in parse_config({}).warnings())
    open_api = parse_config({"cluster": {"public_access_cidrs": ["0.0.0.0/0"]}})
    assert not any("Step Functions" in w for w in open_api.warnings())
    assert not any("Step Functions" in w for w in parse_config({"orchestrator": {"enabled": False}}).warnings())
