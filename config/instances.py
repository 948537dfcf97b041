"""The EC2 instance-type catalogue (``config/instance_types.yaml``, built by scripts/build_instance_catalogue.py):
the one table of vCPUs, memory, NVIDIA GPUs, architecture, accelerator label and max pods the config trusts.

Loaded once, on first use (synth and config validation both need it; a bad-input run stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

CATALOGUE = Path(__file__).resolve().parent / "instance_types.yaml"


@dataclass(frozen=True)
class InstanceType:
    name: str
    family: str
    architecture: str  # x86_64 | arm64
    vcpu: int
    memory_mib: int  # DescribeInstanceTypes SizeInMiB: what the instance has, not what the kernel reports
    nvidia_gpus: int
    max_pods: int  # ENI limit: what nodeadm sizes kube-reserved memory with
    gpu_model: str | None = None  # A10G, T4, ... for NVIDIA GPU families
    accelerator_label: str | None = None  # k8s.amazonaws.com/accelerator value for NVIDIA GPU families

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    @property
    def describe(self) -> str:
        """"8 vCPU, 32 GiB, 1 NVIDIA A10G" (what an error message shows)."""
        gpus = f", {self.nvidia_gpus} NVIDIA {self.gpu_model}" if self.nvidia_gpus else ""
        return f"{self.vcpu} vCPU, {self.memory_gib:g} GiB{gpus}"


@lru_cache(maxsize=1)
def _raw() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(CATALOGUE.read_text(), Loader=loader)


@lru_cache(maxsize=1)
def catalogue() -> dict[str, InstanceType]:
    raw = _raw()
    out = {}
    for name, spec in raw["instance_types"].items():
        family = name.split(".", 1)[0]
        out[name] = InstanceType(name=name, family=family, **raw["families"][family], **spec)
    return out


def families() -> tuple[str, ...]:
    """Every catalogued family, in the catalogue's order."""
    return tuple(_raw()["families"])


def gpu_families() -> tuple[str, ...]:
    """Families with NVIDIA GPUs."""
    return tuple(f for f, spec in _raw()["families"].items() if spec.get("gpu_model"))


def sizes(family: str) -> tuple[str, ...]:
    return tuple(t.name.split(".", 1)[1] for t in catalogue().values() if t.family == family)


def lookup(name: str) -> InstanceType | None:
    return catalogue().get(name)
