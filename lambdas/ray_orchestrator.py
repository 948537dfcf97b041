"""The Ray orchestrator's hands on the cluster: Step Functions invokes this function (``lambda:invoke``) for each
Kubernetes call the pipeline makes -- create a step's Job, read its status, read its pod's log tail -- and loops
with Wait/Choice states in between.

It runs in the cluster's private subnets and calls the *private* API endpoint: Step Functions' own ``eks:runJob``
reaches public endpoints only. It authenticates like ``aws eks get-token`` (a presigned STS GetCallerIdentity
URL, signed with the function's role, which an EKS access entry maps to the Kubernetes group
``ray-orchestrator``; a namespaced Role says what that group may do) and trusts only the cluster's CA.

The function builds every Job it creates itself, from its own configuration: the steps' Job templates in
``ray_orchestrator_steps.json`` (packaged beside this module at synth: image-independent, everything but the
name and the run id) and the image, cluster, endpoint, CA and namespace from the environment the stack sets. An
event names only what varies -- the step, the run id and the Job's name -- so whoever may invoke the function can
start one of the pipeline's steps and read its Jobs' status and logs, and nothing else: no pod spec, image,
ServiceAccount or namespace of theirs reaches the cluster. Names from the event are checked to be DNS labels
before they go into a path or an object.

One file, standard library + botocore (both in the Lambda python3.12 runtime): nothing to install.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# What `aws eks get-token` asks for; STS accepts the URL for 15 minutes after X-Amz-Date whatever it says.
PRESIGN_EXPIRES_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10
LOG_TAIL_LINES = 200
LOG_LIMIT_BYTES = 64 * 1024  # the log tail lands in the execution's state data (256 KiB at most)
# A Job still not finished this long after its activeDeadlineSeconds (counted from creation) is reported failed:
# the polling loop ends even if the deadline was never enforced (a Job that never started, say).
DEADLINE_GRACE_SECONDS = 600
JOB_NAME_LABEL = "job-name"  # the Job controller labels its pods with it
RUN_ID_LABEL = "ray-orchestrator/run-id"  # on the Jobs this function creates and on their pods
RUN_ID_ENV = "RUN_ID"  # every container of a step's pod gets the run id in it
STEPS_FILE = "ray_orchestrator_steps.json"  # beside this module in the package: step name -> Job template

RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# A Job's name is also its pods' job-name label value; the run id a label value and a directory name: DNS labels.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class KubernetesApiError(Exception):
    """The API server refused, or an object is not what the pipeline expects: the step fails (not retried)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientApiError(Exception):
    """Unreachable, throttled or a server error: the state machine retries the call."""


# ------------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class Config:
    cluster_name: str
    endpoint: str  # https://<id>.<zone>.<region>.eks.amazonaws.com
    ca_data: str  # base64 PEM, as EKS reports it
    namespace: str
    region: str
    image: str  # of every container of the steps' pods

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Config:
        missing = [k for k in ("CLUSTER_NAME", "CLUSTER_ENDPOINT", "CLUSTER_CA_DATA", "NAMESPACE", "AWS_REGION",
                               "IMAGE") if not environ.get(k)]
        if missing:
            raise KubernetesApiError(f"function environment lacks {', '.join(missing)}")
        return cls(cluster_name=environ["CLUSTER_NAME"], endpoint=environ["CLUSTER_ENDPOINT"].rstrip("/"),
                   ca_data=environ["CLUSTER_CA_DATA"], namespace=environ["NAMESPACE"], region=environ["AWS_REGION"],
                   image=environ["IMAGE"])


@dataclass(frozen=True)
class Pipeline:
    """What the function may create and where: the steps' Job templates, their image, the namespace."""

    namespace: str
    image: str
    steps: Mapping[str, dict]

    @classmethod
    def packaged(cls, config: Config, path: Path | None = None) -> Pipeline:
        path = path or Path(__file__).with_name(STEPS_FILE)
        try:
            steps = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise KubernetesApiError(f"the package's {STEPS_FILE} cannot be read: {e}") from None
        return cls(namespace=config.namespace, image=config.image, steps=steps)


# ------------------------------------------------------------------------------------------------- token
def sts_client(region: str, **client_kwargs: Any) -> Any:
    """An STS client whose GetCallerIdentity presigns the ``x-k8s-aws-id`` header, as the AWS CLI's get-token does.

    Regional endpoint: the token must not depend on us-east-1 (and aws-iam-authenticator accepts regional hosts).
    """
    import botocore.session

    session = botocore.session.get_session()
    session.set_config_variable("sts_regional_endpoints", "regional")
    client = session.create_client("sts", region_name=region, **client_kwargs)
    client.meta.events.register("provide-client-params.sts.GetCallerIdentity", _take_cluster_id)
    client.meta.events.register("before-sign.sts.GetCallerIdentity", _sign_cluster_id)
    return client


