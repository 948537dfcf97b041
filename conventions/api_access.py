"""How the deployer's machine reaches the Kubernetes API through `make tunnel` (cluster.endpoint_access tunnel): one
owner for the address the providers (stacks/kube.py), kubectl's kubeconfig and the scripts use."""

from __future__ import annotations

TUNNEL_HOST = "127.0.0.1"
# The API tunnel instance (constructs_lib/api_tunnel.py): the smallest Graviton instance, as a port-forward relays a
# few kubectl and Terraform connections; `make preflight` checks it is offered in the tunnel's AZ.
TUNNEL_INSTANCE_TYPE = "t4g.nano"
# AWS's public parameter naming the latest Amazon Linux 2023 AMI for that architecture (arm64): SSM Agent preinstalled.
TUNNEL_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
# What points kubectl at the cluster through the tunnel (scripts/tunnel.py kubeconfig: update-kubeconfig, then the
# tunnel's address as server): the infra output update_kubeconfig_command and the scripts' hints give it, as a bare
# `aws eks update-kubeconfig` leaves kubectl at the private endpoint, which the deployer's machine cannot reach.
TUNNEL_KUBECONFIG_COMMAND = "make kubeconfig"


def tunnel_url(port: int) -> str:
    """Where `make tunnel` listens: the API's address for everything on the deployer's machine."""
    return f"https://{TUNNEL_HOST}:{port}"
