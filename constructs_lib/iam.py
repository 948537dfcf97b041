"""IAM policy documents as plain JSON (no data sources: fewer round trips at plan, readable in state)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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


def service_assume_role_policy_from(service: str, source_account: str, source_arn: str | None = None) -> str:
    """Trust an AWS service acting for this account only (and, with ``source_arn``, for that resource only): the
    confused-deputy conditions (aws:SourceAccount, aws:SourceArn) the service documents for its role."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": source_account}}
    if source_arn is not None:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    return policy_document([{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
                             "Condition": condition}])


def irsa_assume_role_policy(oidc_provider_arn: str, oidc_issuer_host: str, namespace: str,
                            service_account: str | Sequence[str]) -> str:
    """Trust these Kubernetes service accounts of one namespace (IRSA) and nothing else."""
    accounts = [service_account] if isinstance(service_account, str) else list(service_account)
    subjects = [f"system:serviceaccount:{namespace}:{a}" for a in accounts]
    return policy_document([{
        "Effect": "Allow",
        "Principal": {"Federated": oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{oidc_issuer_host}:sub": subjects[0] if len(subjects) == 1 else subjects,
            f"{oidc_issuer_host}:aud": "sts.amazonaws.com",
        }},
    }])
