"""Write a small synthetic image data set for smoke tests of the training job.

    python -m training.make_synthetic_data --out /tmp/images --count 64 --size 375x500

``--size`` is WIDTHxHEIGHT. Most images are RGB JPEGs; every 16th image is a
grayscale PNG and every 16th (offset by one) an RGBA PNG, to exercise the
RGB conversion of the input pipeline. Output is deterministic for a given
``--seed``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like WIDTHxHEIGHT (e.g. 375x500), got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def synthetic_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random RGB image with some noise (compresses like a photo, not like noise)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(0.5, 6.0, size=2) * 2 * np.pi
        phase = rng.uniform(0, 2 * np.pi)
        channels.append(np.sin(xx / width * fx + yy / height * fy + phase))
    img = (np.stack(channels, axis=-1) * 0.5 + 0.5) * 200 + 20
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_dataset(out: str, count: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """Write ``count`` images to ``out`` and return their paths."""
    os.makedirs(out, exist_ok=True)
    width, height = size
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        rgb = Image.fromarray(synthetic_image(rng, width, height), mode="RGB")
        if i % 16 == 7:
            path = os.path.join(out, f"img_{i:05d}_gray.png")
            rgb.convert("L").save(path)
        elif i % 16 == 8:
            path = os.path.join(out, f"img_{i:05d}_rgba.png")
            rgba = rgb.convert("RGBA")
            rgba.putalpha(Image.fromarray(rng.integers(64, 256, (height, width), dtype=np.uint8)))
            rgba.save(path)
        else:
            path = os.path.join(out, f"img_{i:05d}.jpg")
            rgb.save(path, quality=90)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--count", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--size", type=parse_size, default=(375, 500), help="WIDTHxHEIGHT (default 375x500)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    paths = make_dataset(args.out, args.count, args.size, args.seed)
    print(f"wrote {len(paths)} images of {args.size[0]}x{args.size[1]} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
