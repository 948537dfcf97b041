#!/usr/bin/env bash
# Builds what benchmarks/gpu_training_check.sh needs on a GPU machine that has Python 3.12 and PyTorch but no Ray and
# no network (this project's lent GPU machine), from PyPI, here:
#   .device/ray-slim.tar.xz  Ray's cp312 wheel (the config's ray_version) unpacked without ray/jars, ray/rllib and the
#                            bundled dashboard client, re-packed (the whole wheel is over the machine's upload limit);
#   .device/wheels/          the pure or small wheels Ray Core, Data and Train need that the machine's image lacks
#                            (jsonschema, pydantic, tensorboardX and their own needs), at Pipfile.lock's versions.
#
#   benchmarks/prepare_gpu_bundle.sh        # then carry .device (it ignores itself: .device/.gitignore)
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${DEST:-.device}"
py=.venv/bin/python
ray_version=$($py -c "from config.versions import RAY_VERSION; print(RAY_VERSION)")
lock_version() { $py -c "import json,sys; l=json.load(open('Pipfile.lock')); print(next(c[sys.argv[1]]['version'] for k,c in l.items() if k!='_meta' and sys.argv[1] in c))" "$1"; }
platform=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)

rm -rf "$dest" && mkdir -p "$dest/wheels"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
$py -m pip download -q --no-deps "${platform[@]}" -d "$work" "ray==$ray_version"
mkdir "$work/site"
$py -m zipfile -e "$work"/ray-"$ray_version"-*.whl "$work/site"
rm -rf "$work/site/ray/jars" "$work/site/ray/rllib" "$work/site/ray/dashboard/client"
find "$work/site" -name '__pycache__' -prune -exec rm -rf {} +
tar -C "$work/site" -cJf "$dest/ray-slim.tar.xz" .

for name in jsonschema jsonschema-specifications referencing rpds-py pydantic pydantic-core annotated-types \
            typing-inspection tensorboardx; do
  $py -m pip download -q --no-deps "${platform[@]}" -d "$dest/wheels" "$name$(lock_version "$name")"
done
echo '*' > "$dest/.gitignore"  # git ignores the folder (so it is never committed); name it in the device run's carry
du -sh "$dest"/ray-slim.tar.xz "$dest"/wheels
echo "ready: carry '$dest' and run benchmarks/gpu_training_check.sh (see the script's header)"
