"""The explorer's API: what the server knows between requests, and one function per request.

Each function takes the :class:`Explorer` (the model, the test set, the training run) and the
request's JSON body, checks what the page sent, asks ``explorer/analysis.py`` (or the training
run) and returns plain values and NumPy arrays; ``explorer/server.py`` carries them over HTTP.

    GET  /api/model            model_info   the model: architecture, class names, filters,
                                            history, where runs save; or why there is none
    POST /api/analyse          analyse      {image} + optional "disabled": {"conv1": [2]},
                                            "cover": [t, l, b, r] -> the prepared image, the
                                            probabilities, every layer's output
    POST /api/arithmetic       arithmetic   {image, "layer": "conv2" | "pool1", "channel",
                                            "row", "column"} -> the numbers behind that pixel
    POST /api/gradient         gradient     {image, "class": 7, optional "versus": 1} ->
                                            d (logit 7 [- logit 1]) / d input and every stage
    POST /api/weight_gradient  weight_gradient  {image, "class", optional "versus", "layer",
                                            "filter", "channel", "row", "column"} -> one
                                            filter weight's gradient, position by position
    POST /api/training_step    training_step    {image, "label": 3} -> one training step on a
                                            small batch, stage by stage, and Adam's update
    GET  /api/testset          test_set     accuracy, confusion matrix, the most confident
                                            mistakes
    POST /api/train            train        {"mode": "quick" | "full", optional "epochs",
                                            "learning_rate", "num_filters"}: started, or 409
    POST /api/train/stop       stop_training    stop the run; it saves first
    POST /api/train/pace       pace         {"pace": "pause" | "step" | "slow" | "run"}
    POST /api/model/restore    restore_original explore the --model file again

    {image} is {"drawing": {"width": W, "height": H, "ink": [W*H numbers in 0..1]}} (0 paper,
    1 ink, row by row; or, as the page sends it, "ink": {"shape": [H, W], "bytes": base64 of
    uint8 levels, 0 paper .. 255 ink}) or {"test_index": i}, a digit of the model's test set.

The experiments ("disabled", "cover") apply to the analysis, the arithmetic and the gradients
alike, and each answer says which were applied ("experiments": {} for none). A request that
cannot be answered raises RequestError (an HTTP status and one line for the page) or
analysis.AnalysisError (400). With ``--read-only``, the requests that change what everyone sees
(train, stop, pace, restore) need the teacher's token ("teacher_token" in the body).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import queue
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import download_mnist
import inference
from explorer import analysis
from explorer.json_arrays import to_json, uint8_from_json
from plumbing.atomic_write import FileWriteError
from plumbing.checks import is_finite_number, is_int
from predict_digit import ImageError, preparation_steps
from training import model_file
from training.model_file import TRAIN_COMMAND, ModelFileError

MAX_DRAWING_SIDE = 1024
QUICK_RUN = {"limit": 6000, "epochs": 3}  # a few thousand images: seconds, not minutes
# The settings a run started from the page takes from the model explored: it trains that network.
ARCHITECTURE_SETTINGS = ("num_filters", "kernel_sizes", "paddings", "hidden", "dropout", "dataset")
# What a page may ask of a run: bounds that keep one shared server responsive.
MAX_EPOCHS = 30
MAX_FILTERS = 64
STEP_BATCH = 8  # images in the training step shown stage by stage: the one explored and 7 more
NO_DIGIT_IN_DRAWING = (
    "no digit found in the drawing: the pad is blank, or inked all over; draw the digit with a "
    "few strokes on the white pad"
)


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

    ``original_path`` is the --model file; ``model_path`` the file explored now: the original,
    or the file a training run saved (``run_path``, never the original when it holds a model).
    Requests read it; a finished run replaces the classifier as one assignment, so a request
    sees the old model or the new, never half of each.
    """

    def __init__(self, model_path: str, data_dir: str | None = None, read_only: bool = False):
        self.original_path = model_path
        self.model_path = model_path
        self.data_dir = data_dir
        self.read_only = read_only
        # With --read-only, the token that lets the teacher's page train anyway.
        self.teacher_token = secrets.token_urlsafe(16) if read_only else None
        self.classifier: inference.Classifier | None = None
        self.model_error: str | None = None  # why there is no model, when there is none
        self.train_command: str | None = None  # the command that trains one where it belongs
        self.listeners: list[queue.Queue] = []  # one per page following the training events
        self.lock = threading.RLock()  # guards the training run, the model's path, listeners
        self.training_run = None  # live_training.TrainingRun, while or after one runs
        self.answered = threading.Condition()  # notified each time a request has been answered
        self.requests_in_progress = 0
        self._test_set: tuple[str, np.ndarray, np.ndarray] | None = None  # dataset, images, labels
        self.load_model()
        # Where runs save, decided once: beside the original, which they never replace.
        self.run_path, refusal = run_save_path(model_path, self.classifier is not None)
        self.run_refusal = None if self.run_path else refusal  # why no run can save
        if self.classifier is None:
            if refusal:  # the trainer would not save at --model's path: say why, and where
                self.model_error += f"; {refusal}"
                if self.run_path:
                    self.model_error += f"; a run saves to {self.run_path} instead"
            if self.run_path:
                self.train_command = f"{TRAIN_COMMAND} --save {self.run_path}"

    def load_model(self) -> None:
        try:
            self.classifier = inference.load_classifier(self.model_path)
            self.model_error = None
        except ModelFileError as error:
            self.classifier = None
            self.model_error = error.reason  # the page and the terminal offer ways to train one

    def for_answers(self) -> Explorer:
        """A copy holding only what answering a drawing reads (the model explored now, where
        its test set is), for a worker process: no training run, no listeners, no locks."""
        copy = object.__new__(Explorer)
        copy.__dict__.update(
            original_path=self.original_path,
            model_path=self.model_path,
            data_dir=self.data_dir,
            read_only=self.read_only,
            classifier=self.classifier,
            model_error=self.model_error,
            _test_set=None,  # loaded there when a request asks for a test digit
        )
        return copy

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

    def check_control(self, body: dict) -> None:
        """Refuse, in --read-only mode, a request without the teacher's token (403)."""
        if not self.read_only:
            return
        token = body.get("teacher_token")
        if not isinstance(token, str) or not hmac.compare_digest(token, self.teacher_token):
            raise RequestError(
                403,
                "this explorer is read-only (--read-only): only the teacher's page can start, "
                "stop or pace training, or restore the model",
            )

    def start_training(self, mode: str, changes: dict[str, Any] | None = None) -> None:
        """Train the network explored (``mode`` "quick": QUICK_RUN; "full": the trainer's
        defaults), with the page's ``changes`` (epochs, learning_rate, num_filters), saving to
        ``run_path``; refused while a run is running."""
        # The trainer's modules load only when a run starts, so that the server starts fast.
        from explorer import live_training
        from training.settings import ConfigError, TrainConfig

        with self.lock:
            if self.training():
                raise RequestError(409, "a training run is already running; stop it first")
            if self.run_path is None:
                raise RequestError(409, f"a training run could not save: {self.run_refusal}")
            settings = dict(QUICK_RUN) if mode == "quick" else {}
            if self.classifier is not None:
                trained_with = self.classifier.config  # the settings saved with the model
                for name in ARCHITECTURE_SETTINGS:
                    if name in trained_with:
                        settings[name] = trained_with[name]
            settings.update(changes or {})
            try:
                config = TrainConfig(
                    **settings, save_path=self.run_path, data_dir=self.data_dir, verbose=False
                )
            except ConfigError as error:
                raise RequestError(400, str(error)) from None
            images, _ = self.load_test_set()
            self.training_run = live_training.TrainingRun(config, self.publish, images[0], images)
            self.training_run.start()

    def stop_training(self) -> None:
        with self.lock:
            if not self.training():
                raise RequestError(409, "no training run is running")
            self.training_run.stop()

    def pace_training(self, pace: str) -> None:
        with self.lock:
            if not self.training():
                raise RequestError(409, "no training run is running")
            self.training_run.set_pace(pace)

    def restore_original(self) -> None:
        """Explore the --model file again, telling every page."""
        with self.lock:
            if self.training():
                raise RequestError(409, "a training run is running; stop it first")
            if self.model_path == self.original_path:
                raise RequestError(
                    409, f"the page explores the original already, {self.model_path}"
                )
            self.model_path = self.original_path
            self.load_model()
        self.publish(
            {
                "type": "model",
                "message": f"The original model is back: the page explores {self.model_path} "
                "again.",
            }
        )

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every page listening (Server-Sent Events).

        Encoded here, in the training thread, so that each page gets the arrays as they were
        when the event was made, not as the next steps change them.
        """
        if event["type"] in ("finished", "stopped"):
            with self.lock:
                self.model_path = self.run_path  # the run saved there: pages now explore it
                self.load_model()
            event = {**event, "model_path": self.model_path}
        message = json.dumps(to_json(event))
        with self.lock:
            for listener in self.listeners:
                listener.put(message)

    def listen(self, listener=None):
        """Register ``listener`` (anything with ``put``; by default a new queue.Queue): it
        receives each event as a JSON string, and None at the end."""
        listener = queue.Queue() if listener is None else listener
        with self.lock:
            self.listeners.append(listener)
        return listener

    def unlisten(self, listener) -> None:
        with self.lock:
            if listener in self.listeners:
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
        if run is not None and run.thread.is_alive():  # running, or publishing its end
            run.stop()
            run.join()
            message = run.result["message"] if run.result else None
        with self.answered:
            self.answered.wait_for(lambda: self.requests_in_progress == 0, timeout=wait_seconds)
        return message


def run_save_path(model_path: str, has_model: bool) -> tuple[str | None, str | None]:
    """Where a training run started from the page saves (None: nowhere), and why the trainer
    refuses the first path it would have taken (None: it does not).

    Never over a model the user has: beside it, as ``<name>-explorer-run.npz``. Without one, the
    run makes it at ``model_path``, or, where the trainer would refuse that path (a file it did
    not write, such as notes.txt), at the first path beside it that the trainer accepts.
    """
    if not model_path:
        return None, "no run can save: --model is empty"
    path = Path(model_path)
    if path.is_dir() and not has_model:  # --model a folder: a model file inside it
        path = path / "simple_cnn_model.npz"
    stem = path.stem
    if has_model:
        names = [f"{stem}-explorer-run.npz"] + [f"{stem}-explorer-run-{n}.npz" for n in range(2, 6)]
    else:
        names = [f"{stem}.npz"] if path.suffix != ".npz" else []
        names += [f"{stem}-{n}.npz" for n in range(2, 6)]
    candidates = ([] if has_model else [str(path)]) + [str(path.with_name(n)) for n in names]
    first_refusal = _trainer_refusal(candidates[0])
    if first_refusal is None:
        return candidates[0], None
    for candidate in candidates[1:]:
        if _trainer_refusal(candidate) is None:
            return candidate, first_refusal
    return None, first_refusal


def _trainer_refusal(save_path: str) -> str | None:
    """Why the trainer would refuse to save a model at ``save_path`` (None: it would not)."""
    from training.output_files import check_outputs
    from training.settings import ConfigError, TrainConfig

    try:
        check_outputs(TrainConfig(save_path=save_path, verbose=False))
    except (FileWriteError, ConfigError) as error:
        return str(error)
    return None


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
    return _prepared(drawing_from_request(body))[-1][1]


def drawing_from_request(body: dict) -> np.ndarray:
    """A request's drawing as grey levels (height, width) float32, 1 paper .. 0 ink."""
    drawing = body.get("drawing")
    if not isinstance(drawing, dict):
        raise RequestError(400, 'give the image as "drawing" {width, height, ink} or "test_index"')
    width, height, ink = drawing.get("width"), drawing.get("height"), drawing.get("ink")
    for name, side in (("width", width), ("height", height)):
        if not is_int(side) or not 8 <= side <= MAX_DRAWING_SIDE:
            raise RequestError(400, f"drawing {name} must be 8 to {MAX_DRAWING_SIDE}, got {side!r}")
    levels = uint8_from_json(ink, (height, width))  # the page's form: 0 paper .. 255 ink
    if levels is not None:
        ink = levels / 255.0
    elif isinstance(ink, dict):
        raise RequestError(
            400,
            f'drawing ink as bytes must be {{"shape": [{height}, {width}], "bytes": base64 of '
            f"{width * height} levels 0..255}}",
        )
    else:
        ink = _ink_from_list(ink, width, height)
    if not np.isfinite(ink).all() or ink.min() < 0 or ink.max() > 1:
        raise RequestError(400, "drawing ink must be finite numbers from 0 to 1")
    return (1.0 - ink).astype(np.float32)


