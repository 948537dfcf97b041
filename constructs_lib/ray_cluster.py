"""The RayCluster as a kubernetes_manifest: the API object itself, as KubeRay's samples write it.

Lives in its own stack (ray-cluster): kubernetes_manifest needs the CRD at plan time, which exists
only after the ray stack's operator release applied.
"""

from __future__ import annotations

from constructs import Construct

from cdktf_cdktf_provider_kubernetes.manifest import Manifest, ManifestFieldManager, ManifestTimeouts, ManifestWait

from .ray_manifests import RayClusterProps, ray_cluster


class RayClusterManifest(Construct):
    manifest: Manifest
    object: dict

    def __init__(self, scope: Construct, id: str, props: RayClusterProps) -> None:
        super().__init__(scope, id)
        self.object = ray_cluster(props)
        self.manifest = Manifest(self, id, manifest=self.object, field_manager=ManifestFieldManager(name="terraform", force_conflicts=True),
                                 wait=ManifestWait(fields={"status.state": "ready"}),
                                 timeouts=ManifestTimeouts(create="20m", update="20m", delete="10m"))
