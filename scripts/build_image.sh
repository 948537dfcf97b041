#!/usr/bin/env bash
# Build the Ray image in AWS CodeBuild and wait for the build: the infra stack's terraform_data.ray_image_build
# runs this (local-exec) during the deploy whenever the image's content hash changes. Exits 0 only when the build
# SUCCEEDED; otherwise prints the build's status, phase and log link and exits 1, so the apply fails and the next
# apply tries again (Terraform taints the resource).
#
# Environment (set by the stack):
#   PROJECT_NAME      the CodeBuild project
#   SOURCE_VERSION    the S3 object version of the build context (empty: the latest)
#   IMAGE             the image the build pushes (for messages)
#   AWS_REGION        the deployment's region
#   MAX_WAIT_MINUTES  give up waiting after this long (default 190; the project times out builds before that)
#   POLL_SECONDS      seconds between status checks (default 20)
#   AWS_ENDPOINT_URL  optional: an AWS emulator (tests); also passed as --endpoint-url for older CLIs
# Needs the AWS CLI (v1 or v2) and credentials for the account, like the rest of the deploy. The CLI has no
# `aws codebuild wait` (botocore defines no CodeBuild waiters): this script polls batch-get-builds.
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }

[[ -n "${PROJECT_NAME:-}" ]] || die "PROJECT_NAME is not set (the infra stack's terraform_data sets it)"
command -v aws >/dev/null 2>&1 || die "the AWS CLI ('aws') is not on PATH: install it, then run the deploy again"

poll="${POLL_SECONDS:-20}"
max_wait=$(( ${MAX_WAIT_MINUTES:-190} * 60 ))
endpoint=()
[[ -z "${AWS_ENDPOINT_URL:-}" ]] || endpoint=(--endpoint-url "$AWS_ENDPOINT_URL")
source_version=()
[[ -z "${SOURCE_VERSION:-}" ]] || source_version=(--source-version "$SOURCE_VERSION")

cb() { aws "${endpoint[@]}" codebuild "$@"; }

build_id="$(cb start-build --project-name "$PROJECT_NAME" "${source_version[@]}" --query build.id --output text)" \
  || die "could not start a build of CodeBuild project ${PROJECT_NAME}"
[[ -n "$build_id" && "$build_id" != "None" ]] || die "CodeBuild returned no build id for ${PROJECT_NAME}"
echo "Building ${IMAGE:-the Ray image} in CodeBuild: build ${build_id} (usually 15-30 minutes)"

# Interrupted (Ctrl-C on the deploy): stop the build too, rather than leave it running unseen.
stop_build() {
  echo "interrupted: stopping build ${build_id}" >&2
  cb stop-build --id "$build_id" >/dev/null 2>&1 || true
  exit 130
}
trap stop_build INT TERM

started=$SECONDS
last_phase=""
while :; do
  read -r status phase link < <(cb batch-get-builds --ids "$build_id" \
    --query 'builds[0].[buildStatus, currentPhase, logs.deepLink]' --output text) \
    || die "could not read the status of build ${build_id}"
  case "$status" in
    SUCCEEDED)
      echo "Build ${build_id} succeeded: ${IMAGE:-the image} is in ECR"
      exit 0 ;;
    IN_PROGRESS)
      if [[ "$phase" != "$last_phase" ]]; then
        echo "  $(( (SECONDS - started) / 60 )) min: ${phase}"
        last_phase="$phase"
      fi ;;
    *)
      die "build ${build_id} ended ${status} in phase ${phase}; logs: ${link}" ;;
  esac
  if (( SECONDS - started > max_wait )); then
    die "build ${build_id} still ${status} (${phase}) after $(( max_wait / 60 )) minutes; logs: ${link}"
  fi
  sleep "$poll"
done
