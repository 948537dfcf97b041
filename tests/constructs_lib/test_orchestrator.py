"""The Ray orchestrator's constructs, alone from their props (``construct_synth``): the AWS side (state machine,
the function in the cluster's VPC, its network and IAM limits, logs, the access entry mapping it to one Kubernetes
group) and the Kubernetes side (that group's namespaced Role, the scripts ConfigMap). The state machine's ASL and
the Jobs inside it are tested through the ray stack (tests/stacks/test_orchestrator_stack.py)."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.eks_access_entry import EksAccessEntry
from cdktf_cdktf_provider_aws.lambda_function import LambdaFunction
from cdktf_cdktf_provider_aws.sfn_state_machine import SfnStateMachine
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from cdktf_cdktf_provider_kubernetes.config_map_v1 import ConfigMapV1
from cdktf_cdktf_provider_kubernetes.role_binding_v1 import RoleBindingV1

from constructs_lib.orchestrator import (
    FunctionNetwork,
    FunctionPackage,
    OrchestratorNames,
    PipelineProps,
    RayOrchestrator,
    RayOrchestratorKubernetes,
    RayOrchestratorKubernetesProps,
    RayOrchestratorProps,
)
from tests.helpers import ref

NAMES = OrchestratorNames(state_machine="unit-pipeline", state_machine_log_group="/aws/vendedlogs/states/unit-pipeline",
                          state_machine_role_prefix="unit-sfn-", function="unit-orchestrator",
                          function_log_group="/aws/lambda/unit-orchestrator", function_role_prefix="unit-fn-",
                          function_security_group_prefix="unit-fn-", kms_alias="alias/unit-orchestrator")
NETWORK = FunctionNetwork(vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"], cluster_security_group_id="sg-cluster")
PIPELINE = PipelineProps(cluster_name="unit-cluster", cluster_endpoint="https://ABC.gr7.eu-west-1.eks.amazonaws.com",
                         cluster_ca="Y2E=", namespace="ray-unit", head_service="unit-head-svc",
                         image="registry.example/ray:1", ray_cluster="unit", training_script="train.py",
                         inference_script="infer.py", training_args=("--epochs", "1"), inference_args=(),
                         step_timeout_seconds=3600, retries=1, pip=())


@pytest.fixture(scope="module")
def aws_side(construct_synth, tmp_path_factory):
    package = tmp_path_factory.mktemp("package") / "fn.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: the construct only points at it
    return construct_synth(lambda stack: RayOrchestrator(stack, "ray_orchestrator", RayOrchestratorProps(
        name="unit", names=NAMES, region="eu-west-1", account_id="111122223333", partition="aws",
        pipeline=PIPELINE, package=FunctionPackage(path=str(package), sha256_base64="c2hh"), network=NETWORK,
        reserved_concurrency=2, log_retention_days=30, log_level="ERROR")))


def _policy(synth, name: str) -> dict[str, dict]:
    return {s["Sid"]: s for s in json.loads(synth.one("aws_iam_role_policy", name)["policy"])["Statement"]}


def test_the_function_runs_in_the_props_subnets_pointed_at_the_cluster(aws_side):
    assert aws_side.has_resource(LambdaFunction, {
        "function_name": "unit-orchestrator", "source_code_hash": "c2hh", "reserved_concurrent_executions": 2,
        "vpc_config": {"subnet_ids": ["subnet-a", "subnet-b"],
                       "security_group_ids": [ref("aws_security_group", "ray_orchestrator_lambda", "id")]},
        "environment": {"variables": {"CLUSTER_NAME": "unit-cluster", "NAMESPACE": "ray-unit",
                                      "CLUSTER_CA_DATA": "Y2E=",
                                      "CLUSTER_ENDPOINT": "https://ABC.gr7.eu-west-1.eks.amazonaws.com"}},
        "kms_key_arn": ref("aws_kms_key", "ray_orchestrator", "arn"), "tracing_config": {"mode": "Active"},
        "logging_config": {"log_group": ref("aws_cloudwatch_log_group", "ray_orchestrator_lambda", "name")}})


def test_the_function_reaches_the_cluster_api_over_https_only(aws_side):
    sg = ref("aws_security_group", "ray_orchestrator_lambda", "id")
    https = {"ip_protocol": "tcp", "from_port": 443, "to_port": 443}
    assert aws_side.has_resource(VpcSecurityGroupEgressRule, {
        "security_group_id": sg, "referenced_security_group_id": "sg-cluster", **https})
    assert aws_side.has_resource(VpcSecurityGroupIngressRule, {
        "security_group_id": "sg-cluster", "referenced_security_group_id": sg, **https})
    assert len(aws_side.resources("aws_vpc_security_group_egress_rule")) == 1
    assert len(aws_side.resources("aws_vpc_security_group_ingress_rule")) == 1


def test_the_function_role_is_one_kubernetes_group_and_no_eks_policy(aws_side):
    assert aws_side.has_resource(EksAccessEntry, {
        "cluster_name": "unit-cluster", "principal_arn": ref("aws_iam_role", "ray_orchestrator_lambda", "arn"),
        "type": "STANDARD", "kubernetes_groups": ["ray-orchestrator"]})
    assert not aws_side.resources("aws_eks_access_policy_association")
    statements = _policy(aws_side, "ray_orchestrator_lambda")
    vpc = {"ArnEquals": {"ec2:Vpc": "arn:aws:ec2:eu-west-1:111122223333:vpc/vpc-1"}}
    assert statements["CreateInterfaceInThisVpc"]["Condition"] == vpc
    assert statements["ManageInterfacesInThisVpc"]["Condition"] == vpc
    assert statements["NoNetworkChangesFromTheCode"]["Effect"] == "Deny"


def test_the_state_machine_may_invoke_the_function_and_logs_at_the_props_level(aws_side):
    assert aws_side.has_resource(SfnStateMachine, {
        "name": "unit-pipeline", "type": "STANDARD", "role_arn": ref("aws_iam_role", "ray_orchestrator", "arn"),
        "logging_configuration": {"level": "ERROR", "include_execution_data": True,
                                  "log_destination": f"{ref('aws_cloudwatch_log_group', 'ray_orchestrator', 'arn')}:*"},
        "tracing_configuration": {"enabled": True}})
    invoke = _policy(aws_side, "ray_orchestrator")["InvokeOrchestratorFunction"]
    assert invoke["Action"] == ["lambda:InvokeFunction"]
    assert invoke["Resource"] == "arn:aws:lambda:eu-west-1:111122223333:function:unit-orchestrator"
    definition = json.loads(aws_side.one("aws_sfn_state_machine", "ray_orchestrator")["definition"])
    tasks = [st for st in definition["States"].values() if st["Type"] == "Task"]
    assert tasks and {t["Parameters"]["FunctionName"] for t in tasks} == {
        ref("aws_lambda_function", "ray_orchestrator", "arn")}
    submits = [t["Parameters"]["Payload"] for t in tasks if t["Parameters"]["Payload"]["action"] == "submit"]
    assert [p["step"] for p in submits] == ["train", "infer"] and not [p for p in submits if "job" in p]
    fn = aws_side.one("aws_lambda_function", "ray_orchestrator")
    assert fn["environment"]["variables"]["NAMESPACE"] == "ray-unit"
    assert fn["environment"]["variables"]["IMAGE"] == "registry.example/ray:1"
    assert aws_side.has_resource("aws_lambda_permission", {
        "principal": ref("aws_iam_role", "ray_orchestrator", "arn"), "action": "lambda:InvokeFunction"})


def test_log_groups_take_the_props_names_and_retention_under_the_own_key(aws_side):
    groups = {g["name"]: g for g in aws_side.resources("aws_cloudwatch_log_group").values()}
    assert sorted(groups) == ["/aws/lambda/unit-orchestrator", "/aws/vendedlogs/states/unit-pipeline"]
    for g in groups.values():
        assert (g["retention_in_days"], g["kms_key_id"]) == (30, ref("aws_kms_key", "ray_orchestrator", "arn"))
    key = aws_side.one("aws_kms_key", "ray_orchestrator")
    assert key["enable_key_rotation"] is True
    logs = next(s for s in json.loads(key["policy"])["Statement"] if s["Sid"] == "CloudWatchLogsEncrypt")
    assert sorted(logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]) == sorted(
        f"arn:aws:logs:eu-west-1:111122223333:log-group:{n}" for n in groups)
    assert aws_side.has_resource("aws_kms_alias", {"name": "alias/unit-orchestrator"})


@pytest.fixture(scope="module")
def kubernetes_side(construct_synth):
    props = RayOrchestratorKubernetesProps(namespace="ray-unit",
                                           scripts={"train.py": 'print(f"${HOME} %{x}")\n', "infer.py": "pass\n"})
    return construct_synth(lambda stack: RayOrchestratorKubernetes(stack, "orchestrator", props),
                           providers=("kubernetes",))


def test_the_group_gets_a_role_in_the_props_namespace_only(kubernetes_side):
    role = kubernetes_side.one("kubernetes_role_v1", "ray_orchestrator")
    assert role["metadata"] == {"name": "ray-orchestrator", "namespace": "ray-unit"}
    assert [(r["api_groups"], r["resources"], r["verbs"]) for r in role["rule"]] == [
        (["batch"], ["jobs"], ["create", "get", "list", "watch", "delete"]),
        ([""], ["pods"], ["get", "list"]),
        ([""], ["pods/log"], ["get"]),
    ]
    assert kubernetes_side.has_resource(RoleBindingV1, {
        "metadata": {"name": "ray-orchestrator", "namespace": "ray-unit"},
        "role_ref": {"kind": "Role", "name": "${kubernetes_role_v1.ray_orchestrator.metadata[0].name}"},
        "subject": [{"kind": "Group", "name": "ray-orchestrator", "api_group": "rbac.authorization.k8s.io"}]})
    assert not kubernetes_side.resources("kubernetes_cluster_role_v1")


def test_the_scripts_config_map_holds_the_files_with_terraform_syntax_escaped(kubernetes_side):
    assert kubernetes_side.has_resource(ConfigMapV1, {
        "metadata": {"name": "ray-orchestrator-scripts", "namespace": "ray-unit"},
        "data": {"train.py": 'print(f"$${HOME} %%{x}")\n', "infer.py": "pass\n"}})
