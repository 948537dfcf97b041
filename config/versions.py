"""Every pinned version of the deployment, in one place. The config's defaults read them from here."""

from __future__ import annotations

# Ray of the RayCluster image, the custom image's base and the training job's local test runs
# (Pipfile's [training] pins the same release; tests/training checks it).
RAY_VERSION = "2.58.0"

# Helm charts.
KUBERAY_OPERATOR_CHART = "1.7.0"
CLUSTER_AUTOSCALER_CHART = "9.52.1"
NVIDIA_DEVICE_PLUGIN_CHART = "0.18.0"
KUBE_PROMETHEUS_STACK_CHART = "79.7.1"

SUPPORTED_KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35")
DEFAULT_KUBERNETES_VERSION = "1.34"
# cluster-autoscaler's minor version must match the cluster's.
CLUSTER_AUTOSCALER_IMAGE_TAGS = {"1.33": "v1.33.0", "1.34": "v1.34.0", "1.35": "v1.35.0"}
