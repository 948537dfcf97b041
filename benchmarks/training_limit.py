"""How close the training job gets to the GPU's own limit, under the default worker's CPU budget.

    python benchmarks/training_limit.py --cpus 3                  # on a GPU machine (benchmarks/gpu_training_check.sh)
    python benchmarks/training_limit.py --device cpu --cpus 2 --images 16 --unique-images 4 --size 96x64 \\
        --original-images 16 --batch-size 8 --ceiling-steps 2 --object-store-gib 0.3   # CPU mode (the tests)

One run, one device, this process and everything it starts (the local Ray cluster, its workers) pinned to --cpus
cores (the default worker pod: g5.xlarge, 3 CPUs; Ray is told the same number). It measures:

  (a) ceiling   ResNet18 training steps on synthetic tensors already on the device: no input pipeline at all;
                with the job's GPU settings (mixed precision, channels_last) and, for reference, in fp32 (a-fp32);
  (b) original  the original job's input pipeline end to end: ray.data.read_images(size=(256, 256)) + the
                per-image torchvision transforms in Ray Data's CPU tasks, fp32 training -- in this job's training
                loop, not the original's (release/air_tests/air_benchmarks/workloads/pytorch_training_e2e.py: a
                loss.item() that waits for the GPU at every step, no cudnn.benchmark), so (b) is faster than the
                original job and (c)/(b) understates our gain over it;
  (c) ours      the job end to end as it runs on a GPU worker: Ray Data reads the files, the worker decodes
                (nvJPEG), resizes, crops and normalises on the GPU, trains in mixed precision with channels_last;
  (c-progressive, with --progressive) (c) on progressive JPEGs: torchvision sends those through nvJPEG's hybrid
                path (Huffman decoding on the CPU, the rest on the GPU), the path every JPEG takes on a GPU without
                a hardware JPEG decoder; a pessimistic stand-in for such GPUs, progressive decoding being costlier.

(b) and (c) run the job's own Ray Train loop (training/pytorch_training_e2e.py) on a local Ray cluster, reading
synthetic JPEGs from a local directory that the run has just written (in the page cache: no disk or network reads,
unlike the job on FSx or S3). Their
images/s is the steady state: all images of the epochs after the first over those epochs' time, as the training
worker measures it (the first epoch holds the start-up). GPU utilisation is NVML's (or nvidia-smi's) 'GPU busy'
sampled every 0.2 s and averaged over the same window. It also checks, on the device, that the gpu pipeline's
tensors match the reference transform (pixel levels). Results: JSON (--out) and a Markdown block (--markdown) for
docs/training.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from training import preprocessing as P  # noqa: E402
from training import pytorch_training_e2e as job  # noqa: E402
from training.make_synthetic_data import parse_size, synthetic_image  # noqa: E402

GOAL_VS_ORIGINAL = 2.0
GOAL_VS_CEILING = 0.70


# --- CPU budget ------------------------------------------------------------------------------------------------------

def pin_cpus(count: int) -> list[int]:
    """Pin this process (and so every process it starts) to ``count`` of the CPUs it may use."""
    allowed = sorted(os.sched_getaffinity(0))
    if count > len(allowed):
        raise SystemExit(f"ERROR: --cpus {count}, but this process may use only {len(allowed)} CPUs ({allowed})")
    chosen = allowed[:count]
    os.sched_setaffinity(0, chosen)
    return chosen


# --- GPU utilisation -------------------------------------------------------------------------------------------------

class GpuSampler:
    """'GPU busy' (% of time a kernel ran) and memory used, every ``interval`` s, with timestamps."""

    def __init__(self, interval: float = 0.2):
        self.samples: list[tuple[float, float, float]] = []  # (unix time, util %, memory MiB)
        self.source: str | None = None
        self._stop = threading.Event()
        self._interval = interval
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None

    def start(self) -> GpuSampler:
        try:
            pynvml = importlib.import_module("pynvml")  # nvidia-ml-py, where installed (the GPU machine has it)
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.source = "NVML"

            def poll():
                while not self._stop.is_set():
                    util = pynvml.nvmlDeviceGetUtilizationRates(handle)
                    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
                    self.samples.append((time.time(), float(util.gpu), mem.used / 2**20))
                    self._stop.wait(self._interval)

            self._thread = threading.Thread(target=poll, daemon=True)
        except Exception:
            if not shutil.which("nvidia-smi"):
                return self
            self.source = "nvidia-smi"
            self._proc = subprocess.Popen(
                ["nvidia-smi", "--id=0", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 f"-lms={int(self._interval * 1000)}"], stdout=subprocess.PIPE, text=True)

            def read():
                assert self._proc is not None and self._proc.stdout is not None
                for line in self._proc.stdout:
                    try:
                        util, mem = (float(v) for v in line.split(","))
                    except ValueError:
                        continue
                    self.samples.append((time.time(), util, mem))

            self._thread = threading.Thread(target=read, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def window(self, start: float, end: float) -> dict | None:
        inside = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not inside:
            return None
        return {"util_mean_pct": round(statistics.fmean(u for u, _ in inside), 1),
                "util_max_pct": max(u for u, _ in inside),
                "memory_max_mib": round(max(m for _, m in inside)), "samples": len(inside)}


# --- data ------------------------------------------------------------------------------------------------------------

def make_images(directory: Path, unique: int, total: int, size: tuple[int, int], progressive: bool,
                seed: int = 0) -> list[Path]:
    """``unique`` synthetic RGB JPEGs (quality 90), hard-linked up to ``total`` files (the same bytes to decode,
    without minutes of generating them)."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    originals = []
    for i in range(min(unique, total)):
        path = directory / f"u{i:05d}.jpg"
        Image.fromarray(synthetic_image(rng, width, height)).save(path, quality=90, progressive=progressive)
        originals.append(path)
    paths = list(originals)
    for i in range(len(originals), total):
        path = directory / f"c{i:06d}.jpg"
        try:
            os.link(originals[i % len(originals)], path)
        except OSError:
            shutil.copyfile(originals[i % len(originals)], path)
        paths.append(path)
    return paths


