"""The explorer's API: what the server knows between requests, and one function per request.

Each function takes the :class:`Explorer` (the model, the test set, the training run) and the
request's JSON body, checks what the page sent, asks ``explorer/analysis.py`` (or the training
run) and returns plain values and NumPy arrays; ``explorer/server.py`` carries them over HTTP.

    GET  /api/model        model_info   the model: architecture, class names, filters, history;
                                        or why there is none and the command that trains one
    POST /api/analyse      analyse      {image} + optional "disabled": {"conv1": [2]},
                                        "cover": [t, l, b, r] -> the prepared image, the
                                        probabilities, every layer's output
    POST /api/arithmetic   arithmetic   {image, "layer": "conv2" | "pool1", "channel", "row",
                                        "column"} -> the numbers behind that pixel
    POST /api/gradient     gradient     {image, "class": 7} -> d logit / d input and every stage
    GET  /api/testset      test_set     accuracy, confusion matrix, the most confident mistakes
    POST /api/train        train        {"mode": "quick" | "full"}: started, or 409 if one runs
    POST /api/train/stop   stop_training    stop the run; it saves first

    {image} is {"drawing": {"width": W, "height": H, "ink": [W*H numbers in 0..1]}} (0 paper,
    1 ink, row by row) or {"test_index": i}, a digit of the model's test set.

The experiments ("disabled", "cover") apply to the analysis, the arithmetic and the gradient
alike, and each answer says which were applied ("experiments": {} for none). A request that
cannot be answered raises RequestError (an HTTP status and one line for the page) or
analysis.AnalysisError (400).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import download_mnist
import inference
from explorer import analysis
from explorer.json_arrays import to_json
from plumbing.atomic_write import FileWriteError, check_writable
from plumbing.checks import is_int
from predict_digit import ImageError, prepare_digit
from training.model_file import TRAIN_COMMAND, ModelFileError

MAX_DRAWING_SIDE = 1024
QUICK_RUN = {"limit": 6000, "epochs": 3}  # a few thousand images: seconds, not minutes
# The settings a run started from the page takes from the model explored: it trains that network.
ARCHITECTURE_SETTINGS = ("num_filters", "kernel_sizes", "paddings", "hidden", "dropout", "dataset")


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------
# What the server knows between requests: the model, the test set, the training run
# --------------------------------------------------------------------------------------------


class Explorer:
    """The model explored, its test set and the training run, shared by every request.

    Requests read it; a finished run replaces the classifier as one assignment, so a request
    sees the old model or the new, never half of each.
    """

    def __init__(self, model_path: str, data_dir: str | None = None):
        self.model_path = model_path
        self.data_dir = data_dir
        self.classifier: inference.Classifier | None = None
        self.model_error: str | None = None  # why there is no model, when there is none
        self.train_command: str | None = None  # the command that trains one where it belongs
        self.listeners: list[queue.Queue] = []  # one per page following the training events
        self.lock = threading.RLock()  # guards the training run and the listeners
        self.training_run = None  # live_training.TrainingRun, while or after one runs
        self.answered = threading.Condition()  # notified each time a request has been answered
        self.requests_in_progress = 0
        self._test_set: tuple[str, np.ndarray, np.ndarray] | None = None  # dataset, images, labels
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

    def dataset_name(self) -> str:
        return self.classifier.config.get("dataset", "mnist") if self.classifier else "mnist"

    def load_test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's test images (N, 28, 28) uint8 and labels (N,) int64, loaded once per
        dataset."""
        dataset = self.dataset_name()
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

    def training(self) -> bool:
        return self.training_run is not None and self.training_run.running()

    def start_training(self, mode: str) -> None:
        """Train the network explored (``mode`` "quick": QUICK_RUN; "full": the trainer's
        defaults), saving to the model's path; refused while a run is running."""
        # The trainer's modules load only when a run starts, so that the server starts fast.
        from explorer import live_training
        from training.settings import TrainConfig

        with self.lock:
            if self.training():
                raise RequestError(409, "a training run is already running; stop it first")
            settings = dict(QUICK_RUN) if mode == "quick" else {}
            if self.classifier is not None:
                trained_with = self.classifier.config  # the settings saved with the model
                for name in ARCHITECTURE_SETTINGS:
                    if name in trained_with:
                        settings[name] = trained_with[name]
            config = TrainConfig(
                **settings, save_path=self.model_path, data_dir=self.data_dir, verbose=False
            )
            images, _ = self.load_test_set()
            self.training_run = live_training.TrainingRun(config, self.publish, images[0], images)
            self.training_run.start()

    def stop_training(self) -> None:
        with self.lock:
            if not self.training():
                raise RequestError(409, "no training run is running")
            self.training_run.stop()

    def publish(self, event: dict[str, Any]) -> None:
        """Send a training event to every page listening (Server-Sent Events).

        Encoded here, in the training thread, so that each page gets the arrays as they were
        when the event was made, not as the next steps change them.
        """
        message = json.dumps(to_json(event))
        if event["type"] in ("finished", "stopped"):
            self.load_model()  # the run saved the model: the page now explores that one
        with self.lock:
            for listener in self.listeners:
                listener.put(message)

    def listen(self) -> queue.Queue:
        """A queue that receives each training event as a JSON string, and None at the end."""
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
        with self.answered:
            self.requests_in_progress += 1
        try:
            yield
        finally:
            with self.answered:
                self.requests_in_progress -= 1
                self.answered.notify_all()

    def close(self, wait_seconds: float = 10) -> str | None:
        """Stop a running training run (it saves first) and the listeners, let the requests
        being answered finish (the interpreter must not exit under them), and return the
        run's last message."""
        with self.lock:
            run = self.training_run
            for listener in self.listeners:
                listener.put(None)  # ends each event stream
        message = None
        if run is not None and run.running():
            run.stop()
            run.join()
            message = run.result["message"] if run.result else None
        with self.answered:
            self.answered.wait_for(lambda: self.requests_in_progress == 0, timeout=wait_seconds)
        return message


