"""`medvision-eval view --serve`: the viewer folder over HTTP on 127.0.0.1, images rendered on demand.

Only files inside the viewer folder are served (resolved paths, symlinks included); `/render/<id>.png`
renders one sample's image; anything else is refused (404 for an unknown path or sample, 400 for a
malformed request). Only GET and HEAD are answered.
"""

from __future__ import annotations

import mimetypes
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .build import Builder

HOST = "127.0.0.1"
RENDER = re.compile(r"^/render/([0-9a-f]{16}(?:-\d+)?)\.png$")


def make_handler(root: Path, builder: Builder) -> type[BaseHTTPRequestHandler]:
    """Request handler class bound to one viewer folder and its builder."""
    root = root.resolve()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        server_version = "medvision-viewer"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            return

        def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server API
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            raw = urlsplit(self.path).path
            if "\x00" in raw or "\\" in unquote(raw):
                self._send(HTTPStatus.BAD_REQUEST, b"bad path\n")
                return
            path = unquote(raw)
            if path.startswith("/render/"):
                match = RENDER.match(path)
                if match is None:
                    self._send(HTTPStatus.BAD_REQUEST, b"expected /render/<sample id>.png\n")
                    return
                sid = match.group(1)
                if sid not in builder.by_sid:
                    self._send(HTTPStatus.NOT_FOUND, b"unknown sample id\n")
                    return
                with lock:
                    png, why = builder.image_for(sid)
                if png is None:
                    self._send(HTTPStatus.NOT_FOUND, (why or "image unavailable").encode() + b"\n")
                    return
                self._send(HTTPStatus.OK, png, "image/png")
                return
            rel = path.lstrip("/") or "index.html"
            target = (root / rel).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                self._send(HTTPStatus.NOT_FOUND, b"not found\n")
                return
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith("javascript"):
                ctype += "; charset=utf-8"
            self._send(HTTPStatus.OK, target.read_bytes(), ctype)

        def _refuse(self) -> None:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only viewer\n")

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    return Handler


def make_server(root: Path, builder: Builder, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for the viewer folder bound to 127.0.0.1 (port 0: any free port)."""
    server = ThreadingHTTPServer((HOST, port), make_handler(root, builder))
    server.daemon_threads = True
    return server
