"""A one-resource stack built like ours (ReadableStack + stacks.migrations.add_moved_blocks), for
tests/stacks/test_migrations.py. ``terraform_data`` is Terraform's built-in resource: apply and plan need no
provider and no network.

    PROBE_ID=<construct id> PROBE_MOVE=<old id> PROBE_OUT=<outdir> PROBE_STATE=<state file> \\
        python migration_probe_app.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cdktf import App, LocalBackend, TerraformResource

from stacks import migrations
from stacks.addresses import ReadableStack

STACK = "migration-probe"

if os.environ.get("PROBE_MOVE"):
    # A release that renames the resource, recorded the way a real rename is (MOVED, by stack and release).
    migrations.MOVED[STACK] = {"probe-release": [(f"terraform_data.{os.environ['PROBE_MOVE']}",
                                                  f"terraform_data.{os.environ['PROBE_ID']}")]}
app = App(outdir=os.environ["PROBE_OUT"])
stack = ReadableStack(app, STACK)
LocalBackend(stack, path=os.environ["PROBE_STATE"])
TerraformResource(stack, os.environ["PROBE_ID"], terraform_resource_type="terraform_data")
migrations.add_moved_blocks(stack, STACK)
app.synth()
