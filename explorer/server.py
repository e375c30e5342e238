"""The explorer's web server: the page's files, the JSON API and the training events over HTTP.

``python explore.py`` runs it. HTTP itself is Tornado's, the server Jupyter runs on: it parses
the requests, routes them by path and method (405 for a method a path does not take), serves
the page's files and streams events; its HTTP server is asynchronous, so a room of pages, each
holding an event stream open, costs no thread each. What this module adds is the explorer's:

* the page's own files (``explorer/page/``) and nothing else;
* each POST's JSON body read (at most MAX_BODY_BYTES) and handed to the API's function for
  its path (``explorer/api.py``, which checks it and computes the answer) while the server
  keeps reading requests: a drawing's answers in worker processes, one per core
  (``explorer/answer_processes.py``, given by ``python explore.py``), the rest in a small pool
  of threads; the answer goes back as JSON (arrays encoded by ``explorer/json_arrays.py``), or
  a 4xx status with a one-line message when the request is refused; the server keeps serving;
* training events to each page that listens, as Server-Sent Events.

It listens on 127.0.0.1 by default, with a backlog long enough for a classroom of pages that
all ask at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from explorer import analysis, api
from explorer.answer_processes import AnswerProcesses
from explorer.api import Explorer, RequestError
from explorer.json_arrays import to_json

STATIC_DIR = Path(__file__).resolve().parent / "page"
MAX_BODY_BYTES = 1_000_000
LISTEN_BACKLOG = 1024  # connections waiting to be accepted: a room of pages asking at once
WORKER_THREADS = 4  # requests computed at once: NumPy's parts run in parallel on the cores
IDLE_SECONDS = 30  # a connection idle that long is closed: a stalled client holds nothing
EVENT_KEEPALIVE_SECONDS = 15  # a comment line on an idle event stream keeps proxies from closing it
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
    "/api/preparation": api.preparation,
    "/api/arithmetic": api.arithmetic,
    "/api/gradient": api.gradient,
    "/api/weight_gradient": api.weight_gradient,
    "/api/training_step": api.training_step,
    "/api/train": api.train,
    "/api/train/stop": api.stop_training,
    "/api/train/pace": api.pace,
    "/api/model/restore": api.restore_original,
}
# What depends only on the model and the request: answered in worker processes, if it has them.
IN_WORKER_PROCESSES = {
    "/api/analyse",
    "/api/preparation",
    "/api/arithmetic",
    "/api/gradient",
    "/api/weight_gradient",
}
ACCEPTED = {"/api/train", "/api/train/stop", "/api/train/pace"}  # 202: the run acts on it later
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


# --------------------------------------------------------------------------------------------
# The handlers: one kind per kind of path
# --------------------------------------------------------------------------------------------


class _OneLineErrors:
    """Every refusal Tornado makes (404, 405, a bad request) as the API's: a JSON line."""

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, tornado.web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        elif error is not None and status_code == 500:
            message = f"the server failed: {type(error).__name__}: {error}"
        else:
            message = self._reason
        if status_code == 405:
            allowed = ", ".join(self.SUPPORTED_METHODS)
            self.set_header("Allow", allowed)
            message = f"{self.request.method} is not allowed on {self.request.path}; use {allowed}"
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"error": " ".join(str(message).split())}))

    def log_exception(self, kind, value, traceback) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return  # a refused request is the page's business, not the terminal's
        super().log_exception(kind, value, traceback)


class _JsonAnswers(_OneLineErrors, tornado.web.RequestHandler):
    def initialize(self, server: ExplorerServer, route: Callable) -> None:
        self.server = server
        self.route = route

    def send_json(self, status: int, data: bytes) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


class GetHandler(_JsonAnswers):
    """GET /api/model, /api/testset: the API's answer, computed in the pool."""

    SUPPORTED_METHODS = ("GET",)

    async def get(self) -> None:
        status, data = await self.server.answer(lambda: self.route(self.server.explorer))
        self.send_json(status, data)


