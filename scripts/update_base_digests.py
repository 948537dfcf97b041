"""Record the digests of the Ray base images the deploy can use, so the image build's FROM (and stock pods) are
pinned by content, not by a movable tag.

    python -m scripts.update_base_digests [--ray-version 2.58.0] [--check]   (make update-base-digests)

For each image the config can pick at that Ray version (rayproject/ray:<version>-py311 for CPU clusters, -py311-<cuda>
for GPU ones: config/models.py stock_ray_image), asks the registry for the digest its tag points at -- the Docker
Registry HTTP API v2: an anonymous pull token, then ``HEAD /v2/<repository>/manifests/<tag>``, whose
``Docker-Content-Digest`` header is the digest of the manifest list (index) every platform's pull resolves through
-- and writes them to config/image_digests.json. ``--check`` only reports whether the recorded digests are current.
Run it when you change ray.ray_version or want a rebuilt tag; commit the file. The registry must be reachable.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from config import versions

REGISTRY = "https://registry-1.docker.io"
AUTH = "https://auth.docker.io/token"
AUTH_SERVICE = "registry.docker.io"
REPOSITORY = "rayproject/ray"
# What a multi-platform pull asks for: the index first (the digest docker resolves a tag to), then single manifests.
ACCEPT = ", ".join(["application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])
TIMEOUT_SECONDS = 30


class RegistryError(Exception):
    pass


def images(ray_version: str) -> list[str]:
    """Every base image the config can choose at ``ray_version`` (CPU and GPU clusters)."""
    return [f"{REPOSITORY}:{ray_version}-py311", f"{REPOSITORY}:{ray_version}-py311-{versions.RAY_IMAGE_CUDA}"]


def _open(req: urllib.request.Request):
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as e:
        raise RegistryError(f"{req.get_method()} {req.full_url}: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise RegistryError(f"{req.get_method()} {req.full_url}: {getattr(e, 'reason', e)}") from None


def digest(image: str, registry: str = REGISTRY, auth: str = AUTH) -> str:
    repository, tag = image.rsplit(":", 1)
    query = urllib.parse.urlencode({"service": AUTH_SERVICE, "scope": f"repository:{repository}:pull"})
    with _open(urllib.request.Request(f"{auth}?{query}")) as r:
        token = json.loads(r.read()).get("token")
    if not token:
        raise RegistryError(f"{auth}: no token in the answer")
    req = urllib.request.Request(f"{registry}/v2/{repository}/manifests/{tag}", method="HEAD",
                                 headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT})
    with _open(req) as r:
        value = r.headers.get("Docker-Content-Digest", "")
    if not value.startswith("sha256:") or len(value) != len("sha256:") + 64:
        raise RegistryError(f"{image}: the registry sent no sha256 Docker-Content-Digest (got {value!r})")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ray-version", default=versions.RAY_VERSION)
    ap.add_argument("--registry", default=REGISTRY, help=argparse.SUPPRESS)
    ap.add_argument("--auth", default=AUTH, help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help="report stale or missing digests, write nothing")
    ns = ap.parse_args(argv)
    path = versions.IMAGE_DIGESTS_FILE
    data = json.loads(path.read_text())
    try:
        found = {image: digest(image, ns.registry, ns.auth) for image in images(ns.ray_version)}
    except RegistryError as e:
        print(f"error: {e} (is the registry reachable from here?)", file=sys.stderr)
        return 1
    if ns.check:
        stale = [i for i, d in found.items() if data["digests"].get(i) != d]
        for image in stale:
            print(f"stale: {image} is {found[image]}, recorded {data['digests'].get(image)}", file=sys.stderr)
        return 1 if stale else 0
    data["digests"] = dict(sorted({**data["digests"], **found}.items()))
    path.write_text(json.dumps(data, indent=1) + "\n")
    for image, value in found.items():
        print(f"{image}@{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
