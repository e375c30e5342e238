"""A training run in a background thread, watched while it learns: what the explorer streams.

It is the training program's own ``train()`` loop (simple_cnn_from_scratch.py), watched
through its step hook: every ``every_seconds`` the hook takes a snapshot (the loss and
accuracy so far, the filters, one digit's maps, and two figures of each layer's health) and
hands it to ``publish``. The snapshot is cheap next to the steps between two of them, so the
run trains at nearly the command line's speed (benchmarks/bench_explorer.py measures it).

The two health figures, per layer:

* dead fraction: the share of its ReLU units (every channel at every position, or every
  hidden unit) that stay at zero for all of a fixed batch of validation images: they pass no
  gradient, so they no longer learn;
* update-to-weight ratio: how far the weights moved per step since the last snapshot,
  ||W_now - W_before|| / (steps * ||W_now||). About 1e-3 is healthy; far below, the layer has
  stopped learning; far above, the learning rate is too high for it.

A run can be paced from the page (:meth:`TrainingRun.set_pace`): paused, one step at a time,
slowed to a few steps a second, or run at full speed. The hook waits between two steps, so a
paused run holds still exactly between them, and each paced step is shown with its gradients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import simple_cnn_from_scratch as trainer
from inference import images_to_input
from plumbing import process_tuning
from training.settings import TrainConfig

PROBE_IMAGES = 128  # test images for the dead-unit count: enough to see a live unit fire
SLOW_STEP_SECONDS = 0.5  # "slow": two steps a second, each one shown
PACES = ("run", "pause", "slow")  # and "step": one more step, then paused


class TrainingRun:
    """One run of ``trainer.train(config)`` in a thread, publishing snapshots as it goes.

    ``publish(event)`` gets dicts: {"type": "started", "settings": ...}, {"type": "progress",
    ...} at most every ``every_seconds`` (every step while paced, with the step's gradients),
    {"type": "epoch", "record": ...} after each epoch, {"type": "pace", "pace": ...} when the
    pace changes, and one last event, {"type": "finished" | "stopped" | "failed", "message":
    ...}.
    ``sample_image`` is the uint8 digit (28, 28) whose maps are shown; ``probe_images`` uint8
    images (N, 28, 28) for the dead-unit count (the first PROBE_IMAGES of them).
    """

    def __init__(
        self,
        config: TrainConfig,
        publish: Callable[[dict[str, Any]], None],
        sample_image: np.ndarray,
        probe_images: np.ndarray,
        every_seconds: float = 0.5,
    ):
        self.config = config
        self.publish = publish
        self.sample = images_to_input(sample_image[np.newaxis])
        self.probe = images_to_input(probe_images[:PROBE_IMAGES])
        self.every_seconds = every_seconds
        self.stop_request = trainer.StopRequest()
        self.thread = threading.Thread(target=self._run, name="training", daemon=True)
        self.result: dict[str, Any] | None = None  # the last event, once the run has ended
        self._last_snapshot = 0.0
        self._weights_then: list[np.ndarray] | None = None
        self._steps_then = 0
        self._epochs_published = 0
        self.pace = "run"
        self._steps_allowed = 0  # steps "step" let through a paused run
        self._pace_changed = threading.Condition()

    def start(self) -> None:
        self.publish({"type": "started", "settings": _settings_shown(self.config)})
        self.thread.start()

    def stop(self) -> None:
        """Ask the run to stop after its current step; it saves, then ends with "stopped"."""
        self.stop_request.set()
        with self._pace_changed:
            self._pace_changed.notify_all()  # a paused run wakes up to stop

    def set_pace(self, pace: str) -> None:
        """ "run" (full speed), "pause" (hold between two steps), "slow" (SLOW_STEP_SECONDS a
        step, each shown) or "step" (one more step, then paused)."""
        with self._pace_changed:
            if pace == "step":
                self.pace = "pause"
                self._steps_allowed += 1
            else:
                self.pace = pace
                self._steps_allowed = 0
            self._pace_changed.notify_all()
        self.publish({"type": "pace", "pace": self.pace, "stepping": pace == "step"})

    def running(self) -> bool:
        """Until its result is known: the thread lives on a moment to publish it, and a page
        that asks then must already see the run as over."""
        return self.thread.is_alive() and self.result is None

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        try:
            history = trainer.train(self.config, on_step=self._on_step, stop=self.stop_request)
        except trainer.TrainingInterrupted as stopped:
            self.result = {"type": "stopped", "message": str(stopped)}
        except Exception as error:  # any failure ends the run with its message, never silently
            self.result = {"type": "failed", "message": f"{type(error).__name__}: {error}"}
        else:
            self._publish_new_epochs(history["epochs"])
            self.result = {
                "type": "finished",
                "message": f"Test accuracy {history['test_accuracy']:.4f}; saved to "
                f"{self.config.save_path}",
                "test_accuracy": history["test_accuracy"],
                "test_loss": history["test_loss"],
            }
        self.publish(self.result)

    def _on_step(self, model, epoch: int, step: int) -> None:
        self._publish_new_epochs(model.history)
        now = time.perf_counter()
        paced = self.pace != "run"  # each step is shown, with its gradients
        if paced or now - self._last_snapshot >= self.every_seconds:
            self._last_snapshot = now
            # One BLAS thread, as in the steps: BLAS's own threads would spin on after the
            # snapshot and slow the next steps far more than the snapshot itself costs.
            with process_tuning.blas_single_threaded():
                event = self.snapshot(model, epoch, step, with_gradients=paced)
            self.publish(event)
        self._wait_for_pace()

    def _wait_for_pace(self) -> None:
        """Hold the run between two steps while paused (until "step", "run" or stop), or for
        SLOW_STEP_SECONDS when slow."""
        with self._pace_changed:
            if self.pace == "slow":
                self._pace_changed.wait(SLOW_STEP_SECONDS)
            while (
                self.pace == "pause" and self._steps_allowed == 0 and not self.stop_request.is_set()
            ):
                self._pace_changed.wait()
            if self.pace == "pause" and self._steps_allowed:
                self._steps_allowed -= 1

    def _publish_new_epochs(self, history: list[dict[str, Any]]) -> None:
        for record in history[self._epochs_published :]:
            self.publish({"type": "epoch", "record": record})
        self._epochs_published = len(history)

    def snapshot(
        self, model, epoch: int, step: int, with_gradients: bool = False
    ) -> dict[str, Any]:
        """The run as it stands: progress, filters, the sample's maps, each layer's health;
        ``with_gradients``: also the last step's loss and its filters' gradients."""
        from training import keras_head  # loaded by the trainer already

        sums = trainer.EpochSums(**model.partial_epoch)
        loss, accuracy = (value for _, value in sums.means())
        head_weights = keras_head.head_weights(model.head)
        weights = [*model.cnn.filters, *(kernel for kernel, _ in head_weights)]
        names = [f"conv{i}" for i in range(1, len(model.cnn.filters) + 1)]
        names += [f"dense{i}" for i in range(1, len(head_weights) + 1)]
        steps_done = model.conv_optimizer.iterations
        ratios = self._update_ratios(weights, steps_done)
        maps = model.cnn.feature_maps(self.sample)  # keeps nothing: safe between steps
        event = {
            "type": "progress",
            "epoch": epoch,
            "epochs": self.config.epochs,
            "step": step,
            "steps": model.steps_per_epoch,
            "loss": loss,
            "accuracy": accuracy,
            "images_per_second": sums.seen / sums.seconds if sums.seconds else None,
            "filters": {name: f for name, f in zip(names, model.cnn.filters, strict=False)},
            "maps": {
                name: array[0] for name, array in maps.items() if name.startswith(("conv", "pool"))
            },
            "dead_fraction": self._dead_fractions(model, head_weights),
            "update_ratio": dict(zip(names, ratios, strict=True)) if ratios else {},
            "pace": self.pace,
        }
        if with_gradients and model.last_step is not None:
            gradients = model.last_step.conv_gradients
            event["step_loss"] = model.last_step.loss
            event["conv_gradients"] = {name: g for name, g in zip(names, gradients, strict=False)}
        return event

    def _update_ratios(self, weights: list[np.ndarray], steps_done: int) -> list[float] | None:
        """Per layer, ||W_now - W_then|| / (steps * ||W_now||) since the last snapshot."""
        ratios = None
        steps = steps_done - self._steps_then
        if self._weights_then is not None and steps > 0:
            ratios = [
                float(np.linalg.norm(now - then) / (steps * (np.linalg.norm(now) or 1.0)))
                for now, then in zip(weights, self._weights_then, strict=True)
            ]
        self._weights_then = [np.array(w, copy=True) for w in weights]
        self._steps_then = steps_done
        return ratios

    def _dead_fractions(self, model, head_weights) -> dict[str, float]:
        """Per ReLU layer, the share of units at zero for every probe image."""
        from inference import DenseHead

        maps = model.cnn.feature_maps(self.probe)
        fractions = {}
        for number in range(1, len(model.cnn.stages) + 1):
            fired = (maps[f"relu{number}"] > 0).any(axis=0)  # (F, H, W): fired for some image
            fractions[f"conv{number}"] = float(1 - fired.mean())
        features = maps[f"pool{len(model.cnn.stages)}"].reshape(len(self.probe), -1)
        for number, hidden in enumerate(DenseHead(head_weights).forward(features)[:-1], 1):
            fractions[f"dense{number}"] = float(1 - (hidden > 0).any(axis=0).mean())
        return fractions


def _settings_shown(config: TrainConfig) -> dict[str, Any]:
    """The settings the page states when a run starts."""
    return {
        "epochs": config.epochs,
        "limit": config.limit,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "filters": list(config.num_filters),
        "save_path": config.save_path,
    }
