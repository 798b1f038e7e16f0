"""A real local HTTPS JWKS server for the end-to-end tests: TLS from the sandbox CA.

It serves each registered path from a callable (so a test can rotate keys) and
counts the fetches per path, which is how the tests measure Weir's refresh rate.
"""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class JwksServer:
    def __init__(self, port: int, cert: Path, key: Path) -> None:
        self.port = port
        self.documents: dict[str, Callable[[], bytes]] = {}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.hits[self.path] += 1
                    document = server.documents.get(self.path)
                if document is None:
                    self.send_error(404)
                    return
                body = document()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        with self._lock:
            return self.hits[path]

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
