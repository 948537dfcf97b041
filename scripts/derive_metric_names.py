"""Derive the metric names the pinned exporters export, for the tests that check every name our dashboards and
alerts use (tests/observability/test_metric_names.py).

    python -m scripts.derive_metric_names ray                      # needs the training environment (Ray)
    python -m scripts.derive_metric_names dcgm --source <NVIDIA/dcgm-exporter git checkout>
    python -m scripts.derive_metric_names ksm --source <kubernetes/kube-state-metrics git checkout>

Output: tests/reference/metrics/<exporter>-<version>.txt, one sample name a line (histograms as _bucket, _sum,
_count; counters as their _total sample and, for Ray's, the gauge Ray also exports), after a header naming where
they came from.

- ray: the installed Ray (its version must be config/versions.py RAY_VERSION). Two sources, unioned: a real local
  head's /metrics (its three metrics ports: the node's, the autoscaler's, the dashboard's) after a workload of
  tasks, actors, objects, a placement group, Ray Data and Ray Train; and the metrics Ray's Python code declares
  with a literal name (ray.util.metrics Gauge/Counter/Histogram and the reporter's gauges, exported as ray_<name>).
  Core metrics declared in C++ appear only once they have a value, so names seen in neither source are not in
  the list.
- dcgm: the metrics the pinned chart makes the exporter emit: the chart mounts its own counters list
  (deployment/templates/metrics-configmap.yaml, the list used when ``customMetrics`` is unset) over the image's
  /etc/dcgm-exporter/default-counters.csv; its DCGM field names are the metric names.
- ksm: the metric tables of kube-state-metrics' docs (docs/metrics/**/*.md) at the version kube-prometheus-stack's
  subchart runs.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from config import versions

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "reference" / "metrics"
# The dcgm-exporter chart's tag (NVIDIA/dcgm-exporter tags are <DCGM version>-<exporter version>).
DCGM_TAG = f"4.5.3-{versions.DCGM_EXPORTER_CHART}"
# kube-prometheus-stack 79.7.1 -> kube-state-metrics chart 6.4.1 -> appVersion 2.17.0.
KSM_VERSION = "2.17.0"
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def out_path(exporter: str) -> Path:
    version = {"ray": versions.RAY_VERSION, "dcgm": versions.DCGM_EXPORTER_CHART, "ksm": KSM_VERSION}[exporter]
    name = {"ray": "ray", "dcgm": "dcgm-exporter", "ksm": "kube-state-metrics"}[exporter]
    return OUT_DIR / f"{name}-{version}.txt"


def read_names(exporter: str) -> set[str]:
    """The committed list (what the tests read)."""
    return {line.strip() for line in out_path(exporter).read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def _write(exporter: str, header: list[str], names: set[str]) -> Path:
    bad = sorted(n for n in names if not NAME_RE.match(n))
    if bad:
        raise SystemExit(f"error: not metric names: {bad[:5]}")
    path = out_path(exporter)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"# {h}\n" for h in header) + "".join(f"{n}\n" for n in sorted(names)))
    return path


# ------------------------------------------------------------------------------------------------------ Ray
WORKLOAD = '''
import time
import ray
ray.init(address=ADDRESS)

@ray.remote
def square(x):
    time.sleep(0.05)
    return x * x

@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self):
        self.n += 1
        return self.n

assert sum(ray.get([square.remote(i) for i in range(50)])) == sum(i * i for i in range(50))
c = Counter.remote()
ray.get([c.add.remote() for _ in range(10)])
ray.get(ray.put(b"x" * 20_000_000))
from ray.util.placement_group import placement_group, remove_placement_group
pg = placement_group([{"CPU": 1}])
ray.get(pg.ready())
remove_placement_group(pg)
import ray.data
def slow(batch):
    time.sleep(0.5)
    return {"id": batch["id"] * 2}
assert ray.data.range(4000, override_num_blocks=20).map_batches(slow, batch_size=200).count() == 4000
if TRAIN:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    def loop(config):
        import time
        import ray.train
        for epoch in range(3):
            time.sleep(3)
            ray.train.report({"epoch": epoch})
    TorchTrainer(loop, scaling_config=ScalingConfig(num_workers=1),
                 run_config=RunConfig(storage_path=STORAGE)).fit()
time.sleep(EXPORT_WAIT)
'''


def declared_ray_metrics(package: Path) -> set[str]:
    """Metrics Ray's Python code declares with a literal name, as exported samples: ray.util.metrics (and the
    reporter agent's gauges) add the ``ray_`` prefix; a Counter is exported as <name>_total and, for bug
    compatibility, as a gauge <name>; a Histogram as _bucket/_sum/_count. Modules that use prometheus_client
    directly (the autoscaler's, with their own names) are left to the live scrape."""
    out: set[str] = set()
    kinds = {"Gauge": ("",), "Counter": ("", "_total"), "Histogram": ("_bucket", "_sum", "_count")}
    for path in package.rglob("*.py"):
        if "/tests/" in str(path) or "/test_" in str(path):
            continue
        text = path.read_text(errors="replace")
        if "prometheus_client" in text and "reporter_agent" not in path.name:
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            kind = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if kind not in kinds:
                continue
            arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str) and NAME_RE.match(arg.value)):
                continue
            base = arg.value if arg.value.startswith("ray_") else f"ray_{arg.value}"
            out |= {base + suffix for suffix in kinds[kind]}
    return out


