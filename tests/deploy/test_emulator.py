"""tests/deploy/emulator.py's own fixes, where a deploy test depends on them but does not always meet them."""

from __future__ import annotations

import botocore.exceptions
import pytest


def test_an_addon_create_resent_with_its_token_answers_that_addon(emulator):
    """30. EKS's creates are idempotent on clientRequestToken: the provider resends its create with the same token
    when an answer is lost, and must get what it created, not a 409 for its own first attempt. Another token: 409."""
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
        role = "arn:aws:iam::123456789012:role/emu-node"
        entry = eks.create_access_entry(clusterName="emu-addons", principalArn=role, type="EC2_LINUX",
                                        clientRequestToken="token-3")["accessEntry"]
        assert eks.create_access_entry(clusterName="emu-addons", principalArn=role, type="EC2_LINUX",
                                       clientRequestToken="token-3")["accessEntry"] == entry
        with pytest.raises(botocore.exceptions.ClientError, match="ResourceInUseException"):
            eks.create_access_entry(clusterName="emu-addons", principalArn=role, type="EC2_LINUX",
                                    clientRequestToken="token-4")
    finally:
        eks.delete_cluster(name="emu-addons")
