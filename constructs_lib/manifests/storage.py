"""The FSx for Lustre file system as a static PersistentVolume and its ReadWriteMany claim."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FsxVolumeProps:
    name: str
    namespace: str
    file_system_id: str
    dns_name: str
    mount_name: str
    capacity_gib: int


def fsx_persistent_volume(props: FsxVolumeProps) -> dict:
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": props.name},
        "spec": {
            "capacity": {"storage": f"{props.capacity_gib}Gi"},
            "volumeMode": "Filesystem",
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",  # the file system outlives the claim
            "storageClassName": "",
            "mountOptions": ["flock"],
            "claimRef": {"namespace": props.namespace, "name": props.name},
            "csi": {"driver": "fsx.csi.aws.com", "volumeHandle": props.file_system_id,
                    "volumeAttributes": {"dnsname": props.dns_name, "mountname": props.mount_name}},
        },
    }


def fsx_persistent_volume_claim(props: FsxVolumeProps) -> dict:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": props.name, "namespace": props.namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": props.name,
                 "resources": {"requests": {"storage": f"{props.capacity_gib}Gi"}}},
    }
