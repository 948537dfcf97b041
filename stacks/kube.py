"""Kubernetes and Helm providers configured from the infra stack's outputs (remote state only), at the address the
deployer reaches the API by (cluster.endpoint_access).

tunnel: `make tunnel` forwards https://127.0.0.1:<tunnel_local_port> to the private endpoint, whose certificate names
the endpoint's host, not 127.0.0.1: the providers connect to the local port and check the certificate against the
endpoint's host (``tls_server_name``: hashicorp/kubernetes 2.38.0 provider argument, and helm 3.1.1's
``kubernetes.tls_server_name``, as the prebuilt cdktf packages 12.1.1 / 12.1.2 generate them). public and private:
the endpoint itself.

Tokens come from `aws eks get-token` at plan/apply time (exec), so they never expire mid-apply and never land in
state.
"""

from __future__ import annotations

from cdktf import Fn, TerraformStack
from cdktf_cdktf_provider_helm.provider import HelmProvider, HelmProviderKubernetes, HelmProviderKubernetesExec
from cdktf_cdktf_provider_kubernetes.provider import KubernetesProvider, KubernetesProviderExec

from config import AppConfig
from conventions.api_access import tunnel_url


def endpoint_host(endpoint: str) -> str:
    """The host of an endpoint URL as Terraform computes it (the TLS server name through the tunnel)."""
    return Fn.replace(endpoint, "https://", "")


def _token_args(cluster_name: str, region: str) -> list[str]:
    return ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"]


def kubernetes_providers(stack: TerraformStack, cfg: AppConfig, infra, helm: bool = True) -> None:
    endpoint = infra.get_string("cluster_endpoint")
    if cfg.cluster.endpoint_access == "tunnel":
        host, server_name = tunnel_url(cfg.cluster.tunnel_local_port), endpoint_host(endpoint)
    else:
        host, server_name = endpoint, None
    ca = Fn.base64decode(infra.get_string("cluster_certificate_authority_data"))
    args = _token_args(infra.get_string("cluster_name"), cfg.region)
    api = "client.authentication.k8s.io/v1beta1"
    KubernetesProvider(stack, "kubernetes", host=host, tls_server_name=server_name, cluster_ca_certificate=ca,
                       exec=[KubernetesProviderExec(api_version=api, command="aws", args=args)])
    if helm:
        HelmProvider(stack, "helm", kubernetes=HelmProviderKubernetes(
            host=host, tls_server_name=server_name, cluster_ca_certificate=ca,
            exec=HelmProviderKubernetesExec(api_version=api, command="aws", args=args)))
