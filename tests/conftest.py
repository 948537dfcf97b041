"""Session fixtures, all here: the app synthesized once per configuration (a subprocess, as users run it; ~5-10 s
each), and in-process synths of single constructs (``construct_synth``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import yaml

import fast_imports
from config import AppConfig, load_config
from tests.helpers import ConfigSource, Emulator, emulator_server, load_stacks, run_app, session_configs

# Before anything imports cdktf (nothing above does; test modules import constructs_lib at collection): the provider
# packages then load only the resources a test touches, in Python and in the jsii kernel (~15 s and 1.5 GB
# otherwise). tests/fast_imports takes it out for each of its own tests and puts it back after.
fast_imports.install()

T = TypeVar("T")


def pytest_configure(config):
    config.addinivalue_line("markers", "ray: starts a real local Ray cluster (127.0.0.1): a head, its job agent, "
                                       "Ray Train or Ray Data workers")
    # pytest-xdist registers its own marker only when it runs (-n): a plain `pytest` run must not warn about it.
    config.addinivalue_line("markers", "xdist_group(name): the tests of one group run on one xdist worker")


def pytest_collection_modifyitems(items):
    """`make test` runs on two pytest-xdist workers (--dist loadgroup): every test that starts a real Ray cluster runs
    on the same one, one after another. Two Ray clusters starting at once on 2 cores starve each other (the job agent
    or a dashboard module misses its start-up timeout)."""
    for item in items:
        if item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.xdist_group("ray"))


# ----------------------------------------------------------------------------------------- the app, per config
def _synth_app(tmp_path_factory, name: str, source: ConfigSource) -> dict:
    """main.py on ``source``: the stacks' JSON by stack name, plus ``_outdir``, ``_config`` (the file main.py
    read, None for the defaults), ``_cfg`` (the parsed config) and ``_stderr`` (its warnings)."""
    base = tmp_path_factory.mktemp(f"synth-{name}")
    config = source
    if isinstance(source, dict):
        config = base / f"{name}.yaml"
        config.write_text(yaml.safe_dump(source, sort_keys=False))
    out = base / "cdktf.out"
    r = run_app(config=config, outdir=out)
    assert r.returncode == 0, f"synth of {name} failed:\n{r.stderr[-3000:]}"
    stacks: dict[str, Any] = load_stacks(out)
    assert stacks, f"synth of {name} wrote no stacks"
    cfg = AppConfig() if config is None else load_config(str(config))  # what main.py read
    stacks.update(_outdir=out, _config=config, _cfg=cfg, _stderr=r.stderr)
    return stacks


@pytest.fixture(scope="session")
def app_synth(tmp_path_factory) -> Callable[[str], dict]:
    """``app_synth(name)``: the synth of tests/helpers.py ``session_configs()[name]``, run on first use."""
    configs = session_configs()
    done: dict[str, dict] = {}

    def synth(name: str) -> dict:
        if name not in done:
            done[name] = _synth_app(tmp_path_factory, name, configs[name])
        return done[name]

    return synth


@pytest.fixture(scope="session")
def default_synth(app_synth) -> dict:
    """The defaults: a complete GPU deployment in three AZs."""
    return app_synth("default")


@pytest.fixture(scope="session")
def infra(default_synth) -> dict:
    return default_synth["infra"]


@pytest.fixture(scope="session")
def dev_synth(app_synth) -> dict:
    """The small CPU-only dev example: explicit AZs, one NAT gateway, no GPU node group."""
    return app_synth("dev")


@pytest.fixture(scope="session")
def prod_synth(app_synth) -> dict:
    """The prod-gpu example: S3 backend, observability on (kube-prometheus-stack, monitors, Container Insights)."""
    return app_synth("prod")


@pytest.fixture(scope="session")
def existing_synth(app_synth) -> dict:
    """The prod example in an existing VPC, on Kubernetes 1.33."""
    return app_synth("existing")


@pytest.fixture(scope="session")
def edge_synth(app_synth) -> dict:
    """The config's edges: longest names, admins without the creator, a pinned add-on, FSx with backups."""
    return app_synth("edge")


@pytest.fixture(scope="session")
def open_synth(app_synth) -> dict:
    """Allowed but dangerous (tests/helpers.py OPEN_UNPROTECTED): its ``_stderr`` holds the warnings."""
    return app_synth("open")


@pytest.fixture(scope="session")
def other_region_synth(app_synth) -> dict:
    """The defaults in eu-west-1."""
    return app_synth("other-region")


