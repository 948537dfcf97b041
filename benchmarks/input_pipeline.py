"""Input-pipeline throughput: the original per-image torchvision loop vs training/preprocessing.py.

    python benchmarks/input_pipeline.py                 # CPU, 256 images of 375x500
    python benchmarks/input_pipeline.py --images 512 --repeats 9 --threads 1
    python benchmarks/input_pipeline.py --e2e           # GPU: whole training job, both pipelines

CPU mode (default). The same in-memory data set (synthetic 375x500 photos,
JPEG-encoded then decoded) goes through both pipelines in the same run, in
map_batches-sized batches (default 32, as the job uses), several repeats,
median reported. torch runs on --threads threads (default 1, like Ray Data
tasks, which get OMP_NUM_THREADS=1). Three measurements:

  transform  the stage the job replaced: input is what read_images(size=(256, 256),
             mode="RGB") yields (decoded, resized to 256x256, RGB uint8);
             original = ToTensor/Resize/CenterCrop/Normalize per image + stacking
             the list into one array (what Ray does with the list);
             ours = preprocessing.transform_batch.
  read+transform  the above plus the read stage shared by both (JPEG decode +
             PIL resize), i.e. everything a Ray Data read/map task does.
  no-read-resize  decoded 375x500 images straight into the pipelines, so
             Resize(256) does real work (torchvision per image vs one
             antialiased interpolate per chunk).

--e2e mode (needs a GPU unless --device cpu): writes --e2e-images synthetic
images to a temp dir, starts a local Ray, and trains ResNet18 (random weights)
with the job's training loop twice: with the original input pipeline
(add_fake_labels + per-image transform_image map_batches) and with ours;
reports wall time and images/s for each.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from training import preprocessing as P  # noqa: E402
from training.make_synthetic_data import make_dataset, synthetic_image  # noqa: E402


def make_jpegs(count: int, width: int, height: int, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    blobs = []
    for _ in range(count):
        buf = io.BytesIO()
        Image.fromarray(synthetic_image(rng, width, height)).save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())
    return blobs


def batches(items, size):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def original_transform_batch(images, transform):
    # The original job's transform_image, plus the stacking Ray does with its list output.
    return np.stack(P.reference_transform_batch({"image": images}, transform)["image"])


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_benchmark(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    # PIL-backed arrays are read-only; torchvision's ToTensor warns about it (harmless).
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    transform = P.reference_transform()
    blobs = make_jpegs(args.images, args.width, args.height)
    decoded = [P.load_image(io.BytesIO(b), size=None) for b in blobs]  # 375x500 RGB
    read = np.stack([P.load_image(io.BytesIO(b)) for b in blobs])  # what read_images yields
    n, bs = len(blobs), args.batch_size

    def orig_transform():
        for b in batches(read, bs):
            original_transform_batch(list(b), transform)

    def ours_transform():
        for b in batches(read, bs):
            P.transform_batch({"image": b})

    def orig_read():
        for b in batches(blobs, bs):
            original_transform_batch([P.load_image(io.BytesIO(x)) for x in b], transform)

    def ours_read():
        for b in batches(blobs, bs):
            P.transform_batch({"image": np.stack([P.load_image(io.BytesIO(x)) for x in b])})

    same_size = np.stack(decoded)

    def orig_noresize():
        for b in batches(same_size, bs):
            original_transform_batch(list(b), transform)

    def ours_noresize():
        for b in batches(same_size, bs):
            P.transform_batch({"image": b})

    # Same numbers out of both, before timing anything.
    diff = np.abs(original_transform_batch(list(read[:bs]), transform)
                  - P.transform_batch({"image": read[:bs]})["image"]).max()
    print(f"{n} images {args.width}x{args.height} (JPEG-decoded), batch {bs}, "
          f"torch threads {args.threads}, {args.repeats} repeats (median); "
          f"max |diff| {diff:.1e}")
    print(f"{'measurement':<16} {'original img/s':>15} {'ours img/s':>11} {'ratio':>6}")
    ratios = {}
    for name, orig, ours in [("transform", orig_transform, ours_transform),
                             ("read+transform", orig_read, ours_read),
                             ("no-read-resize", orig_noresize, ours_noresize)]:
        t_orig, t_ours = timed(orig, args.repeats), timed(ours, args.repeats)
        ratios[name] = t_orig / t_ours
        print(f"{name:<16} {n / t_orig:>15.0f} {n / t_ours:>11.0f} {ratios[name]:>5.2f}x")
    return 0


def e2e_benchmark(args) -> int:
    import torch

    if args.device == "gpu" and not torch.cuda.is_available():
        print("--e2e needs a GPU (torch.cuda.is_available() is False); use --device cpu to run it on CPU.")
        return 2
    use_gpu = args.device == "gpu" or (args.device == "auto" and torch.cuda.is_available())

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from training.pytorch_training_e2e import train_loop_per_worker

    transform = P.reference_transform()

    def add_fake_labels(batch):
        batch["label"] = np.zeros([len(batch["image"])], dtype=int)
        return batch

    def transform_image(batch):
        batch["image"] = [transform(image).numpy() for image in batch["image"]]
        return batch

    with tempfile.TemporaryDirectory(prefix="e2e-") as tmp:
        data = os.path.join(tmp, "images")
        make_dataset(data, args.e2e_images, (args.width, args.height))
        ray.init()
        ray.cloudpickle.register_pickle_by_value(P)
        rows = []
        for name in ("original", "ours"):
            start = time.time()
            ds = ray.data.read_images(data, size=P.READ_SIZE, mode=P.READ_MODE)
            if name == "original":
                ds = ds.map_batches(add_fake_labels).map_batches(transform_image)
            else:
                ds = ds.map_batches(P.transform_batch, batch_format="numpy",
                                    batch_size=P.MAP_BATCH_SIZE, zero_copy_batch=True)
            trainer = TorchTrainer(
                train_loop_per_worker=train_loop_per_worker,
                train_loop_config={"batch_size": args.train_batch_size,
                                   "num_epochs": args.epochs, "weights_ref": None},
                datasets={"train": ds},
                scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=use_gpu),
                run_config=RunConfig(storage_path=os.path.join(tmp, "storage"), name=name),
            )
            result = trainer.fit()
            elapsed = time.time() - start
            rows.append((name, elapsed, args.epochs * args.e2e_images / elapsed,
                         result.metrics.get("images_per_s")))
        ray.shutdown()
    print(f"e2e: {args.e2e_images} images, {args.epochs} epochs, {args.workers} workers, "
          f"{'GPU' if use_gpu else 'CPU'}")
    print(f"{'pipeline':<10} {'wall s':>8} {'img/s (wall)':>13} {'last-epoch img/s (rank 0)':>26}")
    for name, elapsed, ips, last in rows:
        print(f"{name:<10} {elapsed:>8.1f} {ips:>13.1f} {last or 0:>26.1f}")
    print(f"speed-up (wall): {rows[0][1] / rows[1][1]:.2f}x")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--width", type=int, default=375)
    parser.add_argument("--height", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=P.MAP_BATCH_SIZE, help="map_batches batch size")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (Ray Data tasks use 1)")
    parser.add_argument("--e2e", action="store_true", help="train end to end with both pipelines")
    parser.add_argument("--device", choices=("auto", "gpu", "cpu"), default="gpu", help="for --e2e")
    parser.add_argument("--e2e-images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--train-batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    return e2e_benchmark(args) if args.e2e else cpu_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
