"""What the stacks agree on: their names and order, the infra stack's outputs (the interface the ray stacks,
scripts and operators read through remote state), and the Kubernetes names both ray stacks use.

Stacks import these from here, never from each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import AppConfig

INFRA_STACK, RAY_STACK, RAY_CLUSTER_STACK = "infra", "ray", "ray-cluster"
# Deploy order (destroy: reversed); the stacks also declare it to cdktf with add_dependency.
STACK_ORDER = (INFRA_STACK, RAY_STACK, RAY_CLUSTER_STACK)

# Output names of the infra stack: the contract with the ray stacks, the image build and operators.
INFRA_OUTPUTS = (
    "deployment", "region", "cluster_name", "cluster_endpoint", "cluster_certificate_authority_data", "cluster_version",
    "cluster_oidc_issuer_url", "oidc_provider_arn", "cluster_security_group_id", "node_role_arns",
    "node_group_names", "fsx_file_system_id", "fsx_dns_name", "fsx_mount_name", "ecr_repository_url",
    "ecr_repository_arn", "data_bucket_name", "data_bucket_arn", "access_logs_bucket_name", "vpc_id",
    "private_subnet_ids", "public_subnet_ids", "update_kubeconfig_command", "ray_image", "endpoint_access",
    "api_tunnel_instance_id",
)
# More outputs with cluster.autoscaler: karpenter (what the ray stacks' controller and EC2NodeClasses name).
KARPENTER_INFRA_OUTPUTS = ("karpenter_controller_role_arn", "karpenter_node_role_arn",
                           "karpenter_node_instance_profile", "karpenter_interruption_queue")

# Kubernetes names the ray stack creates and the ray-cluster stack's pods use: the head's ServiceAccount (the Ray
# autoscaler's rights, KubeRay binds them to it) and the workers' (no Kubernetes rights).
RAY_HEAD_SERVICE_ACCOUNT = "ray-head"
RAY_WORKER_SERVICE_ACCOUNT = "ray-worker"
FSX_CLAIM = "fsx-lustre"
# The KubeRay operator's Helm release (ray stack, in ray.operator_namespace) and the labels its chart gives the
# operator pod (kuberay v1.7.0 helm-chart/kuberay-operator templates/deployment.yaml: name from nameOverride,
# instance = release name): the ray-cluster stack's NetworkPolicy lets these pods reach the head's dashboard
# (RayJob status calls).
KUBERAY_OPERATOR_RELEASE = "kuberay-operator"
KUBERAY_OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "kuberay-operator",
                               "app.kubernetes.io/instance": KUBERAY_OPERATOR_RELEASE}

# The training code the job-submission objects and the orchestrator carry into the cluster.
TRAINING_DIR = Path(__file__).resolve().parent.parent / "training"
TRAINING_SCRIPT = "pytorch_training_e2e.py"
INFERENCE_SCRIPT = "batch_inference.py"
# The user guide's job: its entrypoint and the module it imports.
JOB_FILES = (TRAINING_SCRIPT, "preprocessing.py")
# The orchestrator's two steps' entrypoints and what they import.
ORCHESTRATOR_FILES = (*JOB_FILES, INFERENCE_SCRIPT)


def job_files(names: tuple[str, ...] = JOB_FILES) -> dict[str, str]:
    """File name -> content, read from training/ (at synth or render time, never at import)."""
    return {name: (TRAINING_DIR / name).read_text() for name in names}


# The job's third-party libraries (one list: the built image installs it, runtime_env pip passes it).
REQUIREMENTS_FILE = TRAINING_DIR / "requirements.txt"
# The image build's context: training/Dockerfile, the requirements (and their hash lock) and the job's modules.
DOCKERFILE = TRAINING_DIR / "Dockerfile"
REQUIREMENTS_LOCK = TRAINING_DIR / "requirements.lock"  # scripts/lock_requirements.py


def job_requirements() -> tuple[str, ...]:
    """training/requirements.txt as pip requirement lines (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS_FILE.read_text().splitlines())
    return tuple(line for line in lines if line)


def job_pip(cfg: AppConfig) -> tuple[str, ...]:
    """What a job submission installs through runtime_env pip: nothing when the image holds the requirements."""
    return () if cfg.ray.image.bundles_job_requirements else job_requirements()


def image_context_files(directory: Path = TRAINING_DIR) -> dict[str, bytes]:
    """The image build's context, by name: the Dockerfile, requirements.txt and .lock, and the job's modules (*.py)
    of ``directory`` (training/), nothing else (no caches, no scripts).

    Line endings are normalised: a checkout with CRLF (git autocrlf) builds the same image and the same tag.
    """
    files = [directory / DOCKERFILE.name, directory / REQUIREMENTS_FILE.name, directory / REQUIREMENTS_LOCK.name,
             *sorted(directory.glob("*.py"))]
    return {f.name: f.read_bytes().replace(b"\r\n", b"\n") for f in files}
