"""The orchestrator's function (lambdas/ray_orchestrator.py), with no API server and no AWS here:

- its token is made by botocore for a role assumed in the project's AWS emulator, checked as aws-iam-authenticator
  checks it, and then really used: the presigned GetCallerIdentity GET goes to the emulator, which verifies the
  signature and answers with the role's identity (what EKS maps through the access entry);
- its Kubernetes requests are checked as the API server would: bodies with kubernetes-validate (strict), method and
  path through RBAC against the Role the ray stack creates (tests/k8s_authz.py); responses are real object shapes.
"""

from __future__ import annotations

import ast
import base64
import datetime
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile

import pytest

from constructs_lib.orchestrator import FUNCTION_MODULE
from lambdas import ray_orchestrator as fn
from tests.helpers import one
from tests.k8s_authz import request_info, role_allows, role_rules
from tests.k8s_schemas import validate_core_object
from tests.orchestrator_objects import COMPLETE, FAILED, condition, function_pipeline, package_path, submitted_job

CLUSTER = "ray-eks"
NS = "ray"
# aws-iam-authenticator's rules for a token (pkg/token/token.go, Verify).
QUERY_WHITELIST = {"action", "version", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
                   "x-amz-security-token", "x-amz-signature", "x-amz-signedheaders"}


