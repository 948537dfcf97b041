"""Submitting the training job from inside the cluster: a batch Job running `ray job submit`, or a KubeRay RayJob
on the running cluster; both carry the job's files in a ConfigMap."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from conventions.kubernetes import CORE_ROLE, head_service_name, node_selector, submitter_labels
from conventions.ray import RAY_CLUSTER_LABEL, dashboard_url, runtime_env, runtime_env_args

from .pods import container_security_context, pod_security_context, submitter_resources, token_auth_env

SUBMITTER_SERVICE_ACCOUNT = "ray-operator-ray-operator"


def submitter_command(address: str, entrypoint: str, pip: Sequence[str]) -> str:
    """Shell command of a submitter pod whose job files come from a ConfigMap mounted at /config.

    ConfigMap mounts are symlink farms; the plain files are copied into the working dir that gets uploaded.
    """
    submit = shlex.join(["ray", "job", "submit", "--address", address, "--working-dir", "/tmp/job",
                         *runtime_env_args(pip)])
    return f"cp /config/*.py /tmp/job/ && exec {submit} -- {entrypoint}"


@dataclass(frozen=True)
class JobSubmissionProps:
    namespace: str
    cluster_name: str
    image: str
    # training/ files by name: the entrypoint script and the modules it imports.
    files: dict[str, str]
    script: str  # the entrypoint, one of files
    args: tuple[str, ...]
    pip: tuple[str, ...]  # runtime_env pip: what the image lacks (stacks.contract.job_pip)
    job_name: str = "pytorch-training-e2e"

    @property
    def head_service(self) -> str:
        return head_service_name(self.cluster_name)

    @property
    def entrypoint(self) -> str:
        return shlex.join(["python", self.script, *self.args])


def submitter_service_account(props: JobSubmissionProps) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": SUBMITTER_SERVICE_ACCOUNT, "namespace": props.namespace},
            # Submitting talks HTTP to the dashboard; the pod needs no Kubernetes API token.
            "automountServiceAccountToken": False}


def training_script_config_map(props: JobSubmissionProps) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{props.job_name}-script", "namespace": props.namespace},
            "data": dict(sorted(props.files.items()))}


def submit_job(props: JobSubmissionProps) -> dict:
    """A batch Job that submits the training script to the running cluster with the cluster's own image.

    Its pod carries the submitter label (the head's NetworkPolicy admits it) and the cluster's token.
    """
    command = submitter_command(dashboard_url(props.head_service), props.entrypoint, props.pip)
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"{props.job_name}-submit", "namespace": props.namespace,
                     "labels": {"app.kubernetes.io/name": "ray-job-submitter"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "ray-job-submitter",
                                        **submitter_labels(props.cluster_name)}},
                "spec": {
                    "serviceAccountName": SUBMITTER_SERVICE_ACCOUNT,
                    "securityContext": pod_security_context(),
                    "restartPolicy": "Never",
                    "nodeSelector": node_selector(CORE_ROLE),
                    "containers": [{
                        "name": "submit",
                        "image": props.image,
                        "command": ["bash", "-c", command],
                        "env": token_auth_env(props.cluster_name),
                        "resources": submitter_resources(),
                        "securityContext": container_security_context(),
                        "volumeMounts": [{"name": "script", "mountPath": "/config", "readOnly": True},
                                         {"name": "job", "mountPath": "/tmp/job"}],
                    }],
                    "volumes": [{"name": "script", "configMap": {"name": f"{props.job_name}-script"}},
                                {"name": "job", "emptyDir": {}}],
                },
            },
        },
    }


def ray_job(props: JobSubmissionProps) -> dict:
    """The KubeRay-native alternative: a RayJob that runs on the existing cluster (clusterSelector).

    No token here: KubeRay v1.7.0 injects RAY_AUTH_MODE/RAY_AUTH_TOKEN (from the selected cluster's Secret) into
    the submitter's first container when that cluster has authOptions mode token (controllers/ray/
    rayjob_controller.go configureSubmitterContainer), and keeps the template's labels (the NetworkPolicy's).
    """
    return {
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": props.job_name, "namespace": props.namespace},
        "spec": {
            "clusterSelector": {RAY_CLUSTER_LABEL: props.cluster_name},
            "entrypoint": props.entrypoint,
            # KubeRay writes the submitter's `ray job submit` command; the script's ConfigMap is mounted
            # into the submitter pod and uploaded from there as the job's working dir.
            "runtimeEnvYAML": yaml.safe_dump(runtime_env(props.pip, working_dir="/config"), sort_keys=False),
            "submitterPodTemplate": {
                "metadata": {"labels": submitter_labels(props.cluster_name)},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": pod_security_context(),
                    "nodeSelector": node_selector(CORE_ROLE),
                    "containers": [{
                        "name": "ray-job-submitter",
                        "image": props.image,
                        "resources": submitter_resources(),
                        "securityContext": container_security_context(),
                        "volumeMounts": [{"name": "script", "mountPath": "/config", "readOnly": True}],
                    }],
                    "volumes": [{"name": "script", "configMap": {"name": f"{props.job_name}-script"}}],
                },
            },
            "shutdownAfterJobFinishes": False,  # the cluster is shared; only the job ends
        },
    }
