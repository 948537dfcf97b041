#!/usr/bin/env bash
# GPU check of the user guide's training job and the measurement of docs/training.md "On a GPU", in one run, for a
# machine with an NVIDIA GPU, Python 3.12 and PyTorch but no Ray and no network (this project's lent GPU machine).
# Not run by `make test` (its CPU parts are: tests/benchmarks/). Prepare here, then run there:
#
#   benchmarks/prepare_gpu_bundle.sh                          # here: builds .device/ (Ray re-packed + wheels)
#   OUT=/tmp/out benchmarks/gpu_training_check.sh             # there, with .device carried (expected: ~4 min)
#
# Steps: (1) install Ray from .device (ray-slim.tar.xz unpacked, the wheels, into /tmp/ray-site); (2) the job as users
# run it -- training/pytorch_training_e2e.py --use-gpu (the gpu input pipeline, mixed precision, channels_last: its
# defaults), one Ray Train worker, synthetic images -- then check its results JSON and checkpoint, GPU sampled;
# (3) benchmarks/training_limit.py pinned to 3 CPUs (the default worker's budget; taskset -c 0-2 and Ray told
# num_cpus=3): (a) the GPU's ceiling, (b) the original job, (c) ours, (c) on progressive JPEGs, GPU utilisation, and
# the gpu pipeline's equivalence to the reference on the GPU. Files in $OUT: gpu.txt, train.log, results.json,
# check.json, limit.log, limit.json, limit.md -- limit.md is the block for docs/training.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu-check}"; mkdir -p "$out"
bundle="${BUNDLE:-.device}"
[ -f "$bundle/ray-slim.tar.xz" ] || { echo "ERROR: no $bundle/ray-slim.tar.xz: run benchmarks/prepare_gpu_bundle.sh here first and carry $bundle" >&2; exit 2; }
site=/tmp/ray-site; mkdir -p "$site"
tar xJf "$bundle/ray-slim.tar.xz" -C "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$bundle"/wheels/*.whl
export PYTHONPATH="$site:$PWD" RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, torchvision, ray, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), '| torchvision', torchvision.__version__, '| ray', ray.__version__)"
  nproc; grep -m1 'model name' /proc/cpuinfo; } 2>&1 | tee "$out/gpu.txt"

# the default worker's 3 CPUs (training_limit.py also pins itself, should taskset be missing)
pin() { if command -v taskset >/dev/null; then taskset -c 0-2 "$@"; else "$@"; fi; }

# (2) the job, as users run it, on 512 images
data=/tmp/gpu-check-images; storage=/tmp/gpu-check-export
python3 -m training.make_synthetic_data --out "$data" --count "${IMAGES:-512}" --size 375x500 >/dev/null
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -lms 500 > /tmp/gpu-check-samples.csv &
sampler=$!
TEST_OUTPUT_JSON="$out/results.json" pin python3 training/pytorch_training_e2e.py --data-path "$data" \
  --num-workers 1 --num-epochs 2 --use-gpu --weights none --storage-path "$storage" > "$out/train.log" 2>&1 \
  || { kill "$sampler" 2>/dev/null; tail -n 60 "$out/train.log"; echo "ERROR: the training job failed" >&2; exit 1; }
kill "$sampler" 2>/dev/null || true
python3 - "$out" /tmp/gpu-check-samples.csv <<'PY' | tee "$out/check.json"
import json, os, sys, torch
out, samples = sys.argv[1], sys.argv[2]
r = json.load(open(os.path.join(out, "results.json")))
assert r["use_gpu"] is True and r["input_pipeline"] == "gpu", r
ckpt = r["checkpoint_path"]
state = torch.load(os.path.join(ckpt, "model.pt"), map_location="cpu")
train_state = torch.load(os.path.join(ckpt, "train_state.pt"), map_location="cpu")
rows = [l.split(",") for l in open(samples) if l.strip()]
peak = max(int(m.split()[0]) for _, m in rows)
busy = max(int(u.split()[0]) for u, _ in rows)
print(json.dumps({"checkpoint": ckpt, "tensors": len(state), "fc_out": list(state["fc.weight"].shape),
                  "epoch_in_checkpoint": train_state["epoch"], "precision": r["precision"],
                  "channels_last": r["channels_last"], "peak_gpu_memory_mib": peak, "peak_gpu_util_pct": busy,
                  "total_time_s": r["perf_metrics"][0]["perf_metric_value"]}))
assert peak > 500 and busy > 0, "the GPU was not used"
PY

# (3) the limit, under the default worker's CPU budget
pin python3 benchmarks/training_limit.py --cpus 3 --progressive \
  --out "$out/limit.json" --markdown "$out/limit.md" > "$out/limit.log" 2>&1 \
  || { tail -n 80 "$out/limit.log"; echo "ERROR: benchmarks/training_limit.py failed" >&2; exit 1; }
cat "$out/limit.md"
