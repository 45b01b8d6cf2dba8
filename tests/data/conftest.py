"""Fixtures for the data tests: an IDX writer independent of tinyai, and a local HTTP server."""
from __future__ import annotations

import gzip
import http.server
import struct
import threading

import numpy as np
import pytest


def _write_idx(path, array, *, gz=False, magic=None, cut=0, extra=b""):
    """Write ``array`` (uint8) as an IDX file with struct, so the reader is checked against
    the format itself and not against tinyai's own writer.

    ``magic`` replaces the 4-byte magic number, ``cut`` drops that many bytes
    from the end, ``extra`` appends bytes; ``gz`` compresses the result.
    """
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    content = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    content += array.tobytes() + extra
    if cut:
        content = content[:-cut]
    if gz:
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


@pytest.fixture
def write_idx():
    return _write_idx


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so closing after a handler is a real close.
    protocol_version = "HTTP/1.0"

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        server = self.server
        server.requests.append(self.path)
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404, "not found")
            return
        body, mode = route
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "ok":
            self.wfile.write(body)
        elif mode == "cut":
            # Announce the whole body, send half, then hang up.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif mode == "stall":
            # Send half, then go silent until the test ends (the client must time out).
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            server.stop.wait(10)

    def log_message(self, format, *args):  # keep the test output clean
        pass


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 serving byte strings by path."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.requests = []
        self.httpd.stop = threading.Event()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}/"

    def serve(self, path: str, body: bytes, mode: str = "ok") -> None:
        self.httpd.routes["/" + path.lstrip("/")] = (body, mode)

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def close(self):
        self.httpd.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def http_server():
    server = LocalServer()
    try:
        yield server
    finally:
        server.close()