def _take_cluster_id(params: dict, context: dict, **_: Any) -> None:
    if CLUSTER_ID_HEADER in params:
        context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)


def _sign_cluster_id(request: Any, **_: Any) -> None:
    if CLUSTER_ID_HEADER in request.context:
        request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]


def eks_token(client: Any, cluster_name: str) -> str:
    """A bearer token for the cluster: ``k8s-aws-v1.`` + base64url (unpadded) of the presigned URL."""
    url = client.generate_presigned_url("get_caller_identity", Params={CLUSTER_ID_HEADER: cluster_name},
                                        ExpiresIn=PRESIGN_EXPIRES_SECONDS, HttpMethod="GET")
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


# ------------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class ApiRequest:
    """One call to the Kubernetes API, as the RBAC authorizer sees it (method + path) and the server reads it."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: dict | None = None
    json_response: bool = True  # pod logs are text/plain

    @property
    def target(self) -> str:
        return self.path + (f"?{urllib.parse.urlencode(self.query)}" if self.query else "")


def dns_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _DNS_SUBDOMAIN.match(value):
        raise KubernetesApiError(f"{what} must be a DNS name, got {value!r}")
    return value


def dns_label(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _DNS_LABEL.match(value):
        raise KubernetesApiError(f"{what} must be a DNS label (a-z, 0-9, -; at most 63), got {value!r}")
    return value


def create_job(namespace: str, job: dict) -> ApiRequest:
    return ApiRequest("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job)


def read_job(namespace: str, name: str) -> ApiRequest:
    return ApiRequest("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{dns_name(name, 'job name')}")


def list_job_pods(namespace: str, job_name: str) -> ApiRequest:
    """The pods of one of the orchestrator's Jobs (its pods carry the run-id label too)."""
    return ApiRequest("GET", f"/api/v1/namespaces/{namespace}/pods",
                      {"labelSelector": f"{JOB_NAME_LABEL}={dns_name(job_name, 'job name')},{RUN_ID_LABEL}"})


def read_pod_log(namespace: str, pod: str) -> ApiRequest:
    return ApiRequest("GET", f"/api/v1/namespaces/{namespace}/pods/{dns_name(pod, 'pod name')}/log",
                      {"tailLines": str(LOG_TAIL_LINES), "limitBytes": str(LOG_LIMIT_BYTES)}, json_response=False)


def step_job(pipeline: Pipeline, step: Any, run_id: Any, job_name: Any) -> dict:
    """The Job of ``step`` for this run: the packaged template with the name, run id and image filled in."""
    if not isinstance(step, str) or step not in pipeline.steps:
        raise KubernetesApiError(f"unknown step {step!r} ({', '.join(sorted(pipeline.steps))})")
    run_id, job_name = dns_label(run_id, "run id"), dns_label(job_name, "job name")
    job = copy.deepcopy(pipeline.steps[step])
    meta = job.setdefault("metadata", {})
    meta.update(name=job_name, namespace=pipeline.namespace)
    meta.setdefault("labels", {})[RUN_ID_LABEL] = run_id
    pod = job["spec"]["template"]
    pod.setdefault("metadata", {}).setdefault("labels", {})[RUN_ID_LABEL] = run_id
    for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
        c["image"] = pipeline.image
        c["env"] = [{"name": RUN_ID_ENV, "value": run_id}, *(e for e in c.get("env", []) if e["name"] != RUN_ID_ENV)]
    return job


def ours(job: dict) -> dict:
    """A Job this function created (it carries the run-id label), or an error: status and logs are for those only."""
    if RUN_ID_LABEL not in ((job.get("metadata") or {}).get("labels") or {}):
        raise KubernetesApiError(f"Job {job['metadata'].get('name')!r} was not created by the orchestrator")
    return job


