"""scripts/build_instance_catalogue.py: what it keeps of the research catalogue, and that the committed file is
its output (structure and numbers only, sources cited in the header)."""

from __future__ import annotations

import pytest
import yaml

from config.instances import CATALOGUE
from scripts.build_instance_catalogue import FAMILY_FIELDS, TYPE_FIELDS, build

SOURCE = {
    "source": {"specs": "long prose that must not be copied"},
    "families": {
        "m6i": {"category": "general_purpose", "architecture": "x86_64", "sizes": ["large"], "spec_source": "x"},
        "g5": {"category": "gpu", "architecture": "x86_64", "sizes": ["xlarge"], "gpu_model": "A10G",
               "accelerator_label": "nvidia-a10g", "accelerator_label_source": "upstream", "gpu_memory_gib": 24},
        "c5a": {"category": "compute", "architecture": "x86_64", "sizes": ["metal"]},
    },
    "instance_types": {
        "m6i.large": {"vcpu": 2, "memory_gib": 8, "memory_mib": 8192, "nvidia_gpus": 0, "max_pods": 29,
                      "max_pods_mng": 29, "al2023_kube_reserved": {"cpu_m": 70}, "notes": ["prose"]},
        "g5.xlarge": {"vcpu": 4, "memory_mib": 16384, "nvidia_gpus": 1, "max_pods": 58, "gpu_memory_mib": 22888},
        "c5a.metal": {"vcpu": None, "memory_mib": None, "nvidia_gpus": 0, "max_pods": 737},
    },
}


def test_build_keeps_numbers_and_structure_only():
    data = yaml.safe_load(build(SOURCE))
    assert data == {
        "families": {"m6i": {"architecture": "x86_64"},
                     "g5": {"architecture": "x86_64", "gpu_model": "A10G", "accelerator_label": "nvidia-a10g"}},
        "instance_types": {"m6i.large": {"vcpu": 2, "memory_mib": 8192, "nvidia_gpus": 0, "max_pods": 29},
                           "g5.xlarge": {"vcpu": 4, "memory_mib": 16384, "nvidia_gpus": 1, "max_pods": 58}},
    }


def test_build_rejects_a_gpu_family_without_its_model():
    bad = {**SOURCE, "families": {**SOURCE["families"], "g5": {"category": "gpu", "architecture": "x86_64"}}}
    with pytest.raises(ValueError, match="g5"):
        build(bad)


def test_committed_catalogue_has_the_generated_shape():
    text = CATALOGUE.read_text()
    assert text.startswith("# EC2 instance types") and "aws/karpenter-provider-aws@" in text
    data = yaml.safe_load(text)
    assert set(data) == {"families", "instance_types"}
    assert all(set(f) <= set(FAMILY_FIELDS) for f in data["families"].values())
    assert all(set(t) == set(TYPE_FIELDS) for t in data["instance_types"].values())
    # What build() writes for this content is this file, byte for byte (a hand edit breaks it).
    assert build({"families": {k: {**v, "category": "gpu" if "gpu_model" in v else "other"}
                               for k, v in data["families"].items()},
                  "instance_types": data["instance_types"]}) == text
