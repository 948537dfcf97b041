"""The gpu input pipeline (decode, resize, crop and normalise on the training worker's device), run here on a CPU
device: torchvision's decode_jpeg takes the same list of encoded tensors on CPU (libjpeg-turbo) as on CUDA (nvJPEG),
and every tensor operation after it is device-independent code. Compared with the original job's reference: PIL's
decode and 256x256 bilinear resize (ray.data.read_images) followed by the torchvision transforms.

Tolerance. The reference resizes with Pillow, in two separable passes each rounded to uint8 (Pillow's
src/libImaging/Resample.c); the device path applies the same filter (torch's antialiased bilinear interpolate, a
triangle widened by the downscaling factor) in one float pass. The two roundings put Pillow's values within one pixel
level of the float result -- 1 / (255 * std_c) after normalisation, 0.0175 at most -- and about a quarter of a level
away on average (measured here: at most 1.0 and 0.31 over random sizes, noise images being the worst). We allow one
level at most and 0.35 levels on average: the reference's own quantisation step, far below the noise of the data
itself (a quality-90 JPEG is several levels off its source) and nothing a classifier can learn from. JPEG decoding on a
CPU device is libjpeg-turbo, as in PIL; nvJPEG on a GPU may differ by a level more, which the GPU check
(benchmarks/gpu_training_check.sh) measures there. Non-JPEG files take the CPU decode and must match the CPU pipeline
exactly.
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from PIL import Image

from training import preprocessing as P
from training import pytorch_training_e2e as job
from training.make_synthetic_data import synthetic_image

STD = np.asarray(P.IMAGENET_STD, dtype=np.float64).reshape(1, 3, 1, 1)
FLOAT_ROUNDING = 1e-5  # the CPU pipeline's own tolerance against the reference (tests/training/test_preprocessing.py)
MAX_LEVELS = 1.0 + 1e-3  # one pixel level, plus float rounding
MEAN_LEVELS = 0.35


def encode(array: np.ndarray, fmt: str = "JPEG", mode: str = "RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode="RGB").convert(mode).save(buf, format=fmt, **save)
    return buf.getvalue()


def reference(blobs) -> np.ndarray:
    """The original job: read_images(size=(256, 256), mode="RGB"), then the per-image torchvision transform."""
    transform = P.reference_transform()
    return np.stack([transform(P.load_image(io.BytesIO(b))).numpy() for b in blobs])


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in pixel levels of the uint8 image before normalisation."""
    return np.abs(a.astype(np.float64) - b) * STD * 255.0


def device_path(blobs, device="cpu") -> torch.Tensor:
    encoded = P.encode_batch_for_device({"bytes": np.array(blobs, dtype=object)})
    return P.preprocess_encoded(encoded, device)


@pytest.fixture(scope="module")
def files():
    """name -> (bytes, decoded on the device?)"""
    rng = np.random.default_rng(7)
    img = lambda w, h: synthetic_image(rng, w, h)  # noqa: E731
    return {
        "jpeg 4:2:0 375x500": (encode(img(375, 500), quality=90), True),
        "jpeg 4:2:0 500x375": (encode(img(500, 375), quality=90), True),
        "jpeg 4:4:4": (encode(img(333, 444), quality=95, subsampling=0), True),
        "jpeg 4:2:2 progressive": (encode(img(640, 480), quality=85, subsampling=1, progressive=True), True),
        "jpeg grayscale": (encode(img(300, 400), mode="L"), True),
        "jpeg smaller than 256 (upscaled)": (encode(img(200, 150)), True),
        "jpeg 256x256 (no resize)": (encode(img(256, 256)), True),
        "jpeg CMYK": (encode(img(300, 300), mode="CMYK"), False),
        "jpeg RGB-coded (Adobe transform 0)": (encode(img(300, 260), keep_rgb=True), False),
        "png grayscale": (encode(img(300, 300), "PNG", "L"), False),
        "png RGBA": (encode(img(375, 500), "PNG", "RGBA"), False),
        "gif palette": (encode(img(333, 222), "GIF", "P"), False),
    }


# --- which files the device decodes --------------------------------------------------------------------------------

def test_device_decodes_only_the_jpegs_it_decodes_like_pil(files):
    assert {name: P.device_decodable_jpeg(blob) for name, (blob, _) in files.items()} == {
        name: expected for name, (_, expected) in files.items()}


