#!/usr/bin/env python
"""Cold `synth` benchmark: whole processes, baseline (plain imports) vs ours, interleaved.

Each run is a fresh ``python main.py`` writing into its own temp dir, exactly what ``cdktf synth`` starts.
Measured per run: wall time, peak RSS of the whole process tree (python + the jsii node child; the tree's
summed RSS sampled from /proc every few ms, since ru_maxrss is a per-process maximum), and CPU time
(user+sys of the tree, from wait4: python waits for node, so its time is included). The baseline is the
same app with ``RAY_EKS_PLAIN_IMPORTS=1``. Runs alternate ABBA so drift in machine load hits both sides.

    make bench-synth                      # or: .venv/bin/python benchmarks/synth.py [--runs 5] [--config F]
    .venv/bin/python benchmarks/synth.py --against REV   # this checkout vs the app at git REV, both as shipped

``--against REV`` changes the baseline: the app of git revision REV (checked out into a temporary worktree),
run the way it ships (with its own fast imports), so a change's effect on synth time shows as a ratio from one run.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "main.py"
PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET_SPEEDUP = 3.0
TARGET_PEAK_MB = 1024.0
PLAIN_ENV = "RAY_EKS_PLAIN_IMPORTS"  # mirrors fast_imports.ENV_PLAIN; not imported: keep this light

# Until main.py installs the lazy imports itself, install them around it (a no-op once it does).
LAUNCHER = ("import runpy, sys; sys.path.insert(0, {root!r}); import fast_imports; "
            "fast_imports.install(); sys.argv = [{main!r}]; runpy.run_path({main!r}, run_name='__main__')")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass  # exited between listing and reading
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int) -> int:
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss(pid)
        todo += _children(pid)
    return total


def run_once(argv: list[str], env: dict, errlog: Path, interval: float = 0.02) -> dict:
    peak = 0
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(errlog), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ])
    done = threading.Event()
    result: dict = {}

    def reap() -> None:
        _, status, usage = os.wait4(pid, 0)
        result.update(wall=time.perf_counter() - t0, rc=os.waitstatus_to_exitcode(status),
                      cpu=usage.ru_utime + usage.ru_stime)
        done.set()

    # A zombie's /proc entry stays readable until it is reaped, so sampling stops before wait4 returns.
    threading.Thread(target=reap, daemon=True).start()
    while not done.wait(interval):
        peak = max(peak, tree_rss(pid))
    result["peak"] = peak
    return result


def variant_env(outdir: Path, plain: bool, config: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (PLAIN_ENV, "CDKTF_OUTDIR", "RAY_EKS_CONFIG")}
    env.update(CDKTF_OUTDIR=str(outdir), CHECKPOINT_DISABLE="1", JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
               CI="1")  # CI: no progress lines in the measured runs
    if config:
        env["RAY_EKS_CONFIG"] = config
    if plain:
        env[PLAIN_ENV] = "1"
    return env


def differing_files(a: Path, b: Path) -> list[str]:
    files = {str(p.relative_to(a)) for p in a.rglob("*") if p.is_file()}
    other = {str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()}
    return sorted((files ^ other) | {f for f in files & other if not filecmp.cmp(a / f, b / f, shallow=False)})


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per variant (default 5; the median is reported)")
    ap.add_argument("--config", help="config file for the app (RAY_EKS_CONFIG); default: the app's defaults")
    ap.add_argument("--against", metavar="REV", help="baseline: the app at this git revision (default: plain imports)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    wired = "fast_imports" in MAIN.read_text()
    py = sys.executable
    argv = [py, str(MAIN)] if wired else [py, "-c", LAUNCHER.format(root=str(ROOT), main=str(MAIN))]
    work = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    baseline_argv, plain_baseline = argv, True
    if args.against:
        other = work / "baseline-tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), args.against],
                       check=True, capture_output=True)
        baseline_argv, plain_baseline = [py, str(other / "main.py")], False
    results: dict[str, list[dict]] = {"baseline": [], "ours": []}
    print(f"cold synth of {MAIN.relative_to(ROOT.parent)}, {args.runs} runs per variant, ABBA-interleaved; "
          f"{os.cpu_count()} CPUs, load {loadavg()}", file=sys.stderr)
    if not wired:
        print("note: main.py does not install fast_imports yet; the benchmark installs it around main.py",
              file=sys.stderr)
    try:
        for i in range(args.runs):
            order = ("baseline", "ours") if i % 2 == 0 else ("ours", "baseline")
            for name in order:
                out = work / f"{name}-{i}"
                err = work / f"{name}-{i}.stderr"
                is_base = name == "baseline"
                r = run_once(baseline_argv if is_base else argv,
                             variant_env(out, is_base and plain_baseline, args.config), err)
                r["out"] = out
                if r["rc"] != 0:
                    print(f"error: {name} run {i + 1} failed (exit {r['rc']}):\n{err.read_text()[-2000:]}",
                          file=sys.stderr)
                    return 1
                results[name].append(r)
                print(f"  run {i + 1}/{args.runs} {name:8s} {r['wall']:6.1f} s  {r['peak'] / 2**20:6.0f} MB  "
                      f"cpu {r['cpu']:5.1f} s", file=sys.stderr)
        # The last pair: the tree is least likely to have been edited between its two runs.
        differing = differing_files(results["baseline"][-1]["out"], results["ours"][-1]["out"])
        stacks = sorted(p.parent.name for p in results["ours"][0]["out"].glob("stacks/*/cdk.tf.json"))
    finally:
        if args.against:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "baseline-tree")],
                           capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    med = {n: {k: statistics.median(r[k] for r in rs) for k in ("wall", "peak", "cpu")} for n, rs in results.items()}
    print(f"\nstacks: {', '.join(stacks)}; load average at the end {loadavg()}")
    print(f"{'variant':10s} {'wall median':>12s} {'wall min-max':>14s} {'peak RSS (tree)':>16s} {'CPU median':>11s}")
    for n, rs in results.items():
        walls = [r["wall"] for r in rs]
        print(f"{n:10s} {med[n]['wall']:10.1f} s {min(walls):6.1f}-{max(walls):5.1f} s "
              f"{med[n]['peak'] / 2**20:13.0f} MB {med[n]['cpu']:9.1f} s")
    speed = med["baseline"]["wall"] / med["ours"]["wall"]
    mem = med["baseline"]["peak"] / med["ours"]["peak"]
    cpu = med["baseline"]["cpu"] / med["ours"]["cpu"]
    peak_mb = med["ours"]["peak"] / 2**20
    print(f"ratios baseline/ours: wall {speed:.2f}x, peak RSS {mem:.2f}x, CPU {cpu:.2f}x")
    if args.against:
        print(f"baseline: the app at {args.against}, with its own imports; outputs differ by design "
              f"({len(differing)} files)")
        return 0
    print(f"targets: >= {TARGET_SPEEDUP:.0f}x faster: {'met' if speed >= TARGET_SPEEDUP else 'MISSED'}; "
          f"<= {TARGET_PEAK_MB:.0f} MB peak: {'met' if peak_mb <= TARGET_PEAK_MB else 'MISSED'} ({peak_mb:.0f} MB); "
          f"synthesized output identical: {'yes' if not differing else 'NO: ' + ', '.join(differing)}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
