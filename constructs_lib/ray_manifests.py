"""Kubernetes API objects for Ray, written as the objects the API server receives.

Pure functions of typed props: the ray stacks hand them to Terraform, ``scripts/render_jobs.py``
writes the job-submission ones to YAML, and the tests validate exactly these dicts against the
KubeRay CRD schemas and the Kubernetes OpenAPI schemas.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from conventions.kubernetes import (
    AUTOSCALER_RESOURCES,
    CORE_ROLE,
    FSX_INIT_RESOURCES,
    GPU_RESOURCE,
    RAY_AUTH_ENV,
    RAY_AUTH_TOKEN_KEY,
    auth_secret_name,
    gpu_toleration,
    half_memory,
    head_service_name,
    node_selector,
    submitter_labels,
)

# Ports of the head service, as in the original user guide.
HEAD_PORTS = {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "metrics": 8080, "serve": 8000}
RAY_UID, RAY_GID = 1000, 100  # the `ray` user of rayproject/ray images
EXPORT_MOUNT = "/ray/export"
IMPORT_MOUNT = "/ray/import"
FSX_VOLUME = "fsx"
SHM_VOLUME = "dshm"
SUBMITTER_SERVICE_ACCOUNT = "ray-operator-ray-operator"
# Labels KubeRay puts on every pod of a RayCluster (v1.7.0 controllers/ray/utils/constant.go).
RAY_CLUSTER_LABEL, RAY_NODE_TYPE_LABEL = "ray.io/cluster", "ray.io/node-type"


def submitter_resources() -> dict:
    """Pods that only run `ray job submit`: HTTP to the dashboard, no Ray work. (A fresh dict per object:
    a shared one would come out of the YAML dumper as an anchor/alias.)"""
    return {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


def dashboard_url(head_service: str) -> str:
    return f"http://{head_service}:{HEAD_PORTS['dashboard']}"


def token_auth_env(ray_cluster_name: str) -> list[dict]:
    """The env a pod needs to call a token-auth RayCluster's dashboard/Jobs API: the same two variables, from the
    same Secret, that KubeRay v1.7.0 injects into the Ray containers (common/pod.go SetContainerTokenAuthEnvVars);
    `ray job submit` sends the token only when RAY_AUTH_MODE=token is set."""
    return [
        {"name": RAY_AUTH_ENV["mode"], "value": "token"},
        {"name": RAY_AUTH_ENV["token"], "valueFrom": {"secretKeyRef": {"name": auth_secret_name(ray_cluster_name),
                                                                       "key": RAY_AUTH_TOKEN_KEY}}},
    ]


def runtime_env(pip: Sequence[str], working_dir: str | None = None) -> dict:
    """A job's runtime_env: its files (``working_dir``) and the libraries its image lacks (``pip``: the lines of
    training/requirements.txt with a stock or custom image, none with the built one). Every job submission
    (make submit, the stack output, the submitter Job, the RayJob, the orchestrator) builds it here."""
    env: dict = {}
    if working_dir:
        env["working_dir"] = working_dir
    if pip:
        env["pip"] = list(pip)
    return env


def runtime_env_args(pip: Sequence[str]) -> list[str]:
    """``ray job submit`` arguments that add ``pip`` to the job's runtime_env (none when there is nothing to add)."""
    if not pip:
        return []
    return ["--runtime-env-json", json.dumps(runtime_env(pip), separators=(",", ":"))]


def submitter_command(address: str, entrypoint: str, pip: Sequence[str]) -> str:
    """Shell command of a submitter pod whose job files come from a ConfigMap mounted at /config.

    ConfigMap mounts are symlink farms; the plain files are copied into the working dir that gets uploaded.
    """
    submit = shlex.join(["ray", "job", "submit", "--address", address, "--working-dir", "/tmp/job",
                         *runtime_env_args(pip)])
    return f"cp /config/*.py /tmp/job/ && exec {submit} -- {entrypoint}"


