"""config/versions.py: every Kubernetes version the config accepts can be deployed whole (issue 12, point 7)."""

from __future__ import annotations

from config import versions


def _minor(v: str) -> tuple[int, int]:
    major, minor = v.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def test_the_default_is_the_newest_supported_version():
    assert max(versions.SUPPORTED_KUBERNETES_VERSIONS, key=_minor) == versions.DEFAULT_KUBERNETES_VERSION


def test_every_supported_version_has_a_cluster_autoscaler_of_its_minor():
    # cluster-autoscaler simulates the scheduler of its own minor version; the ray stack looks the tag up by
    # the cluster's version (a missing one would fail the synth).
    tags = versions.CLUSTER_AUTOSCALER_IMAGE_TAGS
    assert sorted(tags) == sorted(versions.SUPPORTED_KUBERNETES_VERSIONS)
    for k8s, tag in tags.items():
        assert _minor(tag) == _minor(k8s), (k8s, tag)
