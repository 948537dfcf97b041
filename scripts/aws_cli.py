"""The AWS CLI as the deploy scripts call it: one region, JSON out, your usual credentials (profile, SSO, environment);
pointed at an emulator, with its dummy keys, when the config's ``endpoints.url`` names one (as the provider is)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from config import AppConfig

AWS_TIMEOUT_S = 120
INSTALL_AWS_CLI = "install the AWS CLI: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
CREDENTIALS_HINT = "check `aws configure list`, AWS_PROFILE or `aws sso login`"


class AwsError(Exception):
    pass


def emulator_env(cfg: AppConfig, env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) for AWS CLI calls of this deployment: the emulator's keys when there is one."""
    env = dict(os.environ if env is None else env)
    if cfg.endpoints.url:
        env.update(AWS_ACCESS_KEY_ID=cfg.endpoints.access_key, AWS_SECRET_ACCESS_KEY=cfg.endpoints.secret_key,
                   AWS_ENDPOINT_URL=cfg.endpoints.url)
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
    return env


class Aws:
    """The AWS CLI, in one region, JSON out. Endpoint and keys from config.endpoints when it names an emulator."""

    def __init__(self, cfg: AppConfig) -> None:
        self.region = cfg.region
        self.env = emulator_env(cfg)
        self.extra: list[str] = ["--endpoint-url", cfg.endpoints.url] if cfg.endpoints.url else []

    @staticmethod
    def installed() -> bool:
        return shutil.which("aws") is not None

    def argv(self, service: str, operation: str, *args: str) -> list[str]:
        return ["aws", service, operation, *args, "--region", self.region, *self.extra]

    def __call__(self, service: str, operation: str, *args: str) -> dict:
        cmd = [*self.argv(service, operation, *args), "--output", "json"]
        try:
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=AWS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AwsError(f"aws {service} {operation}: no answer within {AWS_TIMEOUT_S}s") from None
        if r.returncode != 0:
            lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
            raise AwsError(f"aws {service} {operation}: {lines[-1] if lines else f'exit {r.returncode}'}")
        return json.loads(r.stdout) if r.stdout.strip() else {}

    def caller(self) -> dict:
        """Who the credentials are (sts get-caller-identity); AwsError with what to do when there are none."""
        try:
            return self("sts", "get-caller-identity")
        except AwsError as e:
            raise AwsError(f"cannot reach AWS with the current credentials ({e}); {CREDENTIALS_HINT}") from None
