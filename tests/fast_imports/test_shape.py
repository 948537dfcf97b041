"""fast_imports.shape: which generated ``__init__`` the lazy loader may trim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fast_imports import PROVIDER_PACKAGES, UnsupportedLayout, analyse_init
from tests.fast_imports.fakes import FAKE_INIT


@pytest.mark.parametrize("package", sorted(PROVIDER_PACKAGES))
def test_installed_provider_init_passes_the_shape_check(package):
    origin = importlib.util.find_spec(package).origin
    _, submodules = analyse_init(Path(origin).read_text(), package, origin)
    assert "provider" in submodules and len(submodules) == len(set(submodules))


@pytest.mark.parametrize("change, why", [
    (lambda s: s + "DEFAULT = alpha.VALUE\n", "does not end with"),
    (lambda s: s.replace("publication.publish()", "publication.publish()\nclass Extra:\n    pass"),
     "unexpected statement"),
    (lambda s: s.replace("    return None", "    return alpha"), "uses submodule 'alpha'"),
    (lambda s: s.replace("from ._jsii import *", "from ._jsii import *\nfrom .alpha import VALUE"),
     "unexpected import"),
    (lambda s: s.replace("import jsii", "import jsii\nimport fake_provider.alpha"), "import of the package itself"),
    (lambda s: s.replace('    "beta",\n', ""), "__all__ differs"),
    (lambda s: s.replace("import typing", "if True:\n    import typing"), "unexpected statement"),
    (lambda s: s.replace("def check_type", "def __getattr__"), "defines its own __getattr__"),
    (lambda s: s.replace("import typing", "import typing("), "cannot parse"),
])
def test_shape_check_rejects_what_it_does_not_know(change, why):
    assert analyse_init(FAKE_INIT, "fake_provider")[1] == ["alpha", "beta"]
    with pytest.raises(UnsupportedLayout, match=why.replace("(", r"\(")):
        analyse_init(change(FAKE_INIT), "fake_provider")