def test_other_jpeg_codings_and_broken_headers_go_to_the_cpu():
    blob = encode(synthetic_image(np.random.default_rng(1), 64, 48))
    sof = blob.index(b"\xff\xc0")

    def patched(offset: int, value: int) -> bytes:
        data = bytearray(blob)
        data[offset] = value
        return bytes(data)

    assert P.device_decodable_jpeg(blob)
    assert P.device_decodable_jpeg(patched(sof + 1, 0xC1))  # extended sequential, Huffman
    assert not P.device_decodable_jpeg(patched(sof + 1, 0xC3))  # lossless
    assert not P.device_decodable_jpeg(patched(sof + 1, 0xC9))  # arithmetic-coded
    assert not P.device_decodable_jpeg(patched(sof + 4, 12))  # 12-bit samples
    assert not P.device_decodable_jpeg(patched(sof + 11, 0x31))  # luma 3x1 sampling: no nvJPEG subsampling
    assert not P.device_decodable_jpeg(blob[: sof + 6])  # header cut inside the frame segment
    assert not P.device_decodable_jpeg(b"\xff\xd8\xff")
    assert not P.device_decodable_jpeg(b"not an image at all")


# --- same tensors as the reference ---------------------------------------------------------------------------------

def test_device_path_matches_the_reference(files):
    blobs = [blob for blob, _ in files.values()]
    ours = device_path(blobs).numpy()
    assert ours.shape == (len(blobs), 3, P.CROP, P.CROP) and ours.dtype == np.float32
    ref = reference(blobs)
    for k, (name, (_, on_device)) in enumerate(files.items()):
        diff = levels(ours[k], ref[k])
        if on_device:
            assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (name, diff.max(), diff.mean())
        else:
            assert np.abs(ours[k] - ref[k]).max() <= FLOAT_ROUNDING, name


def test_cpu_decoded_files_match_the_cpu_pipeline_exactly(files):
    blobs = [blob for blob, on_device in files.values() if not on_device]
    cpu = P.transform_batch({"image": np.stack([P.load_image(io.BytesIO(b)) for b in blobs])})["image"]
    assert torch.equal(device_path(blobs), torch.from_numpy(cpu))


@pytest.mark.parametrize("width,height", [(375, 500), (500, 375), (300, 300), (640, 640), (200, 150), (150, 200),
                                          (257, 1000), (1000, 257), (256, 400), (512, 512), (700, 260)])
