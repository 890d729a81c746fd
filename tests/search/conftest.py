"""Fixtures for search: the fake model (tests/fake_model.py, with its stand-in contrastive head), solid-colour
images, an image index, and a local HTTP server to fetch images from."""

import contextlib
import http.server
import io
import threading

import pytest
from PIL import Image

from captioning.data.synthetic import COLORS
from tests.fake_model import export_fake_model


def colour_png(name_or_rgb, size=(16, 16)) -> bytes:
    rgb = COLORS[name_or_rgb] if isinstance(name_or_rgb, str) else name_or_rgb
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def search_export(tmp_path_factory):
    """An export base path holding version 1 of the fake model; treat as read-only."""
    base_path = tmp_path_factory.mktemp("search_export")
    export_fake_model(str(base_path), 1)
    return str(base_path)


@pytest.fixture(scope="session")
def search_model(search_export):
    from captioning.search.search_model import open_local

    return open_local(search_export)


def open_index(index_dir, engine_name):
    """An ImageIndex on `engine_name`: "edge" (the embedded default) or "server" (qdrant-client's local mode,
    which speaks a Qdrant server's API, standing in for one: no server can run in the tests)."""
    from captioning.search.index import ImageIndex

    if engine_name == "edge":
        return ImageIndex(index_dir)
    from qdrant_client import QdrantClient

    from captioning.search.server_engine import ServerEngine

    return ImageIndex(index_dir, engine=ServerEngine(QdrantClient(path=f"{index_dir}-server")))


@pytest.fixture(params=["edge", "server"])
def index(request, tmp_path):
    """The same index tests run on both engines."""
    index = open_index(str(tmp_path / "index"), request.param)
    yield index
    index.close()


@pytest.fixture
def colour_folder(tmp_path):
    """A folder of one PNG per synthetic colour (one of them in a subfolder): {colour: path}."""
    paths = {}
    for n, name in enumerate(COLORS):
        folder = tmp_path / "images" / ("nested" if n == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        path.write_bytes(colour_png(name))
        paths[name] = str(path)
    return paths


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}  # path -> (status, headers, body)

    def do_GET(self):
        status, headers, body = self.routes.get(self.path, (404, {}, b"not found"))
        if callable(body):
            body = body()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving_files(routes):
    """A loopback HTTP server answering {path: (status, headers, body)}; yields its base URL."""
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def file_server():
    """`with file_server({path: (status, headers, body)}) as base_url:`."""
    return serving_files
