"""ResNet18 image-classification training job for the Ray cluster on EKS.

Based on Ray's release test ``pytorch_training_e2e.py`` (same CLI, same
results JSON), with a configurable data/storage location, CPU/GPU switch,
offline-friendly weights option and a vectorised input pipeline
(see ``preprocessing.py``).

Submit it from a machine with ``kubectl port-forward`` to the head service::

    ray job submit --address http://localhost:8265 --working-dir training -- \
        python pytorch_training_e2e.py --num-workers 2

Run ``python pytorch_training_e2e.py --help`` for all options.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time

try:  # imported as part of the `training` package (tests, benchmarks)
    from training import preprocessing
except ImportError:  # run as a plain file, e.g. `--working-dir training`
    import preprocessing  # type: ignore[import-not-found,no-redef]  # the same file, by its name on the job's path

DEFAULT_DATA_URL = "s3://anonymous@air-example-data-2/{data_size_gb}G-image-data-synthetic-raw"
DEFAULT_STORAGE_PATH = "/ray/export"  # the FSx for Lustre mount on the Ray pods
DEFAULT_OUTPUT_JSON = "/tmp/release_test_out.json"
SMOKE_TEST_MAX_IMAGES = 64
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
WEIGHTS_DOWNLOAD_TIMEOUT_S = 60


class WeightsUnavailableError(RuntimeError):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train ResNet18 on an image data set with Ray Train (PyTorch).",
    )
    parser.add_argument(
        "--data-size-gb", type=int, default=1,
        help="size of the default public data set to read: "
        "s3://anonymous@air-example-data-2/{N}G-image-data-synthetic-raw (default 1)",
    )
    parser.add_argument("--num-epochs", type=int, default=2, help="training epochs (default 2)")
    parser.add_argument("--num-workers", type=int, default=1, help="Ray Train workers (default 1)")
    parser.add_argument(
        "--smoke-test", action="store_true",
        help="quick run: CPU by default; reads only dog.jpg of the default data set, "
        f"or at most {SMOKE_TEST_MAX_IMAGES} images of --data-path",
    )
    parser.add_argument(
        "--data-path", default=None,
        help="images to train on: a local/FSx directory or file, or an s3:// URI "
        "(default: the public data set selected by --data-size-gb)",
    )
    parser.add_argument(
        "--storage-path", default=DEFAULT_STORAGE_PATH,
        help="where Ray Train writes checkpoints and results; must be shared by all "
        f"nodes (default {DEFAULT_STORAGE_PATH}, the FSx mount)",
    )
    parser.add_argument(
        "--use-gpu", action=argparse.BooleanOptionalAction, default=None,
        help="train on one GPU per worker (default: yes, unless --smoke-test)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="per-worker batch size (default 64)")
    parser.add_argument(
        "--weights", choices=("imagenet", "none"), default="imagenet",
        help="initial ResNet18 weights: 'imagenet' downloads the pretrained weights "
        "from download.pytorch.org (needs internet on the head node); 'none' starts "
        "from random weights (default imagenet)",
    )
    args = parser.parse_args(argv)
    for name in ("data_size_gb", "num_epochs", "num_workers", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.use_gpu is None:
        args.use_gpu = not args.smoke_test
    return args


def resolve_data_path(args: argparse.Namespace) -> tuple[str | list[str], bool]:
    """Return (paths for read_images, whether the default public data set is used)."""
    if args.data_path:
        return args.data_path, False
    url = DEFAULT_DATA_URL.format(data_size_gb=args.data_size_gb)
    if args.smoke_test:
        return [url + "/dog.jpg"], True  # like the original: a single image
    return url, True


def load_pretrained_state_dict(weights: str):
    """Download the pretrained weights once, on the driver, or fail clearly."""
    if weights == "none":
        return None
    from torchvision.models import ResNet18_Weights

    spec = ResNet18_Weights.IMAGENET1K_V1
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(WEIGHTS_DOWNLOAD_TIMEOUT_S)
    try:
        return spec.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # network errors come in many types
        raise WeightsUnavailableError(
            f"could not download the pretrained ResNet18 ImageNet weights from {spec.url} "
            f"({type(exc).__name__}: {exc}). If this cluster has no internet access, "
            "rerun with --weights none to train from randomly initialised weights "
            "(or put the file in $TORCH_HOME/hub/checkpoints/ on the head node)."
        ) from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)


def list_images(directory: str) -> list[str]:
    """Image files under a local directory, sorted."""
    found: list[str] = []
    for root, _, files in os.walk(directory):
        found.extend(os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
    if not found:
        raise SystemExit(f"ERROR: no image files ({', '.join(IMAGE_EXTENSIONS)}) under {directory}")
    return sorted(found)


def input_size_mb(paths: str | list[str]) -> float | None:
    """Total size of the input image files in MB (MiB), or None if unknown."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    total = 0
    try:
        for path in paths:
            if path.startswith("s3://"):
                import pyarrow.fs as pafs

                rest = path[len("s3://"):]
                anonymous = rest.startswith("anonymous@")
                rest = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
                bucket = rest.split("/", 1)[0]
                fs = pafs.S3FileSystem(anonymous=anonymous, region=pafs.resolve_s3_region(bucket))
                info = fs.get_file_info(rest)
                infos = (
                    fs.get_file_info(pafs.FileSelector(rest, recursive=True))
                    if info.type == pafs.FileType.Directory else [info]
                )
                total += sum(i.size for i in infos if i.type == pafs.FileType.File
                             and i.path.lower().endswith(IMAGE_EXTENSIONS))
            elif os.path.isdir(path):
                total += sum(os.path.getsize(f) for f in list_images(path))
            else:
                total += os.path.getsize(path)
    except Exception as exc:
        print(f"Could not determine the input data size ({exc}); using --data-size-gb.")
        return None
    return total / 1024**2


