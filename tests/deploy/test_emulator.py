"""tests/deploy/emulator.py's own fixes, where a deploy test depends on them but does not always meet them."""

from __future__ import annotations

import botocore.exceptions
import pytest


def test_an_addon_create_resent_with_its_token_answers_that_addon(emulator):
    """9. EKS's CreateAddon is idempotent on clientRequestToken: the provider resends its create with the same token
    when an answer is lost, and must get the add-on, not a 409 for its own first attempt. Another token: 409."""
    ec2, eks = emulator.client("ec2"), emulator.client("eks")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=f"us-west-2{az}")
               ["Subnet"]["SubnetId"] for i, az in enumerate("ab")]
    eks.create_cluster(name="emu-addons", roleArn="arn:aws:iam::123456789012:role/emu",
                       resourcesVpcConfig={"subnetIds": subnets})
    try:
        first = eks.create_addon(clusterName="emu-addons", addonName="vpc-cni", clientRequestToken="token-1")["addon"]
        again = eks.create_addon(clusterName="emu-addons", addonName="vpc-cni", clientRequestToken="token-1")["addon"]
        assert again["addonArn"] == first["addonArn"]
        with pytest.raises(botocore.exceptions.ClientError, match="ResourceInUseException"):
            eks.create_addon(clusterName="emu-addons", addonName="vpc-cni", clientRequestToken="token-2")
        assert eks.list_addons(clusterName="emu-addons")["addons"] == ["vpc-cni"]
    finally:
        eks.delete_cluster(name="emu-addons")
