"""The image build (constructs_lib/image_build.py), alone from its props and as the infra stack synthesizes it: the
CodeBuild project, its least-privilege role, the build context asset and its upload, the terraform_data that runs
the build script, the ray_image output -- and that the context, its hash and the whole synth output are
deterministic."""

from __future__ import annotations

import filecmp
import io
import json
import os
import re
import shutil
import subprocess
import zipfile

import pytest
import yaml

from config import AppConfig
from config.versions import CODEBUILD_IMAGE, RAY_VERSION
from constructs_lib.image_build import BUILDSPEC, content_hash, context_archive, image_tag
from conventions import naming
from stacks.contract import TRAINING_DIR, image_context_files
from tests.helpers import ROOT, attrs, one, outputs, resources, run_app, tf_json

ACCOUNT = "${data.aws_caller_identity.current.account_id}"
PARTITION = "${data.aws_partition.current_partition.partition}"
REPO_ARN = "${aws_ecr_repository.ray.arn}"
REPO_URL = "${aws_ecr_repository.ray.repository_url}"
BUCKET_ARN = "${aws_s3_bucket.data.arn}"
LOG_GROUP_ARN = f"arn:{PARTITION}:logs:us-west-2:{ACCOUNT}:log-group:/aws/codebuild/ray-eks-ray-image"


@pytest.fixture(scope="module")
def infra(default_synth) -> dict:
    return default_synth["infra"]


@pytest.fixture(scope="module")
def infra_dir(default_synth):
    return default_synth["_outdir"] / "stacks" / "infra"


def expected_tag() -> str:
    return image_tag(RAY_VERSION, content_hash(image_context_files(), AppConfig().stock_ray_image))


