"""Kubernetes and Helm providers configured from the infra stack's outputs (remote state only).

Tokens come from `aws eks get-token` at plan/apply time (exec), so they never expire mid-apply and
never land in state.
"""

from __future__ import annotations

from cdktf import Fn, TerraformStack
from cdktf_cdktf_provider_helm.provider import HelmProvider, HelmProviderKubernetes, HelmProviderKubernetesExec
from cdktf_cdktf_provider_kubernetes.provider import KubernetesProvider, KubernetesProviderExec

from config import AppConfig


def _token_args(cluster_name: str, region: str) -> list[str]:
    return ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"]


def kubernetes_providers(stack: TerraformStack, cfg: AppConfig, infra, helm: bool = True) -> None:
    host = infra.get_string("cluster_endpoint")
    ca = Fn.base64decode(infra.get_string("cluster_certificate_authority_data"))
    args = _token_args(infra.get_string("cluster_name"), cfg.region)
    api = "client.authentication.k8s.io/v1beta1"
    KubernetesProvider(stack, "kubernetes", host=host, cluster_ca_certificate=ca,
                       exec=[KubernetesProviderExec(api_version=api, command="aws", args=args)])
    if helm:
        HelmProvider(stack, "helm", kubernetes=HelmProviderKubernetes(
            host=host, cluster_ca_certificate=ca,
            exec=HelmProviderKubernetesExec(api_version=api, command="aws", args=args)))
