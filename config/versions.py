"""Every pinned version of the deployment, in one place. The config's defaults read them from here."""

from __future__ import annotations

import json
from pathlib import Path

# Ray of the RayCluster image, the custom image's base and the training job's local test runs
# (Pipfile's [training] pins the same release; tests/training checks it).
RAY_VERSION = "2.58.0"
# Token authentication of the dashboard/Jobs API and GCS, which the RayCluster turns on (KubeRay authOptions
# mode token): Ray 2.52.0 and later (docs.ray.io ray-security/token-auth; KubeRay v1.7.0 utils/validation.go
# rejects older rayVersions).
RAY_TOKEN_AUTH_MIN_VERSION = "2.52.0"
# CUDA of the GPU Ray image, rayproject/ray:<RAY_VERSION>-py311-<this> (ray-project/ray ray-images.json lists
# cu13.0.0-cudnn, tagged -cu130; its "-gpu" alias is CUDA 12.1). 13.0 is what the job's torch wheels
# (training/requirements.txt, PyPI builds +cu130) are built for, and the EKS AL2023 NVIDIA AMIs of every
# supported Kubernetes version ship NVIDIA driver 580, the first to run CUDA 13.
RAY_IMAGE_CUDA = "cu130"
# The images' content pinned: image reference (repository:tag) -> digest ("sha256:..."), as the registry reports it
# for the tag (the multi-platform index). scripts/update_base_digests.py writes config/image_digests.json; a tag
# missing there is used by tag.
IMAGE_DIGESTS_FILE = Path(__file__).resolve().parent / "image_digests.json"
IMAGE_DIGESTS: dict[str, str] = json.loads(IMAGE_DIGESTS_FILE.read_text())["digests"]


def pinned_image(image: str) -> str:
    """``repository:tag@sha256:...`` when the digest of ``image`` is recorded, else ``image`` itself."""
    digest = IMAGE_DIGESTS.get(image)
    return f"{image}@{digest}" if digest else image

# Helm charts.
KUBERAY_OPERATOR_CHART = "1.7.0"
# 9.55.1+ carries the resource.k8s.io RBAC that cluster-autoscaler 1.35 needs (DRA is locked on there).
CLUSTER_AUTOSCALER_CHART = "9.59.0"
NVIDIA_DEVICE_PLUGIN_CHART = "0.18.0"
# Karpenter (cluster.autoscaler: karpenter): the controller's chart, its CRDs' chart and the controller image
# share this version (aws/karpenter-provider-aws v1.14.1; its compatibility matrix supports Kubernetes 1.30-1.36).
# The controller's IAM policy (constructs_lib/karpenter.py), the NodePool/EC2NodeClass schemas and the chart's
# defaults (tests/reference/karpenter-v1.14.1, scripts/derive_reference.py) are read at this version.
KARPENTER_VERSION = "1.14.1"
# The EKS AL2023 AMI release Karpenter's nodes run (EC2NodeClass amiSelectorTerms alias al2023@<this>: the
# standard and the NVIDIA variant, each where it fits; awslabs/amazon-eks-ami CHANGELOG "AMI Release v20260714"
# lists them for Kubernetes 1.33-1.35). Pinned, so a new AMI is a reviewed change (it drifts every node).
KARPENTER_AMI_RELEASE = "v20260714"
KUBE_PROMETHEUS_STACK_CHART = "79.7.1"
# NVIDIA's DCGM exporter chart (NVIDIA/dcgm-exporter tag 4.5.3-4.8.2, deployment/Chart.yaml; image
# 4.5.3-4.8.2-distroless): GPU metrics on every GPU node (observability.dcgm_exporter).
DCGM_EXPORTER_CHART = "4.8.2"

# EKS on 2026-11-27: 1.35 and 1.34 in standard support (1.34 until 2026-12-02), 1.33 in extended support
# (extra cost). 1.36 waits for a cluster-autoscaler chart made for it.
SUPPORTED_KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35")
DEFAULT_KUBERNETES_VERSION = "1.35"
# cluster-autoscaler's minor version must match the cluster's: the newest patch of each.
CLUSTER_AUTOSCALER_IMAGE_TAGS = {"1.33": "v1.33.6", "1.34": "v1.34.5", "1.35": "v1.35.2"}

# The CodeBuild image that builds the Ray image (Ubuntu 22.04 with Docker and AWS CLI v2; one of the curated
# images AWS CodeBuild actively maintains, aws/aws-codebuild-docker-images README).
CODEBUILD_IMAGE = "aws/codebuild/standard:7.0"