def derive_ray(train: bool, export_wait: int) -> set[str]:
    import tempfile

    import ray

    from scripts.local_ray import local_ray_head, metric_names, scrape

    if ray.__version__ != versions.RAY_VERSION:
        raise SystemExit(f"error: Ray {ray.__version__} is installed, config/versions.py pins {versions.RAY_VERSION}")
    names = declared_ray_metrics(Path(ray.__file__).parent)
    seen: set[str] = set()
    done = threading.Event()

    def poll(ports: list[int]) -> None:
        # Metrics of short-lived processes (Train's controller, Data's operators) leave /metrics with them: scrape
        # throughout the workload, not only after it.
        while not done.is_set():
            for port in ports:
                with contextlib.suppress(OSError):
                    seen.update(metric_names(scrape(port, timeout=2)))
            done.wait(1)

    with local_ray_head(num_cpus=4) as head, tempfile.TemporaryDirectory() as storage:
        poller = threading.Thread(target=poll, args=(head.metrics_ports,), daemon=True)
        poller.start()
        code = f"TRAIN = {train!r}\nSTORAGE = {storage!r}\nEXPORT_WAIT = {export_wait}\n{WORKLOAD}"
        r = head.run(code, timeout=900)
        done.set()
        poller.join()
        if r.returncode != 0:
            raise SystemExit(f"error: the workload failed:\n{r.stderr[-3000:]}")
        names |= seen
        time.sleep(2)
        for port in head.metrics_ports:
            try:
                names |= metric_names(scrape(port))
            except OSError as e:
                raise SystemExit(f"error: the head's metrics port {port} did not answer ({e}): something stopped "
                                 f"the head (`ray stop` stops every Ray process of the user); run it again") from e
    return names


# ------------------------------------------------------------------------------------------------------ DCGM
def _git_show(repo: Path, ref: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"{ref}:{path}"], check=True, capture_output=True,
                          text=True).stdout


def derive_dcgm(repo: Path) -> set[str]:
    template = _git_show(repo, DCGM_TAG, "deployment/templates/metrics-configmap.yaml")
    default = template.split("{{- else }}", 1)[1].split("{{- end }}", 1)[0]
    names = set()
    for line in default.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("metrics:"):
            continue
        field, kind = (p.strip() for p in line.split(",")[:2])
        if kind != "label":  # a label field (driver version) is an attribute, not a metric
            names.add(field)
    return names


# ------------------------------------------------------------------------------------------------------ KSM
def derive_ksm(repo: Path) -> set[str]:
    ref = f"v{KSM_VERSION}"
    files = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", ref, "docs/metrics/"],
                           check=True, capture_output=True, text=True).stdout.split()
    names = set()
    for f in files:
        if f.endswith(".md"):
            names |= set(re.findall(r"^\|\s*(kube_[a-z0-9_]+)\s*\|", _git_show(repo, ref, f), re.M))
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exporter", choices=("ray", "dcgm", "ksm"))
    ap.add_argument("--source", type=Path, help="dcgm, ksm: a git checkout of the upstream repository")
    ap.add_argument("--no-train", action="store_true", help="ray: skip the Ray Train part of the workload")
    ap.add_argument("--export-wait", type=int, default=20, help="ray: seconds for the last values to be exported")
    ns = ap.parse_args(argv)
    if ns.exporter == "ray":
        names = derive_ray(not ns.no_train, ns.export_wait)
        header = [f"Ray {versions.RAY_VERSION}: the sample names a local head exported after scripts/"
                  f"derive_metric_names.py's workload, and the metrics Ray's Python code declares.",
                  "Derived by: python -m scripts.derive_metric_names ray"]
    elif ns.source is None:
        ap.error(f"{ns.exporter} needs --source")
        return 2
    elif ns.exporter == "dcgm":
        names = derive_dcgm(ns.source)
        header = [f"dcgm-exporter chart {versions.DCGM_EXPORTER_CHART}: NVIDIA/dcgm-exporter@{DCGM_TAG} "
                  f"deployment/templates/metrics-configmap.yaml (the chart's default counters).",
                  "Derived by: python -m scripts.derive_metric_names dcgm --source <checkout>"]
    else:
        names = derive_ksm(ns.source)
        header = [f"kube-state-metrics v{KSM_VERSION}: kubernetes/kube-state-metrics@v{KSM_VERSION} docs/metrics/.",
                  "Derived by: python -m scripts.derive_metric_names ksm --source <checkout>"]
    path = _write(ns.exporter, header, names)
    print(f"{path.relative_to(ROOT)}: {len(names)} names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
