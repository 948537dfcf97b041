"""Batch-wise (vectorised) image preprocessing for the ResNet training job.

The original Ray release-test job (``pytorch_training_e2e.py``) read images with
``ray.data.read_images(url, size=(256, 256))`` and then ran, image by image in a
Python loop, the torchvision pipeline::

    ToTensor() -> Resize(256) -> CenterCrop(224) -> Normalize(ImageNet mean/std)

This module produces the same tensors, but for a whole ``(N, H, W, 3)`` uint8
batch at once:

* the crop is done first, on the uint8 batch, when no resize is needed (the
  common case: ``read_images(size=(256, 256))`` already yields 256x256 images,
  for which ``Resize(256)`` is the identity); cropping commutes with the
  per-pixel operations, so this is exact and converts 27% fewer pixels;
* ``ToTensor``'s ``/255`` and ``Normalize`` are fused into one multiply-add;
* when a resize *is* needed (shorter side != 256) the batch is resized with a
  single ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)``
  call on ``[0, 1]`` floats, which is exactly what torchvision's tensor
  ``Resize`` does per image.

Images are read as RGB (``mode="RGB"``), so grayscale and RGBA files become
3-channel images (the original job crashed on those).

The device path (``--input-pipeline gpu``, the default on GPU workers) moves
the decoding to the training worker: Ray Data's CPU tasks read the files and
sort them (:func:`encode_batch_for_device`); JPEGs that nvJPEG decodes like
PIL travel as their bytes, anything else (PNG, GIF, CMYK or lossless JPEG,
...) is decoded on the CPU exactly as ``read_images`` does and travels as
256x256 RGB pixels. On the worker :func:`preprocess_encoded` decodes the
JPEGs with torchvision's ``decode_jpeg`` on the device, resizes them to
256x256 with one antialiased bilinear ``interpolate`` per image size, crops
and normalises, on the device, a bounded number of pixels at a time
(``DEVICE_CHUNK_PIXELS``). On a GPU, torchvision's nvJPEG decoder
(torchvision/csrc/io/image/cuda/decode_jpegs_cuda.cpp) decodes baseline
JPEGs entirely on the GPU only where it has a hardware JPEG decoder; on other
GPUs, and for progressive JPEGs on any, each image's Huffman decoding
(``nvjpegDecodeJpegHost``) runs on the CPU, in the worker's thread that calls
``decode_jpeg``, and the rest (IDCT, colour conversion) on the GPU. On a CPU
device libjpeg-turbo decodes everything.

Only numpy and torch are needed here; torchvision is imported lazily (by
:func:`reference_transform`, for tests and the benchmark, and by the device
path's decoder).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
RESIZE = 256
CROP = 224
# What the original job passed to ray.data.read_images(size=...): (height, width).
READ_SIZE: tuple[int, int] = (256, 256)
READ_MODE = "RGB"
# Images processed together in the inner loops of preprocess_images: small
# enough for the float intermediates to stay in the CPU cache.
CHUNK = 4
# Batch size for Ray Data map_batches: a 32-image float32 output batch is
# ~19 MiB, under glibc's 32 MiB mmap threshold, so output buffers get recycled
# rather than freshly page-faulted for every batch (measurably faster).
MAP_BATCH_SIZE = 32
# The device path decodes and preprocesses at most this many pixels at once (an image counts as at least
# READ_SIZE's pixels: it is resized to that), a larger image alone. The tensors it holds at once -- decoded uint8,
# their float copy, the resized floats, the cropped and normalised ones -- come to under 50 bytes a pixel, so under
# ~400 MiB of device memory whatever the batch size and the images' size. 8 Mpx is 44 images of 375x500, a batch
# big enough for nvJPEG's batched decode.
DEVICE_CHUNK_PIXELS = 2**23
# torch's warnings about read-only inputs: Ray's zero-copy batches and the files' bytes are read-only, and nothing
# here writes to them.
READ_ONLY_WARNINGS = ("The given NumPy array is not writable", "The given buffer is not writable")


def ignore_read_only_warnings() -> None:
    """Install filters for READ_ONLY_WARNINGS, once per process (a no-op when they are there).

    Not ``warnings.catch_warnings()`` around each call: it saves the process's filter list and restores it on exit,
    which races with every other thread (Ray Data's prefetch thread runs the device path beside the training loop).
    Not only at import either: Ray ships this module by value (cloudpickle), which runs none of its top level.
    """
    installed = {f[1].pattern for f in warnings.filters if f[0] == "ignore" and f[1] is not None}
    for message in READ_ONLY_WARNINGS:
        if message not in installed:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)


def load_image(source, size: tuple[int, int] | None = READ_SIZE, mode: str | None = READ_MODE) -> np.ndarray:
    """Decode one image the way ``ray.data.read_images(size=..., mode=...)`` does.

    ``source`` is a path or a file object. PIL bilinear resize to ``size``
    (height, width) if it differs, then convert to ``mode``. Used by tests and
    the benchmark; the job itself reads with Ray Data.
    """
    from PIL import Image

    with Image.open(source) as opened:
        image: Image.Image = opened
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), resample=Image.Resampling.BILINEAR)
        if mode is not None and image.mode != mode:
            image = image.convert(mode)
        return np.asarray(image)


def reference_transform():
    """The original job's per-image torchvision transform (for tests/benchmarks)."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.ToTensor(),
            transforms.Resize(RESIZE),
            transforms.CenterCrop(CROP),
            transforms.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)),
        ]
    )