def _prepared(grey: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """predict_digit's preparation of a drawing, step by step (the last: the 28x28 image)."""
    try:
        return preparation_steps(grey)
    except ImageError:
        # The only way a drawing of the right size fails: no ink stands out. Say it for a pad.
        raise RequestError(422, NO_DIGIT_IN_DRAWING) from None


def _ink_from_list(ink: Any, width: int, height: int) -> np.ndarray:
    """A drawing's ink given as a flat list of W*H numbers in 0..1, as an array (H, W)."""
    if not isinstance(ink, list) or len(ink) != width * height:
        count = len(ink) if isinstance(ink, list) else "no list"
        raise RequestError(
            400, f"drawing ink must hold width x height = {width * height} numbers, got {count}"
        )
    try:
        array = np.asarray(ink)
    except (ValueError, TypeError):  # ragged lists
        array = None
    # One number per pixel: a list of lists ([[1]] * 64), text or true/false is not a drawing.
    if array is None or array.ndim != 1 or array.dtype.kind not in "iuf":
        raise RequestError(400, "drawing ink must be a flat list of numbers from 0 to 1")
    return array.astype(np.float64).reshape(height, width)


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


def _int_field(body: dict, name: str, message: str | None = None) -> int:
    value = body.get(name)
    if not is_int(value):
        raise RequestError(400, message or f"{name} must be an integer, got {value!r}")
    return value


def _class_and_versus(body: dict) -> tuple[int, int | None]:
    """The class a gradient is about, and the class it is compared with (None: none)."""
    class_index = _int_field(body, "class")
    versus = body.get("versus")
    if versus is not None and not is_int(versus):
        raise RequestError(400, f"versus must be a class index or null, got {versus!r}")
    return class_index, versus


# --------------------------------------------------------------------------------------------
# One function per request
# --------------------------------------------------------------------------------------------


def model_info(explorer: Explorer) -> dict[str, Any]:
    classifier = explorer.classifier
    common = {
        "path": explorer.model_path,
        "original_path": explorer.original_path,
        "training": explorer.training(),
        "run_path": explorer.run_path,
        "run_refusal": explorer.run_refusal,  # why no run can save (the buttons then hide)
        "read_only": explorer.read_only,
        "limits": {"epochs": MAX_EPOCHS, "filters": MAX_FILTERS},
    }
    if classifier is None:
        return {
            "ok": False,
            **common,
            "error": explorer.model_error,
            "train_command": explorer.train_command,
        }
    cnn = classifier.cnn
    config = classifier.config
    return {
        "ok": True,
        **common,
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
        "learning_rate": config.get("learning_rate"),
    }


def analyse(explorer: Explorer, body: dict) -> dict[str, Any]:
    classifier, image, experiments = classifier_and_image(explorer, body)
    answer = analysis.analyse(classifier, image)
    reply = {
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
    if "test_index" in body:  # a digit of the test set: its true class, beside the answer
        _, labels = explorer.load_test_set()
        reply["true_class"] = int(labels[body["test_index"]])
    return reply


def preparation(explorer: Explorer, body: dict) -> dict[str, Any]:
    """How a drawing became the 28x28 image: each step of predict_digit's preparation, named,
    with its image as grey levels 0..255 (bright ink on black)."""
    if "test_index" in body:
        raise RequestError(
            400, "a test digit comes prepared (MNIST prepared its digits): only a drawing has steps"
        )
    steps = _prepared(drawing_from_request(body))
    return {
        "steps": [
            {"name": name, "image": np.uint8(np.clip(np.round(image * 255), 0, 255))}
            for name, image in steps[:-1]
        ]
        + [{"name": steps[-1][0], "image": steps[-1][1]}],
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
    class_index, versus = _class_and_versus(body)
    answer = analysis.class_gradients(classifier, image, class_index, versus)
    return {**answer, "experiments": experiments}


def weight_gradient(explorer: Explorer, body: dict) -> dict[str, Any]:
    classifier, image, experiments = classifier_and_image(explorer, body)
    class_index, versus = _class_and_versus(body)
    layer = body.get("layer")
    if not isinstance(layer, str):
        raise RequestError(400, f'layer must be a conv layer\'s name, e.g. "conv1", got {layer!r}')
    weight = [_int_field(body, name) for name in ("filter", "channel", "row", "column")]
    answer = analysis.weight_gradient(classifier, image, class_index, versus, layer, *weight)
    return {**answer, "experiments": experiments}


def training_step(explorer: Explorer, body: dict) -> dict[str, Any]:
    """One training step on the image explored (labelled as the page says) and the first
    STEP_BATCH - 1 test digits, shown stage by stage; nothing is changed."""
    classifier, image, experiments = classifier_and_image(explorer, body)
    label = _int_field(body, "label")
    if not 0 <= label < len(classifier.class_names):
        raise RequestError(
            400, f"label must be 0 to {len(classifier.class_names) - 1}, got {label}"
        )
    images, labels = explorer.load_test_set()
    batch = np.concatenate([image[np.newaxis], images[: STEP_BATCH - 1]])
    batch_labels = np.concatenate([[label], labels[: STEP_BATCH - 1]])
    # The next step as the trainer would take it: Adam's moments and where the run stopped.
    try:
        saved = model_file.load_model(explorer.model_path)
    except ModelFileError as error:
        raise RequestError(503, error.reason) from None
    learning_rate = saved.config.get("learning_rate", 0.001)
    decay = saved.config.get("learning_rate_decay", 1.0)
    if is_finite_number(learning_rate) and is_finite_number(decay) and learning_rate > 0:
        learning_rate *= decay**saved.epoch  # this epoch's rate, as the trainer decays it
    else:
        learning_rate = 0.001
    answer = analysis.training_step(
        classifier, batch, batch_labels, float(learning_rate), saved.conv_optimizer_state
    )
    return {**answer, "experiments": experiments}


def test_set(explorer: Explorer) -> dict[str, Any]:
    classifier = explorer.require_classifier()
    images, labels = explorer.load_test_set()
    report = analysis.test_set_report(classifier, images, labels)
    for mistake in report["mistakes"]:
        mistake["image"] = images[mistake["index"]]
    return report


def train(explorer: Explorer, body: dict) -> dict[str, Any]:
    explorer.check_control(body)
    mode = body.get("mode", "quick")
    if mode not in ("quick", "full"):
        raise RequestError(400, f"mode must be 'quick' or 'full', got {mode!r}")
    changes = {}
    epochs = body.get("epochs")
    if epochs is not None:
        if not is_int(epochs) or not 1 <= epochs <= MAX_EPOCHS:
            raise RequestError(400, f"epochs must be 1 to {MAX_EPOCHS}, got {epochs!r}")
        changes["epochs"] = epochs
    learning_rate = body.get("learning_rate")
    if learning_rate is not None:
        if not is_finite_number(learning_rate) or not 0 < learning_rate <= 1:
            raise RequestError(
                400, f"learning_rate must be above 0 and at most 1, got {learning_rate!r}"
            )
        changes["learning_rate"] = float(learning_rate)
    num_filters = body.get("num_filters")
    if num_filters is not None:
        stages = len(explorer.classifier.cnn.stages) if explorer.classifier else None
        if (
            not isinstance(num_filters, list)
            or not num_filters
            or not all(is_int(n) and 1 <= n <= MAX_FILTERS for n in num_filters)
            or (stages is not None and len(num_filters) != stages)
        ):
            count = f"{stages} numbers" if stages else "numbers"
            raise RequestError(
                400, f"num_filters must be {count} from 1 to {MAX_FILTERS}, got {num_filters!r}"
            )
        changes["num_filters"] = tuple(num_filters)
    explorer.start_training(mode, changes)
    return {"started": True, "mode": mode, "save_path": explorer.run_path, **changes}


def stop_training(explorer: Explorer, body: dict) -> dict[str, Any]:
    explorer.check_control(body)
    explorer.stop_training()
    return {"stopping": True}


def pace(explorer: Explorer, body: dict) -> dict[str, Any]:
    explorer.check_control(body)
    value = body.get("pace")
    if value not in ("pause", "step", "slow", "run"):
        raise RequestError(400, f"pace must be 'pause', 'step', 'slow' or 'run', got {value!r}")
    explorer.pace_training(value)
    return {"pace": value}


def restore_original(explorer: Explorer, body: dict) -> dict[str, Any]:
    explorer.check_control(body)
    explorer.restore_original()
    return {"path": explorer.model_path}