@tornado.web.stream_request_body
class PostHandler(_JsonAnswers):
    """POST /api/...: the JSON body, read up to MAX_BODY_BYTES, then the API's answer.

    The body streams in (prepare() sees the headers first), so a body that is too long is
    refused before it is read.
    """

    SUPPORTED_METHODS = ("POST",)

    def prepare(self) -> None:
        self.chunks: list[bytes] = []
        self.received = 0
        headers = self.request.headers
        lengths = {value.strip() for value in headers.get_list("Content-Length")}
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        if not lengths and not chunked:
            return self.refuse(411, "a POST needs a Content-Length header")
        if len(lengths) > 1:
            return self.refuse(400, f"Content-Length headers that differ: {', '.join(lengths)}")
        if lengths:
            (length,) = lengths
            if not (length.isascii() and length.isdigit()):
                return self.refuse(400, f"Content-Length must be a number of bytes, got {length!r}")
            if int(length) > MAX_BODY_BYTES:
                # Let Tornado read (and drop) what the client sends, briefly: closing with
                # unread bytes makes the system reset the connection, and the client may then
                # never see the answer that says why it was refused.
                self.request.connection.set_max_body_size(int(length))
                self.request.connection.set_body_timeout(1.0)
                return self.refuse(
                    413, f"request of {int(length):,} bytes; at most {MAX_BODY_BYTES:,}"
                )

    def refuse(self, status: int, message: str) -> None:
        if status != 413:
            # Tornado would refuse these framing errors again, answering a second time: the
            # connection closes after our answer, with nothing more to read.
            self.request.headers["Content-Length"] = "0"
        self.send_json(status, json.dumps({"error": message}).encode())

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self.received += len(chunk)
        if self.received > MAX_BODY_BYTES:  # a chunked body, whose length was not said
            self.send_json(
                413, json.dumps({"error": f"request over {MAX_BODY_BYTES:,} bytes"}).encode()
            )
            return
        self.chunks.append(chunk)

    async def post(self) -> None:
        if self._finished:
            return
        body = b"".join(self.chunks)
        status = 202 if self.request.path in ACCEPTED else 200
        if self.request.path in IN_WORKER_PROCESSES:
            status, data = await self.server.answer_in_process(self.route, body, status)
        else:
            status, data = await self.server.answer(
                lambda: self.route(self.server.explorer, read_json(body)), status
            )
        self.send_json(status, data)


