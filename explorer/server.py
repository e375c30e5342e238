"""The explorer's web server: the page's files and its JSON API (``python explore.py`` runs it).

A thin web server over the project's own functions: ``predict_digit.prepare_digit`` prepares a
drawing exactly as it prepares a photo, ``explorer/analysis.py`` computes what the page shows (with
SimpleCNN's stateless forward and backward passes, no TensorFlow), and ``explorer/live_training.py``
runs the training program's own ``train()`` in the background when the page asks for it. The
page itself is plain HTML, CSS and JavaScript in ``explorer/page/``, served as they are.

The JSON API (arrays travel as {"shape": [...], "data": base64 of float32, little-endian}):

    GET  /api/model            the model: architecture, class names, filters, history; or an error
    POST /api/analyse          {image} + optional "disabled": {"conv1": [2]}, "cover": [t, l, b, r]
                               -> the prepared image, probabilities, every layer's output
    POST /api/arithmetic       {image, "layer": "conv2" | "pool1", "channel", "row", "column"}
    POST /api/gradient         {image, "class": 7} -> d logit / d input and every stage
    GET  /api/testset          accuracy, confusion matrix, the most confident mistakes
    POST /api/train            {"mode": "quick" | "full"}: 202 started, 409 if one is running
    POST /api/train/stop       stop the run; it saves first
    GET  /api/train/events     Server-Sent Events: the run's progress

    {image} is {"drawing": {"width": W, "height": H, "ink": [W*H numbers in 0..1]}} (0 paper,
    1 ink, row by row) or {"test_index": i}, a digit of the model's test set.

It listens on 127.0.0.1 by default and serves only its own files. Every request is checked:
a bad one gets a 4xx answer with a one-line message, and the server keeps serving.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

import download_mnist
import inference
from explorer import analysis
from plumbing.atomic_write import FileWriteError, check_writable
from plumbing.checks import is_int
from predict_digit import ImageError, prepare_digit
from training.model_file import TRAIN_COMMAND, ModelFileError

STATIC_DIR = Path(__file__).resolve().parent / "page"
MAX_BODY_BYTES = 1_000_000
MAX_DRAWING_SIDE = 1024
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
QUICK_RUN = {"limit": 6000, "epochs": 3}  # a few thousand images: seconds, not minutes


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------
# The explorer's state: the model, the test set, the training run and its listeners
# --------------------------------------------------------------------------------------------


def _no_model_advice(model_path: str, error: ModelFileError) -> tuple[str, str | None]:
    """Why ``model_path`` gave no model, and the one command that trains one there (None when
    the trainer could not save there: the reason then says why)."""
    reason = error.reason  # the page and the terminal offer their own ways to train one
    try:
        check_writable(model_path, "model file")
    except FileWriteError as write_error:
        return f"{reason}; {write_error}", None
    return reason, f"{TRAIN_COMMAND} --save {model_path}"


class Explorer:
    """What the server knows between requests. Requests read it; a finished run replaces the
    classifier as one assignment, so a request sees the old model or the new, never half."""

    def __init__(self, model_path: str, data_dir: str | None = None):
        self.model_path = model_path
        self.data_dir = data_dir
        self.classifier: inference.Classifier | None = None
        self.model_error: str | None = None  # why there is no model, when there is none
        self.train_command: str | None = None  # the command that trains one where it belongs
        self.listeners: list[queue.Queue] = []
        self.lock = threading.RLock()  # guards the training run and the listeners
        self.run = None  # live_training.TrainingRun, while or after one runs
        self.idle = threading.Condition()  # notified when a request has been answered
        self.requests_in_progress = 0
        self._test_set: tuple[Any, np.ndarray, np.ndarray] | None = None
        self.load_model()

    def load_model(self) -> None:
        try:
            self.classifier = inference.load_classifier(self.model_path)
            self.model_error = self.train_command = None
        except ModelFileError as error:
            self.classifier = None
            self.model_error, self.train_command = _no_model_advice(self.model_path, error)

    def require_classifier(self) -> inference.Classifier:
        classifier = self.classifier
        if classifier is None:
            raise RequestError(503, f"no model is loaded: {self.model_error}")
        return classifier

    def dataset(self) -> str:
        return self.classifier.config.get("dataset", "mnist") if self.classifier else "mnist"

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's test images and labels (loaded once per dataset)."""
        dataset = self.dataset()
        if self._test_set is None or self._test_set[0] != dataset:
            folder = Path(self.data_dir) if self.data_dir else None
            folder = folder or download_mnist.default_data_dir(dataset)
            shipped = dataset == "mnist"  # MNIST's archives ship; others would be downloaded
            if not shipped and not (folder / "test_images.npy").is_file():
                raise RequestError(
                    503,
                    f"the {dataset} test set is not in {folder}; build it with: python "
                    f"download_mnist.py --dataset {dataset}",
                )
            try:
                _, _, images, labels = download_mnist.load_dataset(folder, dataset)
            except download_mnist.DatasetError as error:
                raise RequestError(503, str(error)) from None
            self._test_set = (dataset, images, labels.astype(np.int64))
        return self._test_set[1], self._test_set[2]

    def publish(self, event: dict[str, Any]) -> None:
        """Send a training event to every page listening (Server-Sent Events)."""
        message = json.dumps(to_json(event))
        if event["type"] in ("finished", "stopped"):
            self.load_model()  # the run saved the model: the page now explores that one
        with self.lock:
            for listener in self.listeners:
                listener.put(message)

    def start_training(self, mode: str) -> dict[str, Any]:
        from explorer import live_training
        from training.settings import TrainConfig

        if mode not in ("quick", "full"):
            raise RequestError(400, f"mode must be 'quick' or 'full', got {mode!r}")
        with self.lock:
            if self.run is not None and self.run.running():
                raise RequestError(409, "a training run is already running; stop it first")
            settings = dict(QUICK_RUN) if mode == "quick" else {}
            if self.classifier is not None:  # train the network being explored
                architecture = self.classifier.config
                network = ("num_filters", "kernel_sizes", "paddings", "hidden", "dropout")
                for name in (*network, "dataset"):
                    if name in architecture:
                        settings[name] = architecture[name]
            config = TrainConfig(
                **settings, save_path=self.model_path, data_dir=self.data_dir, verbose=False
            )
            images, _ = self.test_set()
            self.run = live_training.TrainingRun(config, self.publish, images[0], images)
            self.run.start()
        return {"started": True, "mode": mode, "save_path": self.model_path}

    def stop_training(self) -> dict[str, Any]:
        with self.lock:
            if self.run is None or not self.run.running():
                raise RequestError(409, "no training run is running")
            self.run.stop()
        return {"stopping": True}

    def listen(self) -> queue.Queue:
        listener = queue.Queue()
        with self.lock:
            self.listeners.append(listener)
        return listener

    def unlisten(self, listener: queue.Queue) -> None:
        with self.lock:
            self.listeners.remove(listener)

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Count the requests being answered, so that close() can wait for them."""
        with self.idle:
            self.requests_in_progress += 1
        try:
            yield
        finally:
            with self.idle:
                self.requests_in_progress -= 1
                self.idle.notify_all()

    def close(self, wait_seconds: float = 10) -> str | None:
        """Stop a running training run (it saves first) and the listeners, let the requests
        being answered finish (the interpreter must not exit under them), and return the
        run's last message."""
        with self.lock:
            run = self.run
            for listener in self.listeners:
                listener.put(None)  # ends each event stream
        message = None
        if run is not None and run.running():
            run.stop()
            run.join()
            message = run.result["message"] if run.result else None
        with self.idle:
            self.idle.wait_for(lambda: self.requests_in_progress == 0, timeout=wait_seconds)
        return message


