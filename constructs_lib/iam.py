"""IAM policy documents as plain JSON (no data sources: fewer round trips at plan, readable in state)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def policy_document(statements: Iterable[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=False)


def statement(actions: list[str], resources: list[str], sid: str | None = None,
              effect: str = "Allow", condition: dict | None = None, principal: dict | None = None) -> dict:
    s: dict[str, Any] = {}
    if sid:
        s["Sid"] = sid
    s["Effect"] = effect
    if principal is not None:
        s["Principal"] = principal
    s["Action"] = actions
    s["Resource"] = resources if len(resources) != 1 else resources[0]
    if condition:
        s["Condition"] = condition
    return s


def service_assume_role_policy(service: str) -> str:
    return policy_document([{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}])


def irsa_assume_role_policy(oidc_provider_arn: str, oidc_issuer_host: str, namespace: str, service_account: str) -> str:
    """Trust one Kubernetes service account (IRSA) and nothing else."""
    return policy_document([{
        "Effect": "Allow",
        "Principal": {"Federated": oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{oidc_issuer_host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{oidc_issuer_host}:aud": "sts.amazonaws.com",
        }},
    }])
