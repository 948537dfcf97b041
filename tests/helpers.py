"""Shared test helpers: run the real app (a subprocess, as users do) and read what it wrote."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fast_imports.node_side import ENV_PACKAGES, HOOK_MARKER
from scripts.derive_reference import DEFAULT_OUT as DERIVED_REFERENCE

ROOT = Path(__file__).resolve().parent.parent
# Structural data derived from the KubeRay release files of the operator chart we deploy by
# scripts/derive_reference.py (committed): a chart bump without a new derivation finds no reference.
REFERENCE = DERIVED_REFERENCE


def app_env(config: Path | None = None, outdir: Path | None = None, **extra: str) -> dict:
    """The environment of an app run, as from a user's shell: without this session's config, output folder and
    fast_imports node hook (tests/conftest.py installs it in-process; main.py installs its own, or not)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_EKS_CONFIG", "CDKTF_OUTDIR", ENV_PACKAGES)}
    node_options = " ".join(t for t in env.pop("NODE_OPTIONS", "").split() if HOOK_MARKER not in t)
    if node_options:
        env["NODE_OPTIONS"] = node_options
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["CHECKPOINT_DISABLE"] = "1"
    if config is not None:
        env["RAY_EKS_CONFIG"] = str(config)
    if outdir is not None:
        env["CDKTF_OUTDIR"] = str(outdir)
    env.update(extra)
    return env


def run_app(config: Path | None = None, outdir: Path | None = None, timeout: int = 300, **extra: str):
    return subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=ROOT, env=app_env(config, outdir, **extra),
                          capture_output=True, text=True, timeout=timeout)


# `make` as a user runs it, in the environment `make test` installed already: the install targets are taken as done
# (make must not sync the shared environments again in the middle of the suite).
MAKE = ["make", "--no-print-directory", "-o", ".venv/.synced-default", "-o", "node_modules/.installed"]


# What a make above this one (`make test`) exports to its children: without them, a target runs as from a user's shell
# (a top-level make: its messages say "make:", not "make[1]:", and it takes no flags of the suite's make).
PARENT_MAKE_ENV = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")


