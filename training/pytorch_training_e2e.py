"""ResNet18 image-classification training job for the Ray cluster on EKS.

Based on Ray's release test ``pytorch_training_e2e.py`` (same CLI, same
results JSON), with a configurable data/storage location, CPU/GPU switch,
offline-friendly weights option and two input pipelines (see
``preprocessing.py``): on GPU workers Ray Data's CPU tasks read the files
(and decode the few that are not JPEGs nvJPEG handles) and the training
worker decodes the JPEGs with nvJPEG, resizes and normalises them on its GPU;
where the GPU has no hardware JPEG decoder (the default worker's A10G among
them), nvJPEG's Huffman decoding of each JPEG runs on the worker's CPU, one
thread, the rest on the GPU. On CPU workers a vectorised CPU pipeline. GPU
workers train in mixed precision with ``channels_last``. A lost worker is
replaced and training resumes from the last epoch's checkpoint; workers
whose resources (GPUs) never come fail the job after a bounded wait, with
one line saying so.

Submit it from a machine with ``kubectl port-forward`` to the head service::

    ray job submit --address http://localhost:8265 --working-dir training -- \
        python pytorch_training_e2e.py --num-workers 2

Run ``python pytorch_training_e2e.py --help`` for all options.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
# Waiting for the workers' resources: a new GPU node (Karpenter or cluster-autoscaler) takes a few minutes to join,
# and pulling the multi-GB CUDA Ray image onto it several more.
DEFAULT_WORKER_WAIT_S = 1200
DEFAULT_MAX_FAILURES = 3
# Checkpoints kept in --storage-path (FSx): the newest, which resuming needs, and the one before it. Each holds the
# model and the optimizer's momentum, ~90 MB for ResNet18; keeping every epoch's would fill the file system.
CHECKPOINTS_TO_KEEP = 2
# Threads reading files in each Ray Data read task of the gpu pipeline: what read_images uses
# (ImageDatasource._NUM_THREADS_PER_TASK, ray/data/_internal/datasource/image_datasource.py, Ray 2.58.0), whose
# reads the binary read replaces; read_binary_files' datasource reads in the task's own thread.
READ_THREADS_PER_TASK = 8
MODEL_FILE = "model.pt"  # the ResNet18 state dict, loadable as is
TRAIN_STATE_FILE = "train_state.pt"  # epoch, optimizer and grad-scaler state: what resuming needs besides the model
# Ray Train v2 (ray/train/v2/_internal/constants.py, Ray 2.58.0): how long the controller waits for the worker
# group's placement group before WorkerGroupStartupTimeoutError; the driver propagates it to the controller.
# --worker-wait-s sets it; without the option a value already in the environment is kept.
WORKER_GROUP_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
# GPUs with bf16 arithmetic of their own (tensor cores): compute capability 8.0 (Ampere) and later. Older ones (T4 7.5,
# V100 7.0) only emulate it, which torch.cuda.is_bf16_supported() counts as support by default (torch 2.14).
NATIVE_BF16_CAPABILITY = (8, 0)
INPUT_PIPELINES = ("auto", "gpu", "cpu")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


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
    parser.add_argument(
        "--input-pipeline", choices=INPUT_PIPELINES, default="auto",
        help="where images are decoded and preprocessed: 'gpu' on the training worker's device: Ray Data's CPU "
        "tasks read the files (and decode non-JPEGs), the worker decodes JPEGs with nvJPEG -- on a GPU without a "
        "hardware JPEG decoder (e.g. A10G) their Huffman decoding runs on the worker's CPU, the rest on the GPU -- "
        "and resizes and normalises on the GPU (on a CPU-only worker the same code runs on its CPU); 'cpu': all "
        "in Ray Data's CPU tasks (default auto: gpu with --use-gpu, else cpu)",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto",
        help="training arithmetic: bf16 or fp16 mixed precision (fp16 with a gradient scaler) or fp32 "
        "(default auto: bf16 on GPUs with native bf16, compute capability >= 8.0 such as A10G, A100, H100; fp16 "
        "on older ones such as T4, V100; fp32 on CPU)",
    )
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None,
        help="train with channels_last (NHWC) tensors, faster for convolutions on tensor cores "
        "(default: yes on GPU, no on CPU)",
    )
    parser.add_argument(
        "--max-failures", type=int, default=DEFAULT_MAX_FAILURES,
        help="worker failures (e.g. a lost node) to recover from by restarting the workers from the last "
        f"epoch's checkpoint, and as many failed worker starts (default {DEFAULT_MAX_FAILURES}; 0: fail on the first)",
    )
    parser.add_argument(
        "--worker-wait-s", type=float, default=None,
        help="seconds to wait for the training workers' resources (GPUs) each time the workers start; after "
        "--max-failures + 1 such waits in vain the job fails with one line (default: "
        f"${WORKER_GROUP_START_TIMEOUT_ENV} if set, else {DEFAULT_WORKER_WAIT_S}: a new GPU node and its image pull)",
    )
    args = parser.parse_args(argv)
    for name in ("data_size_gb", "num_epochs", "num_workers", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_failures < 0:
        parser.error("--max-failures must be >= 0")
    if args.worker_wait_s is None:
        from_env = os.environ.get(WORKER_GROUP_START_TIMEOUT_ENV)
        try:
            args.worker_wait_s = float(from_env) if from_env else float(DEFAULT_WORKER_WAIT_S)
        except ValueError:
            parser.error(f"${WORKER_GROUP_START_TIMEOUT_ENV} must be a number of seconds > 0, got {from_env!r}")
        if not args.worker_wait_s > 0:
            parser.error(f"${WORKER_GROUP_START_TIMEOUT_ENV} must be a number of seconds > 0, got {from_env!r}")
    elif not args.worker_wait_s > 0:
        parser.error("--worker-wait-s must be > 0")
    if args.use_gpu is None:
        args.use_gpu = not args.smoke_test
    args.input_pipeline = resolve_input_pipeline(args.input_pipeline, args.use_gpu)
    if args.precision == "fp16" and not args.use_gpu:
        parser.error("--precision fp16 needs --use-gpu (on CPU use bf16 or fp32)")
    return args


def resolve_input_pipeline(requested: str, use_gpu: bool) -> str:
    """'auto' -> 'gpu' when the workers have a GPU, else 'cpu'."""
    if requested == "auto":
        return "gpu" if use_gpu else "cpu"
    return requested


def resolve_precision(requested: str, device_type: str, capability: tuple[int, int] | None) -> str:
    """'auto' -> bf16 on a GPU with native bf16 (no loss scaling needed), fp16 on an older GPU, fp32 on CPU.

    ``capability``: the CUDA device's compute capability (major, minor); None where unknown or not a GPU.
    """
    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "bf16" if capability is not None and tuple(capability) >= NATIVE_BF16_CAPABILITY else "fp16"
    return "fp32"


def device_precision(requested: str, device) -> str:
    """:func:`resolve_precision` for a torch device, from its compute capability."""
    import torch

    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return resolve_precision(requested, device.type, capability)


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


def device_collate(device):
    """iter_torch_batches collate_fn of the gpu input pipeline: decode and preprocess on ``device``.

    Ray Data runs it in its prefetch thread (ray/data/iterator.py, Ray 2.58.0), so the next batch is decoded while
    the current one trains; torchvision's decoder, a torch.ops call, runs without the GIL
    (torch/csrc/jit/python/pybind_utils.cpp, invokeOperatorFromPython).
    """
    import torch
    from ray.data.collate_fn import NumpyBatchCollateFn

    class DeviceCollate(NumpyBatchCollateFn):
        def __call__(self, batch):
            return {
                "image": preprocessing.preprocess_encoded(batch, device),
                "label": torch.tensor(batch["label"], device=device),  # a copy: Ray's arrays are read-only
            }

    return DeviceCollate()


def save_checkpoint_files(directory: str, model_state: dict, epoch: int, optimizer, scaler) -> None:
    """An epoch's checkpoint: the model's state dict (MODEL_FILE) and what resuming needs besides (TRAIN_STATE_FILE)."""
    import torch

    torch.save(model_state, os.path.join(directory, MODEL_FILE))
    torch.save({"epoch": epoch, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()},
               os.path.join(directory, TRAIN_STATE_FILE))


def read_checkpoint_files(directory: str) -> tuple[dict, dict]:
    """(model state dict, train state) of a checkpoint written by :func:`save_checkpoint_files`, on the CPU."""
    import torch

    return (torch.load(os.path.join(directory, MODEL_FILE), map_location="cpu"),
            torch.load(os.path.join(directory, TRAIN_STATE_FILE), map_location="cpu"))


def restore_train_state(train_state: dict, optimizer, scaler) -> int:
    """Load the optimizer's and the gradient scaler's state (momentum, loss scale); returns the next epoch to run."""
    optimizer.load_state_dict(train_state["optimizer"])
    # A disabled scaler (bf16, fp32) saves {}, which an enabled one refuses: a restart on a GPU that resolves
    # 'auto' to fp16 where the checkpoint's resolved to bf16 starts with a fresh loss scale.
    if train_state["scaler"]:
        scaler.load_state_dict(train_state["scaler"])
    return train_state["epoch"] + 1


def train_loop_per_worker(config):
    import contextlib

    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.nn as nn
    import torch.optim as optim
    from torchvision.models import resnet18

    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    precision = device_precision(config["precision"], device)
    channels_last = on_gpu if config["channels_last"] is None else config["channels_last"]
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # every batch has the same shape: pick the fastest kernels once
    context = ray.train.get_context()
    rank = context.get_world_rank()
    num_epochs = config["num_epochs"]

    model = resnet18(weights=None)
    train_state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:  # a restart after a failure: continue after the last completed epoch
        with checkpoint.as_directory() as directory:
            model_state, train_state = read_checkpoint_files(directory)
        model.load_state_dict(model_state)
        print(f"worker {rank}: resuming from checkpoint {checkpoint.path}: "
              f"epoch {train_state['epoch'] + 1} of {num_epochs} done")
    elif config["weights_ref"] is not None:
        model.load_state_dict(ray.get(config["weights_ref"]))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = ray.train.torch.prepare_model(model)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    start_epoch = restore_train_state(train_state, optimizer, scaler) if train_state is not None else 0
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    shard = ray.train.get_dataset_shard("train")
    if config["input_pipeline"] == "gpu":
        iterate_kwargs = {"collate_fn": device_collate(device), "prefetch_batches": 2}
    else:
        iterate_kwargs = {}
    print(f"worker {rank}: device {device}, input pipeline {config['input_pipeline']}, precision {precision}, "
          f"channels_last {channels_last}")

    for epoch in range(start_epoch, num_epochs):
        model.train()
        seen, epoch_start = 0, time.time()
        # Losses are summed on the device: reading one (.item()) would wait for the GPU at every step.
        running_loss = torch.zeros((), device=device)
        for i, batch in enumerate(shard.iter_torch_batches(batch_size=config["batch_size"], **iterate_kwargs)):
            inputs = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            autocast = (torch.autocast(device_type=device.type, dtype=autocast_dtype)
                        if autocast_dtype is not None else contextlib.nullcontext())
            with autocast:
                loss = criterion(model(inputs), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            running_loss += loss.detach().float()
            seen += len(labels)
            if i % 2000 == 1999:
                print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss.item() / 2000:.3f}")
                running_loss.zero_()
        loss_value = running_loss.item()  # waits for the epoch's last step: the time below includes all of it
        epoch_end = time.time()
        elapsed = epoch_end - epoch_start
        metrics = {
            "epoch": epoch,
            "running_loss": loss_value,
            "images": seen,
            "images_per_s": seen / elapsed if elapsed > 0 else 0.0,
            "epoch_start_s": epoch_start,
            "epoch_end_s": epoch_end,
            "input_pipeline": config["input_pipeline"],
            "precision": precision,
            "channels_last": channels_last,
        }
        print(f"worker {rank} epoch {epoch + 1}: {metrics}")
        with tempfile.TemporaryDirectory() as tmpdir:
            checkpoint = None
            if rank == 0:  # the model is replicated; one copy is enough
                state = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
                save_checkpoint_files(tmpdir, state, epoch, optimizer, scaler)
                checkpoint = ray.train.Checkpoint.from_directory(tmpdir)
            ray.train.report(metrics, checkpoint=checkpoint)


def binary_datasource_class():
    """The gpu pipeline's file read: ``read_binary_files``' rows (``bytes``, one per file), read by read_images'
    READ_THREADS_PER_TASK threads in each read task (FileBasedDatasource._NUM_THREADS_PER_TASK, Ray 2.58.0) where
    read_binary_files' BinaryDatasource reads one file after the other: with object storage (S3) each read waits."""
    import pyarrow as pa
    from ray.data.datasource import FileBasedDatasource

    class ThreadedBinaryDatasource(FileBasedDatasource):
        _NUM_THREADS_PER_TASK = READ_THREADS_PER_TASK

        def _read_stream(self, f, path: str):
            yield pa.table({"bytes": pa.array([f.readall()], type=pa.binary())})

        def _rows_per_file(self):
            return 1

    return ThreadedBinaryDatasource