# --------------------------------------------------------------------------------------------
# Requests: checked input in, JSON out
# --------------------------------------------------------------------------------------------


def image_from_request(explorer: Explorer, body: dict) -> np.ndarray:
    """The uint8 (28, 28) image a request is about: a drawing, prepared as predict_digit
    prepares a photo, or a digit of the test set."""
    if "test_index" in body:
        images, _ = explorer.test_set()
        index = body["test_index"]
        if not is_int(index) or not 0 <= index < len(images):
            raise RequestError(400, f"test_index must be 0 to {len(images) - 1}, got {index!r}")
        return images[index]
    drawing = body.get("drawing")
    if not isinstance(drawing, dict):
        raise RequestError(400, 'give the image as "drawing" {width, height, ink} or "test_index"')
    width, height, ink = drawing.get("width"), drawing.get("height"), drawing.get("ink")
    for name, side in (("width", width), ("height", height)):
        if not is_int(side) or not 8 <= side <= MAX_DRAWING_SIDE:
            raise RequestError(400, f"drawing {name} must be 8 to {MAX_DRAWING_SIDE}, got {side!r}")
    if not isinstance(ink, list) or len(ink) != width * height:
        count = len(ink) if isinstance(ink, list) else "no list"
        raise RequestError(
            400, f"drawing ink must hold width x height = {width * height} numbers, got {count}"
        )
    try:
        ink = np.asarray(ink, dtype=np.float64).reshape(height, width)
    except (TypeError, ValueError):
        raise RequestError(400, "drawing ink must be numbers from 0 to 1") from None
    if not np.isfinite(ink).all() or ink.min() < 0 or ink.max() > 1:
        raise RequestError(400, "drawing ink must be finite numbers from 0 to 1")
    try:
        return prepare_digit((1.0 - ink).astype(np.float32))  # grey: 1 paper, 0 ink
    except ImageError as error:
        raise RequestError(422, str(error)) from None


