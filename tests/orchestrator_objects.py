"""Kubernetes objects the orchestrator tests share: the Jobs the function creates for the state machine's Submit
states (from the steps packaged with the function, built by the function's own code) and Job objects as the API
server returns them (validated with kubernetes-validate)."""

from __future__ import annotations

import io
import json
import shutil
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from lambdas import ray_orchestrator as fn
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


def package_path(outdir: Path, stack: dict, key: str = "ray_orchestrator") -> Path:
    """The function's deployment package in a synth's output directory."""
    return Path(outdir) / "stacks" / "ray" / stack["resource"]["aws_lambda_function"][key]["filename"]


def packaged_steps_at(package: Path) -> dict[str, dict]:
    """The step templates a function package carries (its STEPS_FILE)."""
    with zipfile.ZipFile(package) as zf:
        return json.loads(zf.read(fn.STEPS_FILE))


def packaged_steps(synth: dict, key: str = "ray_orchestrator") -> dict[str, dict]:
    return packaged_steps_at(package_path(synth["_outdir"], synth["ray"], key))


def with_packaged_steps(synth: dict, steps: dict[str, dict], outdir: Path, key: str = "ray_orchestrator") -> dict:
    """A copy of ``synth`` whose function package (written under ``outdir``) carries ``steps`` instead."""
    src = package_path(synth["_outdir"], synth["ray"], key)
    dst = package_path(outdir, synth["ray"], key)
    dst.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buf, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name) if name != fn.STEPS_FILE else json.dumps(steps).encode()
            zout.writestr(name, data)
    dst.write_bytes(buf.getvalue())
    shutil.copymode(src, dst)
    return {**synth, "_outdir": outdir}


def function_pipeline(synth: dict, key: str = "ray_orchestrator") -> fn.Pipeline:
    """What the deployed function works with: its packaged steps, and its environment's namespace and image."""
    env = synth["ray"]["resource"]["aws_lambda_function"][key]["environment"]["variables"]
    return fn.Pipeline(namespace=literal_namespace(env["NAMESPACE"]), image=env["IMAGE"],
                       steps=packaged_steps(synth, key))


def submit_payload(definition: dict, step: str, data: dict | None = None) -> dict:
    """The payload the Submit state of ``step`` hands the function, as Step Functions evaluates it."""
    data = data or {"run_id": str(uuid.uuid4()),
                    "attempts": {step: {"count": 1, "job_name": f"ray-{step}-{uuid.uuid4()}"}}}
    return asl.evaluate(definition["States"][f"{step.title()}Submit"]["Parameters"]["Payload"], data)


def submitted_job(synth: dict, step: str) -> dict:
    """The Job the function creates for the Submit state of ``step`` (its own code builds it)."""
    definition = json.loads(synth["ray"]["resource"]["aws_sfn_state_machine"]["ray_orchestrator"]["definition"])
    p = submit_payload(definition, step)
    return fn.step_job(function_pipeline(synth), p["step"], p["run_id"], p["job_name"])


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