def train_loop_per_worker(config):
    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.nn as nn
    import torch.optim as optim
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    if config["weights_ref"] is not None:
        model.load_state_dict(ray.get(config["weights_ref"]))
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    context = ray.train.get_context()
    rank = context.get_world_rank()
    shard = ray.train.get_dataset_shard("train")

    for epoch in range(config["num_epochs"]):
        model.train()
        running_loss, seen, epoch_start = 0.0, 0, time.time()
        for i, batch in enumerate(shard.iter_torch_batches(batch_size=config["batch_size"])):
            inputs = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            seen += len(labels)
            if i % 2000 == 1999:
                print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 2000:.3f}")
                running_loss = 0.0
        elapsed = time.time() - epoch_start
        metrics = {
            "epoch": epoch,
            "running_loss": running_loss,
            "images": seen,
            "images_per_s": seen / elapsed if elapsed > 0 else 0.0,
        }
        print(f"worker {rank} epoch {epoch + 1}: {metrics}")
        with tempfile.TemporaryDirectory() as tmpdir:
            checkpoint = None
            if rank == 0:  # the model is replicated; one copy is enough
                state = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
                torch.save(state, os.path.join(tmpdir, "model.pt"))
                checkpoint = ray.train.Checkpoint.from_directory(tmpdir)
            ray.train.report(metrics, checkpoint=checkpoint)


def build_results(args, total_time_s: float, data_mb: float, data_size_source: str,
                  data_path, checkpoint_path: str | None) -> dict:
    throughput = round(args.num_epochs * data_mb / total_time_s, 2) if total_time_s > 0 else 0.0
    results = {"data_size_gb": args.data_size_gb, "num_epochs": args.num_epochs}
    results["perf_metrics"] = [
        {"perf_metric_name": "total_time_s", "perf_metric_value": total_time_s,
         "perf_metric_type": "LATENCY"},
        # Misspelled key kept from the original script for existing tooling.
        {"perf_metric_name": "throughout_MB_s", "perf_metric_value": throughput,
         "perf_metric_type": "THROUGHPUT"},
        {"perf_metric_name": "throughput_MB_s", "perf_metric_value": throughput,
         "perf_metric_type": "THROUGHPUT"},
    ]
    results.update({
        "data_path": data_path,
        "data_size_mb": round(data_mb, 3),
        "data_size_source": data_size_source,
        "num_workers": args.num_workers,
        "use_gpu": args.use_gpu,
        "batch_size": args.batch_size,
        "weights": args.weights,
        "storage_path": args.storage_path,
        "checkpoint_path": checkpoint_path,
    })
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_path, is_default_data = resolve_data_path(args)
    print(f"Running Pytorch image model training with data from {data_path}")
    print(
        f"Training for {args.num_epochs} epochs with {args.num_workers} workers "
        f"on {'GPU' if args.use_gpu else 'CPU'}, batch size {args.batch_size}, "
        f"weights={args.weights}, storage {args.storage_path}."
    )
    try:
        state_dict = load_pretrained_state_dict(args.weights)
    except WeightsUnavailableError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2

    import ray
    import ray.cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.init()
    # Ship the preprocessing module with the tasks, so workers need not have it
    # on their path (e.g. when the script runs from the image without --working-dir).
    ray.cloudpickle.register_pickle_by_value(preprocessing)
    weights_ref = ray.put(state_dict) if state_dict is not None else None

    smoke_limited = False
    if args.smoke_test and not is_default_data:
        if isinstance(data_path, str) and os.path.isdir(data_path):
            # deterministic subset, so the data size in the results is exact
            data_path = list_images(data_path)[:SMOKE_TEST_MAX_IMAGES]
        else:
            smoke_limited = True

    start = time.time()
    dataset = ray.data.read_images(data_path, size=preprocessing.READ_SIZE, mode=preprocessing.READ_MODE)
    if smoke_limited:
        dataset = dataset.limit(SMOKE_TEST_MAX_IMAGES)
    dataset = dataset.map_batches(
        preprocessing.transform_batch, batch_format="numpy",
        batch_size=preprocessing.MAP_BATCH_SIZE, zero_copy_batch=True,
    )

    trainer = TorchTrainer(
        train_loop_per_worker=train_loop_per_worker,
        train_loop_config={
            "batch_size": args.batch_size,
            "num_epochs": args.num_epochs,
            "weights_ref": weights_ref,
        },
        datasets={"train": dataset},
        scaling_config=ScalingConfig(num_workers=args.num_workers, use_gpu=args.use_gpu),
        run_config=RunConfig(storage_path=args.storage_path),
    )
    result = trainer.fit()
    total_time_s = round(time.time() - start, 2)

    data_mb = None
    if not is_default_data or args.smoke_test:
        data_mb = input_size_mb(data_path) if not smoke_limited else None
    source = "measured" if data_mb is not None else "nominal"
    if data_mb is None:  # as in the original: the nominal size of the data set
        data_mb = args.data_size_gb * 1024.0

    checkpoint_path = result.checkpoint.path if result.checkpoint else None
    results = build_results(args, total_time_s, data_mb, source,
                            args.data_path or DEFAULT_DATA_URL.format(data_size_gb=args.data_size_gb),
                            checkpoint_path)
    test_output_json = os.environ.get("TEST_OUTPUT_JSON", DEFAULT_OUTPUT_JSON)
    with open(test_output_json, "w") as f:
        json.dump(results, f)
    print(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
