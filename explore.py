"""The explorer: draw a digit in the browser and watch every layer of SimpleCNN answer.

    python explore.py                          # serves http://127.0.0.1:8000/
    python explore.py --model fashion.npz --port 0

The web server is ``explorer/server.py``, the API it serves ``explorer/api.py``, what it
computes ``explorer/analysis.py``, the training run it watches ``explorer/live_training.py``,
and the page ``explorer/page/``. This file is the program: its options, the address it prints,
and how Ctrl-C stops it (a training run started from the page saves first; the exit status is
the shell's for the signal, 130 for Ctrl-C and 143 for SIGTERM, as the trainer's).
"""

from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__":
    # Ctrl-C or SIGTERM while the modules below load and the model is read: stop quietly with
    # the shell's status (130, 143) instead of a traceback. main() takes over once it serves.
    for _signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signal_number, lambda number, frame: sys.exit(128 + number))
    # One BLAS thread for the whole server, decided before NumPy loads: each request is one
    # small image, and BLAS threads started for a request's products spin on after it, taking
    # the cores the other requests need (OpenBLAS 0.3.31 does not keep a limit set later, by
    # threadpoolctl, for the server's request threads: it doubled the CPU time per answer).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# ruff: noqa: E402  (the imports below come after that)
import argparse
import threading
import time
from collections.abc import Sequence

from threadpoolctl import threadpool_limits

from explorer.answer_processes import default_count
from explorer.api import Explorer
from explorer.server import ExplorerServer, make_server
from plumbing.command_line import ArgumentParser

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Serve the SimpleCNN explorer: draw a digit in the browser and see every "
        "layer, filter, gradient and the training of the network.",
    )
    parser.add_argument(
        "--model", default="simple_cnn_model.npz", help="model file (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s: this computer only; the page has no "
        "login)",
    )
    parser.add_argument("--data-dir", help="dataset folder (default: next to download_mnist.py)")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="viewers cannot start, stop or pace training, nor restore the model; the teacher's "
        "address, printed at start, can (for a class on --host 0.0.0.0)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0 to 65535, got {args.port}")
    # One BLAS thread for the whole server: each request is one small image, and BLAS's own
    # threads, left spinning after a request, would slow a training run in the background.
    threadpool_limits(1, user_api="blas")
    explorer = Explorer(args.model, args.data_dir, read_only=args.read_only)
    try:
        server = make_server(explorer, args.host, args.port, processes=default_count())
    except OSError as error:
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    # From here Ctrl-C and SIGTERM stop the server in order (handled below, in this thread,
    # while the server runs in its own); a second one stops at once. The handler only notes
    # the signal: taking a lock in it (threading.Event.set) could wait forever for a lock this
    # very thread holds where the signal interrupted it.
    received: list[int] = []

    def stop(number: int, frame) -> None:
        if received:
            raise KeyboardInterrupt  # the second: interrupts the wait for a run to save
        received.append(number)

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, stop)  # even when started with SIGINT ignored
    serving = threading.Thread(target=server.serve_forever, name="server", daemon=True)
    serving.start()
    _announce(server, args.host, explorer)
    threading.Thread(target=_start_workers, args=(server,), name="workers", daemon=True).start()
    while not received and serving.is_alive():
        time.sleep(0.1)
    try:
        message = explorer.close()  # a training run saves first, as the trainer's Ctrl-C does
        server.shutdown()  # no new requests; those being answered are sent first
        server.server_close()
    except KeyboardInterrupt:
        message = "Interrupted again: stopped without waiting for the training run to save."
    if message:
        print(message, file=sys.stderr)
    print("Explorer stopped.", file=sys.stderr)
    return 128 + received[0] if received else 1


def _start_workers(server: ExplorerServer) -> None:
    """Start the processes that answer drawings now, not at the first drawing; if they cannot
    start at all, the server's threads answer instead."""
    try:
        server.processes.warm_up()
    except Exception as error:  # noqa: BLE001 - e.g. no processes allowed: answer here instead
        processes, server.processes = server.processes, None
        processes.close()
        print(f"warning: drawings are answered in one process ({error})", file=sys.stderr)


def _announce(server: ExplorerServer, host_option: str, explorer: Explorer) -> None:
    """The address to open, a warning when other computers can reach it, and what to do when
    there is no model."""
    host, port = server.server_address[:2]
    shown_host = f"[{host}]" if ":" in host else host
    address = f"http://{shown_host}:{port}/"
    print(f"SimpleCNN explorer: {address}  (Ctrl-C stops it)", flush=True)
    if explorer.read_only:
        print(
            f"Read-only: viewers cannot train. The teacher's page, which can: "
            f"{address}?teacher={explorer.teacher_token}",
            flush=True,
        )
    elif host_option not in LOCAL_HOSTS:
        print(
            f"warning: listening on {host_option}: anyone who can reach this computer can use "
            "the page, which has no login, and start training runs; --read-only stops that",
            file=sys.stderr,
        )
    if explorer.model_error:
        if explorer.train_command:
            advice = f"Train one from the page, or with: {explorer.train_command}"
        else:
            advice = "Give --model a model file, or a path where one can be saved"
        print(f"No model yet ({explorer.model_error}). {advice}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
