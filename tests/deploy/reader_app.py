"""A stripped ray stack: only the AWS provider and the infra remote-state reader of stacks/common.py.

The real ray stack also needs the helm and kubernetes providers (not installable offline); what the
deploy test checks is that its remote-state data source, built by the same function with the same
config, reads the outputs the infra stack wrote. Run: ``RAY_EKS_CONFIG=... python reader_app.py OUTDIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cdktf import App, LocalBackend, TerraformOutput, TerraformStack  # noqa: E402

from config import load_config  # noqa: E402
from stacks.common import aws_provider, remote_state  # noqa: E402
from stacks.contract import INFRA_STACK  # noqa: E402

READ_OUTPUTS = ("cluster_name", "vpc_id", "fsx_file_system_id", "data_bucket_name")


def main(outdir: str) -> None:
    cfg = load_config()
    app = App(outdir=outdir)
    stack = TerraformStack(app, "reader")
    # The reader's own state stays local: it must not share the infra stack's S3 key.
    LocalBackend(stack, path="reader.tfstate")
    aws_provider(stack, cfg)
    infra = remote_state(stack, "infra", cfg, INFRA_STACK)
    for name in READ_OUTPUTS:
        TerraformOutput(stack, name, value=infra.get_string(name))
    app.synth()


if __name__ == "__main__":
    main(sys.argv[1])
