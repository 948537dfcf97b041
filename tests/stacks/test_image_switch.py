"""ray.image.source: build (default) vs stock and custom, through every stack and command that runs the job.

With build, the CodeBuild pieces exist and no job installs anything. With stock or custom they do not exist, and
every job submission -- make submit, the ray-cluster stack's output, the rendered submitter Job and RayJob, the
orchestrator's steps -- passes training/requirements.txt as runtime_env pip. The runtime_envs are read back with
Ray's own parsers (the code `ray job submit` and KubeRay's submitter run), not by string matching alone.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import yaml
from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args
from ray.runtime_env import RuntimeEnv

from stacks.contract import job_requirements
from tests.helpers import IMAGE_CUSTOM_URI, ROOT, app_env, one, outputs, resources, session_configs
from tests.orchestrator_objects import packaged_steps, submitted_job

# The session synths (tests/conftest.py) of each switch, and the image it runs.
IMAGES = {"stock": "rayproject/ray:2.58.0-py311-cu130", "custom": IMAGE_CUSTOM_URI}
BUILD_ONLY = ("aws_codebuild_project", "aws_s3_object", "terraform_data", "aws_ecr_pull_through_cache_rule")


@pytest.fixture(scope="module", params=sorted(IMAGES))
def switched(request, app_synth):
    name = f"image-{request.param}"
    return app_synth(name), session_configs()[name], IMAGES[request.param]


def submit_runtime_env(command: str) -> dict:
    """The runtime_env `ray job submit` builds from a command line (its own parser)."""
    argv = shlex.split(command)
    assert argv[:3] == ["ray", "job", "submit"], command
    opts = argv[:argv.index("--")]
    def value(flag: str) -> str | None:
        return opts[opts.index(flag) + 1] if flag in opts else None

    env = parse_runtime_env_args(runtime_env_json=value("--runtime-env-json"), working_dir=value("--working-dir"))
    validate(env)
    return env


def validate(env: dict) -> None:
    """Ray's own validation of the runtime_env's fields (working_dir: a path on the submitting pod, not here)."""
    RuntimeEnv(**{k: v for k, v in env.items() if k != "working_dir"})


def orchestrator_jobs(synth: dict) -> list[dict]:
    """The Jobs the orchestrator's function creates (one per step)."""
    jobs = [submitted_job(synth, step) for step in packaged_steps(synth)]
    assert len(jobs) == 2, "a Job per step: training and inference"
    return jobs


def submitted_commands(synth: dict) -> list[str]:
    jobs = orchestrator_jobs(synth)
    commands = [j["spec"]["template"]["spec"]["containers"][0]["command"][-1] for j in jobs]
    # "cp /config/*.py /tmp/job/ && exec ray job submit ..." -> the submit command
    return [c.split("&& exec ", 1)[1] for c in commands]


# ------------------------------------------------------------------------------------------ build (default)
def test_build_creates_the_build_and_no_job_installs_anything(default_synth):
    infra = default_synth["infra"]
    for rtype in BUILD_ONLY[:3]:
        assert resources(infra, rtype), f"no {rtype} with the default ray.image.source build"
    env = submit_runtime_env(outputs(default_synth["ray-cluster"])["ray_job_submit_command"]["value"])
    assert env == {"working_dir": "training"}
    for command in submitted_commands(default_synth):
        assert submit_runtime_env(command) == {"working_dir": "/tmp/job"}


# ------------------------------------------------------------------------------------------ stock and custom
def test_no_build_resources_and_the_configured_image(switched):
    stacks, _, image = switched
    infra = stacks["infra"]
    for rtype in BUILD_ONLY:
        assert not resources(infra, rtype), f"{rtype} without an image build"
    assert "image_build" not in {n for t in ("aws_iam_role", "aws_cloudwatch_log_group") for n in resources(infra, t)}
    assert outputs(infra)["ray_image"]["value"] == image
    rc = one(stacks["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]
    pods = [rc["spec"]["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in rc["spec"]["workerGroupSpecs"]]
    assert {c["image"] for p in pods for c in p["containers"] + p["initContainers"]} == {image}
    steps = [j["spec"]["template"]["spec"]["containers"][0] for j in orchestrator_jobs(stacks)]
    assert {c["image"] for c in steps} == {image}


def test_every_submission_installs_the_requirements(switched):
    stacks, _, _ = switched
    pip = list(job_requirements())
    assert pip and all("==" in r for r in pip)
    env = submit_runtime_env(outputs(stacks["ray-cluster"])["ray_job_submit_command"]["value"])
    assert env == {"working_dir": "training", "pip": pip}
    for command in submitted_commands(stacks):
        assert submit_runtime_env(command) == {"working_dir": "/tmp/job", "pip": pip}


def run(module: str, config: dict, tmp_path, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=app_env(config=path),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("source", sorted(IMAGES))
def test_make_submit_and_the_rendered_jobs_install_the_requirements(source, tmp_path):
    config, image = session_configs()[f"image-{source}"], IMAGES[source]
    pip = list(job_requirements())
    r = run("scripts.ray_commands", config, tmp_path, "--no-check", "submit")
    assert r.returncode == 0, r.stderr
    assert submit_runtime_env(r.stdout.strip().splitlines()[-1]) == {"working_dir": "training", "pip": pip}

    r = run("scripts.render_jobs", config, tmp_path, "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    _, _, job = yaml.safe_load_all((tmp_path / "out" / "submit-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    submitted = container["command"][-1].split("&& exec ", 1)[1]
    assert submit_runtime_env(submitted) == {"working_dir": "/tmp/job", "pip": pip}
    _, rayjob = yaml.safe_load_all((tmp_path / "out" / "rayjob.yaml").read_text())
    env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])
    validate(env)
    assert env == {"working_dir": "/config", "pip": pip}


def test_make_submit_with_the_built_image_installs_nothing(tmp_path):
    r = run("scripts.ray_commands", {}, tmp_path, "--no-check", "submit")
    assert r.returncode == 0, r.stderr
    assert submit_runtime_env(r.stdout.strip().splitlines()[-1]) == {"working_dir": "training"}
