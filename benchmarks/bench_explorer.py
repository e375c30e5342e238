"""How fast does the explorer answer, and how much does watching slow training down?

1. Server time per request, in the server's own process, from the parsed request to the encoded
   JSON answer: one drawing update (prepare the drawing, forward pass, every map, the head,
   the probabilities; target under 30 ms) and the gradient view (target under 60 ms), and the
   same requests over real HTTP on 127.0.0.1 (the round trip a page sees).
2. Training speed while the page watches: the training program's steps with the explorer's
   step hook (live_training.TrainingRun: a snapshot of the filters, one digit's maps, dead
   ReLUs and update ratios every half second) against the same steps without it, taking turns
   (target: within 10%).
3. A classroom: the real program (``python explore.py``, in its own process), its start-up
   (the seconds until it prints its address; target under 1 s), 200 drawings sent at the same
   moment (all answered), then 30 students drawing at once for ``--seconds``, each as the page
   does it: one request at a time on a kept-alive connection, at most 10 a second; the median
   answer time (target under 100 ms on two cores). ``--explorer DIR`` starts another copy's
   explore.py (the old code from git, for a before-and-after).

    python benchmarks/bench_explorer.py                      # both networks, all sections
    python benchmarks/bench_explorer.py --network lenet --requests 100
    python benchmarks/bench_explorer.py --network lenet --sections classroom
"""

import argparse
import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
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
PROJECT_DIR = Path(__file__).resolve().parent.parent
STUDENTS = 30
REQUESTS_PER_SECOND = 10  # a student's page sends at most one analysis every 100 ms
BURST = 200  # drawings sent at the same moment


def a_drawing(as_list: bool = False) -> dict:
    """A request body as the page sends it: a digit-like loop on a 112x112 pad, its ink as
    base64 bytes (0 paper .. 255 ink); ``as_list``: as a list of numbers in 0..1, as the page
    sent it before (the only form an older server reads)."""
    rows, columns = np.mgrid[0:DRAWING_SIDE, 0:DRAWING_SIDE]
    radius = np.hypot((rows - 56) / 40, (columns - 56) / 25)
    ink = np.uint8(255 * (np.abs(radius - 1) < 0.12))
    if as_list:
        encoded = (ink.ravel() / 255).tolist()
    else:
        encoded = {"shape": [DRAWING_SIDE, DRAWING_SIDE], "bytes": base64.b64encode(ink).decode()}
    return {"drawing": {"width": DRAWING_SIDE, "height": DRAWING_SIDE, "ink": encoded}}


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


def start_explorer(model: Path, explorer_dir: Path) -> tuple[subprocess.Popen, int, float]:
    """``python explore.py --model MODEL --port 0`` from ``explorer_dir``: the process, its port
    and the seconds until it printed its address."""
    started = time.perf_counter()
    program = subprocess.Popen(
        [sys.executable, "explore.py", "--model", str(model), "--port", "0"],
        cwd=explorer_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = program.stdout.readline()
    seconds = time.perf_counter() - started
    match = re.search(r":(\d+)/", line)
    if not match:
        program.kill()
        raise SystemExit(f"explore.py did not start: {line!r} {program.stderr.read()}")
    return program, int(match.group(1)), seconds


def burst(port: int, body: bytes, count: int) -> int:
    """Send ``count`` drawings at the same moment, each on its own connection; how many were
    answered (200)."""
    start = threading.Barrier(count)
    answered = []

    def ask():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start.wait()
        try:
            connection.request("POST", "/api/analyse", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            answered.append(response.status == 200)
        except OSError:
            answered.append(False)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(answered)


def students(port: int, body: bytes, count: int, seconds: float) -> dict:
    """``count`` students drawing for ``seconds``, each as the page does: one request at a time
    on a kept-alive connection, the next at least 1 / REQUESTS_PER_SECOND after the last left.
    The answer times (milliseconds), the requests answered per second and the failures."""
    interval = 1 / REQUESTS_PER_SECOND
    times: list[float] = []
    failures = []
    begin = threading.Barrier(count)

    def student(number: int):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        begin.wait()
        time.sleep(interval * number / count)  # the class does not draw in lockstep
        end = time.perf_counter() + seconds
        while (sent := time.perf_counter()) < end:
            try:
                connection.request(
                    "POST", "/api/analyse", body, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(response.status)
            except OSError as error:
                failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            times.append(1e3 * (time.perf_counter() - sent))
            time.sleep(max(0.0, sent + interval - time.perf_counter()))
        connection.close()

    threads = [threading.Thread(target=student, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "median_ms": median(times) if times else float("nan"),
        "p95_ms": float(np.percentile(times, 95)) if times else float("nan"),
        "per_second": len(times) / seconds,
        "failures": failures,
    }


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system, all threads) process ``pid`` and the processes it started
    (the explorer's workers) have used, from Linux's /proc; a process that has ended since is
    not counted."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def measure_classroom(
    network: str, folder: Path, explorer_dir: Path, seconds: float, as_list: bool
) -> dict:
    model = save_model_of(network, folder)
    body = json.dumps(a_drawing(as_list)).encode()
    program, port, startup = start_explorer(model, explorer_dir)
    try:
        answered = burst(port, body, BURST)
        cpu_before = cpu_seconds(program.pid)
        class_result = students(port, body, STUDENTS, seconds)
        answers = class_result["per_second"] * seconds
        class_result["cpu_ms_per_answer"] = (
            1e3 * (cpu_seconds(program.pid) - cpu_before) / answers if answers else float("nan")
        )
    finally:
        program.send_signal(signal.SIGINT)
        try:
            program.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            program.kill()
    return {"startup_seconds": startup, "burst_answered": answered, **class_result}


SECTIONS = ("requests", "training", "classroom")


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
        "--seconds",
        type=positive_int,
        default=20,
        help="how long the classroom draws (default 20)",
    )
    parser.add_argument(
        "--explorer",
        type=Path,
        default=PROJECT_DIR,
        help="the project folder whose explore.py the classroom starts (default: this one)",
    )
    parser.add_argument(
        "--list-ink",
        action="store_true",
        help="the classroom sends its drawings' ink as a list of numbers, as the page did "
        "before (for --explorer with the old code)",
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
            if "classroom" in sections:
                result = measure_classroom(
                    network, Path(folder), args.explorer, args.seconds, args.list_ink
                )
                print(
                    f"  classroom ({args.explorer}): start-up {result['startup_seconds']:.2f} s "
                    f"(target < 1 s); {result['burst_answered']} of {BURST} drawings sent at "
                    f"once answered; {STUDENTS} students at {REQUESTS_PER_SECOND} requests/s "
                    f"each for {args.seconds} s: median answer {result['median_ms']:.1f} ms "
                    f"(target < 100 ms), 95th percentile {result['p95_ms']:.1f} ms, "
                    f"{result['per_second']:.0f} answers/s, {len(result['failures'])} failed; "
                    f"the server's CPU time per answer {result['cpu_ms_per_answer']:.1f} ms "
                    f"(two free cores answer at most {2000 / result['cpu_ms_per_answer']:.0f}/s)"
                )
    print(f"\nload average after: {format_load(load_average())}")


if __name__ == "__main__":
    main()
