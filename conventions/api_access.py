"""How the deployer's machine reaches the Kubernetes API through `make tunnel` (cluster.endpoint_access tunnel): one
owner for the address the providers (stacks/kube.py), kubectl's kubeconfig and the scripts use."""

from __future__ import annotations

TUNNEL_HOST = "127.0.0.1"
# The API tunnel instance (constructs_lib/api_tunnel.py): the smallest Graviton instance, as a port-forward relays a
# few kubectl and Terraform connections; `make preflight` checks it is offered in the tunnel's AZ.
TUNNEL_INSTANCE_TYPE = "t4g.nano"
# AWS's public parameter naming the latest Amazon Linux 2023 AMI for that architecture (arm64): SSM Agent preinstalled.
TUNNEL_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"


def tunnel_url(port: int) -> str:
    """Where `make tunnel` listens: the API's address for everything on the deployer's machine."""
    return f"https://{TUNNEL_HOST}:{port}"
