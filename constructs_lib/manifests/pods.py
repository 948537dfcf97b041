"""What the Ray pods and the job submitters' pods share: the image's user, the FSx mount points, the security
context, the submitters' resources and the token env."""

from __future__ import annotations

from conventions.kubernetes import RAY_AUTH_ENV, RAY_AUTH_TOKEN_KEY, auth_secret_name

RAY_UID, RAY_GID = 1000, 100  # the `ray` user of rayproject/ray images
EXPORT_MOUNT = "/ray/export"
IMPORT_MOUNT = "/ray/import"


def submitter_resources() -> dict:
    """Pods that only run `ray job submit`: HTTP to the dashboard, no Ray work. (A fresh dict per object:
    a shared one would come out of the YAML dumper as an anchor/alias.)"""
    return {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


def token_auth_env(ray_cluster_name: str) -> list[dict]:
    """The env a pod needs to call a token-auth RayCluster's dashboard/Jobs API: the same two variables, from the
    same Secret, that KubeRay v1.7.0 injects into the Ray containers (common/pod.go SetContainerTokenAuthEnvVars);
    `ray job submit` sends the token only when RAY_AUTH_MODE=token is set."""
    return [
        {"name": RAY_AUTH_ENV["mode"], "value": "token"},
        {"name": RAY_AUTH_ENV["token"], "valueFrom": {"secretKeyRef": {"name": auth_secret_name(ray_cluster_name),
                                                                       "key": RAY_AUTH_TOKEN_KEY}}},
    ]


def pod_security_context() -> dict:
    """Pod Security restricted wants a seccomp profile; RuntimeDefault is the container runtime's default filter."""
    return {"seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict:
    return {"runAsUser": RAY_UID, "runAsGroup": RAY_GID, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}}