def run_make(*args: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in env.items() if k not in PARENT_MAKE_ENV}
    return subprocess.run([*MAKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def load_stacks(outdir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(outdir.glob("stacks/*/cdk.tf.json"))}


def resources(stack: dict, rtype: str) -> dict[str, dict]:
    return stack.get("resource", {}).get(rtype, {})


def one(stack: dict, rtype: str, name: str) -> dict:
    found = resources(stack, rtype)
    assert name in found, f"{rtype}.{name} not in {sorted(found)}"
    return found[name]


def addresses(stack: dict) -> list[str]:
    out = [f"{t}.{n}" for t, byname in stack.get("resource", {}).items() for n in byname]
    out += [f"data.{t}.{n}" for t, byname in stack.get("data", {}).items() for n in byname]
    return sorted(out)


# --- The configurations the test session synthesizes: tests/conftest.py runs main.py once per name, on first use.
EXAMPLES = ROOT / "config" / "examples"

# The prod example deployed into an existing VPC, on a non-default Kubernetes version: covers the
# existing-network path, admin access entries, an S3 backend and version configurability in one synth.
EXISTING_VPC_ID = "vpc-0a1b2c3d4e5f60718"
EXISTING_PRIVATE_SUBNETS = ["subnet-0a1a1a1a1a1a1a1a1", "subnet-0b2b2b2b2b2b2b2b2", "subnet-0c3c3c3c3c3c3c3c3"]
DOCKER_HUB_SECRET_ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:ecr-pullthroughcache/hub"
EXISTING_PUBLIC_SUBNETS = ["subnet-0d4d4d4d4d4d4d4d4", "subnet-0e5e5e5e5e5e5e5e5"]


def prod_existing_vpc_config() -> dict:
    import yaml

    data = yaml.safe_load((EXAMPLES / "prod-gpu.yaml").read_text())
    data["network"] = {**data.get("network", {}), "existing": {
        "vpc_id": EXISTING_VPC_ID, "private_subnet_ids": list(EXISTING_PRIVATE_SUBNETS),
        "public_subnet_ids": list(EXISTING_PUBLIC_SUBNETS)}}
    data["cluster"] = {**data["cluster"], "kubernetes_version": "1.33"}
    # Docker Hub credentials: the image build pulls its base through an ECR pull-through cache.
    data["ray"]["image"] = {**data["ray"].get("image", {}),
                            "docker_hub_secret_arn": DOCKER_HUB_SECRET_ARN}
    return data


# The edges of the config, in one synth: the longest deployment and node group names the schema accepts,
# admins without the creator, a pinned add-on, FSx without data repository (backups on), and every optional
# AWS resource of the ray stack (orchestrator, Container Insights) so all their names are checked too.
EDGE_NAME = "very-long-deployment-name-for-32"
EDGE_ADMINS = ["arn:aws:iam::123456789012:role/PlatformAdmin", "arn:aws:iam::123456789012:role/team/Deployer"]
EDGE_PINNED_ADDON = ("vpc-cni", "v1.20.4-eksbuild.2")


def edge_config() -> dict:
    core, gpu, cpu = "core-nodes-for-ray-1", "gpu-workers-a10g-x20", "spot-cpu-workers-x20"
    return {
        "name": EDGE_NAME,
        "region": "us-west-2",
        "cluster": {
            "creator_is_admin": False,
            "admin_principal_arns": list(EDGE_ADMINS),
            "addon_versions": dict([EDGE_PINNED_ADDON]),
            "node_groups": [
                {"name": core, "role": "core", "instance_types": ["m6i.2xlarge"], "min_size": 2, "desired_size": 2},
                {"name": gpu, "role": "gpu", "instance_types": ["g5.xlarge"],
                 "ami_type": "AL2023_x86_64_NVIDIA", "min_size": 0, "desired_size": 0, "max_size": 4},
                # Several types of one shape (a group's types must agree in vCPUs, memory and GPUs).
                {"name": cpu, "role": "cpu", "instance_types": ["m6i.2xlarge", "m7i.2xlarge"], "capacity_type": "SPOT",
                 "min_size": 0, "desired_size": 0},
            ],
        },
        "fsx": {"deployment_type": "PERSISTENT_2", "data_repository": False, "backup_retention_days": 7,
                "final_backup": True},
        "ray": {"worker_groups": [{"name": "gpu-group", "node_group": gpu}]},
        "orchestrator": {"enabled": True},
        "observability": {"container_insights": True},
    }


# Two node groups of each worker role, each with its own Ray worker group whose pods would fit the other group of
# its role too: placement must follow the node group (ray-eks/node-group), not the role. The cluster model proves
# every pod can land only on its own group (tests/cluster_model), with cluster-autoscaler and with Karpenter.
def two_groups_per_role_config(autoscaler: str = "cluster-autoscaler") -> dict:
    managed = autoscaler == "cluster-autoscaler"
    sizes = {"min_size": 0, "desired_size": 0} if managed else {}
    return {
        "name": "ray-multi" if managed else "ray-multi-karp",
        "cluster": {"autoscaler": autoscaler, "node_groups": [
            {"name": "core", "role": "core", "instance_types": ["m6i.2xlarge"], "min_size": 2, "desired_size": 2},
            {"name": "gpu-a10g", "role": "gpu", "instance_types": ["g5.2xlarge"], "max_size": 2, **sizes},
            {"name": "gpu-l4", "role": "gpu", "instance_types": ["g6.2xlarge"], "max_size": 2, **sizes},
            {"name": "cpu-general", "role": "cpu", "instance_types": ["m6i.2xlarge"], "max_size": 3, **sizes},
            {"name": "cpu-memory", "role": "cpu", "instance_types": ["r6i.2xlarge"], "max_size": 3, **sizes},
        ]},
        "ray": {"worker_groups": [
            {"name": "a10g", "node_group": "gpu-a10g", "max_replicas": 2, "cpu": "7", "memory": "26Gi", "gpus": 1},
            {"name": "l4", "node_group": "gpu-l4", "max_replicas": 2, "cpu": "7", "memory": "26Gi", "gpus": 1},
            {"name": "general", "node_group": "cpu-general", "max_replicas": 3, "cpu": "6", "memory": "20Gi",
             "gpus": 0},
            {"name": "memory", "node_group": "cpu-memory", "max_replicas": 3, "cpu": "6", "memory": "48Gi",
             "gpus": 0},
        ]},
    }


# Allowed but dangerous: an API endpoint open to the internet and no destroy protection, on a
# persistent file system (so the final-backup switch shows). The security gate must catch the first.
OPEN_UNPROTECTED = {
    "name": "ray-open",
    "cluster": {"endpoint_access": "public", "public_access_cidrs": ["0.0.0.0/0"]},
    "fsx": {"deployment_type": "PERSISTENT_2", "storage_capacity_gib": 1200},
    "protection": {"prevent_destroy": False},
}

# ray.image.source other than build (tests/stacks/test_image_switch.py).
IMAGE_CUSTOM_URI = "registry.example.com/ml/ray-torch:2.58.0-1"

ConfigSource = Path | dict | None


def session_configs() -> dict[str, ConfigSource]:
    """Name -> what main.py reads: None (the defaults: no RAY_EKS_CONFIG), an example file, or a config mapping."""
    return {
        "default": None,
        "dev": EXAMPLES / "dev-cpu.yaml",  # CPU only: explicit AZs, one NAT gateway, SPOT workers, scratch FSx
        "prod": EXAMPLES / "prod-gpu.yaml",
        "existing": prod_existing_vpc_config(),
        "edge": edge_config(),
        "open": OPEN_UNPROTECTED,
        "other-region": {"region": "eu-west-1"},  # the defaults in another region (names must not collide)
        # The defaults in an existing VPC: the API tunnel without Systems Manager endpoints of its own.
        "existing-tunnel": {"network": {"existing": {
            "vpc_id": EXISTING_VPC_ID, "private_subnet_ids": list(EXISTING_PRIVATE_SUBNETS),
            "public_subnet_ids": list(EXISTING_PUBLIC_SUBNETS)}}},
        "image-stock": {"ray": {"image": {"source": "stock"}}},
        "image-custom": {"ray": {"image": {"source": "custom", "uri": IMAGE_CUSTOM_URI}}},
        "multi-group": two_groups_per_role_config(),
        # Karpenter: the example (a Spot GPU pool of three sizes, a CPU pool of mixed types), the defaults' shape with
        # Karpenter, and two pools per role.
        "karpenter": EXAMPLES / "karpenter-gpu.yaml",
        "karpenter-default": {"cluster": {"autoscaler": "karpenter"}},
        "karpenter-multi": two_groups_per_role_config("karpenter"),
    }


def attrs(resource: dict) -> dict:
    """A resource body without cdktf's ``//`` metadata (other tools add to it; tests must not depend on it)."""
    return {k: v for k, v in resource.items() if k != "//"}


def outputs(stack: dict) -> dict[str, dict]:
    return stack.get("output", {})


def stack_items(synth: dict) -> list[tuple[str, dict]]:
    """The (name, JSON) of every stack of a session synth (its ``_outdir``, ``_cfg``... entries left out)."""
    return [(k, v) for k, v in synth.items() if not k.startswith("_")]


def ref(rtype: str, name: str, attr: str) -> str:
    """The Terraform interpolation cdktf writes for a reference to another resource's attribute."""
    return f"${{{rtype}.{name}.{attr}}}"


def tf_json(text: str, placeholder: str | None = None):
    """Parse a JSON document that holds Terraform interpolations (an IAM policy, say).

    ``${replace(x, "https://", "")}`` holds unescaped quotes: valid once Terraform renders it, not before. Each
    ``${...}`` is swapped for a placeholder, the JSON parsed, and the interpolations put back verbatim -- or,
    with ``placeholder``, left as that string (to assert on the JSON's shape alone).
    """
    import json as _json

    parts, refs, i = [], [], 0
    while i < len(text):
        if text.startswith("${", i):
            depth, j, quote = 0, i + 1, False
            while j < len(text):
                c = text[j]
                if quote:
                    if c == "\\":
                        j += 1
                    elif c == '"':
                        quote = False
                elif c == "\\":
                    j += 1  # a JSON-escaped quote (\") inside the interpolation
                elif c == '"':
                    quote = True
                elif c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            refs.append(text[i:j + 1])
            parts.append(f"@@tf{len(refs) - 1}@@")
            i = j + 1
        else:
            parts.append(text[i])
            i += 1

    def restore(v):
        if isinstance(v, str):
            for n, r in enumerate(refs):
                v = v.replace(f"@@tf{n}@@", r if placeholder is None else placeholder)
            return v
        if isinstance(v, list):
            return [restore(x) for x in v]
        if isinstance(v, dict):
            return {restore(k): restore(x) for k, x in v.items()}
        return v

    return restore(_json.loads("".join(parts)))


# --- The AWS emulator (tests/deploy/emulator.py): the one place tests start and stop it (the ``emulator`` fixture of
# tests/conftest.py, or this context manager where a test needs its own, e.g. with applied quotas).
def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Emulator:
    """A running emulator: where it listens, its log, and boto3 clients against it."""

    url: str
    port: int
    log: Path

    def client(self, service: str, region: str = "us-east-1", **kwargs):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=region, aws_access_key_id="testing",
                            aws_secret_access_key="testing", **kwargs)


# --- Terraform as the deploy tests run it: make's CLI config (the provider mirror), the emulator's credentials
def terraformrc(tmp: Path) -> str:
    """The Terraform CLI config the Makefile uses (scripts/terraformrc.sh: this machine's provider mirror), or ''."""
    return subprocess.run([str(ROOT / "scripts" / "terraformrc.sh"), str(tmp / "terraformrc")],
                          capture_output=True, text=True, check=True).stdout.strip()


def terraform_env(tmp: Path, data_dir: Path, region: str) -> dict:
    """Plain terraform against the emulator: no AWS or Terraform settings of the machine's, its own data dir."""
    rc = terraformrc(tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0", TF_DATA_DIR=str(data_dir),
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=region,
               AWS_EC2_METADATA_DISABLED="true")
    if rc:
        env["TF_CLI_CONFIG_FILE"] = rc
    return env


TERRAFORM_TIMEOUT_S = 600  # a hang detector, not a time budget


def terraform(args: list[str], cwd: Path, env: dict, timeout: int = TERRAFORM_TIMEOUT_S,
              ok=(0,)) -> subprocess.CompletedProcess:
    """`terraform <args> -no-color`; a test failure with its output when it exits otherwise than ``ok``."""
    # Own process group: on a timeout, terraform and its provider plugins go together, and what
    # terraform printed so far (which resource it waits on) is in the failure.
    started = time.monotonic()
    proc = subprocess.Popen(["terraform", *args, "-no-color"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"terraform {' '.join(args)} ran over {timeout}s:\n{stdout[-6000:]}\n{stderr[-3000:]}")
    print(f"terraform {args[0]} ({cwd.name}): {time.monotonic() - started:.0f}s")  # where a slow run spends its time
    r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert r.returncode in ok, \
        f"terraform {' '.join(args)} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


@contextmanager
def emulator_server(log: Path, *args: str) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 (a free port) in its own process group, writing to ``log``; stopped (and its port
    checked closed) when the block ends. It also stops by itself if this process dies: it watches its stdin."""
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "deploy" / "emulator.py"), "--port", "0",
                                 "--exit-on-stdin-eof", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True, start_new_session=True, cwd=ROOT)
    port = None
    try:
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 1)[0]:
                line = proc.stdout.readline()
                if line.startswith("PORT "):
                    port = int(line.split()[1])
        assert port and _port_open(port), f"emulator did not start:\n{log.read_text()[-3000:]}"
        yield Emulator(f"http://127.0.0.1:{port}", port, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                pipe.close()
    assert not _port_open(port), f"port {port} still open after the emulator stopped"


# --- The Ray head's NetworkPolicy, as the API server receives it from the provider's typed resource.
def _selector(s: dict) -> dict:
    return {"matchLabels": dict(s["match_labels"])}


def network_policy_object(stack: dict, name: str = "ray_head") -> dict:
    """``kubernetes_network_policy_v1.<name>`` translated back to the networking.k8s.io/v1 object it creates."""
    res = attrs(one(stack, "kubernetes_network_policy_v1", name))
    spec = res["spec"]
    ingress = []
    for rule in spec.get("ingress", []):
        r: dict = {}
        if "from" in rule:
            r["from"] = [{("podSelector" if k == "pod_selector" else "namespaceSelector"): _selector(v)
                          for k, v in peer.items()} for peer in rule["from"]]
        if "ports" in rule:
            r["ports"] = [{"protocol": p["protocol"], "port": int(p["port"])} for p in rule["ports"]]
        ingress.append(r)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": dict(res["metadata"]),
            "spec": {"podSelector": _selector(spec["pod_selector"]), "policyTypes": list(spec["policy_types"]),
                     "ingress": ingress}}


def admits(policy: dict, labels: dict, port: int, namespace: str | None = None) -> bool:
    """NetworkPolicy ingress semantics: may a pod with ``labels`` in ``namespace`` (default: the policy's) reach the
    selected pods on TCP ``port``? (Namespaces carry kubernetes.io/metadata.name; matchLabels selectors only.)"""
    own_ns = policy["metadata"]["namespace"]
    namespace = namespace or own_ns

    def peer_ok(peer: dict) -> bool:
        ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
        ns_ok = (namespace == own_ns) if ns_sel is None else \
            ns_sel["matchLabels"].items() <= {"kubernetes.io/metadata.name": namespace}.items()
        return ns_ok and (pod_sel is None or pod_sel["matchLabels"].items() <= labels.items())

    for rule in policy["spec"]["ingress"]:
        ports_ok = "ports" not in rule or any(p["port"] == port and p["protocol"] == "TCP" for p in rule["ports"])
        if ports_ok and ("from" not in rule or any(peer_ok(p) for p in rule["from"])):
            return True
    return False
