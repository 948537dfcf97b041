"""Batch inference (training/batch_inference.py): checkpoint lookup, and a real run on a local Ray head.

The checkpoint is written exactly as the training job's train_loop_per_worker writes it (a ResNet18
state dict saved with torch.save as <storage>/<experiment>/checkpoint_NNNNNN/model.pt), which keeps the
test short; tests/training/test_training_job_ray.py covers that the training job produces that layout.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from conftest import ray_job_submit

from training import batch_inference, preprocessing
from training.make_synthetic_data import make_dataset

NUM_IMAGES = 12


def save_checkpoint(storage: Path, experiment: str, index: int, seed: int, mtime: float | None = None) -> Path:
    import torch
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    d = storage / experiment / f"checkpoint_{index:06d}"
    d.mkdir(parents=True)
    f = d / "model.pt"
    torch.save(resnet18(weights=None).state_dict(), f)
    if mtime is not None:
        os.utime(f, (mtime, mtime))
    return f


def test_find_checkpoint_takes_the_newest_model(tmp_path):
    old = save_checkpoint(tmp_path, "TorchTrainer_old", 1, seed=0, mtime=1_000_000)
    save_checkpoint(tmp_path, "TorchTrainer_new", 0, seed=0, mtime=2_000_000)
    newest = save_checkpoint(tmp_path, "TorchTrainer_new", 1, seed=0, mtime=2_000_000)
    assert batch_inference.find_checkpoint(str(tmp_path)) == str(newest)
    assert batch_inference.find_checkpoint(str(old)) == str(old)


def test_missing_or_bad_checkpoint_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "out"
    assert batch_inference.main(["--checkpoint", str(tmp_path), "--output-path", str(out)]) == 2
    assert "no model.pt below it" in capsys.readouterr().err
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert batch_inference.main(["--checkpoint", str(bad), "--output-path", str(out)]) == 2
    assert "is not a ResNet18 state dict" in capsys.readouterr().err
    assert not out.exists()


def expected_predictions(checkpoint: Path, paths: list[Path]) -> dict[str, int]:
    """The same model on the same pixels, in-process, image by image."""
    import torch
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    model.eval()
    out = {}
    with torch.inference_mode():
        for p in paths:
            x = preprocessing.preprocess_images(preprocessing.load_image(str(p)))
            out[p.name] = int(model(x).argmax(dim=1)[0])
    return out


@pytest.mark.ray
def test_batch_inference_job_on_local_ray(ray_head, tmp_path):
    data_dir = tmp_path / "images"
    make_dataset(str(data_dir), NUM_IMAGES, (300, 280), seed=3)
    storage = tmp_path / "run"
    save_checkpoint(storage, "TorchTrainer_a", 0, seed=1, mtime=1_000_000)
    checkpoint = save_checkpoint(storage, "TorchTrainer_a", 1, seed=2, mtime=2_000_000)
    output = storage / "predictions"
    submission_id = f"batch-inference-{uuid.uuid4().hex[:8]}"

    submit = ray_job_submit(
        ray_head, submission_id,
        ["python", "batch_inference.py", "--data-path", str(data_dir), "--checkpoint", str(storage),
         "--output-path", str(output), "--no-use-gpu", "--batch-size", "5"],
    )
    logs = submit.stdout + submit.stderr
    assert submit.returncode == 0, logs[-6000:]

    records = list(batch_inference._output_records(str(output)))
    images = sorted(data_dir.iterdir())
    assert len(records) == NUM_IMAGES
    by_name = {Path(r["path"]).name: r for r in records}
    assert set(by_name) == {p.name for p in images}
    for r in records:
        assert 0 <= r["predicted_class"] < batch_inference.NUM_CLASSES
        assert 0.0 < r["probability"] <= 1.0
    # The newest checkpoint's model, not another one: the classes match an in-process run of it.
    assert {n: r["predicted_class"] for n, r in by_name.items()} == expected_predictions(checkpoint, images)

    summary = json.loads((output / "_summary.json").read_text())
    assert summary["checkpoint"] == str(checkpoint) and summary["images"] == NUM_IMAGES
    assert summary["use_gpu"] is False
