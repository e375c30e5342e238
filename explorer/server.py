"""The explorer's web server: the page's files, the JSON API and the training events over HTTP.

``python explore.py`` runs it. This module is only the HTTP layer: it serves the page's own
files (``explorer/page/``, as they are), reads each request's JSON body, hands it to the API's
function for its path (``explorer/api.py``, which checks it and computes the answer) and sends
the answer back as JSON (arrays encoded by ``explorer/json_arrays.py``), or a 4xx status with a
one-line message when the request is refused; the server keeps serving. Training events go to
each page that listens as Server-Sent Events.

It listens on 127.0.0.1 by default and serves nothing but the page's own files and the API.
"""

from __future__ import annotations

import http.server
import json
import queue
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from explorer import analysis, api
from explorer.api import Explorer, RequestError
from explorer.json_arrays import to_json

STATIC_DIR = Path(__file__).resolve().parent / "page"
MAX_BODY_BYTES = 1_000_000
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
GET_ROUTES: dict[str, Callable[[Explorer], Any]] = {
    "/api/model": api.model_info,
    "/api/testset": api.test_set,
}
POST_ROUTES: dict[str, Callable[[Explorer, dict], Any]] = {
    "/api/analyse": api.analyse,
    "/api/arithmetic": api.arithmetic,
    "/api/gradient": api.gradient,
    "/api/train": api.train,
    "/api/train/stop": api.stop_training,
}
EVENT_STREAM = "/api/train/events"


def static_files() -> dict[str, Path]:
    """URL path -> file, for the page's own files only: nothing else is ever read."""
    files = {
        f"/{path.name}": path
        for path in STATIC_DIR.iterdir()
        if path.is_file() and path.suffix in CONTENT_TYPES
    }
    files["/"] = STATIC_DIR / "index.html"
    return files


class Handler(http.server.BaseHTTPRequestHandler):
    """One request: a file of the page, a JSON answer, or the training event stream."""

    explorer: Explorer  # set on the subclass make_server builds
    files: dict[str, Path]
    timeout = 30  # seconds a connection may sit idle: a stalled client cannot hold a thread
    server_version = "SimpleCNN-explorer"

    def do_GET(self) -> None:
        with self.explorer.answering(), self.refusing_with_a_message():
            path = urlsplit(self.path).path
            if path == EVENT_STREAM:
                self.stream_events()
            elif path in GET_ROUTES:
                self.send_json(200, GET_ROUTES[path](self.explorer))
            elif path in self.files:
                self.send_file(self.files[path])
            else:
                raise RequestError(404, f"not found: {path}")

    def do_POST(self) -> None:
        with self.explorer.answering(), self.refusing_with_a_message():
            path = urlsplit(self.path).path
            if path not in POST_ROUTES:
                raise RequestError(404, f"not found: {path}")
            status = 202 if path.startswith("/api/train") else 200  # accepted: a run starts/stops
            self.send_json(status, POST_ROUTES[path](self.explorer, self.read_json()))

    @contextmanager
    def refusing_with_a_message(self) -> Iterator[None]:
        """A request the API refuses is answered with its status and one line for the page."""
        try:
            yield
        except RequestError as error:
            self.send_json(error.status, {"error": str(error)})
        except analysis.AnalysisError as error:  # the request does not fit the model
            self.send_json(400, {"error": str(error)})

    def read_json(self) -> dict:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError(411, "a POST needs a Content-Length header")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body is never parsed
            self.discard_body(int(length))
            raise RequestError(413, f"request of {int(length):,} bytes; at most {MAX_BODY_BYTES:,}")
        data = self.rfile.read(int(length))
        try:
            body = json.loads(data or b"{}", parse_constant=_refuse_nan_and_infinity)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise RequestError(
                400, f"the body is not valid JSON ({' '.join(str(error).split())})"
            ) from None
        if not isinstance(body, dict):
            raise RequestError(400, "the body must be a JSON object")
        return body

    def discard_body(self, length: int) -> None:
        """Read what the client is sending of a body we refuse, briefly and up to a bound.

        Closing a connection with unread bytes makes the system send a reset, and the client
        then may never see the answer that says why it was refused.
        """
        self.connection.settimeout(0.5)
        try:
            remaining = min(length, 2 * MAX_BODY_BYTES)
            while remaining > 0 and (chunk := self.rfile.read1(min(remaining, 65536))):
                remaining -= len(chunk)
        except OSError:
            pass  # a slow or vanished client: the answer goes out all the same
        finally:
            self.connection.settimeout(self.timeout)

    def send_json(self, status: int, value: Any) -> None:
        data = json.dumps(to_json(value)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def send_file(self, path: Path) -> None:
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES[path.suffix])
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        self.end_headers()
        self.wfile.write(data)

    def stream_events(self) -> None:
        """Server-Sent Events: one "data:" line per training event, until the server stops."""
        listener = self.explorer.listen()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            self.wfile.write(b": connected\n\n")
            self.wfile.flush()
            while True:
                try:
                    message = listener.get(timeout=15)
                except queue.Empty:
                    message = ""  # a comment line keeps idle connections open
                if message is None:
                    break
                self.wfile.write(f"data: {message}\n\n".encode() if message else b": idle\n\n")
                self.wfile.flush()
        except OSError:
            pass  # the page went away
        finally:
            self.explorer.unlisten(listener)

    def log_message(self, format: str, *args) -> None:
        pass  # one line per request would drown the terminal; errors reach the page


class ExplorerHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # an open event stream must not keep the process alive

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exception(), ConnectionError):
            return  # the page went away mid-answer (a reload, a closed tab): nothing to report
        super().handle_error(request, client_address)


def make_server(explorer: Explorer, host: str, port: int) -> ExplorerHTTPServer:
    """A threaded HTTP server for ``explorer`` on (host, port); port 0 picks a free one."""
    handler = type("ExplorerHandler", (Handler,), {"explorer": explorer, "files": static_files()})
    return ExplorerHTTPServer((host, port), handler)


def _refuse_nan_and_infinity(name: str):
    raise ValueError(f"{name} is not a number JSON allows")