class EventsHandler(_OneLineErrors, tornado.web.RequestHandler):
    """GET /api/train/events: Server-Sent Events, one "data:" line per event, until the
    server stops or the page goes away."""

    SUPPORTED_METHODS = ("GET",)

    def initialize(self, server: ExplorerServer) -> None:
        self.server = server
        self.queue: asyncio.Queue = asyncio.Queue()

    async def get(self) -> None:
        listener = _LoopListener(asyncio.get_running_loop(), self.queue)
        self.server.explorer.listen(listener)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-store")
        try:
            self.write(": connected\n\n")
            await self.flush()
            while True:
                try:
                    message = await asyncio.wait_for(self.queue.get(), EVENT_KEEPALIVE_SECONDS)
                except TimeoutError:
                    message = ""  # a comment line keeps idle connections open
                if message is None:
                    break
                self.write(f"data: {message}\n\n" if message else ": idle\n\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass  # the page went away
        finally:
            self.server.explorer.unlisten(listener)

    def on_connection_close(self) -> None:
        self.queue.put_nowait(None)  # the page went away: end the loop now


class _LoopListener:
    """A listener for Explorer.publish: each message, put from the training thread, arrives in
    an asyncio queue of the server's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self.loop = loop
        self.queue = queue

    def put(self, message: str | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, message)
        except RuntimeError:
            pass  # the loop has closed: the server has stopped


class PageFile(_OneLineErrors, tornado.web.StaticFileHandler):
    """One of the page's own files, as it is (with Tornado's caching by ETag)."""

    SUPPORTED_METHODS = ("GET", "HEAD")

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        self.set_header("Cache-Control", "no-cache")  # revalidate: a new version shows at once

    def get_content_type(self) -> str:
        return CONTENT_TYPES[Path(self.absolute_path).suffix]


class NotFound(_OneLineErrors, tornado.web.RequestHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "not found: %s", self.request.path)


# --------------------------------------------------------------------------------------------
# The server: listens, serves until shut down, and lets the answers in flight go out
# --------------------------------------------------------------------------------------------


class ExplorerServer:
    """The explorer's server for ``explorer`` on (host, port), listening from construction.

    Run ``serve_forever()`` in a thread (it returns after ``shutdown()``), then
    ``server_close()``; ``server_address`` is the (host, port) it listens on.
    """

    def __init__(self, explorer: Explorer, host: str, port: int, processes: int = 0):
        self.explorer = explorer
        self.sockets = tornado.netutil.bind_sockets(port, host, backlog=LISTEN_BACKLOG)
        self.server_address = self.sockets[0].getsockname()[:2]
        self.pool = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="explorer-request")
        # Drawings' answers in worker processes (none: in the pool's threads, as tests run it).
        self.processes = AnswerProcesses(explorer, processes) if processes else None
        self.in_flight = 0  # requests being answered (counted on the server's loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._shutdown_requested = False
        self._starting = threading.Lock()  # shutdown() may come before the loop has started
        self._served = threading.Event()

    def application(self) -> tornado.web.Application:
        routes: list = [(EVENT_STREAM, EventsHandler, {"server": self})]
        routes += [
            (path, GetHandler, {"server": self, "route": f}) for path, f in GET_ROUTES.items()
        ]
        routes += [
            (path, PostHandler, {"server": self, "route": f}) for path, f in POST_ROUTES.items()
        ]
        names = "|".join(path[1:].replace(".", r"\.") for path in static_files() if path != "/")
        routes += [
            (rf"/({names})", PageFile, {"path": str(STATIC_DIR)}),
            (r"/()", PageFile, {"path": str(STATIC_DIR), "default_filename": "index.html"}),
        ]
        return tornado.web.Application(
            routes,
            default_handler_class=NotFound,
            log_function=lambda handler: None,  # one line per request would drown the terminal
            compress_response=False,
        )

    async def answer(self, compute: Callable[[], Any], status: int = 200) -> tuple[int, bytes]:
        """(status, JSON bytes): ``compute()``'s value, or the API's refusal, computed in the
        pool while this loop keeps serving."""
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.pool, _answer, self.explorer, compute, status
            )
        finally:
            self.in_flight -= 1

    async def answer_in_process(
        self, route: Callable[[Explorer, dict], Any], body: bytes, status: int
    ) -> tuple[int, bytes]:
        """As answer(), for ``route(explorer, body as JSON)``: computed in a worker process,
        if the server has them."""
        processes = self.processes
        if processes is None:
            return await self.answer(lambda: route(self.explorer, read_json(body)), status)
        self.in_flight += 1
        try:
            with self.explorer.answering():
                for attempt in (1, 2):
                    future = processes.submit(_answer_from_copy, route, body, status)
                    try:
                        return await asyncio.wrap_future(future)
                    except BrokenProcessPool:  # a worker died: once more, with new workers
                        if attempt == 2:
                            message = "the process answering it stopped (killed?); ask again"
                            return 503, json.dumps({"error": message}).encode()
        finally:
            self.in_flight -= 1

    def serve_forever(self) -> None:
        try:
            asyncio.run(self._serve())
        finally:
            self._served.set()

    async def _serve(self) -> None:
        with self._starting:
            if self._shutdown_requested:
                return
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        http = tornado.httpserver.HTTPServer(
            self.application(),
            max_body_size=MAX_BODY_BYTES,
            body_timeout=IDLE_SECONDS,
            idle_connection_timeout=IDLE_SECONDS,
        )
        http.add_sockets(self.sockets)
        await self._stop.wait()
        http.stop()  # no new connections
        deadline = time.monotonic() + 10
        while self.in_flight and time.monotonic() < deadline:  # the answers being computed
            await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(http.close_all_connections(), 5)
        except TimeoutError:
            pass

    def shutdown(self) -> None:
        """Stop serving: no new connections, the answers in flight sent; returns when done
        (at once if serve_forever() has not started: it then returns as it starts)."""
        with self._starting:
            self._shutdown_requested = True
            loop, stop = self._loop, self._stop
        if loop is not None and not self._served.is_set():
            loop.call_soon_threadsafe(stop.set)
            self._served.wait()

    def server_close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.pool.shutdown(wait=False)
        if self.processes:
            self.processes.close()


def make_server(explorer: Explorer, host: str, port: int, processes: int = 0) -> ExplorerServer:
    """The explorer's server on (host, port), listening; port 0 picks a free one. With
    ``processes``, drawings are answered in that many worker processes."""
    return ExplorerServer(explorer, host, port, processes)


def _answer(explorer: Explorer, compute: Callable[[], Any], status: int) -> tuple[int, bytes]:
    """Run in the pool: ``compute()`` as JSON, or the refusal as one line."""
    with explorer.answering():
        return _as_json(compute, status)


def _answer_from_copy(
    copy: Explorer, route: Callable[[Explorer, dict], Any], body: bytes, status: int
) -> tuple[int, bytes]:
    """Run in a worker process: the route's answer to ``body``, from the explorer's copy."""
    return _as_json(lambda: route(copy, read_json(body)), status)


def _as_json(compute: Callable[[], Any], status: int) -> tuple[int, bytes]:
    """``compute()`` as JSON, or the refusal as one line."""
    try:
        return status, json.dumps(to_json(compute())).encode()
    except RequestError as error:
        return error.status, json.dumps({"error": str(error)}).encode()
    except analysis.AnalysisError as error:  # the request does not fit the model
        return 400, json.dumps({"error": str(error)}).encode()


def read_json(data: bytes) -> dict:
    """A request's body as a JSON object, or a RequestError saying why it is not one."""
    try:
        body = json.loads(data or b"{}", parse_constant=_refuse_nan_and_infinity)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise RequestError(
            400, f"the body is not valid JSON ({' '.join(str(error).split())})"
        ) from None
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    return body


def _refuse_nan_and_infinity(name: str):
    raise ValueError(f"{name} is not a number JSON allows")