def reference_transform_batch(batch: dict[str, Any], transform) -> dict[str, Any]:
    """The original job's ``map_batches`` function: a Python loop over images (its ``image`` becomes a list)."""
    batch["image"] = [transform(image).numpy() for image in batch["image"]]
    return batch


def resized_size(height: int, width: int, size: int = RESIZE) -> tuple[int, int]:
    """Output (height, width) of torchvision ``Resize(size)`` (shorter side -> size)."""
    short, long = (height, width) if height <= width else (width, height)
    if short == size:
        return height, width
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if height <= width else (new_long, new_short)


def _center_crop_offsets(height: int, width: int, crop: int) -> tuple[int, int]:
    if height < crop or width < crop:
        raise ValueError(f"image of {height}x{width} is smaller than the {crop}x{crop} crop")
    # Same rounding as torchvision.transforms.functional.center_crop.
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


def _scale_bias(mean: Sequence[float], std: Sequence[float], from_uint8: bool):
    mean64 = np.asarray(mean, dtype=np.float64)
    std64 = np.asarray(std, dtype=np.float64)
    scale = 1.0 / std64 / (255.0 if from_uint8 else 1.0)
    bias = -mean64 / std64
    return (
        torch.from_numpy(scale.astype(np.float32)),
        torch.from_numpy(bias.astype(np.float32)),
    )