# ----------------------------------------------------------------------------------------- one construct alone
@dataclass(frozen=True)
class ConstructSynth:
    """What ``construct_synth`` returns: the construct, and its stack as ``cdktf.Testing.synth`` writes it."""

    construct: Any
    json: str  # what Testing.to_have_resource_with_properties and friends take
    doc: dict  # the same, parsed

    def __repr__(self) -> str:  # what a failed assert shows: the addresses, not the whole JSON
        addresses = [f"{t}.{n}" for block in ("resource", "data") for t, names in self.doc.get(block, {}).items()
                     for n in names]
        return f"<{type(self.construct).__name__} alone: {', '.join(addresses) or 'no resources'}>"

    def has_resource(self, rtype: type | str, properties: dict | None = None) -> bool:
        """cdktf's Testing.to_have_resource_with_properties: a resource of ``rtype`` (a provider class or its
        Terraform type) whose attributes include ``properties`` (nested maps partially, lists whole)."""
        return bool(_testing().to_have_resource_with_properties(self.json, _tf_type(rtype), properties or {}))

    def has_data_source(self, rtype: type | str, properties: dict | None = None) -> bool:
        return bool(_testing().to_have_data_source_with_properties(self.json, _tf_type(rtype), properties or {}))

    def resources(self, rtype: str) -> dict[str, dict]:
        return self.doc.get("resource", {}).get(rtype, {})

    def data(self, rtype: str) -> dict[str, dict]:
        return self.doc.get("data", {}).get(rtype, {})

    def one(self, rtype: str, name: str) -> dict:
        found = self.resources(rtype)
        assert name in found, f"{rtype}.{name} not in {sorted(found)}"
        return found[name]

    def output(self, attribute: str) -> Any:
        """What the construct's output attribute resolves to in Terraform (``${aws_vpc.ray.id}``, a literal...)."""
        return self.doc["output"][attribute]["value"]


def _testing() -> Any:
    # Imported on use: only construct tests need cdktf (and its jsii kernel process) in this interpreter.
    from cdktf import Testing

    return Testing


def _tf_type(rtype: type | str) -> str:
    return rtype if isinstance(rtype, str) else rtype.TF_RESOURCE_TYPE  # type: ignore[attr-defined]


PROVIDERS = ("aws", "kubernetes", "helm")


@pytest.fixture(scope="session")
def construct_synth(tmp_path_factory) -> Callable[..., ConstructSynth]:
    """``construct_synth(build, providers=("aws",), outputs=())``: ``build(stack)`` adds one construct to an empty
    stack that has only the named providers, each of ``outputs`` (attribute names of the construct) becomes a
    Terraform output of that name, and the stack is synthesized in-process (``cdktf.Testing.synth``, validations
    on: a resource of a provider not named fails). Addresses are the constructs' ids (stacks/addresses.py
    ReadableStack), as in the app."""
    fast_imports.install()  # idempotent: in place whatever ran before
    from cdktf import TerraformOutput

    from stacks.addresses import ReadableStack

    def synth(build: Callable[[Any], T], providers: Sequence[str] = ("aws",),
              outputs: Sequence[str] = ()) -> ConstructSynth:
        unknown = set(providers) - set(PROVIDERS)
        assert not unknown, f"unknown providers {unknown}"
        app = _testing().app(outdir=str(tmp_path_factory.mktemp("construct")))
        stack = ReadableStack(app, "test")
        if "aws" in providers:
            from cdktf_cdktf_provider_aws.provider import AwsProvider

            AwsProvider(stack, "aws", region="us-west-2")
        if "kubernetes" in providers:
            from cdktf_cdktf_provider_kubernetes.provider import KubernetesProvider

            KubernetesProvider(stack, "kubernetes")
        if "helm" in providers:
            from cdktf_cdktf_provider_helm.provider import HelmProvider

            HelmProvider(stack, "helm")
        construct = build(stack)
        for attribute in outputs:
            TerraformOutput(stack, attribute, value=getattr(construct, attribute))
        out = _testing().synth(stack, run_validations=True)
        return ConstructSynth(construct, out, json.loads(out))

    return synth


# ----------------------------------------------------------------------------------------- the AWS emulator
@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Iterator[Emulator]:
    """The AWS emulator (tests/deploy/emulator.py) for the tests of one module, stopped when they are done."""
    with emulator_server(tmp_path_factory.mktemp("emulator") / "emulator.log") as emu:
        yield emu
