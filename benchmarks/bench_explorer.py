"""How fast does the explorer answer, and how much does watching slow training down?

1. Server time per request, in the server's own process, from the parsed request to the encoded
   JSON answer: one drawing update (prepare the drawing, forward pass, every map, the head,
   the probabilities; target under 30 ms) and the gradient view (target under 60 ms), and the
   same requests over real HTTP on 127.0.0.1 (the round trip a page sees).
2. Training speed while the page watches: the training program's steps with the explorer's
   step hook (live_training.TrainingRun: a snapshot of the filters, one digit's maps, dead
   ReLUs and update ratios every half second) against the same steps without it, taking turns
   (target: within 10%).

    python benchmarks/bench_explorer.py                      # both networks, all sections
    python benchmarks/bench_explorer.py --network lenet --requests 100
"""

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from networks import NETWORKS, describe_network, network_config
from timing import format_load, load_average, machine_description, median, positive_int, take_turns

import simple_cnn_from_scratch as trainer
from download_mnist import load_dataset
from explorer import api, live_training
from explorer import server as explorer_server
from explorer.json_arrays import to_json
from plumbing.command_line import ArgumentParser
from training import model_file

DRAWING_SIDE = 112  # the pad the page sends, downsampled


def a_drawing() -> dict:
    """A request body as the page sends it: a digit-like loop on a 112x112 pad."""
    rows, columns = np.mgrid[0:DRAWING_SIDE, 0:DRAWING_SIDE]
    radius = np.hypot((rows - 56) / 40, (columns - 56) / 25)
    ink = (np.abs(radius - 1) < 0.12).astype(float)
    return {"drawing": {"width": DRAWING_SIDE, "height": DRAWING_SIDE, "ink": ink.ravel().tolist()}}


def save_model_of(network: str, folder: Path) -> Path:
    """A real model file of ``network`` after a few training steps (weights off their start)."""
    config = network_config(network)
    model = trainer.build_model(config)
    data = trainer.load_data(config)
    trainer.train_steps(model, data, trainer.StopRequest(), max_steps=20)
    path = folder / f"{network}.npz"
    model_file.save_model(path, trainer.to_saved(model))
    return path


def server_milliseconds(explorer: api.Explorer, route, body: dict, count: int) -> list[float]:
    """Milliseconds per request inside the server: the route's work plus the JSON encoding."""
    encoded = json.dumps(body).encode()
    times = []
    for _ in range(count + 3):
        started = time.perf_counter()
        parsed = json.loads(encoded)  # as read_json does
        json.dumps(to_json(route(explorer, parsed)))
        times.append(1e3 * (time.perf_counter() - started))
    return times[3:]  # the first calls warm caches


def http_milliseconds(port: int, path: str, body: dict, count: int) -> list[float]:
    encoded = json.dumps(body).encode()
    times = []
    for _ in range(count + 3):
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", path, encoded, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200, response.status
        times.append(1e3 * (time.perf_counter() - started))
    return times[3:]


def measure_requests(network: str, count: int, folder: Path) -> dict:
    explorer = api.Explorer(str(save_model_of(network, folder)))
    server = explorer_server.make_server(explorer, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    drawing = a_drawing()
    gradient = {**drawing, "class": 7}
    results = {
        "drawing update, server": server_milliseconds(explorer, api.analyse, drawing, count),
        "gradient view, server": server_milliseconds(explorer, api.gradient, gradient, count),
        "drawing update, HTTP round trip": http_milliseconds(port, "/api/analyse", drawing, count),
        "gradient view, HTTP round trip": http_milliseconds(port, "/api/gradient", gradient, count),
    }
    server.shutdown()
    server.server_close()
    return {
        name: {"median_ms": median(t), "p95_ms": float(np.percentile(t, 95))}
        for name, t in results.items()
    }


def measure_watching(network: str, steps: int, repeats: int) -> dict:
    """Seconds for ``steps`` training steps with and without the explorer's watch hook."""
    config = network_config(network)
    data = trainer.load_data(config)
    _, _, x_test, _ = load_dataset()

    def run_steps(watched: bool) -> float:
        model = trainer.build_model(config)
        model.steps_per_epoch = trainer.steps_per_epoch(data, config)
        hook = None
        if watched:
            run = live_training.TrainingRun(
                config, lambda event: json.dumps(to_json(event)), x_test[0], x_test
            )
            hook = run._on_step  # exactly what train() calls for the explorer, every step
        trainer.train_steps(model, data, trainer.StopRequest(), max_steps=5)  # warm-up
        started = time.perf_counter()
        trainer.train_steps(model, data, trainer.StopRequest(), on_step=hook, max_steps=steps)
        return time.perf_counter() - started

    times = take_turns(
        {"plain": lambda: run_steps(False), "watched": lambda: run_steps(True)}, repeats
    )
    plain, watched = median(times["plain"]), median(times["watched"])
    return {
        "steps": steps,
        "plain_seconds": plain,
        "watched_seconds": watched,
        "slowdown": watched / plain - 1,
        "each": times,
    }


SECTIONS = ("requests", "training")


def _sections(text: str) -> tuple[str, ...]:
    sections = tuple(text.split(","))
    unknown = [section for section in sections if section not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section {unknown[0]!r}: choose from {', '.join(SECTIONS)}"
        )
    return sections


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--network",
        choices=[*NETWORKS, "all"],
        default="all",
        help="the network the explorer shows and trains (default: all, one after the other)",
    )
    parser.add_argument(
        "--requests", type=positive_int, default=200, help="requests of each kind (default 200)"
    )
    parser.add_argument(
        "--steps", type=positive_int, default=300, help="training steps in each turn (default 300)"
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="turns of each training side (default 3)"
    )
    parser.add_argument(
        "--sections",
        type=_sections,
        default=SECTIONS,
        help=f"what to measure, comma-separated (default {','.join(SECTIONS)})",
    )
    args = parser.parse_args()
    networks = list(NETWORKS) if args.network == "all" else [args.network]
    sections = args.sections
    print(machine_description())
    print(f"load average before: {format_load(load_average())}")
    with tempfile.TemporaryDirectory() as folder:
        for network in networks:
            print(f"\n{network}: {describe_network(network_config(network))}")
            if "requests" in sections:
                results = measure_requests(network, args.requests, Path(folder))
                print(
                    f"  requests ({args.requests} each; targets: update < 30 ms, gradient "
                    "< 60 ms of server time):"
                )
                for name, figures in results.items():
                    print(
                        f"    {name:<34} median {figures['median_ms']:6.1f} ms   "
                        f"95th percentile {figures['p95_ms']:6.1f} ms"
                    )
            if "training" in sections:
                result = measure_watching(network, args.steps, args.repeats)
                print(
                    f"  training {result['steps']} steps, median of {args.repeats}: plain "
                    f"{result['plain_seconds']:.2f} s, watched by the explorer "
                    f"{result['watched_seconds']:.2f} s: {100 * result['slowdown']:+.1f}% "
                    "(target within 10%)"
                )
    print(f"\nload average after: {format_load(load_average())}")


if __name__ == "__main__":
    main()
