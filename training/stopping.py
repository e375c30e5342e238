"""How a training run stops: Ctrl-C, SIGTERM, SIGHUP and a closed output, turned into a request
the epoch loop honours between two steps, where the model is consistent and can be saved.

* ``exit_quietly_on_stop_signals()``: while the program's modules load (a second or two), a
  stop signal ends it at once with the shell's status (130, 143, 129), without a traceback.
* ``stop_requests()``: once training starts, the first signal sets a ``StopRequest``; the loop
  sees it after the current step, saves, and ``train`` raises ``TrainingInterrupted`` with the
  command that resumes. A second signal stops at once (``StopNow``).
* ``OutputThatMayClose``: output piped to a program that quit (``| head``, quitting ``less``)
  is discarded instead of failing, and SIGPIPE asks the run to stop (status 141).

SIGTERM is what a scheduler, ``timeout`` or ``docker stop`` sends, SIGHUP what a closed terminal
or a dropped ssh connection sends, SIGPIPE what writing to a pipe nobody reads any more raises:
all are treated like Ctrl-C. Only the standard library: the program imports this first.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

# Ctrl-C, SIGTERM and (where there are terminals) SIGHUP stop a run, saving it first.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
# The reader of the program's output went away (``| head`` had its lines, ``| less`` was quit):
# the run stops and saves, as after Ctrl-C, where there are pipes.
OUTPUT_CLOSED = getattr(signal, "SIGPIPE", None)


class TrainingInterrupted(Exception):
    """A stop signal ended training; the message says what was saved and how to resume."""

    def __init__(self, message: str, signal_number: int = signal.SIGINT):
        super().__init__(message)
        self.exit_status = 128 + signal_number  # the shell's convention: 130 for Ctrl-C


class StopNow(KeyboardInterrupt):
    """A second stop signal: stop at once, without saving; ``exit_status`` is the shell's."""

    def __init__(self, signal_number: int):
        super().__init__()
        self.exit_status = 128 + signal_number


class StopRequest(threading.Event):
    """Set by the first Ctrl-C, SIGTERM, SIGHUP or SIGPIPE; ``signal_number`` says which."""

    signal_number: int = signal.SIGINT


def exit_quietly_on_stop_signals() -> None:
    """Until stop_requests() takes over: a stop signal exits with the shell's status (130 for
    Ctrl-C, 143 for SIGTERM, 129 for SIGHUP) instead of a traceback from a module loading."""
    for signal_number in STOP_SIGNALS:
        signal.signal(signal_number, lambda number, frame: sys.exit(128 + number))


@contextmanager
def stop_requests(request: StopRequest | None = None) -> Iterator[StopRequest]:
    """Turn the first Ctrl-C (SIGINT), SIGTERM, SIGHUP or SIGPIPE into a request that the loop
    honours between steps, where the filters, the head and both optimizers are consistent for
    the save; the previous handlers come back on leaving.

    A second signal interrupts at once, as usual (but never SIGPIPE, which only says the output
    is gone). A ``request`` given by the caller is used as it is, and no handler is installed:
    its owner sets it.
    """
    if request is not None:
        yield request
        return
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be installed from the main thread
        return

    def request_stop(signal_number, frame):
        if signal_number == OUTPUT_CLOSED:
            discard_output(sys.__stdout__)  # the rest of the output has no reader
            if request.is_set():
                return  # a reason to stop, never a reason to stop without saving
        elif request.is_set():
            raise StopNow(signal_number)  # the second time: stop now
        if signal_number == getattr(signal, "SIGHUP", None):
            # The terminal is gone: a progress line written to it would fail before the save.
            discard_output(sys.__stdout__)
            discard_output(sys.__stderr__)
        request.signal_number = signal_number
        request.set()

    signals = [*STOP_SIGNALS, *([OUTPUT_CLOSED] if OUTPUT_CLOSED else [])]
    previous = {sig: signal.signal(sig, request_stop) for sig in signals}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def discard_output(stream: TextIO) -> None:
    """Send what is written to ``stream``'s file from now on nowhere (its reader is gone)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


class OutputThatMayClose:
    """sys.stdout while the program runs: when the pipe it writes to loses its reader, writing
    raises BrokenPipeError; here the rest of the output is discarded instead, and the run goes
    on to its save (SIGPIPE has asked it to stop: see stop_requests)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            discard_output(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            discard_output(self._stream)
            self._stream.flush()  # what was buffered goes nowhere too

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # isatty, fileno, encoding...


@contextmanager
def output_that_may_close() -> Iterator[None]:
    """sys.stdout as an OutputThatMayClose inside the block, flushed at its end: there, where a
    closed pipe is handled, and not at the interpreter's exit, where it would be an error."""
    stdout, sys.stdout = sys.stdout, OutputThatMayClose(sys.stdout)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = stdout