def _no_model_advice(model_path: str, error: ModelFileError) -> tuple[str, str | None]:
    """Why ``model_path`` gave no model, and the one command that trains one there (None when
    the trainer could not save there: the reason then says why)."""
    reason = error.reason  # the page and the terminal offer their own ways to train one
    try:
        check_writable(model_path, "model file")
    except FileWriteError as write_error:
        return f"{reason}; {write_error}", None
    return reason, f"{TRAIN_COMMAND} --save {model_path}"


# --------------------------------------------------------------------------------------------
# What a request is about: the image, and the model with the page's experiments applied
# --------------------------------------------------------------------------------------------


def image_from_request(explorer: Explorer, body: dict) -> np.ndarray:
    """The uint8 (28, 28) image a request is about: a drawing, prepared as predict_digit
    prepares a photo, or a digit of the test set."""
    if "test_index" in body:
        images, _ = explorer.load_test_set()
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


def classifier_and_image(
    explorer: Explorer, body: dict
) -> tuple[inference.Classifier, np.ndarray, dict[str, Any]]:
    """The classifier and the image a request is about, with the page's experiments applied,
    and the experiments applied (empty: none), which each answer repeats.

    ``"disabled": {"conv1": [0, 3]}`` switches filters off in a copy of the network (the shared
    one is untouched); ``"cover": [top, left, bottom, right]`` blanks part of the 28x28 image.
    """
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
        classifier = dataclasses.replace(classifier, cnn=cnn)
        experiments["disabled"] = disabled
    if box:
        image = analysis.cover(image, tuple(box))
        experiments["cover"] = box
    return classifier, image, experiments


# --------------------------------------------------------------------------------------------
# One function per request
# --------------------------------------------------------------------------------------------


def model_info(explorer: Explorer) -> dict[str, Any]:
    classifier = explorer.classifier
    if classifier is None:
        return {
            "ok": False,
            "error": explorer.model_error,
            "path": explorer.model_path,
            "train_command": explorer.train_command,
            "training": explorer.training(),
        }
    cnn = classifier.cnn
    return {
        "ok": True,
        "path": explorer.model_path,
        "training": explorer.training(),
        "dataset": explorer.dataset_name(),
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


def analyse(explorer: Explorer, body: dict) -> dict[str, Any]:
    classifier, image, experiments = classifier_and_image(explorer, body)
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
    classifier, image, experiments = classifier_and_image(explorer, body)
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
    classifier, image, experiments = classifier_and_image(explorer, body)
    class_index = body.get("class")
    if not is_int(class_index):
        raise RequestError(400, f"class must be an integer, got {class_index!r}")
    return {**analysis.class_gradients(classifier, image, class_index), "experiments": experiments}


def test_set(explorer: Explorer) -> dict[str, Any]:
    classifier = explorer.require_classifier()
    images, labels = explorer.load_test_set()
    report = analysis.test_set_report(classifier, images, labels)
    for mistake in report["mistakes"]:
        mistake["image"] = images[mistake["index"]]
    return report


def train(explorer: Explorer, body: dict) -> dict[str, Any]:
    mode = body.get("mode", "quick")
    if mode not in ("quick", "full"):
        raise RequestError(400, f"mode must be 'quick' or 'full', got {mode!r}")
    explorer.start_training(mode)
    return {"started": True, "mode": mode, "save_path": explorer.model_path}


def stop_training(explorer: Explorer, body: dict) -> dict[str, Any]:
    explorer.stop_training()
    return {"stopping": True}