# --- (a) the ceiling -------------------------------------------------------------------------------------------------

def ceiling(device, precision: str, channels_last: bool, batch_size: int, steps: int, warmup: int,
            sampler: GpuSampler | None) -> dict:
    import torch
    import torch.nn as nn
    import torch.optim as optim
    from torchvision.models import resnet18

    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = resnet18(weights=None)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device)
    optimizer = optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    inputs = torch.randn(batch_size, 3, P.CROP, P.CROP, device=device)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    labels = torch.zeros(batch_size, dtype=torch.int64, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            loss = criterion(model(inputs), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    start = time.time()
    for _ in range(steps):
        loss = step()
    loss.item()
    sync()
    end = time.time()
    return {"images_per_s": round(steps * batch_size / (end - start), 1), "seconds": round(end - start, 2),
            "images": steps * batch_size, "precision": precision, "channels_last": channels_last,
            "gpu": sampler.window(start, end) if sampler else None}


# --- (b) and (c): the job end to end ---------------------------------------------------------------------------------

def original_dataset(data_dir: str):
    """The original release-test job's input pipeline, verbatim in what it computes."""
    import ray.data

    transform = P.reference_transform()

    def add_fake_labels(batch):
        batch["label"] = np.zeros([len(batch["image"])], dtype=int)
        return batch

    def transform_image(batch):
        batch["image"] = [transform(image).numpy() for image in batch["image"]]
        return batch

    return ray.data.read_images(data_dir, size=P.READ_SIZE).map_batches(add_fake_labels).map_batches(transform_image)


def run_job(name: str, dataset, config: dict, use_gpu: bool, storage: str, sampler: GpuSampler | None) -> dict:
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        train_loop_per_worker=job.train_loop_per_worker,
        train_loop_config={"weights_ref": None, **config},
        datasets={"train": dataset},
        scaling_config=ScalingConfig(num_workers=1, use_gpu=use_gpu),
        run_config=RunConfig(storage_path=storage, name=name, checkpoint_config=CheckpointConfig(num_to_keep=None)),
    )
    start = time.time()
    result = trainer.fit()
    wall = time.time() - start
    epochs = sorted((m for _, m in result.best_checkpoints), key=lambda m: m["epoch"])
    steady = epochs[1:] or epochs
    seconds = sum(m["epoch_end_s"] - m["epoch_start_s"] for m in steady)
    images = sum(m["images"] for m in steady)
    return {
        "images_per_s": round(images / seconds, 1), "steady_epochs": len(steady), "steady_seconds": round(seconds, 2),
        "first_epoch_images_per_s": round(epochs[0]["images_per_s"], 1),
        "epoch_images_per_s": [round(m["images_per_s"], 1) for m in epochs],
        "wall_s": round(wall, 1), "images_per_epoch": epochs[0]["images"],
        "precision": epochs[-1]["precision"], "channels_last": epochs[-1]["channels_last"],
        "input_pipeline": epochs[-1]["input_pipeline"],
        "gpu": sampler.window(steady[0]["epoch_start_s"], steady[-1]["epoch_end_s"]) if sampler else None,
    }


# --- equivalence on the device ---------------------------------------------------------------------------------------

def equivalence(device, blobs: list[bytes]) -> dict:
    """The gpu pipeline's tensors on ``device`` against the reference transform, in pixel levels."""
    transform = P.reference_transform()
    encoded = P.encode_batch_for_device({"bytes": np.array(blobs, dtype=object)})
    ours = P.preprocess_encoded(encoded, device).cpu().numpy().astype(np.float64)
    ref = np.stack([transform(P.load_image(io.BytesIO(b))).numpy() for b in blobs]).astype(np.float64)
    levels = np.abs(ours - ref) * np.asarray(P.IMAGENET_STD).reshape(1, 3, 1, 1) * 255.0
    return {"images": len(blobs), "decoded_on_device": int(encoded["jpeg"].sum()),
            "max_levels": round(float(levels.max()), 3), "mean_levels": round(float(levels.mean()), 4),
            "over_1_level_fraction": round(float((levels > 1.001).mean()), 5)}


def equivalence_samples(size: tuple[int, int]) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(99)
    width, height = size
    blobs = []
    for i in range(16):
        buf = io.BytesIO()
        image = Image.fromarray(synthetic_image(rng, width, height) if i % 4 else synthetic_image(rng, height, width))
        if i % 8 == 3:
            image = image.convert("L")
        image.save(buf, format="JPEG", quality=90, progressive=i % 8 == 5, subsampling=0 if i % 8 == 6 else -1)
        blobs.append(buf.getvalue())
    return blobs


# --- report ----------------------------------------------------------------------------------------------------------

def environment(device, cpus: list[int]) -> dict:
    import ray
    import torch
    import torchvision

    env = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
           "ray": ray.__version__, "cuda": torch.version.cuda, "cpus": cpus, "cpu_model": platform.processor()}
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as cpuinfo:
        env["cpu_model"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            env["driver"] = None
    return env


def pct(value: dict | None) -> str:
    return f"{value['util_mean_pct']:.0f}% (max {value['util_max_pct']:.0f}%)" if value else "n/a"


def markdown(report: dict) -> str:
    r, env, a = report["runs"], report["environment"], report["runs"]["ceiling"]["images_per_s"]
    device = env.get("gpu") or "CPU"
    lines = [
        f"Measured by `{report['command']}` on {device}"
        + (f" (driver {env['driver']}, CUDA {env['cuda']})" if env.get("gpu") else "")
        + f", PyTorch {env['torch']}, torchvision {env['torchvision']}, Ray {env['ray']}, Python {env['python']}, "
        f"pinned to {len(env['cpus'])} CPUs ({env['cpu_model']}); synthetic {report['image_size']} RGB JPEGs "
        f"(quality 90) read from a local directory the run has just written (page-cached: no disk or network "
        f"reads), batch {report['batch_size']} per step, 1 training worker.",
        "",
        "| run | what | images/s | GPU busy (mean over the run) | of (a) |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows = [
        ("(a) ceiling", "ResNet18 steps on synthetic tensors on the device, "
         f"{r['ceiling']['precision']}, channels_last {r['ceiling']['channels_last']}", r["ceiling"]),
        ("(a-fp32)", "the same in fp32, NCHW", r.get("ceiling_fp32")),
        ("(b) original", "read_images + per-image torchvision transforms on the CPUs, fp32, in our training loop "
         f"(faster than the original's) ({r['original']['images_per_epoch']} images/epoch)", r["original"]),
        ("(c) ours", "file reads on the CPUs; decode (nvJPEG), resize, crop, normalise on the "
         f"{'GPU' if env.get('gpu') else 'device'}; {r['ours']['precision']}, "
         f"channels_last {r['ours']['channels_last']} ({r['ours']['images_per_epoch']} images/epoch)", r["ours"]),
        ("(c-progressive)", "(c) on progressive JPEGs: nvJPEG's host phase (Huffman decoding) on the CPU "
         f"({r['ours_progressive']['images_per_epoch'] if r.get('ours_progressive') else 0} images/epoch)",
         r.get("ours_progressive")),
    ]
    for label, what, row in rows:
        if row:
            lines.append(f"| {label} | {what} | {row['images_per_s']:.0f} | {pct(row.get('gpu'))} | "
                         f"{row['images_per_s'] / a:.0%} |")
    s = report["summary"]
    lines += [
        "",
        f"(c)/(b) = **{s['ours_vs_original']:.2f}×** (goal ≥ {GOAL_VS_ORIGINAL:g}×: "
        f"{'met' if s['ours_vs_original'] >= GOAL_VS_ORIGINAL else 'not met'}); "
        f"(c)/(a) = **{s['ours_vs_ceiling']:.0%}** (goal ≥ {GOAL_VS_CEILING:.0%}: "
        f"{'met' if s['ours_vs_ceiling'] >= GOAL_VS_CEILING else 'not met'}).",
        f"Equivalence on the device ({report['equivalence']['images']} JPEGs, "
        f"{report['equivalence']['decoded_on_device']} decoded there): max "
        f"{report['equivalence']['max_levels']} pixel levels from the reference, mean "
        f"{report['equivalence']['mean_levels']}.",
    ]
    if not env.get("gpu"):
        lines.append("CPU mode: a run of the benchmark's machinery on a tiny data set, not a measurement of anything.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--cpus", type=int, default=3, help="CPU budget: cores pinned and given to Ray (default 3)")
    parser.add_argument("--images", type=int, default=8192, help="images per epoch for (c) (default 8192)")
    parser.add_argument("--original-images", type=int, default=2048, help="images per epoch for (b) (default 2048)")
    parser.add_argument("--unique-images", type=int, default=256, help="distinct images, hard-linked up to the rest")
    parser.add_argument("--size", type=parse_size, default=(375, 500),
                        help="WIDTHxHEIGHT of the images (default 375x500)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of (b) and (c); the first is not counted")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ceiling-steps", type=int, default=200)
    parser.add_argument("--progressive", action="store_true", help="also run (c) on progressive JPEGs")
    parser.add_argument("--progressive-images", type=int, default=2048,
                        help="images per epoch of the progressive run (default 2048: its decoding is CPU-bound)")
    parser.add_argument("--object-store-gib", type=float, default=3.5,
                        help="Ray object store in GiB (default 3.5: Ray's default share, ~30%%, of the default "
                        "worker's 12 GiB)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, help="write the Markdown block for docs/training.md")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is not counted)")
    size = args.size
    given = list(argv if argv is not None else sys.argv[1:])
    for flag in ("--out", "--markdown"):  # where the results went is not part of what was measured
        if flag in given:
            i = given.index(flag)
            del given[i : i + 2]
    command = " ".join(["python benchmarks/training_limit.py", *given])

    cpus = pin_cpus(args.cpus)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("ERROR: --device cuda, but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    torch.set_num_threads(len(cpus))
    use_gpu = device.type == "cuda"
    precision = job.device_precision("auto", device)
    sampler = GpuSampler().start() if use_gpu else None
    print(f"device {device}, CPUs {cpus}, precision {precision}, GPU sampling {sampler.source if sampler else None}",
          flush=True)

    report: dict = {"command": command, "image_size": f"{size[0]}x{size[1]}", "batch_size": args.batch_size, "runs": {}}
    report["environment"] = environment(device, cpus)
    report["equivalence"] = equivalence(device, equivalence_samples(size))
    print("equivalence", report["equivalence"], flush=True)
    runs = report["runs"]
    runs["ceiling"] = ceiling(device, precision, use_gpu, args.batch_size, args.ceiling_steps,
                              max(2, args.ceiling_steps // 10), sampler)
    print("ceiling", runs["ceiling"], flush=True)
    if use_gpu:
        runs["ceiling_fp32"] = ceiling(device, "fp32", False, args.batch_size, args.ceiling_steps,
                                       max(2, args.ceiling_steps // 10), sampler)
        print("ceiling fp32", runs["ceiling_fp32"], flush=True)
        torch.cuda.empty_cache()  # the ceilings' models and tensors are gone; give their memory back for the runs

    import ray

    with tempfile.TemporaryDirectory(prefix="training-limit-") as tmp:
        root = Path(tmp)
        ours_dir, original_dir = root / "ours", root / "original"
        make_images(ours_dir, args.unique_images, args.images, size, progressive=False)
        make_images(original_dir, args.unique_images, args.original_images, size, progressive=False)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        ray.init(num_cpus=len(cpus), num_gpus=1 if use_gpu else 0, include_dashboard=False,
                 object_store_memory=int(args.object_store_gib * 2**30))
        ray.cloudpickle.register_pickle_by_value(P)
        try:
            base = {"batch_size": args.batch_size, "num_epochs": args.epochs}
            runs["original"] = run_job(
                "original", original_dataset(str(original_dir)),
                {**base, "input_pipeline": "cpu", "precision": "fp32", "channels_last": False},
                use_gpu, str(root / "storage"), sampler)
            print("original", runs["original"], flush=True)
            ours_config = {**base, "input_pipeline": "gpu", "precision": "auto", "channels_last": None}
            runs["ours"] = run_job("ours", job.build_dataset(str(ours_dir), "gpu"), ours_config,
                                   use_gpu, str(root / "storage"), sampler)
            print("ours", runs["ours"], flush=True)
            if args.progressive:
                progressive_dir = root / "progressive"
                make_images(progressive_dir, args.unique_images, args.progressive_images, size, progressive=True)
                runs["ours_progressive"] = run_job("ours_progressive", job.build_dataset(str(progressive_dir), "gpu"),
                                                   ours_config, use_gpu, str(root / "storage"), sampler)
                print("ours progressive", runs["ours_progressive"], flush=True)
        finally:
            ray.shutdown()
            if sampler:
                sampler.stop()

    report["summary"] = {
        "ours_vs_original": round(runs["ours"]["images_per_s"] / runs["original"]["images_per_s"], 3),
        "ours_vs_ceiling": round(runs["ours"]["images_per_s"] / runs["ceiling"]["images_per_s"], 3),
    }
    text = markdown(report)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
