"""Draw docs/observability-dashboard.png: panels of a provisioned dashboard (Ray's default dashboard, as Grafana
gets it from observability/ray_dashboards/) with real data, rendered by matplotlib (Grafana itself is not
installable here). The data come from a real Prometheus scraping a real local Ray head that runs a small workload
(tasks, actors, objects), exactly as the panels' own PromQL asks for them.

    python -m scripts.render_dashboard [--out docs/observability-dashboard.png] [--minutes 4]

Needs the training environment (Ray), the diagram environment (matplotlib) and Prometheus (`make prometheus`).
The PNG carries the sha256 of the dashboard JSON it shows (a tEXt chunk); tests/observability/test_picture.py
fails when the dashboard changes and the picture does not.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import struct
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from config import versions
from observability.dashboards import RAY_DASHBOARDS_DIR, ray_dashboard

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "observability-dashboard.png"
DASHBOARD = "default"
PANELS = ("Node Count", "Cluster Utilization", "Node CPU Usage", "Node Memory Usage (heap + object store)",
          "Logical CPUs Usage", "Object Store Memory Usage", "All Tasks by State", "Running Tasks by Name")
CLUSTER = "kuberay"
HASH_KEY = "dashboard-sha256"

WORKLOAD = '''
import random, time
import ray
ray.init(address=ADDRESS)

@ray.remote
def work(seconds):
    end = time.time() + seconds
    x = 0
    while time.time() < end:
        x += 1
    return x

@ray.remote
class Holder:
    def __init__(self):
        self.refs = []
    def keep(self, n):
        self.refs.append(ray.put(b"x" * n))
        return len(self.refs)

holders = [Holder.remote() for _ in range(2)]
deadline = time.time() + SECONDS
wave = 0
while time.time() < deadline:
    wave += 1
    refs = [work.remote(random.uniform(0.5, 3)) for _ in range(random.randint(2, 12))]
    ray.get([h.keep.remote(random.randint(5, 40) * 1_000_000) for h in holders])
    ray.get(refs)
    time.sleep(random.uniform(1, 6))
'''


def dashboard_sha256() -> str:
    return hashlib.sha256((RAY_DASHBOARDS_DIR / f"{DASHBOARD}_grafana_dashboard.json").read_bytes()).hexdigest()


def stamped_sha256(png: Path) -> str | None:
    """The dashboard digest a picture was drawn from (matplotlib writes savefig metadata as tEXt chunks)."""
    data, pos = png.read_bytes(), 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        key, _, text = body.partition(b"\0")
        if kind == b"tEXt" and key == HASH_KEY.encode():
            return text.decode("latin-1")
    return None


def substitute(expr: str) -> str:
    """Grafana's variables as the embedded panels set them for one cluster: every session, node and node type."""
    expr = re.sub(r"\$__rate_interval|\$__interval|\$interval", "30s", expr)
    expr = expr.replace("$Cluster", CLUSTER)
    return re.sub(r"\$\{?(SessionName|Instance|RayNodeType)\}?", ".+", expr)


def legend(fmt: str, labels: dict) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt or "") or str(labels)


def render(out: Path, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scripts.local_prometheus import prometheus_scraping
    from scripts.local_ray import local_ray_head

    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("error: prometheus is missing: make prometheus")
    d = ray_dashboard(DASHBOARD)
    panels = {p["title"]: p for p in d["panels"] if p.get("title") in PANELS}
    missing = [t for t in PANELS if t not in panels]
    if missing:
        raise SystemExit(f"error: Ray's {DASHBOARD} dashboard has no panel {missing[0]!r}")
    with local_ray_head(num_cpus=4) as head, prometheus_scraping(prometheus, head, CLUSTER) as prom:
        start = time.time()
        r = head.run(f"SECONDS = {minutes * 60:.0f}\n{WORKLOAD}", timeout=int(minutes * 60) + 300)
        if r.returncode != 0:
            raise SystemExit(f"error: the workload failed:\n{r.stderr[-2000:]}")
        time.sleep(15)
        end = time.time()
        data = {t: [(target, prom.query_range(substitute(target["expr"]), start, end, 5))
                    for target in panels[t]["targets"]] for t in PANELS}

    fig, axes = plt.subplots(len(PANELS) // 2, 2, figsize=(14, 3.1 * len(PANELS) // 2), constrained_layout=True)
    for ax, title in zip(axes.flat, PANELS, strict=True):
        unit = (panels[title].get("yaxes") or [{}])[0].get("format", "")
        for target, series in data[title]:
            for s in series:
                xs = [datetime.fromtimestamp(float(t), tz=UTC) for t, _ in s["values"]]
                ys = [float(v) for _, v in s["values"]]
                if unit == "bytes":
                    ys = [y / 2**30 for y in ys]
                ax.plot(xs, ys, label=legend(target.get("legendFormat", ""), s["metric"])[:40], linewidth=1.4)
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel("GiB" if unit == "bytes" else unit if unit not in ("short", "none", "") else "", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
    fig.suptitle(f"Grafana dashboard \"{d['title']}\" (uid {d['uid']}, Ray {versions.RAY_VERSION}): "
                 f"{len(PANELS)} of its panels, drawn by matplotlib from the provisioned JSON and a real Prometheus "
                 f"scraping a local Ray head", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, metadata={HASH_KEY: dashboard_sha256()})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--minutes", type=float, default=4)
    ns = ap.parse_args(argv)
    render(ns.out, ns.minutes)
    print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