def subject(explorer: Explorer, body: dict) -> tuple[inference.Classifier, np.ndarray, dict]:
    """The model and the image a request is about, with the page's experiments applied:
    ``"disabled": {"conv1": [0, 3]}`` switches filters off, ``"cover": [top, left, bottom,
    right]`` blanks part of the 28x28 image. Returns them and the experiments (empty: none)."""
    classifier = explorer.require_classifier()
    image = image_from_request(explorer, body)
    disabled = body.get("disabled") or {}
    if not isinstance(disabled, dict) or not all(
        isinstance(v, list) and all(is_int(i) for i in v) for v in disabled.values()
    ):
        raise RequestError(400, 'disabled must look like {"conv1": [0, 3]}')
    box = body.get("cover")
    if box is not None and not (isinstance(box, list) and len(box) == 4 and all(map(is_int, box))):
        raise RequestError(
            400, "cover must be [top, left, bottom, right] in pixels of the 28x28 image"
        )
    experiments = {}
    if disabled:
        cnn = analysis.network_with_filters_off(classifier.cnn, disabled)
        classifier = dataclasses.replace(classifier, cnn=cnn)  # the shared one is untouched
        experiments["disabled"] = disabled
    if box:
        image = analysis.cover(image, tuple(box))
        experiments["cover"] = box
    return classifier, image, experiments


def analyse(explorer: Explorer, body: dict) -> dict[str, Any]:
    classifier, image, experiments = subject(explorer, body)
    answer = analysis.analyse(classifier, image)
    return {
        "image": answer.image,
        "probabilities": answer.probabilities,
        "prediction": answer.prediction,
        "label": classifier.class_names[answer.prediction],
        "layers": [
            {"name": layer.name, "kind": layer.kind, "scale": layer.scale, "values": layer.values}
            for layer in answer.layers
        ],
        "experiments": experiments,
    }


def arithmetic(explorer: Explorer, body: dict) -> dict[str, Any]:
    classifier, image, experiments = subject(explorer, body)
    layer = body.get("layer")
    position = [body.get(name) for name in ("channel", "row", "column")]
    if not isinstance(layer, str) or not all(map(is_int, position)):
        raise RequestError(400, 'give layer (e.g. "conv1"), channel, row and column as integers')
    if layer.startswith("conv"):
        answer = analysis.conv_arithmetic(classifier, image, layer, *position)
    elif layer.startswith("pool"):
        answer = analysis.pool_arithmetic(classifier, image, layer, *position)
    else:
        raise RequestError(
            400, f"unknown layer {layer!r}: the arithmetic is shown for conv and pool layers"
        )
    return {**answer, "experiments": experiments}