@dataclass(frozen=True)
class WorkerGroupProps:
    name: str
    node_role: str  # the role label (conventions.kubernetes.NODE_ROLE_LABEL) of the node group the workers run on
    min_replicas: int
    max_replicas: int
    cpu: str
    memory: str
    gpus: int = 0


@dataclass(frozen=True)
class RayClusterProps:
    name: str
    namespace: str
    ray_version: str
    image: str
    service_account: str
    pvc_name: str
    head_cpu: str
    head_memory: str
    idle_timeout_seconds: int
    worker_groups: list[WorkerGroupProps] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    # Observability (empty: the objects are exactly as without it): extra env on the head container
    # (RAY_GRAFANA_HOST, RAY_PROMETHEUS_HOST, ...) and annotations on every Ray pod (prometheus.io/*).
    head_env: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def head_service(self) -> str:
        return head_service_name(self.name)


def _pod_metadata(props: RayClusterProps, labels: dict[str, str]) -> dict:
    meta: dict = {"labels": labels}
    if props.pod_annotations:
        meta["annotations"] = dict(props.pod_annotations)
    return meta


def _labels(props: RayClusterProps) -> dict[str, str]:
    return {"app.kubernetes.io/name": "ray", "app.kubernetes.io/instance": props.name,
            "app.kubernetes.io/managed-by": "terraform", **props.labels}


def _volumes(props: RayClusterProps, shm_size: str) -> list[dict]:
    return [
        {"name": FSX_VOLUME, "persistentVolumeClaim": {"claimName": props.pvc_name}},
        # Ray's object store lives in /dev/shm; the container default (64Mi) starves it.
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}},
    ]


def _mounts() -> list[dict]:
    return [
        {"name": FSX_VOLUME, "mountPath": EXPORT_MOUNT, "subPath": "export"},
        {"name": FSX_VOLUME, "mountPath": IMPORT_MOUNT, "subPath": "import", "readOnly": True},
        {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
    ]


def _fsx_permissions_init(image: str) -> dict:
    """Make the FSx export directory writable by the Ray user once per pod: no manual chmod.

    Lustre ignores fsGroup (the CSI driver does not chown), so a root init container sets the owner.
    """
    return {
        "name": "fsx-permissions",
        "image": image,
        "command": ["sh", "-c", f"chown {RAY_UID}:{RAY_GID} {EXPORT_MOUNT} && chmod 0775 {EXPORT_MOUNT}"],
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}},
        "volumeMounts": [{"name": FSX_VOLUME, "mountPath": EXPORT_MOUNT, "subPath": "export"}],
        "resources": copy.deepcopy(FSX_INIT_RESOURCES),
    }


def container_security_context() -> dict:
    return {"runAsUser": RAY_UID, "runAsGroup": RAY_GID, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}}


