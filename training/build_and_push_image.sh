#!/usr/bin/env bash
# Build the training Ray image (training/Dockerfile) and push it to the ECR
# repository created by the infra stack.
#
#   training/build_and_push_image.sh            # tag = Ray version (2.58.0)
#   IMAGE_TAG=my-tag training/build_and_push_image.sh
#
# Needs: docker, aws CLI (credentials for the account), terraform, and a
# synthesized + deployed infra stack (cdktf.out/stacks/infra).
# Environment overrides:
#   IMAGE_TAG              image tag (default: the Ray version)
#   RAY_VERSION            Ray version / base image tag (default: ARG in the Dockerfile)
#   STACK_DIR              terraform dir of the infra stack (default: cdktf.out/stacks/infra)
#   PLATFORM               docker build platform (default: linux/amd64, the EKS nodes)
#   TORCH_EXTRA_INDEX_URL  extra pip index for torch (see the Dockerfile)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
stack_dir="${STACK_DIR:-${repo_root}/cdktf.out/stacks/infra}"
platform="${PLATFORM:-linux/amd64}"

die() { echo "error: $*" >&2; exit 1; }

for tool in terraform aws docker; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed or not on PATH"
done
[[ -d "$stack_dir" ]] || die "no infra stack at ${stack_dir}: run 'cdktf synth' and deploy it first"

ray_version="${RAY_VERSION:-$(sed -n 's/^ARG RAY_VERSION=\(.*\)$/\1/p' "${script_dir}/Dockerfile" | head -n 1)}"
[[ -n "$ray_version" ]] || die "could not read ARG RAY_VERSION from ${script_dir}/Dockerfile"
image_tag="${IMAGE_TAG:-$ray_version}"

tf_output() {
  local value
  value="$(terraform -chdir="$stack_dir" output -raw "$1")" \
    || die "terraform output '$1' is not available in ${stack_dir} (is the infra stack deployed?)"
  [[ -n "$value" ]] || die "terraform output '$1' is empty"
  printf '%s' "$value"
}

repository_url="$(tf_output ecr_repository_url)"
region="$(tf_output region)"
registry="${repository_url%%/*}"
image="${repository_url}:${image_tag}"

echo "Logging in to ${registry} (${region})"
aws ecr get-login-password --region "$region" \
  | docker login --username AWS --password-stdin "$registry"

echo "Building ${image} (Ray ${ray_version}, ${platform})"
docker build \
  --platform "$platform" \
  --build-arg "RAY_VERSION=${ray_version}" \
  --build-arg "TORCH_EXTRA_INDEX_URL=${TORCH_EXTRA_INDEX_URL:-}" \
  --tag "$image" \
  "$script_dir"

echo "Pushing ${image}"
docker push "$image"
echo "Pushed ${image}"