def gradient(explorer: Explorer, body: dict) -> dict[str, Any]:
    classifier, image, experiments = subject(explorer, body)
    class_index = body.get("class")
    if not is_int(class_index):
        raise RequestError(400, f"class must be an integer, got {class_index!r}")
    return {**analysis.class_gradients(classifier, image, class_index), "experiments": experiments}


def model_info(explorer: Explorer) -> dict[str, Any]:
    classifier = explorer.classifier
    running = explorer.run is not None and explorer.run.running()
    if classifier is None:
        return {
            "ok": False,
            "error": explorer.model_error,
            "path": explorer.model_path,
            "train_command": explorer.train_command,
            "training": running,
        }
    cnn = classifier.cnn
    return {
        "ok": True,
        "path": explorer.model_path,
        "training": running,
        "dataset": explorer.dataset(),
        "class_names": classifier.class_names,
        "summary": cnn.summary(),
        "stages": [
            {
                "name": f"conv{number}",
                "filters": stage.out_channels,
                "in_channels": stage.in_channels,
                "kernel_size": stage.kernel_size,
                "padding": stage.padding,
                "conv_size": stage.conv_size,
                "out_size": stage.out_size,
            }
            for number, stage in enumerate(cnn.stages, start=1)
        ],
        "hidden": [len(bias) for _, bias in classifier.head.weights[:-1]],
        "num_features": cnn.num_features,
        "filters": {
            f"conv{number}": {"scale": float(np.abs(f).max()), "values": f}
            for number, f in enumerate(cnn.filters, start=1)
        },
        "history": classifier.history,
    }


def test_set(explorer: Explorer) -> dict[str, Any]:
    classifier = explorer.require_classifier()
    images, labels = explorer.test_set()
    report = analysis.test_set_report(classifier, images, labels)
    for mistake in report["mistakes"]:
        mistake["image"] = images[mistake["index"]]
    return report


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """Plain JSON values; float arrays become {"shape", "data": base64 float32}, uint8 images
    {"shape", "bytes": base64 uint8}, both little-endian and row-major; other integer arrays
    nested lists."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8:
            return {"shape": list(value.shape), "bytes": _base64(value)}
        if np.issubdtype(value.dtype, np.integer):
            return value.tolist()  # counts (a confusion matrix): exact, and small
        return {"shape": list(value.shape), "data": _base64(value.astype("<f4"))}
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _base64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

GET_ROUTES: dict[str, Callable[[Explorer], Any]] = {
    "/api/model": model_info,
    "/api/testset": test_set,
}
POST_ROUTES: dict[str, Callable[[Explorer, dict], Any]] = {
    "/api/analyse": analyse,
    "/api/arithmetic": arithmetic,
    "/api/gradient": gradient,
    "/api/train": lambda explorer, body: explorer.start_training(body.get("mode", "quick")),
    "/api/train/stop": lambda explorer, body: explorer.stop_training(),
}


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
        with self.explorer.answering():
            self.answer_get()

    def do_POST(self) -> None:
        with self.explorer.answering():
            self.answer_post()

    def answer_get(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path == "/api/train/events":
                self.stream_events()
            elif path in GET_ROUTES:
                self.send_json(200, GET_ROUTES[path](self.explorer))
            elif path in self.files:
                self.send_file(self.files[path])
            else:
                raise RequestError(404, f"not found: {path}")
        except RequestError as error:
            self.send_json(error.status, {"error": str(error)})
        except analysis.ExplainError as error:
            self.send_json(400, {"error": str(error)})

    def answer_post(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path not in POST_ROUTES:
                raise RequestError(404, f"not found: {path}")
            status = 202 if path.startswith("/api/train") else 200
            self.send_json(status, POST_ROUTES[path](self.explorer, self.read_json()))
        except RequestError as error:
            self.send_json(error.status, {"error": str(error)})
        except analysis.ExplainError as error:
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
            body = json.loads(data or b"{}", parse_constant=_refuse_constant)
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
