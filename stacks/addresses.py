"""Readable, stable Terraform addresses.

cdktf names a nested resource ``<construct path>_<hash>`` (``aws_vpc.network_ray_24D1B1A1``). Ops teams
read and move state by address, so every stack here names each element by its construct id alone
(``aws_vpc.ray``). Two elements of one type with the same id would silently merge in the JSON, so a
clash is an error at synth.
"""

from __future__ import annotations

from typing import Any

from cdktf import TerraformDataSource, TerraformResource, TerraformStack
from constructs import Node

# cdktf's own classes take the Terraform type as an argument: instances of one class may have different types.
_GENERIC = (TerraformResource, TerraformDataSource)


class AddressClash(Exception):
    pass


class ReadableStack(TerraformStack):
    """A stack whose element addresses are their construct ids."""

    def __init__(self, scope, id: str) -> None:
        super().__init__(scope, id)
        self._addresses: dict[tuple[str, str], Any] = {}  # (kind, id) -> the construct node that took it
        self._kinds: dict[type, str] = {}  # Python class -> Terraform type (one jsii call per class)

    # jsii exposes the protected TerraformStack.allocateLogicalId under this name; cdktf calls it once
    # per element, the first time the element is referenced or synthesized. Every attribute read here is a
    # round trip to the jsii kernel, so this asks for as little as it can (type checks are Python's own).
    def _allocate_logical_id(self, tf_element) -> str:
        if isinstance(tf_element, Node):
            # A TerraformAsset asks with its construct node: it names its folder under assets/.
            node, kind = tf_element, "asset"
        else:
            node = tf_element.node
            cached = self._kinds.get(type(tf_element))
            if cached is not None:
                kind = cached
            else:
                kind = getattr(tf_element, "terraform_resource_type", None) or type(tf_element).__name__
                if isinstance(tf_element, TerraformDataSource):
                    kind = f"data.{kind}"
                if type(tf_element) not in _GENERIC:  # a generated class has one Terraform type
                    self._kinds[type(tf_element)] = kind
        element_id = node.id
        key = (kind, element_id)
        first = self._addresses.setdefault(key, node)
        if first is not node and first.path != node.path:
            raise AddressClash(f"{kind}.{element_id} is declared twice ({first.path} and {node.path}); "
                               "give one of them another construct id")
        return element_id
