"""fast_imports.shape: which generated ``__init__`` the lazy loader may trim, and which is lazy already."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fast_imports import PROVIDER_PACKAGES, UnsupportedLayout, analyse_init
from fast_imports.shape import is_lazy_init, parse_init
from tests.fast_imports.fakes import FAKE_INIT, JSII_LAZY_INIT


@pytest.mark.parametrize("package", sorted(PROVIDER_PACKAGES))
def test_installed_provider_init_passes_the_shape_check(package):
    origin = importlib.util.find_spec(package).origin
    source = Path(origin).read_text()
    _, submodules = analyse_init(source, package, origin)
    assert "provider" in submodules and len(submodules) == len(set(submodules))
    assert not is_lazy_init(parse_init(source))


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


def test_jsii_lazy_init_is_recognised_not_rejected():
    # Without the lazy check the loader would reject jsii's own lazy output, and warn for nothing.
    with pytest.raises(UnsupportedLayout):
        analyse_init(JSII_LAZY_INIT, "fake_provider")
    assert is_lazy_init(parse_init(JSII_LAZY_INIT))
    assert not is_lazy_init(parse_init(FAKE_INIT))
    # A __getattr__ next to eager submodule imports is not lazy.
    assert not is_lazy_init(parse_init(JSII_LAZY_INIT + "from . import alpha as alpha\n"))