def statements(infra: dict) -> dict[str, dict]:
    policy = tf_json(one(infra, "aws_iam_role_policy", "image_build")["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------------------------------ CodeBuild project
def test_project_builds_the_dockerfile_from_the_uploaded_context(infra):
    p = attrs(one(infra, "aws_codebuild_project", "ray_image"))
    assert p["name"] == naming.image_build_project("ray-eks") == "ray-eks-ray-image"
    assert p["service_role"] == "${aws_iam_role.image_build.arn}"
    assert p["source"] == {"type": "S3", "location": "${aws_s3_bucket.data.bucket}/image-build/context.zip",
                           "buildspec": BUILDSPEC}
    assert p["artifacts"] == {"type": "NO_ARTIFACTS"}
    env = p["environment"]
    assert env["privileged_mode"] is True  # Docker in Docker
    assert (env["type"], env["image"]) == ("LINUX_CONTAINER", CODEBUILD_IMAGE)
    assert env["compute_type"] == "BUILD_GENERAL1_LARGE"
    variables = {v["name"]: v["value"] for v in env["environment_variable"]}
    assert all(v["type"] == "PLAINTEXT" for v in env["environment_variable"])
    assert variables == {"REPOSITORY_URL": REPO_URL, "REPOSITORY_NAME": "${aws_ecr_repository.ray.name}",
                         "IMAGE_TAG": expected_tag(), "BASE_IMAGE": f"rayproject/ray:{RAY_VERSION}-py311-cu130"}
    assert p["build_timeout"] == 120 and p["queued_timeout"] == 60
    assert p["logs_config"] == {"cloudwatch_logs": {"status": "ENABLED",
                                                    "group_name": "${aws_cloudwatch_log_group.image_build.name}"},
                                "s3_logs": {"status": "DISABLED"}}
    assert "aws_iam_role_policy.image_build" in p["depends_on"]


def test_buildspec_pushes_the_immutable_tag_once():
    # Plain text in Terraform JSON: ${ or %{ would be a Terraform interpolation or directive.
    assert "${" not in BUILDSPEC and "%{" not in BUILDSPEC
    assert BUILDSPEC.startswith("version: 0.2\n")
    assert 'docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$REPOSITORY_URL:$IMAGE_TAG" .' in BUILDSPEC
    assert 'docker push "$REPOSITORY_URL:$IMAGE_TAG"' in BUILDSPEC
    assert "describe-images" in BUILDSPEC  # an existing (immutable) tag is not built again
    assert "docker login --username AWS --password-stdin" in BUILDSPEC


def _run_build_phase(tmp_path, pull_failures: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The buildspec's build phase in bash, as CodeBuild runs it, with aws, docker and sleep standing in: the tag
    does not exist yet, and Docker Hub refuses the first ``pull_failures`` pulls (rate limit)."""
    (command,) = yaml.safe_load(BUILDSPEC)["phases"]["build"]["commands"]
    calls = tmp_path / "calls"
    stand_ins = f"""
aws() {{ echo "aws $*" >> {calls}; return 254; }}
docker() {{
  echo "docker $*" >> {calls}
  if [ "$1" = pull ]; then
    n=$(grep -c '^docker pull' {calls})
    if [ "$n" -le {pull_failures} ]; then echo "toomanyrequests: pull rate limit" >&2; return 1; fi
  fi
}}
sleep() {{ echo "sleep $*" >> {calls}; }}
"""
    env = {"PATH": os.environ["PATH"], "REPOSITORY_URL": "123456789012.dkr.ecr.us-west-2.amazonaws.com/ray",
           "REPOSITORY_NAME": "ray", "IMAGE_TAG": "2.58.0-0123456789ab", "BASE_IMAGE": "rayproject/ray:2.58.0-py311"}
    r = subprocess.run(["bash", "-c", stand_ins + command], env=env, capture_output=True, text=True, timeout=60)
    return r, calls.read_text().splitlines()


def test_build_retries_docker_hub_pulls_with_backoff(tmp_path):
    r, calls = _run_build_phase(tmp_path, pull_failures=3)
    assert r.returncode == 0, r.stderr
    assert [c for c in calls if c.startswith(("docker pull", "sleep"))] == [
        "docker pull rayproject/ray:2.58.0-py311", "sleep 60", "docker pull rayproject/ray:2.58.0-py311",
        "sleep 120", "docker pull rayproject/ray:2.58.0-py311", "sleep 240", "docker pull rayproject/ray:2.58.0-py311"]
    # The build uses the image just pulled: no second pull of its own (--pull would count against the limit again).
    build = next(c for c in calls if c.startswith("docker build"))
    assert "--pull" not in build and "BASE_IMAGE=rayproject/ray:2.58.0-py311" in build
    assert calls[-1].startswith("docker push ")


def test_build_gives_up_after_five_pulls_naming_the_fix(tmp_path):
    r, calls = _run_build_phase(tmp_path, pull_failures=5)
    assert r.returncode == 1
    assert len([c for c in calls if c.startswith("docker pull")]) == 5
    assert not any(c.startswith(("docker build", "docker push")) for c in calls)
    assert "set ray.image.docker_hub_secret_arn" in r.stderr


def test_tag_is_the_ray_version_and_the_content_hash(infra):
    tag = expected_tag()
    assert re.fullmatch(rf"{re.escape(RAY_VERSION)}-[0-9a-f]{{12}}", tag)
    # The repository keeps tags immutable: the same tag always means the same image.
    assert one(infra, "aws_ecr_repository", "ray")["image_tag_mutability"] == "IMMUTABLE"


# ------------------------------------------------------------------------------------------ least privilege
def test_role_is_assumable_by_this_project_only(infra):
    role = one(infra, "aws_iam_role", "image_build")
    assert role["name_prefix"] == "ray-eks-image-build-"
    trust = tf_json(role["assume_role_policy"])
    [s] = trust["Statement"]
    assert s["Principal"] == {"Service": "codebuild.amazonaws.com"} and s["Action"] == "sts:AssumeRole"
    assert s["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:{PARTITION}:codebuild:us-west-2:{ACCOUNT}:project/ray-eks-ray-image"}}


def test_policy_is_this_repository_this_prefix_and_its_own_logs(infra):
    s = statements(infra)
    assert set(s) == {"EcrLogin", "PushTheRayImage", "ReadBuildSource", "WriteBuildLogs"}
    assert all(x["Effect"] == "Allow" and "Condition" not in x for x in s.values())
    # GetAuthorizationToken has no resource-level permissions: the only "*".
    assert as_list(s["EcrLogin"]["Action"]) == ["ecr:GetAuthorizationToken"]
    assert as_list(s["EcrLogin"]["Resource"]) == ["*"]
    assert as_list(s["PushTheRayImage"]["Resource"]) == [REPO_ARN]
    assert set(s["PushTheRayImage"]["Action"]) == {
        "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
        "ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages"}
    assert as_list(s["ReadBuildSource"]["Resource"]) == [f"{BUCKET_ARN}/image-build/*"]
    assert set(s["ReadBuildSource"]["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert as_list(s["WriteBuildLogs"]["Resource"]) == [LOG_GROUP_ARN, f"{LOG_GROUP_ARN}:*"]
    assert set(s["WriteBuildLogs"]["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    # The role may not create other log groups, touch other objects or pull-through caches without one.
    actions = [a for x in s.values() for a in as_list(x["Action"])]
    assert not any(a.endswith("*") or a in ("logs:CreateLogGroup", "ecr:CreateRepository") for a in actions)


def test_log_group_is_the_projects_own_encrypted_one(infra):
    logs = one(infra, "aws_cloudwatch_log_group", "image_build")
    assert logs["name"] == "/aws/codebuild/ray-eks-ray-image" == naming.image_build_log_group("ray-eks")
    assert logs["kms_key_id"] == "${aws_kms_key.data.arn}" and logs["retention_in_days"] == 365


# ------------------------------------------------------------------------------------------ context and build
def test_context_asset_is_the_training_build_context(infra, infra_dir):
    obj = one(infra, "aws_s3_object", "image_build_context")
    files = image_context_files()
    digest = content_hash(files, AppConfig().stock_ray_image)
    assert obj["bucket"] == "${aws_s3_bucket.data.bucket}" and obj["key"] == naming.IMAGE_BUILD_CONTEXT_KEY
    assert obj["source_hash"] == digest  # not etag: a stable plan, whatever the upload's encryption
    assert obj["source"] == f"assets/image_build_context/{digest[:32]}/context.zip"
    # Uploaded only once the bucket versions objects: the build starts from the upload's version id.
    assert set(obj["depends_on"]) == {"aws_s3_bucket_versioning.data", "aws_s3_bucket_policy.data"}
    with zipfile.ZipFile(infra_dir / obj["source"]) as z:
        assert {i.filename: z.read(i) for i in z.infolist()} == files
    assert set(files) == {"Dockerfile", "requirements.txt", "requirements.lock"} | {
        p.name for p in TRAINING_DIR.glob("*.py")}
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in files)


def test_terraform_data_runs_the_shipped_script_on_each_new_image(infra, infra_dir):
    build = attrs(one(infra, "terraform_data", "ray_image_build"))
    image = f"{REPO_URL}:{expected_tag()}"
    assert build["triggers_replace"] == {"image": image} and build["input"] == {"image": image}
    [provisioner] = build["provisioner"]
    local = provisioner["local-exec"]
    assert local["interpreter"] == ["bash"]
    # Relative to the stack directory (where terraform and cdktf deploy run): the script is an asset there.
    assert local["command"].startswith("${path.module}/assets/image_build_script/")
    shipped = infra_dir / local["command"].removeprefix("${path.module}/")
    assert shipped.read_bytes() == (ROOT / "scripts" / "build_image.sh").read_bytes()
    assert local["environment"] == {
        "PROJECT_NAME": "${aws_codebuild_project.ray_image.name}",
        "SOURCE_VERSION": "${aws_s3_object.image_build_context.version_id}",
        "IMAGE": image, "AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-2", "MAX_WAIT_MINUTES": "190"}


def test_ray_image_output_exists_only_after_the_build(infra):
    assert outputs(infra)["ray_image"]["value"] == "${terraform_data.ray_image_build.output.image}"


def test_no_pull_through_cache_without_credentials(infra):
    assert resources(infra, "aws_ecr_pull_through_cache_rule") == {}
    assert "PullBaseImageThroughCache" not in statements(infra)


def test_pull_through_cache_pulls_the_base_from_ecr(existing_synth):
    """prod example + existing VPC + Docker Hub credentials (also terraform-validated in tests/stacks)."""
    infra = existing_synth["infra"]
    prefix = naming.docker_hub_cache_prefix("ray-prod")
    rule = attrs(one(infra, "aws_ecr_pull_through_cache_rule", "docker_hub"))
    assert rule == {"ecr_repository_prefix": prefix, "upstream_registry_url": "registry-1.docker.io",
                    "credential_arn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:ecr-pullthroughcache/hub"}
    s = statements(infra)["PullBaseImageThroughCache"]
    assert as_list(s["Resource"]) == [f"arn:{PARTITION}:ecr:us-west-2:{ACCOUNT}:repository/{prefix}/*"]
    assert set(s["Action"]) >= {"ecr:BatchImportUpstreamImage", "ecr:CreateRepository", "ecr:BatchGetImage",
                                "ecr:GetDownloadUrlForLayer"}
    project = one(infra, "aws_codebuild_project", "ray_image")
    env = {v["name"]: v["value"] for v in project["environment"]["environment_variable"]}
    # <account>.dkr.ecr.<region>.amazonaws.com/<prefix>/rayproject/ray:<tag> (not an official image: no library/)
    assert env["BASE_IMAGE"] == ('${format("%s/%s/%s", element(split("/", aws_ecr_repository.ray.repository_url), 0), '
                                 f'aws_ecr_pull_through_cache_rule.docker_hub.ecr_repository_prefix, '
                                 f'"rayproject/ray:{RAY_VERSION}-py311-cu130")}}')


# ------------------------------------------------------------------------------------------ determinism
def test_context_archive_is_deterministic_and_hash_covers_what_makes_the_image():
    files = image_context_files()
    base = AppConfig().stock_ray_image
    assert context_archive(files) == context_archive(dict(reversed(list(files.items()))))
    with zipfile.ZipFile(io.BytesIO(context_archive(files))) as z:
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) and i.external_attr >> 16 == 0o100644 for i in z.infolist())
    digest = content_hash(files, base)
    changed = {**files, "preprocessing.py": files["preprocessing.py"] + b"\n# changed\n"}
    renamed = {("x.py" if k == "preprocessing.py" else k): v for k, v in files.items()}
    assert len({digest, content_hash(changed, base), content_hash(renamed, base),
                content_hash(files, base.replace("2.58.0", "2.57.0")),
                content_hash(files, base, BUILDSPEC + "\n")}) == 5


def test_context_is_the_same_from_a_crlf_checkout_and_ignores_caches(tmp_path):
    copy = tmp_path / "training"
    shutil.copytree(TRAINING_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for f in copy.iterdir():
        if f.is_file():
            f.write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))  # git autocrlf
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "preprocessing.cpython-311.pyc").write_bytes(b"\0cache")
    (copy / "notes.txt").write_text("not part of the image")
    assert image_context_files(copy) == image_context_files()


def test_two_synths_are_byte_identical(default_synth, tmp_path):
    """Another synth of the same config, elsewhere: the same files, byte for byte (assets included)."""
    out = tmp_path / "elsewhere" / "cdktf.out"
    r = run_app(outdir=out)
    assert r.returncode == 0, r.stderr[-3000:]
    first = default_synth["_outdir"]
    names = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert any(n.endswith("context.zip") for n in names) and any(n.endswith("build_image.sh") for n in names)
    match, mismatch, errors = filecmp.cmpfiles(first, out, names, shallow=False)
    assert not mismatch and not errors, mismatch + errors


# ------------------------------------------------------------------------------------------ names
# Every name's limit is checked in tests/conventions/test_naming.py; exact names (no provider suffix) must also
# stay distinct when two long deployment names share their head.
def test_long_names_stay_distinct():
    a, b = "team-ml-platform-ray-eks-prod-01", "team-ml-platform-ray-eks-prod-02"
    assert naming.docker_hub_cache_prefix(a) != naming.docker_hub_cache_prefix(b)
    assert naming.image_build_project(a) != naming.image_build_project(b)
    assert json.dumps(naming.docker_hub_cache_prefix("ray-eks")) == '"ray-eks-docker-hub"'


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
UNIT_REPO_URL = "111122223333.dkr.ecr.eu-central-1.amazonaws.com/unit/ray"
UNIT_REPO_ARN = "arn:aws:ecr:eu-central-1:111122223333:repository/unit/ray"
HUB_SECRET = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:ecr-pullthroughcache/hub"


def _alone(construct_synth, tmp_path_factory, cache: bool):
    from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket

    from constructs_lib.image_build import ImageBuildProps, PullThroughCacheProps, RayImageBuild

    context = tmp_path_factory.mktemp("context") / "context.zip"
    context.write_bytes(context_archive({"Dockerfile": b"FROM scratch\n"}))

    def build(stack):
        bucket = S3Bucket(stack, "unit_bucket", bucket="unit-data")
        return RayImageBuild(stack, "image_build", ImageBuildProps(
            project_name="unit-ray-image", role_name_prefix="unit-image-", log_group_name="/aws/codebuild/unit",
            region="eu-central-1", account_id="111122223333", partition="aws", repository_url=UNIT_REPO_URL,
            repository_arn=UNIT_REPO_ARN, repository_name="unit/ray", bucket_name="unit-data",
            bucket_arn="arn:aws:s3:::unit-data", bucket_ready=[bucket], source_key="image-build/context.zip",
            source_prefix="image-build/", context_path=str(context), content_hash="ab" * 32,
            image_tag="2.58.0-abababababab", base_image="rayproject/ray:2.58.0-py311-cu130",
            script_path=str(ROOT / "scripts" / "build_image.sh"), compute_type="BUILD_GENERAL1_MEDIUM",
            timeout_minutes=45, codebuild_image=CODEBUILD_IMAGE, logs_kms_key_arn="arn:aws:kms:eu-central-1:1:key/k",
            log_retention_days=30,
            pull_through_cache=PullThroughCacheProps("unit-hub", HUB_SECRET) if cache else None,
            script_environment={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}))
    return construct_synth(build, outputs=("image_uri",))


def test_alone_project_role_and_build_from_the_props(construct_synth, tmp_path_factory):
    alone = _alone(construct_synth, tmp_path_factory, cache=False)
    env = {v["name"]: v["value"] for v in alone.one("aws_codebuild_project", "ray_image")["environment"][
        "environment_variable"]}
    assert env == {"REPOSITORY_URL": UNIT_REPO_URL, "REPOSITORY_NAME": "unit/ray", "IMAGE_TAG": "2.58.0-abababababab",
                   "BASE_IMAGE": "rayproject/ray:2.58.0-py311-cu130"}
    assert alone.has_resource("aws_codebuild_project", {
        "name": "unit-ray-image", "build_timeout": 45, "queued_timeout": 60,
        "source": {"type": "S3", "location": "unit-data/image-build/context.zip"},
        "environment": {"compute_type": "BUILD_GENERAL1_MEDIUM", "image": CODEBUILD_IMAGE, "privileged_mode": True}})
    trust = tf_json(alone.one("aws_iam_role", "image_build")["assume_role_policy"])["Statement"][0]
    assert trust["Condition"]["ArnLike"]["aws:SourceArn"] == (
        "arn:aws:codebuild:eu-central-1:111122223333:project/unit-ray-image")
    sids = {s["Sid"]: s for s in tf_json(alone.one("aws_iam_role_policy", "image_build")["policy"])["Statement"]}
    assert set(sids) == {"EcrLogin", "PushTheRayImage", "ReadBuildSource", "WriteBuildLogs"}
    assert as_list(sids["ReadBuildSource"]["Resource"]) == ["arn:aws:s3:::unit-data/image-build/*"]
    upload = alone.one("aws_s3_object", "image_build_context")
    assert upload["depends_on"] == ["aws_s3_bucket.unit_bucket"] and upload["source_hash"] == "ab" * 32
    run = alone.one("terraform_data", "ray_image_build")
    env = run["provisioner"][0]["local-exec"]["environment"]
    assert env["PROJECT_NAME"] == "${aws_codebuild_project.ray_image.name}"
    assert env["MAX_WAIT_MINUTES"] == "115" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert run["triggers_replace"] == {"image": f"{UNIT_REPO_URL}:2.58.0-abababababab"}
    assert alone.output("image_uri") == "${terraform_data.ray_image_build.output.image}"
    assert not alone.resources("aws_ecr_pull_through_cache_rule")


def test_alone_with_docker_hub_credentials_the_base_image_comes_through_the_cache(construct_synth, tmp_path_factory):
    alone = _alone(construct_synth, tmp_path_factory, cache=True)
    assert alone.has_resource("aws_ecr_pull_through_cache_rule", {
        "ecr_repository_prefix": "unit-hub", "upstream_registry_url": "registry-1.docker.io"})
    env = {v["name"]: v["value"] for v in alone.one("aws_codebuild_project", "ray_image")["environment"][
        "environment_variable"]}
    # <registry of the repository>/<cache prefix>/rayproject/ray:<tag> (no library/: not an official image)
    assert env["BASE_IMAGE"] == ('${format("%s/%s/%s", element(split("/", "' + UNIT_REPO_URL + '"), 0), '
                                 'aws_ecr_pull_through_cache_rule.docker_hub.ecr_repository_prefix, '
                                 '"rayproject/ray:2.58.0-py311-cu130")}')
    sids = {s["Sid"] for s in tf_json(alone.one("aws_iam_role_policy", "image_build")["policy"])["Statement"]}
    assert "PullBaseImageThroughCache" in sids