def build_dataset(data_path, input_pipeline: str, limit: int | None = None):
    """The training data set: file reads (and the CPU fallback decodes) for the gpu pipeline, the CPU pipeline else."""
    import ray.data

    extensions = [e.lstrip(".") for e in IMAGE_EXTENSIONS]
    if input_pipeline == "gpu":
        dataset = ray.data.read_datasource(binary_datasource_class()(data_path, file_extensions=extensions))
        fn = preprocessing.encode_batch_for_device
    else:
        dataset = ray.data.read_images(data_path, size=preprocessing.READ_SIZE, mode=preprocessing.READ_MODE,
                                       file_extensions=extensions)
        fn = preprocessing.transform_batch
    if limit is not None:
        dataset = dataset.limit(limit)
    return dataset.map_batches(fn, batch_format="numpy", batch_size=preprocessing.MAP_BATCH_SIZE,
                               zero_copy_batch=True)


# InsufficientClusterResourcesError's sentence with the numbers
# (ray/train/v2/_internal/execution/worker_group/worker_group.py, Ray 2.58.0), wherever it is in the message.
_INSUFFICIENT = re.compile(r"requires (\{.*?\}) but the cluster only has a maximum of (\{.*?\})")


def worker_start_failure(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for a run that failed because its workers could not start; None for any other failure.

    Ray Train (failure_handling/default.py, Ray 2.58.0) retries a worker start that timed out or failed
    (WorkerGroupStartupTimeoutError, WorkerGroupStartupFailedError) up to controller_failure_limit times over the
    run, which the job sets to --max-failures; an impossible request (InsufficientClusterResourcesError) is not retried.
    """
    cause = getattr(exc, "controller_failure", None)  # ray.train.ControllerError (Ray Train v2)
    name = type(cause).__name__
    # ScalingConfig's default per worker (ray/air/config.py, Ray 2.58.0): one GPU with use_gpu, else one CPU
    per_worker = "{GPU: 1}" if args.use_gpu else "{CPU: 1}"
    tries = f"{args.max_failures + 1} time(s) (--max-failures {args.max_failures} + 1)"
    if name == "WorkerGroupStartupTimeoutError":
        return (f"the {args.num_workers} training worker(s) did not get their resources ({per_worker} each) "
                f"within --worker-wait-s {args.worker_wait_s:g} s, {tries}: no node with a free "
                f"{'GPU' if args.use_gpu else 'CPU'} joined the Ray cluster. Check the worker group and its nodes "
                "(kubectl get pods,nodes; pending pods in the Ray namespace), then rerun, or raise --worker-wait-s.")
    if name == "WorkerGroupStartupFailedError":
        return (f"the {args.num_workers} training worker(s) failed while starting, {tries} (a node lost or a worker "
                "killed as it started; Ray Train's log above has the cause). Check the worker group's nodes "
                "(kubectl get pods,nodes), then rerun.")
    if name == "InsufficientClusterResourcesError":
        message = " ".join(str(cause).split())
        found = _INSUFFICIENT.search(message)
        detail = (f"the workers need {found.group(1)} in all, the cluster has at most {found.group(2)}."
                  if found else message)
        return (f"the Ray cluster can never run {args.num_workers} training worker(s) with {per_worker} each: "
                f"{detail} Lower --num-workers or add GPU capacity to the worker group.")
    return None


def run_config(args: argparse.Namespace):
    """Ray Train's RunConfig: where checkpoints go, how many stay, which failures are retried."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig

    return RunConfig(
        storage_path=args.storage_path,
        # Worker failures: restart from the last checkpoint. Failed worker starts (controller failures, retried
        # forever by default) get as many retries, counted over the run: a restart after a lost node can itself fail
        # to start (WorkerGroupStartupFailedError, the node dying as the workers start) and must not end the job at
        # once. So GPUs that never come fail the job after (--max-failures + 1) x --worker-wait-s.
        failure_config=FailureConfig(max_failures=args.max_failures, controller_failure_limit=args.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
    )


def resolved_settings(args, worker_metrics: dict | None) -> tuple[str | None, bool]:
    """(precision, channels_last) the workers trained with: as they reported them, else resolved here like they do.

    Every epoch reports them with its checkpoint, so a run that trained reports them. Without a report the driver
    knows all but 'auto' precision on a GPU, which depends on the GPU (None then: nothing was trained)."""
    metrics = worker_metrics or {}
    channels_last = args.use_gpu if args.channels_last is None else args.channels_last
    if "precision" in metrics and "channels_last" in metrics:
        return metrics["precision"], metrics["channels_last"]
    if args.use_gpu and args.precision == "auto":
        return None, channels_last
    return resolve_precision(args.precision, "cuda" if args.use_gpu else "cpu", None), channels_last


def build_results(args, total_time_s: float, data_mb: float, data_size_source: str,
                  data_path, checkpoint_path: str | None, worker_metrics: dict | None = None) -> dict:
    throughput = round(args.num_epochs * data_mb / total_time_s, 2) if total_time_s > 0 else 0.0
    precision, channels_last = resolved_settings(args, worker_metrics)
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
        "input_pipeline": args.input_pipeline,
        # what the workers resolved 'auto' to (their last report; resolved_settings without one)
        "precision": precision,
        "channels_last": channels_last,
        "max_failures": args.max_failures,
        "worker_wait_s": args.worker_wait_s,
    })
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_path, is_default_data = resolve_data_path(args)
    print(f"Running Pytorch image model training with data from {data_path}")
    print(
        f"Training for {args.num_epochs} epochs with {args.num_workers} workers "
        f"on {'GPU' if args.use_gpu else 'CPU'}, batch size {args.batch_size}, "
        f"weights={args.weights}, storage {args.storage_path}, input pipeline {args.input_pipeline}."
    )
    try:
        state_dict = load_pretrained_state_dict(args.weights)
    except WeightsUnavailableError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2

    import ray
    import ray.cloudpickle
    from ray.train import ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    # One bounded wait per worker start (the first, and each restart after a failure); read by the controller.
    os.environ[WORKER_GROUP_START_TIMEOUT_ENV] = f"{args.worker_wait_s:g}"
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
    dataset = build_dataset(data_path, args.input_pipeline, SMOKE_TEST_MAX_IMAGES if smoke_limited else None)

    trainer = TorchTrainer(
        train_loop_per_worker=train_loop_per_worker,
        train_loop_config={
            "batch_size": args.batch_size,
            "num_epochs": args.num_epochs,
            "weights_ref": weights_ref,
            "input_pipeline": args.input_pipeline,
            "precision": args.precision,
            "channels_last": args.channels_last,
        },
        datasets={"train": dataset},
        scaling_config=ScalingConfig(num_workers=args.num_workers, use_gpu=args.use_gpu),
        run_config=run_config(args),
    )
    try:
        result = trainer.fit()
    except TrainingFailedError as exc:
        message = worker_start_failure(exc, args)
        if message is None:
            raise
        print(f"ERROR: {message}", file=sys.stderr)
        return 3
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
                            checkpoint_path, result.metrics)
    test_output_json = os.environ.get("TEST_OUTPUT_JSON", DEFAULT_OUTPUT_JSON)
    with open(test_output_json, "w") as f:
        json.dump(results, f)
    print(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
