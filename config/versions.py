"""Every pinned version of the deployment, in one place. The config's defaults read them from here."""

from __future__ import annotations

# Ray of the RayCluster image, the custom image's base and the training job's local test runs
# (Pipfile's [training] pins the same release; tests/training checks it).
RAY_VERSION = "2.58.0"
# Token authentication of the dashboard/Jobs API and GCS, which the RayCluster turns on (KubeRay authOptions
# mode token): Ray 2.52.0 and later (docs.ray.io ray-security/token-auth; KubeRay v1.7.0 utils/validation.go
# rejects older rayVersions).
RAY_TOKEN_AUTH_MIN_VERSION = "2.52.0"

# Helm charts.
KUBERAY_OPERATOR_CHART = "1.7.0"
# 9.55.1+ carries the resource.k8s.io RBAC that cluster-autoscaler 1.35 needs (DRA is locked on there).
CLUSTER_AUTOSCALER_CHART = "9.59.0"
NVIDIA_DEVICE_PLUGIN_CHART = "0.18.0"
KUBE_PROMETHEUS_STACK_CHART = "79.7.1"

# EKS on 2026-11-27: 1.35 and 1.34 in standard support (1.34 until 2026-12-02), 1.33 in extended support
# (extra cost). 1.36 waits for a cluster-autoscaler chart made for it.
SUPPORTED_KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35")
DEFAULT_KUBERNETES_VERSION = "1.35"
# cluster-autoscaler's minor version must match the cluster's: the newest patch of each.
CLUSTER_AUTOSCALER_IMAGE_TAGS = {"1.33": "v1.33.6", "1.34": "v1.34.5", "1.35": "v1.35.2"}