# ------------------------------------------------------------------------------------------------- token
def authenticator_checks(token: str) -> urllib.parse.SplitResult:
    """The format checks aws-iam-authenticator makes before it calls STS; returns the presigned URL."""
    assert len(token) <= 4096 and token.startswith("k8s-aws-v1.")
    raw = token[len("k8s-aws-v1."):]
    assert "=" not in raw, "RawURLEncoding: no padding"
    url = urllib.parse.urlsplit(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    assert url.path == "/"
    params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    assert {k.lower() for k in params} <= QUERY_WHITELIST, set(params)
    assert all(len(v) == 1 for v in params.values())
    p = {k.lower(): v[0] for k, v in params.items()}
    assert p["action"] == "GetCallerIdentity"
    assert "x-k8s-aws-id" in p["x-amz-signedheaders"].lower().split(";"), "the cluster id header must be signed"
    assert 0 <= int(p["x-amz-expires"]) <= 900
    signed_at = datetime.datetime.strptime(p["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    assert abs((datetime.datetime.now(datetime.UTC) - signed_at).total_seconds()) < 15 * 60
    return url


def test_token_for_aws_is_a_presigned_regional_sts_url():
    client = fn.sts_client("us-west-2", aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                           aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    url = authenticator_checks(fn.eks_token(client, CLUSTER))
    assert (url.scheme, url.netloc) == ("https", "sts.us-west-2.amazonaws.com")
    cn = fn.sts_client("cn-north-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
    assert authenticator_checks(fn.eks_token(cn, CLUSTER)).netloc == "sts.cn-north-1.amazonaws.com.cn"


def _assumed_role(emulator, role_name: str) -> tuple[str, dict]:
    iam, sts = emulator.client("iam"), emulator.client("sts")
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},'
        '"Action":"sts:AssumeRole"}]}'))["Role"]
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=role_name)["Credentials"]
    return role["Arn"], {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
                         "aws_session_token": creds["SessionToken"]}


def canonical_arn(arn: str) -> str:
    """aws-iam-authenticator's arn.Canonicalize: an assumed-role session ARN -> the IAM role's ARN."""
    prefix, partition, service, _, account, resource = arn.split(":", 5)
    kind, role, _session = resource.split("/", 2)
    assert (prefix, service, kind) == ("arn", "sts", "assumed-role"), arn
    return f"arn:{partition}:iam::{account}:role/{role}"


def _get(url: str, cluster: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"x-k8s-aws-id": cluster, "accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_token_is_accepted_by_sts_as_the_functions_role(emulator):
    import json

    role_arn, creds = _assumed_role(emulator, "ray-eks-ray-orchestrator-lambda")
    token = fn.eks_token(fn.sts_client("us-west-2", endpoint_url=emulator.url, **creds), CLUSTER)
    url = authenticator_checks(token).geturl()
    status, body = _get(url, CLUSTER)
    assert status == 200, body
    identity = json.loads(body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
    # What EKS does with it: the assumed-role ARN, canonicalized, is the role the access entry names.
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/ray-eks-ray-orchestrator-lambda/" \
                              "ray-eks-ray-orchestrator-lambda"
    assert canonical_arn(identity["Arn"]) == role_arn
    # The token is bound to the cluster it names: presented for another cluster, the signature no longer holds.
    status, body = _get(url, "another-cluster")
    assert status == 403 and b"SignatureDoesNotMatch" in body
    # And to the signer's secret: a URL signed with a wrong secret is refused.
    forged = fn.sts_client("us-west-2", endpoint_url=emulator.url,
                           **{**creds, "aws_secret_access_key": "not-the-secret"})
    status, body = _get(authenticator_checks(fn.eks_token(forged, CLUSTER)).geturl(), CLUSTER)
    assert status == 403 and b"SignatureDoesNotMatch" in body


# ------------------------------------------------------------------------------------------------- requests
@pytest.fixture(scope="module")
def rules(default_synth) -> list[dict]:
    return role_rules(one(default_synth["ray"], "kubernetes_role_v1", "ray_orchestrator"))


@pytest.fixture(scope="module")
def pipeline(default_synth) -> fn.Pipeline:
    return function_pipeline(default_synth)


class ApiServer:
    """Not a server: the authorization and admission checks the API server makes on each request (RBAC for the
    ray-orchestrator group, strict schema validation of bodies), then the response the test scripted."""

    def __init__(self, rules: list[dict], responses: list) -> None:
        self.rules, self.responses, self.requests = rules, list(responses), []
        self.seen: list[fn.ApiRequest] = []

    def __call__(self, req: fn.ApiRequest):
        info = request_info(req.method, req.path, req.query)
        assert role_allows(self.rules, NS, info), f"RBAC denies {req.method} {req.target} ({info})"
        if req.body is not None:
            validate_core_object(req.body)
        self.requests.append((req.method, req.target))
        self.seen.append(req)
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, dict):
            validate_core_object(answer)
        return answer


def created(job: dict, labels: dict | None = None) -> dict:
    meta = {**job["metadata"], "uid": str(uuid.uuid4()), "creationTimestamp": "2026-01-01T00:00:00Z"}
    if labels is not None:
        meta["labels"] = labels
    return {**job, "metadata": meta}


def pod(name: str, created_at: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": created_at, "labels": {"job-name": "j"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "submit", "image": "rayproject/ray:2.54.0"}]}}


def submit_event(job: dict) -> dict:
    labels = job["metadata"]["labels"]
    return {"action": "submit", "step": labels["app.kubernetes.io/component"],
            "run_id": labels["ray-orchestrator/run-id"], "job_name": job["metadata"]["name"]}


class Recorder(ApiServer):
    """An ApiServer that answers every create with the created object."""

    def __call__(self, req: fn.ApiRequest):
        self.responses.append(created(req.body))
        return super().__call__(req)


@pytest.mark.parametrize("step", ["train", "infer"])
def test_submit_creates_the_steps_job_as_the_role_allows(rules, default_synth, pipeline, step):
    job = submitted_job(default_synth, step)
    api = Recorder(rules, [])
    out = fn.run(submit_event(job), pipeline, api)
    assert api.requests == [("POST", "/apis/batch/v1/namespaces/ray/jobs")]
    assert out["name"] == job["metadata"]["name"] and out["uid"]


def test_an_events_pod_spec_never_reaches_the_cluster(rules, pipeline):
    """Whatever else an invoker puts in the event -- a Job of its own, an image, a ServiceAccount, a namespace --
    the function creates the step's packaged Job, with the deployment's image, in its namespace."""
    evil = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x", "namespace": "kube-system"},
            "spec": {"template": {"spec": {"serviceAccountName": "kuberay-operator", "hostNetwork": True,
                                           "containers": [{"name": "x", "image": "attacker.example/evil"}]}}}}
    api = Recorder(rules, [])
    fn.run({"action": "submit", "step": "train", "run_id": "r1", "job_name": "ray-train-1", "job": evil,
            "image": "attacker.example/evil", "namespace": "kube-system", "serviceAccountName": "kuberay-operator"},
           pipeline, api)
    (body,) = [r.body for r in api.seen]
    assert body == fn.step_job(pipeline, "train", "r1", "ray-train-1")
    assert "attacker" not in repr(body) and "kube-system" not in repr(body)


def test_a_retried_submit_adopts_its_own_job_and_nothing_else(rules, default_synth, pipeline):
    job = submitted_job(default_synth, "train")
    conflict = fn.KubernetesApiError("POST /apis/batch/v1/namespaces/ray/jobs: HTTP 409: already exists", status=409)
    api = ApiServer(rules, [conflict, created(job)])
    assert fn.run(submit_event(job), pipeline, api)["name"] == job["metadata"]["name"]
    assert [m for m, _ in api.requests] == ["POST", "GET"]
    other_run = {**job["metadata"]["labels"], "ray-orchestrator/run-id": "another-run"}
    with pytest.raises(fn.KubernetesApiError, match="409"):
        fn.run(submit_event(job), pipeline, ApiServer(rules, [conflict, created(job, other_run)]))


@pytest.mark.parametrize("conditions, phase, reason", [
    ([], "Running", ""),
    (COMPLETE, "Succeeded", "CompletionsReached"),
    (FAILED, "Failed", "BackoffLimitExceeded"),
    ([condition("FailureTarget", "DeadlineExceeded"),
      condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")], "Failed",
     "DeadlineExceeded"),
])
def test_status_reads_the_jobs_terminal_conditions(rules, default_synth, pipeline, conditions, phase, reason):
    job = created(submitted_job(default_synth, "train"))
    job["status"] = {"conditions": conditions, "startTime": "2026-01-01T00:00:00Z"}
    api = ApiServer(rules, [job])
    now = datetime.datetime(2026, 1, 1, 1, tzinfo=datetime.UTC)
    out = fn.run({"action": "status", "name": job["metadata"]["name"]}, pipeline, api, now=now)
    assert api.requests == [("GET", f"/apis/batch/v1/namespaces/ray/jobs/{job['metadata']['name']}")]
    assert (out["phase"], out["reason"]) == (phase, reason)
    assert all(isinstance(out[k], str) for k in ("phase", "reason", "message")), "the Fail state formats them"


def test_a_job_never_ended_by_its_deadline_is_reported_failed(rules, default_synth, pipeline):
    job = created(submitted_job(default_synth, "train"))
    deadline = job["spec"]["activeDeadlineSeconds"]
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for late, phase in ((deadline + fn.DEADLINE_GRACE_SECONDS, "Running"),
                        (deadline + fn.DEADLINE_GRACE_SECONDS + 1, "Failed")):
        now = start + datetime.timedelta(seconds=late)
        out = fn.run({"action": "status", "name": job["metadata"]["name"]}, pipeline, ApiServer(rules, [job]),
                     now=now)
        assert out["phase"] == phase, late
    assert out["reason"] == "NotFinishedInTime"


def test_status_is_for_the_orchestrators_own_jobs(rules, pipeline):
    other = {"apiVersion": "batch/v1", "kind": "Job",
             "metadata": {"name": "someone-elses", "namespace": NS, "uid": "u", "labels": {"app": "x"},
                          "creationTimestamp": "2026-01-01T00:00:00Z"},
             "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}
    with pytest.raises(fn.KubernetesApiError, match="not created by the orchestrator"):
        fn.run({"action": "status", "name": "someone-elses"}, pipeline, ApiServer(rules, [other]))


def test_logs_come_from_the_newest_pod_of_the_job(rules, pipeline):
    pods = {"apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": [pod("ray-train-x-aaaaa", "2026-01-01T00:00:00Z"),
                      pod("ray-train-x-bbbbb", "2026-01-01T00:05:00Z")]}
    api = ApiServer(rules, [pods, "Job 'raysubmit_1' succeeded\n"])
    out = fn.run({"action": "logs", "name": "ray-train-x"}, pipeline, api)
    assert out == {"pod": "ray-train-x-bbbbb", "log": "Job 'raysubmit_1' succeeded\n"}
    (m1, list_pods), (m2, read_log) = api.requests
    # Only pods of the orchestrator's Jobs (they carry the run-id label) are listed.
    assert list_pods == "/api/v1/namespaces/ray/pods?labelSelector=job-name%3Dray-train-x%2Cray-orchestrator%2Frun-id"
    assert read_log.startswith("/api/v1/namespaces/ray/pods/ray-train-x-bbbbb/log?tailLines=200&limitBytes=")
    empty = ApiServer(rules, [{"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}])
    assert fn.run({"action": "logs", "name": "ray-train-x"}, pipeline, empty) == {"pod": "", "log": ""}


@pytest.mark.parametrize("method, path, query", [
    ("GET", "/api/v1/namespaces/ray/secrets/aws", {}),  # another resource
    ("GET", "/apis/batch/v1/namespaces/kube-system/jobs/x", {}),  # another namespace
    ("GET", "/api/v1/pods", {}),  # cluster-wide
    ("POST", "/api/v1/namespaces/ray/pods/p/exec", {}),  # a subresource it was not given
    ("PATCH", "/apis/batch/v1/namespaces/ray/jobs/x", {}),  # a verb it was not given
    ("POST", "/apis/ray.io/v1/namespaces/ray/rayjobs", {}),  # another API group
])
def test_requests_outside_the_role_are_denied(rules, method, path, query):
    assert not role_allows(rules, NS, request_info(method, path, query))


def test_the_role_allows_exactly_what_the_function_asks_for(rules):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}
    for req in (fn.create_job(NS, job), fn.read_job(NS, "j"), fn.list_job_pods(NS, "j"), fn.read_pod_log(NS, "p")):
        assert role_allows(rules, NS, request_info(req.method, req.path, req.query)), req
    # Drop any one rule and some request of the function is refused: none of them is there for nothing it does.
    for i in range(len(rules)):
        fewer = rules[:i] + rules[i + 1:]
        assert not all(role_allows(fewer, NS, request_info(r.method, r.path, r.query))
                       for r in (fn.create_job(NS, job), fn.read_job(NS, "j"), fn.list_job_pods(NS, "j"),
                                 fn.read_pod_log(NS, "p"))), rules[i]


@pytest.mark.parametrize("event, message", [
    ({"action": "status", "name": "../../../api/v1/namespaces/ray/secrets/aws"}, "job name must be a DNS name"),
    ({"action": "logs", "name": None}, "job name must be a DNS name"),
    ({"action": "submit", "step": "evil", "run_id": "r", "job_name": "j"}, "unknown step 'evil' \\(infer, train\\)"),
    ({"action": "submit", "run_id": "r", "job_name": "j"}, "unknown step None"),
    ({"action": "submit", "step": "train", "run_id": "../..", "job_name": "j"}, "run id must be a DNS label"),
    ({"action": "submit", "step": "train", "run_id": "a b", "job_name": "j"}, "run id must be a DNS label"),
    ({"action": "submit", "step": "train", "run_id": "r", "job_name": "x" * 64}, "job name must be a DNS label"),
    ({"action": "delete", "name": "j"}, "unknown action"),
])
def test_events_name_a_step_and_ids_and_nothing_else(rules, pipeline, event, message):
    api = ApiServer(rules, [])
    with pytest.raises(fn.KubernetesApiError, match=message):
        fn.run(event, pipeline, api)
    assert api.requests == []


# ------------------------------------------------------------------------------------------------- transport, package
def test_tls_trusts_the_cluster_ca_alone(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    ca_data = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()  # as EKS reports it
    ctx = fn.ssl_context(ca_data)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [dict(x[0] for x in c["subject"]) for c in ctx.get_ca_certs()] == [{"commonName": "kubernetes"}]


def test_configuration_comes_from_the_environment_and_the_package_only(default_synth, tmp_path):
    env = {"CLUSTER_NAME": CLUSTER, "CLUSTER_ENDPOINT": "https://ABC.gr7.us-west-2.eks.amazonaws.com/",
           "CLUSTER_CA_DATA": "Y2E=", "NAMESPACE": NS, "AWS_REGION": "us-west-2", "IMAGE": "repo/ray:1"}
    cfg = fn.Config.from_environ(env)
    assert cfg.endpoint == "https://ABC.gr7.us-west-2.eks.amazonaws.com" and cfg.namespace == NS
    for missing in ("CLUSTER_CA_DATA", "IMAGE"):
        with pytest.raises(fn.KubernetesApiError, match=missing):
            fn.Config.from_environ({k: v for k, v in env.items() if k != missing})
    # The steps come from the file packaged beside the module, as Lambda unpacks the zip.
    with zipfile.ZipFile(package_path(default_synth["_outdir"], default_synth["ray"])) as zf:
        zf.extractall(tmp_path)
    pipeline = fn.Pipeline.packaged(cfg, tmp_path / fn.STEPS_FILE)
    assert set(pipeline.steps) == {"train", "infer"} and pipeline.image == "repo/ray:1"
    (container,) = fn.step_job(pipeline, "infer", "r", "j")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "repo/ray:1"
    with pytest.raises(fn.KubernetesApiError, match="cannot be read"):
        fn.Pipeline.packaged(cfg, tmp_path / "missing.json")


def test_handler_needs_only_what_the_lambda_runtime_has():
    """Standard library + botocore (in the python3.12 runtime): the zip holds this one file and nothing else."""
    tree = ast.parse(FUNCTION_MODULE.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"__future__", "botocore"} <= set(sys.stdlib_module_names), imported
