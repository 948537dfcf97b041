"""Kubernetes objects and ASL payloads the orchestrator tests share: the Jobs the state machine submits (as Step
Functions evaluates them) and Job objects as the API server returns them (validated with kubernetes-validate)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tests import asl
from tests.k8s_schemas import validate_core_object

RAY_NS = "${kubernetes_namespace_v1.ray.metadata[0].name}"


def literal_namespace(value):
    """The synthesized JSON names the namespace by reference; the API server gets its value ("ray")."""
    if isinstance(value, dict):
        return {k: literal_namespace(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal_namespace(v) for v in value]
    return value.replace(RAY_NS, "ray") if isinstance(value, str) else value


def submitted_job(definition: dict, step: str) -> dict:
    """The Job the Submit state hands the function for ``step``, as Step Functions evaluates it."""
    data = {"run_id": str(uuid.uuid4()), "attempts": {step: {"count": 1, "job_name": f"ray-{step}-{uuid.uuid4()}"}}}
    payload = asl.evaluate(definition["States"][f"{step.title()}Submit"]["Parameters"]["Payload"], data)
    return literal_namespace(payload["job"])


def job_object(name: str, conditions: list[dict], created: str = "2026-01-01T00:00:00Z") -> dict:
    """A Job as the API server returns it (validated: the status the function reads is a real one)."""
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": "ray", "uid": str(uuid.uuid4()), "creationTimestamp": created},
           "spec": {"activeDeadlineSeconds": 14400, "template": {"spec": {
               "restartPolicy": "Never", "containers": [{"name": "submit", "image": "rayproject/ray:2.54.0"}]}}},
           "status": {"conditions": conditions, "startTime": created}}
    validate_core_object(job)
    return job


NOW = datetime(2026, 1, 1, 1, tzinfo=UTC)  # an hour after the Jobs below were created


def condition(kind: str, reason: str, message: str = "") -> dict:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": "2026-01-01T01:00:00Z", "lastTransitionTime": "2026-01-01T01:00:00Z"}


RUNNING: list[dict] = []
COMPLETE = [condition("SuccessCriteriaMet", "CompletionsReached"), condition("Complete", "CompletionsReached")]
FAILED = [condition("FailureTarget", "BackoffLimitExceeded"), condition("Failed", "BackoffLimitExceeded",
                                                                        "Job has reached the specified backoff limit")]