def ray_cluster(props: RayClusterProps) -> dict:
    """The RayCluster (ray.io/v1): head on core nodes with no Ray work, autoscaling worker groups."""
    labels = _labels(props)
    resources = {"cpu": props.head_cpu, "memory": props.head_memory}
    head_pod = {
        "metadata": _pod_metadata(props, labels),
        "spec": {
            "serviceAccountName": props.service_account,
            "nodeSelector": node_selector(CORE_ROLE),
            "initContainers": [_fsx_permissions_init(props.image)],
            "containers": [{
                "name": "ray-head",
                "image": props.image,
                "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in HEAD_PORTS.items()],
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "securityContext": container_security_context(),
                "volumeMounts": _mounts(),
            }],
            # Half the container memory for the object store's shared memory, as Ray sizes it by default.
            "volumes": _volumes(props, half_memory(props.head_memory)),
        },
    }
    if props.head_env:
        head_pod["spec"]["containers"][0]["env"] = [{"name": k, "value": v} for k, v in sorted(props.head_env.items())]
    workers = []
    for g in props.worker_groups:
        res = {"cpu": g.cpu, "memory": g.memory}
        if g.gpus:
            # Limits are what the Ray autoscaler reads to know a worker has GPUs (the original omitted them).
            res[GPU_RESOURCE] = str(g.gpus)
        spec: dict = {
            "serviceAccountName": props.service_account,
            "nodeSelector": node_selector(g.node_role),
            "initContainers": [_fsx_permissions_init(props.image)],
            "containers": [{
                "name": "ray-worker",
                "image": props.image,
                "resources": {"requests": dict(res), "limits": dict(res)},
                "securityContext": container_security_context(),
                "volumeMounts": _mounts(),
            }],
            "volumes": _volumes(props, half_memory(g.memory)),
        }
        if g.gpus:
            spec["tolerations"] = [gpu_toleration()]
        workers.append({
            "groupName": g.name,
            # No `replicas`: the Ray autoscaler owns it (it patches the field as it scales). Omitted, the CRD
            # default 0 applies and KubeRay runs minReplicas pods until the autoscaler sets it
            # (v1.7.0 utils/util.go GetWorkerGroupDesiredReplicas clamps to [min, max]).
            "minReplicas": g.min_replicas,
            "maxReplicas": g.max_replicas,
            "rayStartParams": {},
            "template": {"metadata": _pod_metadata(props, {**labels, "ray.io/worker-group": g.name}), "spec": spec},
        })
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": props.name, "namespace": props.namespace, "labels": labels},
        "spec": {
            "rayVersion": props.ray_version,
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {
                "upscalingMode": "Default",
                "idleTimeoutSeconds": props.idle_timeout_seconds,
                "resources": {"requests": dict(AUTOSCALER_RESOURCES), "limits": dict(AUTOSCALER_RESOURCES)},
            },
            # The dashboard/Jobs API, GCS and every Ray process require a token. KubeRay creates it in the Secret
            # named after the cluster (key auth_token) and injects RAY_AUTH_MODE/RAY_AUTH_TOKEN into the Ray
            # containers, the autoscaler and RayJob submitters; Ray >= 2.52 (validated in config).
            "authOptions": {"mode": "token"},
            "headGroupSpec": {
                # ClusterIP only: dashboard, client port and GCS are reached by port-forward, never exposed.
                "serviceType": "ClusterIP",
                "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                "template": head_pod,
            },
            "workerGroupSpecs": workers,
        },
    }


# ------------------------------------------------------------------------------ storage
@dataclass(frozen=True)
class FsxVolumeProps:
    name: str
    namespace: str
    file_system_id: str
    dns_name: str
    mount_name: str
    capacity_gib: int


def fsx_persistent_volume(props: FsxVolumeProps) -> dict:
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": props.name},
        "spec": {
            "capacity": {"storage": f"{props.capacity_gib}Gi"},
            "volumeMode": "Filesystem",
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",  # the file system outlives the claim
            "storageClassName": "",
            "mountOptions": ["flock"],
            "claimRef": {"namespace": props.namespace, "name": props.name},
            "csi": {"driver": "fsx.csi.aws.com", "volumeHandle": props.file_system_id,
                    "volumeAttributes": {"dnsname": props.dns_name, "mountname": props.mount_name}},
        },
    }


def fsx_persistent_volume_claim(props: FsxVolumeProps) -> dict:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": props.name, "namespace": props.namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": props.name,
                 "resources": {"requests": {"storage": f"{props.capacity_gib}Gi"}}},
    }


