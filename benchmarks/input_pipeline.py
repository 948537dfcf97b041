"""Input-pipeline throughput: the original per-image torchvision loop vs training/preprocessing.py.

    python benchmarks/input_pipeline.py                 # CPU, 256 images of 375x500
    python benchmarks/input_pipeline.py --images 512 --repeats 9 --threads 1

The training job end to end (the original, ours, the GPU's own limit) is benchmarks/training_limit.py.

The same in-memory data set (synthetic 375x500 photos,
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
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from training import preprocessing as P  # noqa: E402
from training.make_synthetic_data import synthetic_image  # noqa: E402


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--width", type=int, default=375)
    parser.add_argument("--height", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=P.MAP_BATCH_SIZE, help="map_batches batch size")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (Ray Data tasks use 1)")
    args = parser.parse_args(argv)
    return cpu_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
