"""The image holds what the job imports: every third-party module imported anywhere under training/ is provided by
training/requirements.txt -- the one list the built image installs (training/Dockerfile) and job submissions pass as
runtime_env pip with a stock or custom image -- or, for Ray alone, by the base image.

Imports are read with ast from every .py file (top level, inside functions, in try/except alike); the standard
library (sys.stdlib_module_names) and training's own modules are not third-party. Import names are mapped to the
distributions that install them with importlib.metadata.packages_distributions() in this environment (PIL -> pillow).

The local test environment (Pipfile [training], locked in Pipfile.lock) pins the same versions, so the tests run
the job with the libraries the image gets.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import re
import shutil
import sys
import tomllib
from pathlib import Path

from conftest import REPO_ROOT, TRAINING_DIR

from stacks.contract import job_requirements

# The base image (rayproject/ray) installs Ray itself, at the config's ray_version.
BASE_IMAGE_PROVIDES = {"ray"}
REQUIREMENT_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: Path) -> dict[str, str]:
    """distribution -> pinned version, from a requirements file of `name==version` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = REQUIREMENT_RE.match(line)
            assert m, f"{path.name}: {line!r} is not pinned as name==version"
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def imported_modules(directory: Path) -> dict[str, set[str]]:
    """top-level module -> files importing it, for every absolute import in directory/*.py."""
    found: dict[str, set[str]] = {}
    for path in sorted(directory.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.name)
    return found


def third_party(directory: Path) -> dict[str, set[str]]:
    own = {p.stem for p in directory.glob("*.py")} | {directory.name}
    return {m: files for m, files in imported_modules(directory).items()
            if m not in sys.stdlib_module_names and m != "__future__" and m not in own}


def missing_requirements(directory: Path, pins: dict[str, str]) -> dict[str, str]:
    """module -> why it is not covered: no requirement installs it (and the base image does not provide it)."""
    dists = metadata.packages_distributions()
    missing = {}
    for module, files in sorted(third_party(directory).items()):
        if module in BASE_IMAGE_PROVIDES:
            continue
        provided_by = {normalise(d) for d in dists.get(module, [])}
        if not provided_by:
            missing[module] = f"imported by {', '.join(sorted(files))}, installed by no distribution here"
        elif not provided_by & set(pins):
            missing[module] = (f"imported by {', '.join(sorted(files))}, from {', '.join(sorted(provided_by))}, "
                               "which training/requirements.txt does not pin")
    return missing


# --------------------------------------------------------------------------------------------------- the image test
def test_every_third_party_import_is_a_requirement():
    pins = requirements(TRAINING_DIR / "requirements.txt")
    modules = third_party(TRAINING_DIR)
    assert {"torch", "torchvision", "numpy", "PIL", "pyarrow", "ray"} <= set(modules)  # it sees the job's imports
    assert missing_requirements(TRAINING_DIR, pins) == {}


def test_a_module_added_without_its_requirement_fails(tmp_path):
    copy = tmp_path / "training"
    shutil.copytree(TRAINING_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    pins = requirements(copy / "requirements.txt")
    # A new module of the job that imports a library the image does not get (installed here, for the tests).
    (copy / "metrics_export.py").write_text("def dump(x):\n    import yaml\n    return yaml.safe_dump(x)\n")
    missing = missing_requirements(copy, pins)
    assert set(missing) == {"yaml"} and "pyyaml" in missing["yaml"] and "metrics_export.py" in missing["yaml"]
    # ... and an import of a library that is not installed at all is caught too.
    (copy / "metrics_export.py").write_text("import not_a_real_module_xyz\n")
    assert set(missing_requirements(copy, pins)) == {"not_a_real_module_xyz"}
    # Adding the requirement covers it; a stdlib or own-module import needs none.
    (copy / "metrics_export.py").write_text("import json\nimport preprocessing\nimport yaml\n")
    assert missing_requirements(copy, {**pins, "pyyaml": "6.0.3"}) == {}


def test_ray_is_not_a_requirement():
    """Ray's version is the config's and the base image's; a ray pin in runtime_env pip would be rewritten by Ray."""
    pins = requirements(TRAINING_DIR / "requirements.txt")
    assert "ray" not in pins
    assert all(not r.startswith("ray") for r in job_requirements())


def test_runtime_env_pip_is_the_requirements_file():
    pins = requirements(TRAINING_DIR / "requirements.txt")
    assert [normalise(r.split("==")[0]) for r in job_requirements()] == list(pins)
    assert {normalise(r.split("==")[0]): r.split("==")[1] for r in job_requirements()} == pins


# --------------------------------------------------------------------------------------------------- one owner
def test_local_training_env_pins_the_requirements():
    """Pipfile [training] and its lock install what the image gets (plus Ray at the configured version)."""
    from config.versions import RAY_VERSION

    pins = requirements(TRAINING_DIR / "requirements.txt")
    pipfile = tomllib.loads((REPO_ROOT / "Pipfile").read_text())["training"]
    locked = json.loads((REPO_ROOT / "Pipfile.lock").read_text())["training"]
    declared = {normalise(k): v for k, v in pipfile.items()}
    # Every library Pipfile [training] names is a requirement (Ray aside) ...
    assert set(declared) <= set(pins) | {"ray"}, "Pipfile [training] names libraries the image does not get"
    for name, spec in declared.items():
        spec = spec if isinstance(spec, str) else spec["version"]
        assert name == "ray" or spec in ("*", f"=={pins[name]}"), \
            f"Pipfile [training] {name} = {spec!r}, requirements.txt pins {pins[name]}"
    # ... and the lock installs every requirement at its pinned version (pyarrow comes through ray[train]).
    for name, version in pins.items():
        assert name in locked, f"Pipfile.lock [training] does not install {name}"
        assert locked[name]["version"] == f"=={version}", f"Pipfile.lock has {name} {locked[name]['version']}"
    ray = declared["ray"]
    assert ray["version"] == f"=={RAY_VERSION}" and locked["ray"]["version"] == f"=={RAY_VERSION}"


def test_installed_versions_are_the_pinned_ones():
    for name, version in requirements(TRAINING_DIR / "requirements.txt").items():
        assert metadata.version(name) == version, name


def test_torch_is_the_cuda_build_the_base_image_matches():
    """PyPI's torch 2.14.1 wheels are CUDA 13.0 builds: the base image is the -cu130 one."""
    import torch

    from config import AppConfig
    from config.versions import RAY_IMAGE_CUDA

    assert torch.version.cuda == "13.0" and RAY_IMAGE_CUDA == "cu130"
    assert AppConfig().stock_ray_image.endswith(f"-{RAY_IMAGE_CUDA}")
