#!/usr/bin/env bash
# Build the training Ray image (training/Dockerfile) locally and push it to the infra stack's ECR repository.
# The deploy builds the same Dockerfile in AWS CodeBuild by default (ray.image.source: build); this script is for
# a local Docker engine, e.g. an image you then run with ray.image.source: custom.
#
#   training/build_and_push_image.sh            # tag = the base image's tag (2.58.0-py311-cu130)
#   IMAGE_TAG=my-tag training/build_and_push_image.sh
#
# Needs: docker, aws CLI (credentials for the account), and the deployed infra stack's repository and region:
# `make image` reads them from this deployment's state (scripts/infra_outputs.py) and runs this script.
# Environment:
#   ECR_REPOSITORY_URL     the infra stack's ecr_repository_url output (set by make image)
#   REGION                 the infra stack's region output (set by make image)
#   IMAGE_TAG              image tag (default: the base image's tag)
#   BASE_IMAGE             base (FROM) image (default: ARG BASE_IMAGE in the Dockerfile)
#   PLATFORM               docker build platform (default: linux/amd64, the EKS nodes)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
platform="${PLATFORM:-linux/amd64}"

die() { echo "error: $*" >&2; exit 1; }

for tool in aws docker; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed or not on PATH"
done
[[ -n "${ECR_REPOSITORY_URL:-}" && -n "${REGION:-}" ]] \
  || die "ECR_REPOSITORY_URL and REGION are not set: run 'make image' (it reads them from the deployed infra stack)"

base_image="${BASE_IMAGE:-$(sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "${script_dir}/Dockerfile" | head -n 1)}"
[[ -n "$base_image" ]] || die "could not read ARG BASE_IMAGE from ${script_dir}/Dockerfile"
image_tag="${IMAGE_TAG:-${base_image##*:}}"

repository_url="$ECR_REPOSITORY_URL"
region="$REGION"
registry="${repository_url%%/*}"
image="${repository_url}:${image_tag}"

echo "Logging in to ${registry} (${region})"
aws ecr get-login-password --region "$region" \
  | docker login --username AWS --password-stdin "$registry"

echo "Building ${image} (from ${base_image}, ${platform})"
docker build \
  --platform "$platform" \
  --build-arg "BASE_IMAGE=${base_image}" \
  --tag "$image" \
  "$script_dir"

echo "Pushing ${image}"
docker push "$image"
echo "Pushed ${image}"
