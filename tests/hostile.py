"""A hostile feed host on 127.0.0.1 (random port), for the bounded-fetch tests.

    with HostileHost(trickle_interval=2.0) as host:
        host.url("/forever")     # 200, an endless body (no Content-Length): counts what it sent in host.sent
        host.url("/huge")        # 200, Content-Length: 1 GiB, then an endless body
        host.url("/trickle")     # 200, then one byte every `trickle_interval` seconds, for up to 10 minutes
        host.url("/loop")        # 302 -> /loop2 -> /loop -> ... (a redirect loop)
The first path segment picks the behaviour: "/forever/feed/" is an endless feed URL to the sources.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fakeblog import serve_local

CHUNK = b"<!-- " + b"x" * 65_000 + b" -->\n"
FEED_START = b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>t</title>\n'


class HostileHost:
    def __init__(self, trickle_interval: float = 2.0):
        self.trickle_interval = trickle_interval
        self.sent = 0  # body bytes written by the endless responses (all requests)
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> HostileHost:
        self._server = serve_local(_Handler, host=self)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def count(self, n: int) -> None:
        with self._lock:
            self.sent += n


class _Handler(BaseHTTPRequestHandler):
    host: HostileHost
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.host.requests += 1
        path = self.path.split("?")[0]
        kind, _, rest = path.strip("/").partition("/")
        try:
            if kind in ("loop", "loop2"):
                self.send_response(302)
                self.send_header("Location", ("/loop2/" if kind == "loop" else "/loop/") + rest)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return  # keep-alive, as a real server would
            elif kind in ("forever", "huge"):
                self._headers(length=2 ** 30 if kind == "huge" else None)
                self.wfile.write(FEED_START)
                while not self.host._stop.is_set():
                    self.wfile.write(CHUNK)
                    self.host.count(len(CHUNK))
            elif kind == "trickle":
                self._headers(length=None)
                for _ in range(int(600 / self.host.trickle_interval)):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    if self.host._stop.wait(self.host.trickle_interval):
                        break
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
        except OSError:
            pass  # the client hung up: what the tests want
        self.close_connection = True

    def _headers(self, length: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
