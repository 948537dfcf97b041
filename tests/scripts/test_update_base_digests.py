"""scripts/update_base_digests.py against a registry on loopback that speaks the Docker Registry HTTP API v2's token
and manifest HEAD exchange (Docker Hub itself is not reachable here), and the config pinning what it records."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from config import AppConfig, parse_config, versions
from scripts import update_base_digests as update

DIGESTS = {"2.58.0-py311": "sha256:" + "a" * 64, "2.58.0-py311-cu130": "sha256:" + "b" * 64}


class Registry(BaseHTTPRequestHandler):
    """An anonymous-pull token, then the index digest of a tag -- only with that token and an index Accept."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = parse_qs(url.query)
        ok = url.path == "/token" and q == {"service": ["registry.docker.io"],
                                            "scope": ["repository:rayproject/ray:pull"]}
        body = json.dumps({"token": "t0ken"} if ok else {}).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        prefix = "/v2/rayproject/ray/manifests/"
        tag = self.path[len(prefix):] if self.path.startswith(prefix) else None
        accepted = "application/vnd.oci.image.index.v1+json" in self.headers.get("Accept", "")
        if self.headers.get("Authorization") != "Bearer t0ken":
            self.send_response(401)
        elif tag not in DIGESTS or not accepted:
            self.send_response(404)
        else:
            self.send_response(200)
            self.send_header("Docker-Content-Digest", DIGESTS[tag])
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield ["--registry", url, "--auth", f"{url}/token"]
    server.shutdown()


@pytest.fixture
def digests_file(tmp_path, monkeypatch):
    path = tmp_path / "image_digests.json"
    shutil.copy(versions.IMAGE_DIGESTS_FILE, path)
    monkeypatch.setattr(versions, "IMAGE_DIGESTS_FILE", path)
    return path


def test_records_the_index_digest_of_every_base_image(registry, digests_file, capsys):
    assert update.main(["--ray-version", "2.58.0", *registry]) == 0
    recorded = json.loads(digests_file.read_text())["digests"]
    assert recorded == {f"rayproject/ray:{tag}": d for tag, d in DIGESTS.items()}
    assert capsys.readouterr().out.splitlines() == [f"rayproject/ray:{t}@{d}" for t, d in DIGESTS.items()]
    assert update.main(["--ray-version", "2.58.0", "--check", *registry]) == 0


def test_check_reports_a_stale_digest(registry, digests_file, capsys):
    data = json.loads(digests_file.read_text())
    data["digests"] = {"rayproject/ray:2.58.0-py311": "sha256:" + "0" * 64}
    digests_file.write_text(json.dumps(data))
    assert update.main(["--ray-version", "2.58.0", "--check", *registry]) == 1
    assert "stale: rayproject/ray:2.58.0-py311 is sha256:aaaa" in capsys.readouterr().err
    assert json.loads(digests_file.read_text()) == data, "--check writes nothing"


@pytest.mark.parametrize("args, message", [
    (["--ray-version", "9.9.9"], "HTTP 404"),  # a tag the registry does not have
    (["--registry", "http://127.0.0.1:9", "--auth", "http://127.0.0.1:9/token"], "is the registry reachable"),
])
def test_an_unknown_tag_or_an_unreachable_registry_is_one_line(registry, digests_file, capsys, args, message):
    before = digests_file.read_text()
    assert update.main([*registry, *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert digests_file.read_text() == before


def test_a_recorded_digest_pins_the_stock_pods_and_the_builds_base(monkeypatch):
    stock = parse_config({"ray": {"image": {"source": "stock"}}})
    assert stock.ray_image() == stock.stock_ray_image == stock.pinned_stock_ray_image  # nothing recorded: by tag
    monkeypatch.setitem(versions.IMAGE_DIGESTS, stock.stock_ray_image, "sha256:" + "c" * 64)
    assert stock.ray_image() == f"{stock.stock_ray_image}@sha256:{'c' * 64}"
    # The default (build) deployment's FROM is the same image, pinned the same way (stacks/infra.py passes it).
    assert AppConfig().pinned_stock_ray_image == f"{stock.stock_ray_image}@sha256:{'c' * 64}"


def test_recorded_digests_are_well_formed():
    for image, value in versions.IMAGE_DIGESTS.items():
        assert image.startswith("rayproject/ray:") and ":" in image and "@" not in image, image
        assert value.startswith("sha256:") and len(value) == 71, image
