"""Batch inference with the ResNet18 the training job checkpointed, on Ray Data.

Reads images (same decoding and preprocessing as training), classifies them with the newest
``model.pt`` that ``pytorch_training_e2e.py`` wrote under ``--checkpoint`` (a Ray Train storage path,
a run/checkpoint directory, or the file itself), and writes one record per image to ``--output-path``:
``{"path", "predicted_class", "probability"}`` as JSON lines (or Parquet), plus ``_summary.json``.

    ray job submit --address http://localhost:8265 --working-dir training -- \
        python batch_inference.py --checkpoint /ray/export/orchestrator/<run id> \
        --output-path /ray/export/orchestrator/<run id>/predictions

The Step Functions orchestrator runs it right after the training step, on the same run directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

try:  # imported as part of the `training` package (tests)
    from training import preprocessing
except ImportError:  # run as a plain file, e.g. `--working-dir training`
    import preprocessing  # type: ignore[import-not-found,no-redef]  # the same file, by its name on the job's path

DEFAULT_DATA_URL = "s3://anonymous@air-example-data-2/1G-image-data-synthetic-raw"
CHECKPOINT_FILE = "model.pt"  # what train_loop_per_worker saves in each Ray Train checkpoint
NUM_CLASSES = 1000  # torchvision resnet18's head; training keeps it


class CheckpointError(RuntimeError):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Classify images with a checkpointed ResNet18 (Ray Data).")
    parser.add_argument("--data-path", default=DEFAULT_DATA_URL,
                        help=f"images: a local/FSx directory or file, or an s3:// URI (default {DEFAULT_DATA_URL})")
    parser.add_argument("--checkpoint", required=True,
                        help=f"a {CHECKPOINT_FILE}, or a directory searched for the newest one "
                             "(the training job's --storage-path)")
    parser.add_argument("--output-path", required=True, help="directory for the predictions (created)")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="output format (default jsonl)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per inference batch (default 64)")
    parser.add_argument("--concurrency", type=int, default=1, help="model replicas (actors) (default 1)")
    parser.add_argument("--use-gpu", action=argparse.BooleanOptionalAction, default=None,
                        help="one GPU per replica (default: yes when the cluster has GPUs)")
    parser.add_argument("--limit", type=int, default=None, help="classify at most this many images")
    args = parser.parse_args(argv)
    for name in ("batch_size", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    return args


def find_checkpoint(path: str) -> str:
    """The checkpoint file to load: ``path`` itself, or the newest ``model.pt`` below it.

    Newest by modification time, then by path (Ray Train numbers checkpoints checkpoint_000000, ...): the
    last epoch of the latest run (a retried training step leaves an older run beside the new one).
    """
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise CheckpointError(f"--checkpoint {path}: no such file or directory")
    found = []
    for root, _, files in os.walk(path):
        if CHECKPOINT_FILE in files:
            f = os.path.join(root, CHECKPOINT_FILE)
            found.append((os.path.getmtime(f), f))
    if not found:
        raise CheckpointError(f"--checkpoint {path}: no {CHECKPOINT_FILE} below it; did the training step "
                              "write its checkpoints there (--storage-path)?")
    return max(found)[1]


def load_state_dict(checkpoint_file: str) -> dict:
    """Load the state dict on the driver: a wrong file fails here, once, with a clear message."""
    import torch
    from torchvision.models import resnet18

    try:
        state = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
        resnet18(weights=None).load_state_dict(state)
    except Exception as exc:  # unpickling and shape errors come in many types
        raise CheckpointError(f"{checkpoint_file} is not a ResNet18 state dict "
                              f"({type(exc).__name__}: {str(exc)[:300]})") from exc
    return state


def preprocess(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    images = batch["image"]
    if isinstance(images, np.ndarray) and images.dtype != object and images.ndim == 4:
        out = preprocessing.preprocess_images(images)
    else:  # ragged batch
        import torch

        out = torch.cat([preprocessing.preprocess_images(np.asarray(img)) for img in images])
    return {"image": out.numpy(), "path": np.asarray(batch["path"])}


class ResNetPredictor:
    """One model replica (a Ray actor); the weights come from the object store, not the file system."""

    def __init__(self, state_dict, use_gpu: bool):
        import ray
        import torch
        from torchvision.models import resnet18

        if isinstance(state_dict, ray.ObjectRef):  # Ray Data passes constructor kwargs as they are
            state_dict = ray.get(state_dict)
        self.torch = torch
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model = resnet18(weights=None)
        self.model.load_state_dict(state_dict)
        self.model.eval().to(self.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            logits = self.model(torch.as_tensor(batch["image"]).to(self.device))
            probs = torch.softmax(logits, dim=1)
            top, cls = probs.max(dim=1)
        return {"path": batch["path"], "predicted_class": cls.cpu().numpy().astype(np.int64),
                "probability": top.cpu().numpy().astype(np.float64)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        checkpoint = find_checkpoint(args.checkpoint)
        state = load_state_dict(checkpoint)
    except CheckpointError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(f"Batch inference on {args.data_path} with {checkpoint} -> {args.output_path} ({args.format})")

    import ray
    import ray.cloudpickle

    ray.init()
    ray.cloudpickle.register_pickle_by_value(preprocessing)  # workers need not have the module on their path
    use_gpu = args.use_gpu if args.use_gpu is not None else ray.cluster_resources().get("GPU", 0) > 0

    start = time.time()
    ds = ray.data.read_images(args.data_path, size=preprocessing.READ_SIZE, mode=preprocessing.READ_MODE,
                              include_paths=True)
    if args.limit:
        ds = ds.limit(args.limit)
    ds = ds.map_batches(preprocess, batch_format="numpy", batch_size=preprocessing.MAP_BATCH_SIZE)
    ds = ds.map_batches(ResNetPredictor, fn_constructor_kwargs={"state_dict": ray.put(state), "use_gpu": use_gpu},
                        batch_format="numpy", batch_size=args.batch_size, concurrency=args.concurrency,
                        num_gpus=1 if use_gpu else 0)
    os.makedirs(args.output_path, exist_ok=True)
    if args.format == "parquet":
        ds.write_parquet(args.output_path)
    else:
        ds.write_json(args.output_path)  # JSON lines, one file per block
    elapsed = round(time.time() - start, 2)

    count = sum(1 for _ in _output_records(args.output_path)) if args.format == "jsonl" else None
    summary = {"data_path": args.data_path, "checkpoint": checkpoint, "output_path": args.output_path,
               "format": args.format, "use_gpu": use_gpu, "images": count, "total_time_s": elapsed}
    with open(os.path.join(args.output_path, "_summary.json"), "w") as f:
        json.dump(summary, f)
    print(summary)
    return 0


def _output_records(output_path: str):
    for name in sorted(os.listdir(output_path)):
        if name.endswith(".json") and not name.startswith("_"):
            with open(os.path.join(output_path, name)) as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)


if __name__ == "__main__":
    sys.exit(main())
