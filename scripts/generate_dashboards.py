"""Write Ray's Grafana dashboards for the pinned Ray into observability/ray_dashboards/, from the installed package.

    python -m scripts.generate_dashboards [--check]

Ray builds its dashboards in Python (ray.dashboard.modules.metrics.grafana_dashboard_factory); the head writes
them to /tmp/ray/session_latest/metrics/grafana/dashboards at start. This runs the same factory (the training
environment has Ray) with no RAY_GRAFANA_* overrides, so uids and queries are Ray's defaults: the uids the Ray
dashboard embeds. ``--check`` compares instead of writing (tests/observability runs it). Needs the installed Ray to
be config/versions.py RAY_VERSION.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from config import versions
from observability.dashboards import RAY_DASHBOARDS, RAY_DASHBOARDS_DIR

ROOT = Path(__file__).resolve().parent.parent


def generate() -> dict[str, str]:
    """File name -> content: compact JSON with sorted keys (ConfigMaps hold them; stable diffs)."""
    import ray
    from ray.dashboard.modules.metrics import grafana_dashboard_factory as factory

    if ray.__version__ != versions.RAY_VERSION:
        raise SystemExit(f"error: Ray {ray.__version__} is installed, config/versions.py pins {versions.RAY_VERSION}")
    overrides = sorted(k for k in os.environ if k.startswith("RAY_GRAFANA_") and k.endswith(
        ("_DASHBOARD_UID", "_DASHBOARD_GLOBAL_FILTERS", "_LOG_LINK_URL")))
    if overrides:
        raise SystemExit(f"error: unset {', '.join(overrides)}: the provisioned dashboards are Ray's defaults")
    out = {}
    for name in RAY_DASHBOARDS:
        content, _uid = getattr(factory, f"generate_{name}_grafana_dashboard")()
        out[f"{name}_grafana_dashboard.json"] = json.dumps(json.loads(content), sort_keys=True,
                                                           separators=(",", ":")) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    ns = ap.parse_args(argv)
    files = generate()
    if ns.check:
        stale = [n for n, c in files.items() if not (RAY_DASHBOARDS_DIR / n).is_file()
                 or (RAY_DASHBOARDS_DIR / n).read_text() != c]
        extra = sorted(p.name for p in RAY_DASHBOARDS_DIR.glob("*.json") if p.name not in files)
        if stale or extra:
            print(f"error: observability/ray_dashboards/ is not Ray {versions.RAY_VERSION}'s: "
                  f"{', '.join(stale + extra)}; run python -m scripts.generate_dashboards", file=sys.stderr)
            return 1
        return 0
    RAY_DASHBOARDS_DIR.mkdir(exist_ok=True)
    for n, c in files.items():
        (RAY_DASHBOARDS_DIR / n).write_text(c)
    print(f"{len(files)} dashboards in {RAY_DASHBOARDS_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