def preprocess_images(
    images,
    resize: int = RESIZE,
    crop: int = CROP,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Preprocess a uint8 ``(N, H, W, 3)`` batch into float32 ``(N, 3, crop, crop)``.

    Numerically equivalent (to float32 rounding) to applying
    :func:`reference_transform` to each image.
    """
    ignore_read_only_warnings()
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 image batch, got {x.dtype}")
    if x.ndim == 3:  # a single image
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected a (N, H, W, 3) RGB batch, got shape {tuple(x.shape)}")
    n, height, width, _ = x.shape
    out_h, out_w = resized_size(height, width, resize)

    out = torch.empty((n, 3, crop, crop), dtype=torch.float32)
    if (out_h, out_w) == (height, width):
        # Resize is the identity: crop the uint8 pixels first (a view), then
        # convert straight into NCHW float and apply one fused
        # ToTensor+Normalize multiply-add. Work in chunks of a few images so
        # the float intermediates stay in the CPU cache.
        top, left = _center_crop_offsets(height, width, crop)
        x = x[:, top : top + crop, left : left + crop, :].permute(0, 3, 1, 2)
        scale, bias = _scale_bias(mean, std, from_uint8=True)
        scale, bias = scale.view(1, 3, 1, 1), bias.view(1, 3, 1, 1)
        for i in range(0, n, CHUNK):
            o = out[i : i + CHUNK]
            o.copy_(x[i : i + CHUNK])
            o.mul_(scale).add_(bias)
        return out

    # Resize needed: same order of operations as torchvision (ToTensor first,
    # then an antialiased bilinear resize of the [0, 1] floats), one
    # interpolate call per chunk of images.
    top, left = _center_crop_offsets(out_h, out_w, crop)
    scale, bias = _scale_bias(mean, std, from_uint8=False)
    scale, bias = scale.view(1, 3, 1, 1), bias.view(1, 3, 1, 1)
    x = x.permute(0, 3, 1, 2)
    for i in range(0, n, CHUNK):
        xf = x[i : i + CHUNK].to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
        xf = F.interpolate(xf, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
        o = out[i : i + CHUNK]
        torch.mul(xf[:, :, top : top + crop, left : left + crop], scale, out=o)
        o.add_(bias)
    return out


def transform_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` function: preprocess images and add fake labels.

    Replaces the original job's ``add_fake_labels`` + ``transform_image`` pair.
    ``batch["image"]`` is a uint8 ``(N, H, W, 3)`` array (uniform size, as
    produced by ``read_images(size=..., mode="RGB")``) or, for ragged input, a
    sequence of ``(H, W, 3)`` arrays.
    """
    images = batch["image"]
    if isinstance(images, np.ndarray) and images.dtype != object and images.ndim == 4:
        out = preprocess_images(images)
    else:  # ragged batch: sizes differ, so process image by image
        out = torch.cat([preprocess_images(np.asarray(img)) for img in images])
    return {
        "image": out.numpy(),
        "label": np.zeros(out.shape[0], dtype=np.int64),
    }


# --- the device path ---------------------------------------------------------------------------------------------
# JPEG markers (ITU-T T.81, table B.1). SOF0/SOF1/SOF2 are the 8-bit Huffman-coded frames (baseline, extended
# sequential, progressive) that nvJPEG decodes; the other SOFn (lossless, hierarchical, arithmetic-coded) go to PIL.
_SOF_HUFFMAN = frozenset({0xC0, 0xC1, 0xC2})
_SOF_OTHER = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field
_SOS = 0xDA
# Luma (h, v) sampling factors of the subsamplings nvJPEG decodes (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1, 4:1:0: the nvJPEG
# 13.0 documentation, introduction), chroma 1x1 each; torchvision's GPU decoder stops on any other ("Unknown chroma
# subsampling", decode_jpegs_cuda.cpp).
_LUMA_SAMPLING = frozenset({(1, 1), (2, 1), (2, 2), (1, 2), (4, 1), (4, 2)})
_RGB_COMPONENT_IDS = (ord("R"), ord("G"), ord("B"))


def device_decodable_jpeg(data: bytes) -> bool:
    """Whether the device path decodes this file as PIL would: an 8-bit Huffman-coded YCbCr or grayscale JPEG.

    Reads the markers up to the first scan (no decoding). False for anything else -- PNG, GIF, CMYK/YCCK JPEGs and
    RGB-coded ones (whose colour conversion is PIL's own), lossless or arithmetic-coded JPEGs, unusual subsampling,
    truncated headers -- which the CPU decodes instead.
    """
    return device_jpeg_size(data) is not None


def device_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) of a JPEG that :func:`device_decodable_jpeg` accepts, from its frame header; None otherwise."""
    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
        return None
    adobe_transform = None
    frame = None
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker == _SOS:
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        segment = data[i + 4 : i + 2 + length]
        if length < 2 or len(segment) != length - 2:
            return None
        if marker == 0xEE and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe_transform = segment[11]
        elif marker in _SOF_OTHER:
            return None
        elif marker in _SOF_HUFFMAN:
            frame = segment
        i += 2 + length
    if frame is None or len(frame) < 6:
        return None
    precision, height, width, components = frame[0], frame[1:3], frame[3:5], frame[5]
    if precision != 8 or height == b"\0\0" or width == b"\0\0" or len(frame) < 6 + 3 * components:
        return None
    size = int.from_bytes(height, "big"), int.from_bytes(width, "big")
    if components == 1:
        return size
    if components != 3 or adobe_transform == 0:
        return None
    ids = tuple(frame[6 + 3 * c] for c in range(3))
    sampling = [(frame[7 + 3 * c] >> 4, frame[7 + 3 * c] & 0x0F) for c in range(3)]
    if ids == _RGB_COMPONENT_IDS and adobe_transform is None:
        return None  # libjpeg and PIL read components named R, G, B as RGB, not YCbCr
    return size if sampling[0] in _LUMA_SAMPLING and sampling[1] == sampling[2] == (1, 1) else None


def encode_batch_for_device(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` function of the device path, the CPU side (after the binary file read).

    Files that :func:`device_decodable_jpeg` accepts keep their bytes (``jpeg`` True, ``pixels`` their decoded
    height x width, from the header); the others are decoded here exactly as ``read_images(size=READ_SIZE,
    mode="RGB")`` does (:func:`load_image`) and travel as their 256x256x3 uint8 pixels (``pixels`` 0). Adds the fake
    labels, like :func:`transform_batch`.
    """
    import io

    files = batch["bytes"]
    data = np.empty(len(files), dtype=object)
    jpeg = np.zeros(len(files), dtype=bool)
    pixels = np.zeros(len(files), dtype=np.int64)
    for i, item in enumerate(files):
        blob = bytes(item)
        size = device_jpeg_size(blob)
        if size is not None:
            data[i], jpeg[i], pixels[i] = blob, True, size[0] * size[1]
        else:
            data[i] = load_image(io.BytesIO(blob)).tobytes()
    return {"bytes": data, "jpeg": jpeg, "pixels": pixels, "label": np.zeros(len(files), dtype=np.int64)}


