"""The orchestrator's AWS side alone (constructs_lib.orchestrator.RayOrchestrator) in an AWS-provider-only stack,
for `terraform validate`: the real ray stack also needs the helm and kubernetes providers, which are not
installable offline. The infra outputs it reads become literals here. Run: ``python orchestrator_aws_app.py OUTDIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cdktf import App, LocalBackend  # noqa: E402
from cdktf_cdktf_provider_aws.provider import AwsProvider  # noqa: E402

from config import parse_config  # noqa: E402
from constructs_lib.orchestrator import (  # noqa: E402
    FUNCTION_MODULE,
    FunctionNetwork,
    PipelineProps,
    RayOrchestrator,
    RayOrchestratorProps,
    function_steps_file,
)
from stacks.addresses import ReadableStack  # noqa: E402
from stacks.contract import INFERENCE_SCRIPT, TRAINING_SCRIPT, job_pip  # noqa: E402
from stacks.packages import function_package  # noqa: E402
from stacks.ray import orchestrator_names  # noqa: E402

STACK = "orchestrator-aws"


def main(outdir: str) -> None:
    cfg = parse_config({})
    o = cfg.orchestrator
    app = App(outdir=outdir)
    stack = ReadableStack(app, STACK)
    LocalBackend(stack, path="orchestrator-aws.tfstate")
    AwsProvider(stack, "aws", region=cfg.region)
    pipeline = PipelineProps(
        cluster_name=cfg.name, cluster_endpoint="https://0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com",
        cluster_ca="LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", namespace=cfg.ray.namespace,
        head_service=cfg.ray.head_service, ray_cluster=cfg.ray.cluster_name, image=cfg.stock_ray_image,
        pip=job_pip(cfg), training_script=TRAINING_SCRIPT,
        inference_script=INFERENCE_SCRIPT, training_args=tuple(cfg.orchestrator_training_args),
        inference_args=tuple(o.inference_args), step_timeout_seconds=o.step_timeout_seconds, retries=o.retries)
    RayOrchestrator(stack, "ray_orchestrator", RayOrchestratorProps(
        name=cfg.name, names=orchestrator_names(cfg.name), region=cfg.region, account_id="123456789012",
        partition="aws", pipeline=pipeline,
        package=function_package(stack, "ray_orchestrator", [FUNCTION_MODULE], dict([function_steps_file(pipeline)])),
        network=FunctionNetwork(vpc_id="vpc-0a1b2c3d4e5f60718",
                                subnet_ids=["subnet-0a1a1a1a1a1a1a1a1", "subnet-0b2b2b2b2b2b2b2b2"],
                                cluster_security_group_id="sg-0123456789abcdef0"),
        reserved_concurrency=o.reserved_concurrency, log_retention_days=o.log_retention_days,
        log_level=o.log_level))
    app.synth()


if __name__ == "__main__":
    main(sys.argv[1])
