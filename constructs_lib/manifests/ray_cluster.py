"""The RayCluster (ray.io/v1): the head on core nodes, autoscaling worker groups, FSx mounted."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from conventions.kubernetes import (
    AUTOSCALER_RESOURCES,
    CORE_ROLE,
    FSX_INIT_RESOURCES,
    GPU_RESOURCE,
    churn_protection_annotations,
    gpu_toleration,
    half_memory,
    head_service_name,
    node_group_selector,
    node_selector,
)
from conventions.ray import (
    GRACEFUL_SHUTDOWN_DRAIN_ENV,
    HEAD_NODE_TYPE,
    HEAD_PORTS,
    RAY_CLUSTER_LABEL,
    RAY_NODE_TYPE_LABEL,
    worker_termination_grace_seconds,
)

from .pods import EXPORT_MOUNT, IMPORT_MOUNT, RAY_GID, RAY_UID, container_security_context, pod_security_context

FSX_VOLUME = "fsx"
HEAD_CONTAINER = "ray-head"
SHM_VOLUME = "dshm"
API_TOKEN_VOLUME = "kube-api-access"
# Where clients (the Ray autoscaler's KubeRay node provider) read the pod's ServiceAccount token and the CA.
API_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# The lifetime kubelet's own automounted token asks for (the API server may extend it); kubelet renews the file.
API_TOKEN_SECONDS = 3607


@dataclass(frozen=True)
class WorkerGroupProps:
    name: str
    node_group: str  # the node group (its conventions.kubernetes.NODE_GROUP_LABEL) the workers run on, and no other
    min_replicas: int
    max_replicas: int
    cpu: str
    memory: str
    gpus: int  # NVIDIA GPUs per worker: config owns the default (ray.worker_groups[].gpus)


@dataclass(frozen=True)
class RayClusterProps:
    name: str
    namespace: str
    ray_version: str
    image: str
    head_service_account: str  # KubeRay binds the autoscaler's Role to the head template's ServiceAccount
    worker_service_account: str
    pvc_name: str
    head_cpu: str
    head_memory: str
    idle_timeout_seconds: int
    # Seconds a stopping worker lets Ray drain (conventions.ray.GRACEFUL_SHUTDOWN_DRAIN_ENV); its grace period adds
    # Ray's shutdown (conventions.ray.worker_termination_grace_seconds).
    worker_drain_seconds: int
    # KubeRay spec.upgradeStrategy.type: Recreate (a changed pod template replaces every Ray pod) or None.
    upgrade_strategy: str
    worker_groups: list[WorkerGroupProps] = field(default_factory=list)
    # Observability (empty: the objects are exactly as without it): extra env on the head container
    # (RAY_GRAFANA_HOST, RAY_PROMETHEUS_HOST, ...) and annotations on every Ray pod (prometheus.io/*).
    head_env: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)
    # More named ports on the head container, beside HEAD_PORTS: the autoscaler's and the dashboard's metrics.
    head_extra_ports: dict[str, int] = field(default_factory=dict)

    @property
    def head_service(self) -> str:
        return head_service_name(self.name)


def _pod_metadata(props: RayClusterProps, labels: dict[str, str]) -> dict:
    # Every Ray pod keeps cluster-autoscaler and Karpenter from removing its node while it runs.
    return {"labels": labels, "annotations": {**props.pod_annotations, **churn_protection_annotations()}}


def _labels(props: RayClusterProps) -> dict[str, str]:
    return {"app.kubernetes.io/name": "ray", "app.kubernetes.io/instance": props.name,
            "app.kubernetes.io/managed-by": "terraform"}


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


def api_token_volume() -> dict:
    """What kubelet's automount projects (token, CA, namespace), as a volume that only the container mounting it sees.

    The head pod does not automount its token (automountServiceAccountToken false puts it in no container); the
    autoscaler container mounts this at the usual path. So the autoscaler keeps the rights KubeRay binds to the
    head's ServiceAccount, and Ray code in the ray-head container -- the job drivers -- has no API token.
    """
    return {"name": API_TOKEN_VOLUME, "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": API_TOKEN_SECONDS}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def ray_cluster(props: RayClusterProps) -> dict:
    """The RayCluster (ray.io/v1): head on core nodes with no Ray work, autoscaling worker groups."""
    labels = _labels(props)
    resources = {"cpu": props.head_cpu, "memory": props.head_memory}
    head_pod = {
        "metadata": _pod_metadata(props, labels),
        "spec": {
            "serviceAccountName": props.head_service_account,
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            "nodeSelector": node_selector(CORE_ROLE),
            "initContainers": [_fsx_permissions_init(props.image)],
            "containers": [{
                "name": HEAD_CONTAINER,
                "image": props.image,
                "ports": [{"name": n, "containerPort": p, "protocol": "TCP"}
                          for n, p in {**HEAD_PORTS, **props.head_extra_ports}.items()],
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "securityContext": container_security_context(),
                "volumeMounts": _mounts(),
            }],
            # Half the container memory for the object store's shared memory, as Ray sizes it by default.
            "volumes": [*_volumes(props, half_memory(props.head_memory)), api_token_volume()],
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
            # No Kubernetes API identity at all: the workers run job code and need only the data bucket (IRSA).
            "serviceAccountName": props.worker_service_account,
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            # Its own node group, not the role: two groups of one role never take each other's workers.
            "nodeSelector": node_group_selector(g.node_group),
            # Told to stop, the worker drains (the env below), then Ray shuts down; only then SIGKILL.
            "terminationGracePeriodSeconds": worker_termination_grace_seconds(props.worker_drain_seconds),
            "initContainers": [_fsx_permissions_init(props.image)],
            "containers": [{
                "name": "ray-worker",
                "image": props.image,
                "env": [{"name": GRACEFUL_SHUTDOWN_DRAIN_ENV, "value": str(props.worker_drain_seconds)}],
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
            # Recreate: a changed spec (a new image above all) replaces every Ray pod, running jobs included; KubeRay
            # v1.7.0 leaves running pods alone otherwise (raycluster_controller.go shouldRecreatePodsForUpgrade:
            # the head pod's hash of the spec without replicas, min/max and tolerations).
            "upgradeStrategy": {"type": props.upgrade_strategy},
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {
                "upscalingMode": "Default",
                "idleTimeoutSeconds": props.idle_timeout_seconds,
                "resources": {"requests": dict(AUTOSCALER_RESOURCES), "limits": dict(AUTOSCALER_RESOURCES)},
                # KubeRay v1.7.0 gives the autoscaler container no securityContext of its own (common/pod.go
                # BuildAutoscalerContainer) and appends these mounts (mergeAutoscalerOverrides).
                "securityContext": container_security_context(),
                "volumeMounts": [{"name": API_TOKEN_VOLUME, "mountPath": API_TOKEN_PATH, "readOnly": True}],
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


def head_disruption_budget(props: RayClusterProps) -> dict:
    """The head's PodDisruptionBudget (policy/v1): no voluntary eviction of the one head pod, so a node drain
    (cluster-autoscaler scaling the core group down, kubectl drain, a managed node group update) does not take the
    GCS and every running job with it. KubeRay's own deletes (Recreate) are not evictions and are not held."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": f"{props.name}-head", "namespace": props.namespace, "labels": _labels(props)},
        "spec": {"minAvailable": 1,
                 "selector": {"matchLabels": {RAY_CLUSTER_LABEL: props.name, RAY_NODE_TYPE_LABEL: HEAD_NODE_TYPE}}},
    }