def device_chunks(pixels: Sequence[int], budget: int | None = None) -> list[range]:
    """Consecutive runs of images whose pixels (each at least READ_SIZE's) add up to at most ``budget``
    (``DEVICE_CHUNK_PIXELS``); an image over the budget alone."""
    budget = DEVICE_CHUNK_PIXELS if budget is None else budget
    floor = READ_SIZE[0] * READ_SIZE[1]
    chunks, start, total = [], 0, 0
    for i, count in enumerate(pixels):
        cost = max(int(count), floor)
        if i > start and total + cost > budget:
            chunks.append(range(start, i))
            start, total = i, 0
        total += cost
    if start < len(pixels):
        chunks.append(range(start, len(pixels)))
    return chunks


def preprocess_encoded(batch: Mapping[str, Any], device: torch.device | str = "cpu") -> torch.Tensor:
    """The device path's worker side: :func:`encode_batch_for_device` output -> float32 ``(N, 3, 224, 224)``.

    JPEGs are decoded by torchvision's ``decode_jpeg`` on ``device`` (nvJPEG on a GPU, libjpeg-turbo on a CPU device),
    converted to float and resized to READ_SIZE with one antialiased bilinear ``interpolate`` per image size: the
    filter of PIL's bilinear resize (a triangle widened by the downscaling factor), computed in float where Pillow
    rounds each of its two passes to uint8, so values differ from the reference by at most one pixel level
    (tests/training/test_device_pipeline.py). Then, like the pre-decoded images, centre-cropped and normalised. The
    batch goes through in chunks of at most ``DEVICE_CHUNK_PIXELS`` (:func:`device_chunks`), so the device memory it
    takes is bounded whatever the batch and image sizes.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    ignore_read_only_warnings()
    device = torch.device(device)
    data, jpeg = batch["bytes"], batch["jpeg"]
    n = len(data)
    height, width = READ_SIZE
    top, left = _center_crop_offsets(height, width, CROP)
    scale, bias = _scale_bias(IMAGENET_MEAN, IMAGENET_STD, from_uint8=True)
    scale, bias = scale.to(device).view(1, 3, 1, 1), bias.to(device).view(1, 3, 1, 1)
    out = torch.empty((n, 3, CROP, CROP), dtype=torch.float32, device=device)
    buffers = [torch.frombuffer(memoryview(d), dtype=torch.uint8) for d in data]
    expected = height * width * 3
    for i in range(n):
        if not jpeg[i] and buffers[i].numel() != expected:
            raise ValueError(f"pre-decoded image {i} has {buffers[i].numel()} bytes, expected {expected}")

    for chunk in device_chunks(batch["pixels"]):
        jpeg_index = [i for i in chunk if jpeg[i]]
        raw_index = [i for i in chunk if not jpeg[i]]
        if jpeg_index:
            decoded = decode_jpeg([buffers[i] for i in jpeg_index], mode=ImageReadMode.RGB, device=device)
            by_size: dict[tuple[int, int], list[int]] = {}
            for k, image in enumerate(decoded):
                by_size.setdefault((image.shape[1], image.shape[2]), []).append(k)
            for size, members in by_size.items():
                x = torch.stack([decoded[k] for k in members]).to(torch.float32)
                if size != READ_SIZE:
                    x = F.interpolate(x, size=READ_SIZE, mode="bilinear", align_corners=False, antialias=True)
                rows = torch.tensor([jpeg_index[k] for k in members], device=device)
                out[rows] = x[:, :, top : top + CROP, left : left + CROP] * scale + bias
            del decoded, x  # before the next chunk's decode
        if raw_index:
            x = torch.stack([buffers[i].view(height, width, 3) for i in raw_index]).to(device)
            x = x[:, top : top + CROP, left : left + CROP, :].permute(0, 3, 1, 2).to(torch.float32)
            out[torch.tensor(raw_index, device=device)] = x * scale + bias
    return out