# ------------------------------------------------------------------------------ job submission
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
    labels: dict[str, str] = field(default_factory=dict)

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
                     "labels": {"app.kubernetes.io/name": "ray-job-submitter", **props.labels}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "ray-job-submitter",
                                        **submitter_labels(props.cluster_name)}},
                "spec": {
                    "serviceAccountName": SUBMITTER_SERVICE_ACCOUNT,
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
        "metadata": {"name": props.job_name, "namespace": props.namespace, "labels": dict(props.labels)},
        "spec": {
            "clusterSelector": {"ray.io/cluster": props.cluster_name},
            "entrypoint": props.entrypoint,
            # KubeRay writes the submitter's `ray job submit` command; the script's ConfigMap is mounted
            # into the submitter pod and uploaded from there as the job's working dir.
            "runtimeEnvYAML": yaml.safe_dump(runtime_env(props.pip, working_dir="/config"), sort_keys=False),
            "submitterPodTemplate": {
                "metadata": {"labels": submitter_labels(props.cluster_name)},
                "spec": {
                    "restartPolicy": "Never",
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


# ------------------------------------------------------------------------------ who may reach the head
@dataclass(frozen=True)
class HeadNetworkPolicyProps:
    cluster_name: str
    namespace: str
    operator_pod_labels: dict[str, str]  # the KubeRay operator's pods (same namespace)
    # Who scrapes the metrics port: None, nobody (no rule); [] any pod (a Prometheus we do not know);
    # else these NetworkPolicy peers (kube-prometheus-stack's Prometheus).
    metrics_from: list[dict] | None


def head_network_policy(props: HeadNetworkPolicyProps) -> dict:
    """Ingress to the Ray head: the cluster's own Ray pods on every port (GCS, raylet, object manager, client);
    the dashboard/Jobs API (8265) only from the KubeRay operator (it calls it for RayJobs) and the in-cluster
    submitter pods (label ``SUBMITTER_LABEL``); the metrics port from Prometheus when metrics are scraped.

    Not subject to it: ``kubectl port-forward`` (the kubelet connects inside the pod's network namespace, never
    through the host veth where the VPC CNI's eBPF policy runs) and kubelet probes (traffic from the node is always
    allowed). Egress is left open (Ray pods pull data, the head queries Prometheus/Grafana).
    """
    own = {RAY_CLUSTER_LABEL: props.cluster_name}
    ingress: list[dict] = [
        {"from": [{"podSelector": {"matchLabels": dict(own)}}]},
        {"from": [{"podSelector": {"matchLabels": dict(props.operator_pod_labels)}},
                  {"podSelector": {"matchLabels": submitter_labels(props.cluster_name)}}],
         "ports": [{"protocol": "TCP", "port": HEAD_PORTS["dashboard"]}]},
    ]
    if props.metrics_from is not None:
        rule: dict = {"ports": [{"protocol": "TCP", "port": HEAD_PORTS["metrics"]}]}
        if props.metrics_from:
            rule["from"] = [copy.deepcopy(p) for p in props.metrics_from]
        ingress.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"{props.cluster_name}-head-ingress", "namespace": props.namespace},
        "spec": {
            "podSelector": {"matchLabels": {**own, RAY_NODE_TYPE_LABEL: "head"}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


# ------------------------------------------------------------------------------ commands for users
def token_command(namespace: str, ray_cluster_name: str) -> str:
    """Prints the cluster's Ray token (kubectl decodes the Secret's base64 itself: no base64 flag differences)."""
    template = f"{{{{.data.{RAY_AUTH_TOKEN_KEY} | base64decode}}}}"
    return shlex.join(["kubectl", "get", "secret", "-n", namespace, auth_secret_name(ray_cluster_name),
                       "-o", f"go-template={template}"])


def token_export_command(namespace: str, ray_cluster_name: str) -> str:
    """Exports what `ray job submit` needs to call a token-auth cluster: run it before submitting."""
    token = token_command(namespace, ray_cluster_name)
    return f"export {RAY_AUTH_ENV['mode']}=token {RAY_AUTH_ENV['token']}=\"$({token})\""


def port_forward_command(namespace: str, head_service: str) -> str:
    return f"kubectl port-forward -n {namespace} svc/{head_service} 8265:8265"


def job_submit_command(script: str, args: tuple[str, ...], pip: Sequence[str]) -> str:
    """`ray job submit` through the dashboard port-forward, run from the repository root."""
    return shlex.join(["ray", "job", "submit", "--address", "http://localhost:8265", "--working-dir", "training",
                       *runtime_env_args(pip), "--", "python", script, *args])
