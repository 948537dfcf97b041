"""Readable, stable Terraform addresses.

cdktf names a nested resource ``<construct path>_<hash>`` (``aws_vpc.network_ray_24D1B1A1``). Ops teams
read and move state by address, so every stack here names each element by its construct id alone
(``aws_vpc.ray``). Two elements of one type with the same id would silently merge in the JSON, so a
clash is an error at synth.
"""

from __future__ import annotations

from cdktf import TerraformDataSource, TerraformElement, TerraformStack


class AddressClash(Exception):
    pass


class ReadableStack(TerraformStack):
    """A stack whose element addresses are their construct ids."""

    def __init__(self, scope, id: str) -> None:
        super().__init__(scope, id)
        self._addresses: dict[tuple[str, str], str] = {}

    # jsii exposes the protected TerraformStack.allocateLogicalId under this name; cdktf calls it once
    # per element, the first time the element is referenced or synthesized.
    def _allocate_logical_id(self, tf_element) -> str:  # noqa: D401
        if not TerraformElement.is_terraform_element(tf_element):
            # A TerraformAsset asks with its construct node: it names its folder under assets/.
            node, kind = tf_element, "asset"
        else:
            node = tf_element.node
            kind = getattr(tf_element, "terraform_resource_type", None) or type(tf_element).__name__
        if TerraformDataSource.is_terraform_data_source(tf_element):
            kind = f"data.{kind}"
        key = (kind, node.id)
        if key in self._addresses and self._addresses[key] != node.path:
            raise AddressClash(f"{kind}.{node.id} is declared twice ({self._addresses[key]} and {node.path}); "
                               "give one of them another construct id")
        self._addresses[key] = node.path
        return node.id