@pytest.mark.parametrize("content", ["photo-like", "noise"])
def test_resize_matches_pillow_for_any_size(width, height, content):
    """Shrinking, enlarging, one axis only; noise is the worst case for the rounding. A plain bilinear resize (no
    antialiasing) would be off by tens of levels on noise whenever it shrinks."""
    rng = np.random.default_rng(width * height)
    image = (synthetic_image(rng, width, height) if content == "photo-like"
             else rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    blob = encode(image, quality=95)
    diff = levels(device_path([blob]).numpy(), reference([blob]))
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, (diff.max(), diff.mean())


def test_batches_of_mixed_sizes_keep_their_order():
    rng = np.random.default_rng(3)
    blobs = [encode(synthetic_image(rng, w, h)) for w, h in [(375, 500), (640, 480), (375, 500), (300, 300)]]
    blobs.insert(2, encode(synthetic_image(rng, 300, 300), "PNG", "L"))
    ours = device_path(blobs).numpy()
    for k, blob in enumerate(blobs):
        assert levels(ours[k : k + 1], reference([blob])).max() <= MAX_LEVELS


def test_predecoded_pixels_of_the_wrong_size_are_rejected():
    with pytest.raises(ValueError, match="expected 196608"):
        P.preprocess_encoded({"bytes": [bytes(100)], "jpeg": [False], "pixels": [0]})


def test_collate_fn_gives_device_tensors(files):
    """The collate_fn the training loop hands to iter_torch_batches, on a CPU device."""
    from ray.data.collate_fn import NumpyBatchCollateFn

    blobs = [blob for blob, _ in files.values()][:4]
    collate = job.device_collate(torch.device("cpu"))
    assert isinstance(collate, NumpyBatchCollateFn)
    batch = collate(P.encode_batch_for_device({"bytes": np.array(blobs, dtype=object)}))
    assert batch["label"].dtype == torch.int64 and batch["label"].tolist() == [0] * 4
    assert torch.equal(batch["image"], device_path(blobs))


# --- which pipeline, which precision ---------------------------------------------------------------------------------

def test_gpu_pipeline_is_chosen_when_the_workers_have_a_gpu():
    assert job.parse_args([]).input_pipeline == "gpu"  # GPU by default
    assert job.parse_args(["--smoke-test"]).input_pipeline == "cpu"  # CPU with --smoke-test
    assert job.parse_args(["--no-use-gpu"]).input_pipeline == "cpu"
    assert job.parse_args(["--smoke-test", "--use-gpu"]).input_pipeline == "gpu"
    assert job.parse_args(["--input-pipeline", "cpu"]).input_pipeline == "cpu"
    assert job.parse_args(["--no-use-gpu", "--input-pipeline", "gpu"]).input_pipeline == "gpu"  # the tests' way


@pytest.mark.parametrize("gpu,capability,expected", [
    ("V100", (7, 0), "fp16"), ("T4", (7, 5), "fp16"),  # bf16 only emulated: fp16 with the gradient scaler
    ("A100", (8, 0), "bf16"), ("A10G", (8, 6), "bf16"), ("L4", (8, 9), "bf16"), ("H100", (9, 0), "bf16"),
    ("unknown", None, "fp16"),
])
def test_auto_precision_is_bf16_only_where_the_gpu_has_it(gpu, capability, expected):
    assert job.resolve_precision("auto", "cuda", capability) == expected, gpu


def test_device_precision_asks_the_device_for_native_bf16(monkeypatch):
    """torch.cuda.is_bf16_supported() (torch 2.14) counts emulation as support: True on a T4. Stubbed at the
    boundary, the device facts of a T4: compute capability 7.5, and is_bf16_supported() saying yes."""
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or (7, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    t4 = torch.device("cuda", 0)
    assert job.device_precision("auto", t4) == "fp16" and asked == [t4]
    assert job.device_precision("bf16", t4) == "bf16"  # asked for explicitly: the user's choice
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    assert job.device_precision("auto", t4) == "bf16"
    assert job.device_precision("auto", torch.device("cpu")) == "fp32"


def test_precision_and_channels_last_defaults():
    assert job.resolve_precision("auto", "cpu", None) == "fp32"
    assert job.resolve_precision("fp32", "cuda", (9, 0)) == "fp32"
    args = job.parse_args([])
    assert (args.precision, args.channels_last) == ("auto", None)  # resolved on the worker, by its device
    assert job.parse_args(["--no-channels-last"]).channels_last is False


@pytest.mark.parametrize("argv,message", [
    (["--precision", "fp16", "--no-use-gpu"], "--precision fp16 needs --use-gpu"),
    (["--input-pipeline", "dali"], "invalid choice"),
    (["--max-failures", "-1"], "--max-failures must be >= 0"),
    (["--worker-wait-s", "0"], "--worker-wait-s must be > 0"),
])
def test_invalid_new_arguments_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        job.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


# --- bounded device memory -----------------------------------------------------------------------------------------

def test_chunks_hold_a_bounded_number_of_pixels():
    floor = P.READ_SIZE[0] * P.READ_SIZE[1]  # an image counts as at least what it is resized to
    assert P.device_chunks([], 10 * floor) == []
    assert P.device_chunks([floor] * 5, 2 * floor) == [range(0, 2), range(2, 4), range(4, 5)]
    assert P.device_chunks([100] * 5, 2 * floor) == [range(0, 2), range(2, 4), range(4, 5)]  # small ones: the floor
    assert P.device_chunks([floor, 9 * floor, floor], 2 * floor) == [range(0, 1), range(1, 2), range(2, 3)]  # alone
    pixels = list(np.random.default_rng(5).integers(1, 12 * floor, 200))
    chunks = P.device_chunks(pixels, 16 * floor)
    assert [i for c in chunks for i in c] == list(range(200))
    for c in chunks:
        assert len(c) == 1 or sum(max(pixels[i], floor) for i in c) <= 16 * floor


def test_large_images_are_decoded_a_bounded_number_of_pixels_at_a_time(monkeypatch):
    """Big photos, a batch of them: decode_jpeg (the real one, watched) never gets more than the chunk's pixels, and
    the tensors are those of one unchunked pass."""
    import torchvision.io

    rng = np.random.default_rng(11)
    sizes = [(1200, 900), (900, 1200), (1200, 900), (400, 300), (1600, 1200), (375, 500), (1200, 900)]
    blobs = [encode(synthetic_image(rng, w, h), quality=85) for w, h in sizes]
    blobs.insert(3, encode(synthetic_image(rng, 300, 300), "PNG", "L"))  # pre-decoded on the CPU side
    encoded = P.encode_batch_for_device({"bytes": np.array(blobs, dtype=object)})
    assert encoded["pixels"].tolist()[:4] == [900 * 1200, 1200 * 900, 900 * 1200, 0]
    whole = P.preprocess_encoded(encoded)  # the default budget holds this batch at once

    real, calls = torchvision.io.decode_jpeg, []

    def watched(data, *args, **kwargs):
        decoded = real(data, *args, **kwargs)
        calls.append(sum(int(t.shape[1]) * int(t.shape[2]) for t in decoded))
        return decoded

    monkeypatch.setattr(torchvision.io, "decode_jpeg", watched)
    budget = 2 * 1200 * 900
    monkeypatch.setattr(P, "DEVICE_CHUNK_PIXELS", budget)
    chunked = P.preprocess_encoded(encoded)
    assert len(calls) >= 4 and max(calls) <= budget, calls
    assert torch.equal(chunked, whole)


# --- warnings ------------------------------------------------------------------------------------------------------

def test_read_only_inputs_need_no_per_call_warning_filters(files):
    """catch_warnings() saves and restores the process's filters: in the collate thread it races with the training
    loop's thread. The filters are installed once instead."""
    real, calls = warnings.catch_warnings, []

    def watched(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    read_only = np.zeros((2, 256, 256, 3), dtype=np.uint8)
    read_only.flags.writeable = False
    warnings.catch_warnings = watched
    try:
        P.preprocess_images(read_only)
        device_path([blob for blob, _ in files.values()][:3])
    finally:
        warnings.catch_warnings = real
    assert calls == [], "warnings.catch_warnings() is not thread-safe"
    ignored = [f[1].pattern for f in warnings.filters if f[0] == "ignore" and f[1] is not None]
    assert all(ignored.count(message) == 1 for message in P.READ_ONLY_WARNINGS), warnings.filters


def test_read_only_warnings_are_silenced_in_a_fresh_process():
    """A fresh interpreter where torch's two read-only warnings are errors: the functions must silence them."""
    code = """
import io, numpy as np
from PIL import Image
from training import preprocessing as P
buf = io.BytesIO(); Image.new("RGB", (300, 200), (10, 200, 30)).save(buf, format="JPEG")
P.preprocess_encoded(P.encode_batch_for_device({"bytes": np.array([buf.getvalue()], dtype=object)}))
a = np.zeros((1, 256, 256, 3), dtype=np.uint8); a.flags.writeable = False
P.preprocess_images(a)
"""
    result = subprocess.run(
        [sys.executable, "-W", "error:The given buffer is not writable:UserWarning",
         "-W", "error:The given NumPy array is not writable:UserWarning", "-c", code],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


# --- reading files -------------------------------------------------------------------------------------------------

def test_binary_read_uses_read_images_threads(tmp_path):
    """The gpu pipeline's file read: the rows of read_binary_files (Ray's BinaryDatasource), read by as many threads
    per read task as read_images uses (Ray's ImageDatasource), where BinaryDatasource reads in the task's thread.
    Ray runs a read task's reads in that many threads (FileBasedDatasource.get_read_tasks, Ray 2.58.0)."""
    import pyarrow.fs as pafs
    from ray.data._internal.datasource.binary_datasource import BinaryDatasource
    from ray.data._internal.datasource.image_datasource import ImageDatasource

    ours = job.binary_datasource_class()
    assert ours._NUM_THREADS_PER_TASK == ImageDatasource._NUM_THREADS_PER_TASK == job.READ_THREADS_PER_TASK > 0
    assert BinaryDatasource._NUM_THREADS_PER_TASK == 0  # why ours exists; a Ray that changes this needs it no more
    path = tmp_path / "f.jpg"
    path.write_bytes(bytes(range(256)) * 3)
    fs = pafs.LocalFileSystem()

    reader = object.__new__(ours)  # the read of one file, as a read task calls it (no Ray cluster needed for that)
    with fs.open_input_stream(str(path)) as f:
        rows = [row for table in reader._read_stream(f, str(path)) for row in table.to_pylist()]
    assert rows == [{BinaryDatasource._COLUMN_NAME: path.read_bytes()}] and reader._rows_per_file() == 1