# ------------------------------------------------------------------------------------------------- responses
def _time(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def job_phase(job: dict, now: datetime.datetime) -> dict:
    """Running, Succeeded or Failed, from the Job's terminal conditions (Complete, Failed) -- or Failed when the
    Job outlived its deadline by DEADLINE_GRACE_SECONDS without the controller ending it."""
    status = job.get("status") or {}
    true = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    phase, reason, message = RUNNING, "", ""
    for kind, result in (("Complete", SUCCEEDED), ("Failed", FAILED)):
        if kind in true:
            phase, reason, message = result, true[kind].get("reason") or kind, true[kind].get("message") or ""
            break
    else:
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        created = (job.get("metadata") or {}).get("creationTimestamp")
        if deadline is not None and created:
            overdue = (now - _time(created)).total_seconds() - deadline - DEADLINE_GRACE_SECONDS
            if overdue > 0:
                phase, reason = FAILED, "NotFinishedInTime"
                message = f"still not finished {deadline + DEADLINE_GRACE_SECONDS} s after it was created"
    return {"name": job["metadata"]["name"], "phase": phase, "reason": reason, "message": message,
            "active": int(status.get("active") or 0), "succeeded": int(status.get("succeeded") or 0),
            "failed": int(status.get("failed") or 0)}


def newest_pod(pods: dict) -> str | None:
    items = [p for p in pods.get("items") or [] if (p.get("metadata") or {}).get("name")]
    if not items:
        return None
    newest = max(items, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
    return newest["metadata"]["name"]


# ------------------------------------------------------------------------------------------------- actions
Send = Callable[[ApiRequest], Any]


def run(event: Mapping[str, Any], pipeline: Pipeline, send: Send, now: datetime.datetime | None = None) -> dict:
    """One pipeline call: ``submit`` (the Job of ``step`` for ``run_id``, named ``job_name``), ``status`` or ``logs``
    (of the orchestrator's Job ``name``)."""
    action, namespace = event.get("action"), pipeline.namespace
    if action == "submit":
        job = step_job(pipeline, event.get("step"), event.get("run_id"), event.get("job_name"))
        name = job["metadata"]["name"]
        try:
            created = send(create_job(namespace, job))
        except KubernetesApiError as e:
            # A retried call whose first try got through: the Job is ours if it carries the same run id.
            if e.status != 409:
                raise
            created = send(read_job(namespace, name))
            if (created["metadata"].get("labels") or {}).get(RUN_ID_LABEL) != job["metadata"]["labels"][RUN_ID_LABEL]:
                raise
        return {"name": created["metadata"]["name"], "uid": created["metadata"]["uid"]}
    if action == "status":
        job = ours(send(read_job(namespace, dns_name(event.get("name"), "job name"))))
        return job_phase(job, now or datetime.datetime.now(datetime.UTC))
    if action == "logs":
        pod = newest_pod(send(list_job_pods(namespace, dns_name(event.get("name"), "job name"))))
        return {"pod": pod or "", "log": send(read_pod_log(namespace, pod)) if pod else ""}
    raise KubernetesApiError(f"unknown action {action!r} (submit, status or logs)")


# ------------------------------------------------------------------------------------------------- transport
def ssl_context(ca_data: str) -> ssl.SSLContext:
    """Verifies the API server against the cluster CA only (no system CAs), hostname included."""
    return ssl.create_default_context(cadata=base64.b64decode(ca_data).decode("ascii"))


class ApiClient:
    """Sends ApiRequests to the endpoint with a fresh token per invocation."""

    def __init__(self, config: Config, token: str) -> None:
        self.endpoint, self.token, self.context = config.endpoint, token, ssl_context(config.ca_data)

    def __call__(self, req: ApiRequest) -> Any:
        data = json.dumps(req.body).encode() if req.body is not None else None
        headers = {"Authorization": f"Bearer {self.token}",
                   "Accept": "application/json" if req.json_response else "text/plain"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        http = urllib.request.Request(self.endpoint + req.target, data=data, method=req.method, headers=headers)
        where = f"{req.method} {req.path}"
        try:
            with urllib.request.urlopen(http, timeout=HTTP_TIMEOUT_SECONDS, context=self.context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = _status_message(e.read(4096))
            print(json.dumps({"request": where, "status": e.code, "message": detail}))
            if e.code == 429 or e.code >= 500:
                raise TransientApiError(f"{where}: HTTP {e.code}: {detail}") from None
            raise KubernetesApiError(f"{where}: HTTP {e.code}: {detail}", status=e.code) from None
        except (urllib.error.URLError, OSError) as e:  # connection refused/reset, DNS, timeouts
            raise TransientApiError(f"{where}: {e}") from None
        print(json.dumps({"request": where, "status": 200}))
        return json.loads(raw) if req.json_response else raw.decode("utf-8", errors="replace")


def _status_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", ""))[:500]
    except (ValueError, AttributeError):
        return raw.decode("utf-8", errors="replace")[:500]


_sts: Any = None


def handler(event: dict, context: Any) -> dict:
    global _sts
    config = Config.from_environ()
    if _sts is None:  # reused by warm invocations; the token is not (it is valid for 15 minutes)
        _sts = sts_client(config.region)
    return run(event, Pipeline.packaged(config), ApiClient(config, eks_token(_sts, config.cluster_name)))
