#!/usr/bin/env bash
# GPU check of the user guide's training job, for a machine with an NVIDIA GPU and PyTorch but no Ray
# (this project's lent GPU machine: Python 3.12 + torch/torchvision, no network). Not run by `make test`.
#
#   RAY_BUNDLE=.device/ray-slim.tar.xz WHEELS=.device/wheels OUT=/tmp/out benchmarks/gpu_training_check.sh
#
# RAY_BUNDLE: Ray's cp312 wheel unpacked and re-packed as tar.xz without ray/jars and ray/rllib (the wheel is
# over the machine's upload limit); WHEELS: the few pure/small wheels Ray Train needs that the machine lacks.
# Steps: (1) train ResNet18 with training/pytorch_training_e2e.py on synthetic images with --use-gpu, one Ray Train
# worker, checkpoints to a local storage path, then check the results JSON and the checkpoint; (2) the input
# pipeline's end-to-end GPU benchmark (benchmarks/input_pipeline.py --e2e), original vs ours.
set -euo pipefail
out="${OUT:-/tmp/gpu-check}"; mkdir -p "$out"
site=/tmp/ray-site; mkdir -p "$site"
tar xJf "${RAY_BUNDLE:?}" -C "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "${WHEELS:?}"/*.whl
export PYTHONPATH="$site:$PWD" RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, torchvision, ray; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), '| torchvision', torchvision.__version__, '| ray', ray.__version__)" | tee -a "$out/gpu.txt"

data=/tmp/gpu-check-images; storage=/tmp/gpu-check-export
python3 -m training.make_synthetic_data --out "$data" --count "${IMAGES:-1024}" --size 375x500 >/dev/null
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -lms 500 > "$out/gpu_samples.csv" &
sampler=$!
TEST_OUTPUT_JSON="$out/results.json" python3 training/pytorch_training_e2e.py --data-path "$data" \
  --num-workers 1 --num-epochs "${EPOCHS:-2}" --use-gpu --weights none --storage-path "$storage" 2>&1 | tail -n 40 > "$out/train.log"
kill "$sampler" 2>/dev/null || true
python3 - "$out" <<'PY'
import json, os, sys, torch
out = sys.argv[1]
r = json.load(open(os.path.join(out, "results.json")))
assert r["use_gpu"] is True, r
ckpt = os.path.join(r["checkpoint_path"], "model.pt")
state = torch.load(ckpt, map_location="cpu")
peak = max(int(l.split(",")[1].split()[0]) for l in open(os.path.join(out, "gpu_samples.csv")) if l.strip())
busy = max(int(l.split(",")[0].split()[0]) for l in open(os.path.join(out, "gpu_samples.csv")) if l.strip())
print(json.dumps({"checkpoint": ckpt, "tensors": len(state), "fc_out": list(state["fc.weight"].shape),
                  "peak_gpu_memory_mib": peak, "peak_gpu_util_pct": busy,
                  "total_time_s": r["perf_metrics"][0]["perf_metric_value"]}))
assert peak > 500 and busy > 0, "the GPU was not used"
PY
python3 benchmarks/input_pipeline.py --e2e --e2e-images "${E2E_IMAGES:-2048}" --epochs 2 2>&1 | tail -n 12 | tee "$out/e2e.txt"
