"""The explorer's server over real HTTP on 127.0.0.1: its answers, and every bad request refused.

The server runs in this process (explorer.server.make_server on a port the OS picks) for most tests,
and as the real program in a subprocess where the program itself is the point (start-up,
Ctrl-C). Models are built here without training, except where a training run is the point.
"""

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from download_mnist import load_dataset
from explorer import api as explorer_api
from explorer import server as explorer_server
from simple_cnn import SimpleCNN
from training import model_file

PROJECT_DIR = Path(__file__).resolve().parent.parent


def save_untrained_model(path, seed=0, dataset="mnist", **architecture):
    """A real model file with random weights (no training, no TensorFlow)."""
    cnn = SimpleCNN(seed=seed, **architecture)
    rng = np.random.default_rng(seed)
    head = [
        (
            rng.normal(0, 0.05, (cnn.num_features, 128)).astype(np.float32),
            np.zeros(128, np.float32),
        ),
        (rng.normal(0, 0.1, (128, 10)).astype(np.float32), np.zeros(10, np.float32)),
    ]
    arch = {**cnn.architecture, "hidden": [128], "dropout": 0.0, "num_classes": 10}
    config = {"dataset": dataset}
    config.update(
        {
            "filters": [stage.out_channels for stage in cnn.stages],
            "kernel_size": arch["kernel_sizes"],
            "padding": arch["paddings"],
        }
    )
    saved = model_file.SavedModel(
        architecture=arch,
        conv_filters=cnn.filters,
        head_weights=head,
        conv_optimizer_settings={
            "learning_rate": 0.001,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-7,
        },
        conv_optimizer_state={"iterations": np.array(0)},
        config=config,
    )
    model_file.save_model(path, saved)
    return path


class Client:
    """JSON requests to one server; each returns (status, decoded body)."""

    def __init__(self, port: int):
        self.port = port

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.getheader("Content-Type") == "application/json":
            return response.status, json.loads(data)
        return response.status, data

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, value=None, raw: bytes | None = None):
        body = raw if raw is not None else json.dumps(value).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_untrained_model(tmp_path_factory.mktemp("model") / "model.npz")


def serve(model: Path):
    """An explorer server on a free port, running in a thread; yields a Client."""
    explorer = explorer_api.Explorer(str(model))
    server = explorer_server.make_server(explorer, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Client(server.server_address[1]), explorer
    finally:
        explorer.close()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(model_path):
    yield from serve(model_path)


@pytest.fixture(scope="module")
def client(served):
    return served[0]


def decode(array: dict) -> np.ndarray:
    """The API's arrays: base64 float32 ("data") or uint8 ("bytes"), row-major."""
    if "bytes" in array:
        return np.frombuffer(base64.b64decode(array["bytes"]), np.uint8).reshape(array["shape"])
    return np.frombuffer(base64.b64decode(array["data"]), "<f4").reshape(array["shape"])


def drawing(ink: np.ndarray) -> dict:
    height, width = ink.shape
    return {"drawing": {"width": width, "height": height, "ink": ink.ravel().tolist()}}


def vertical_stroke(size=112) -> np.ndarray:
    ink = np.zeros((size, size))
    ink[15:97, 50:62] = 1.0
    return ink


def start_program(model: Path, *options: str, cwd: Path = PROJECT_DIR):
    """``python explore.py --model MODEL --port 0 OPTIONS`` in a subprocess; returns it, the
    port it printed and the address line."""
    program = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_DIR / "explore.py"),
            "--model",
            str(model),
            "--port",
            "0",
            *options,
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    address = program.stdout.readline()
    assert address.startswith("SimpleCNN explorer: http://"), address
    return program, int(address.split(":")[3].split("/")[0]), address


# --------------------------------------------------------------------------------------------
# What it answers
# --------------------------------------------------------------------------------------------


def test_the_page_and_its_files_are_served(client):
    status, page = client.get("/")
    assert status == 200 and b"<html" in page.lower()
    for name in os.listdir(PROJECT_DIR / "explorer" / "page"):
        status, data = client.get(f"/{name}")
        assert status == 200 and data == (PROJECT_DIR / "explorer" / "page" / name).read_bytes()


def test_model_describes_the_network(client):
    status, model = client.get("/api/model")
    assert status == 200 and model["ok"]
    assert model["class_names"] == [str(d) for d in range(10)]
    assert [stage["filters"] for stage in model["stages"]] == [6, 16]
    assert decode(model["filters"]["conv2"]["values"]).shape == (16, 6, 5, 5)
    assert model["hidden"] == [128] and model["num_features"] == 400


def test_a_drawing_is_prepared_as_predict_digit_prepares_a_photo(client, model_path):
    from predict_digit import prepare_digit

    ink = vertical_stroke()
    status, answer = client.post("/api/analyse", drawing(ink))
    assert status == 200
    expected = prepare_digit((1 - ink).astype(np.float32))  # the one shared function
    assert np.array_equal(decode(answer["image"]), expected)
    probabilities = decode(answer["probabilities"])
    assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-5
    assert answer["prediction"] == int(np.argmax(probabilities))
    names = [layer["name"] for layer in answer["layers"]]
    assert names == ["conv1", "pool1", "conv2", "pool2", "features", "hidden1", "logits"]
    shapes = {layer["name"]: decode(layer["values"]).shape for layer in answer["layers"]}
    assert shapes["conv1"] == (6, 28, 28) and shapes["pool2"] == (16, 5, 5)
    assert shapes["features"] == (400,) and shapes["logits"] == (10,)
    for layer in answer["layers"]:
        assert layer["scale"] == pytest.approx(np.abs(decode(layer["values"])).max())


def test_a_test_digit_is_analysed_exactly(client):
    status, answer = client.post("/api/analyse", {"test_index": 3})
    assert status == 200
    assert np.array_equal(decode(answer["image"]), load_dataset()[2][3])


def test_the_conv_arithmetic_adds_up_to_the_map(client):
    for layer, channel, row, column in [
        ("conv1", 2, 0, 0),
        ("conv1", 5, 14, 9),
        ("conv2", 7, 3, 4),
    ]:
        status, answer = client.post(
            "/api/arithmetic",
            {"test_index": 0, "layer": layer, "channel": channel, "row": row, "column": column},
        )
        assert status == 200
        window, filters = decode(answer["window"]), decode(answer["filter"])
        products = decode(answer["products"])
        np.testing.assert_allclose(products, window * filters, rtol=1e-6)
        assert answer["sum"] == pytest.approx(answer["value"], abs=1e-5)
        assert answer["sum"] == pytest.approx(products.sum(), abs=1e-5)
    _, corner = client.post(
        "/api/arithmetic", {"test_index": 0, "layer": "conv1", "channel": 0, "row": 0, "column": 0}
    )
    assert not decode(corner["window"])[:, :2].any()  # the top two rows are conv1's padding


def test_the_pool_arithmetic_names_the_first_maximum(client):
    status, answer = client.post(
        "/api/arithmetic", {"test_index": 0, "layer": "pool1", "channel": 1, "row": 7, "column": 7}
    )
    assert status == 200
    window = decode(answer["window"])
    flat = int(np.argmax(window))  # the first maximum, row-major
    assert answer["winner"] == [flat // 2, flat % 2]
    assert answer["value"] == pytest.approx(window.max())


def test_the_gradient_of_a_class_score(client):
    status, answer = client.post("/api/gradient", {"test_index": 0, "class": 7})
    assert status == 200
    assert decode(answer["input"]).shape == (28, 28)
    assert decode(answer["pooled"]["pool1"]).shape == (6, 14, 14)
    assert np.abs(decode(answer["input"])).max() > 0


def test_experiments_switch_filters_off_and_cover_the_image(client):
    _, plain = client.post("/api/analyse", {"test_index": 0})
    _, off = client.post("/api/analyse", {"test_index": 0, "disabled": {"conv1": [0, 2]}})
    conv1 = decode(off["layers"][0]["values"])
    assert not conv1[0].any() and not conv1[2].any() and conv1[1].any()
    assert not np.array_equal(decode(off["probabilities"]), decode(plain["probabilities"]))
    _, covered = client.post("/api/analyse", {"test_index": 0, "cover": [0, 0, 28, 14]})
    assert not decode(covered["image"])[:, :14].any()
    # The server's model is untouched by the experiment.
    _, again = client.post("/api/analyse", {"test_index": 0})
    assert np.array_equal(decode(again["probabilities"]), decode(plain["probabilities"]))


def test_the_arithmetic_and_the_gradient_see_the_experiments_too(client):
    experiment = {"test_index": 0, "disabled": {"conv1": [1]}, "cover": [0, 0, 28, 10]}
    _, analysed = client.post("/api/analyse", experiment)
    conv1 = decode(analysed["layers"][0]["values"])
    for channel, row, column in [(1, 5, 5), (0, 14, 20)]:
        _, answer = client.post(
            "/api/arithmetic",
            {**experiment, "layer": "conv1", "channel": channel, "row": row, "column": column},
        )
        assert answer["value"] == pytest.approx(conv1[channel, row, column], abs=1e-6)
        assert answer["sum"] == pytest.approx(answer["value"], abs=1e-5)
        assert answer["experiments"] == {"disabled": {"conv1": [1]}, "cover": [0, 0, 28, 10]}
    _, covered = client.post("/api/gradient", {**experiment, "class": 3})
    _, plain = client.post("/api/gradient", {"test_index": 0, "class": 3})
    assert covered["logit"] != plain["logit"] and covered["experiments"]
    assert plain["experiments"] == {}


def test_the_test_set_report(client):
    status, report = client.get("/api/testset")
    assert status == 200
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == report["count"] == 10_000
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / 10_000)
    mistakes = report["mistakes"]
    assert len(mistakes) == 36
    assert all(m["true"] != m["predicted"] for m in mistakes)
    assert [m["probability"] for m in mistakes] == sorted(
        (m["probability"] for m in mistakes), reverse=True
    )
    labels = load_dataset()[3]
    _, _, _, test_labels = load_dataset()
    for true in range(10):
        for guess in range(10):
            example = report["examples"][true][guess]
            assert (example is None) == (confusion[true, guess] == 0)
            if example is not None:
                assert test_labels[example] == true
    for mistake in mistakes[:3]:
        assert mistake["true"] == labels[mistake["index"]]
        assert decode(mistake["image"]).shape == (28, 28)


def test_requests_are_answered_concurrently(client):
    results = []

    def ask(index):
        results.append(client.post("/api/analyse", {"test_index": index})[0])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 12


# --------------------------------------------------------------------------------------------
# Bad requests: a 4xx with one line, and the server keeps serving
# --------------------------------------------------------------------------------------------


def raw_request(port: int, request_line: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (no client normalising the path)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{request_line}\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.parametrize(
    "path",
    [
        "/../explore.py",
        "/../server.py",
        "/server.py",
        "/../../../../etc/passwd",
        "/%2e%2e/explore.py",
        "/%2E%2E%2Fexplore.py",
        "/..%2fexplore.py",
        "//etc/passwd",
        "/etc/passwd",
        "/explorer/../explore.py",
        "/index.html/../../explore.py",
        "http://127.0.0.1/../explore.py",
        "/model.npz",
    ],
)
def test_nothing_outside_the_pages_files_is_served(client, path):
    status, data = raw_request(client.port, f"GET {path} HTTP/1.0")
    assert status == 404
    assert b"root:" not in data and b"import" not in data


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/analyse", b"{not json", 400, "not valid JSON"),
        ("/api/analyse", b"[1, 2]", 400, "JSON object"),
        ("/api/analyse", b"[" * 100_000, 400, "not valid JSON"),
        (
            "/api/analyse",
            b'{"drawing": {"width": 2, "height": 2, "ink": [NaN, 0, 0, 0]}}',
            400,
            "NaN",
        ),
        (
            "/api/analyse",
            b'{"drawing": {"width": 8, "height": 8, "ink": [Infinity]}}',
            400,
            "Infinity",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 112, "height": 112, "ink": [0] * 99}}),
            400,
            "12544 numbers",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 5000, "height": 1, "ink": []}}),
            400,
            "width must be",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 8, "height": 8, "ink": [2] * 64}}),
            400,
            "0 to 1",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 8, "height": 8, "ink": ["a"] * 64}}),
            400,
            "numbers",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 16, "height": 16, "ink": [0] * 256}}),
            422,
            "no digit",
        ),
        ("/api/analyse", json.dumps({}), 400, "drawing"),
        ("/api/analyse", json.dumps({"test_index": -1}), 400, "test_index"),
        (
            "/api/analyse",
            json.dumps({"test_index": 0, "disabled": {"conv9": [0]}}),
            400,
            "unknown conv layer",
        ),
        (
            "/api/analyse",
            json.dumps({"test_index": 0, "disabled": {"conv1": [6]}}),
            400,
            "filters 0 to 5",
        ),
        ("/api/analyse", json.dumps({"test_index": 0, "cover": [5, 5, 2, 2]}), 400, "covered"),
        ("/api/gradient", json.dumps({"test_index": 0, "class": 10}), 400, "class must be 0"),
        ("/api/gradient", json.dumps({"test_index": 0, "class": "7"}), 400, "class"),
        (
            "/api/arithmetic",
            json.dumps({"test_index": 0, "layer": "relu1", "channel": 0, "row": 0, "column": 0}),
            400,
            "unknown layer",
        ),
        (
            "/api/arithmetic",
            json.dumps({"test_index": 0, "layer": "conv3", "channel": 0, "row": 0, "column": 0}),
            400,
            "unknown conv layer",
        ),
        (
            "/api/arithmetic",
            json.dumps({"test_index": 0, "layer": "conv1", "channel": 0, "row": 28, "column": 0}),
            400,
            "outside",
        ),
        ("/api/train", json.dumps({"mode": "forever"}), 400, "mode"),
        ("/api/train/stop", json.dumps({}), 409, "no training run"),
        ("/api/nothing", json.dumps({}), 404, "not found"),
    ],
)
def test_bad_requests_get_a_4xx_with_one_line_and_the_server_keeps_serving(
    client, path, body, status, message
):
    body = body.encode() if isinstance(body, str) else body
    answer_status, answer = client.post(path, raw=body)
    assert answer_status == status, answer
    assert message in answer["error"] and "\n" not in answer["error"]
    assert client.get("/api/model")[0] == 200


def test_an_oversized_request_is_refused_unread(client):
    import socket

    for claimed in (1_000_001, 99_999_999_999):
        with socket.create_connection(("127.0.0.1", client.port), timeout=10) as sock:
            # The headers and a first bit of the body: the answer comes without the rest.
            sock.sendall(
                f"POST /api/analyse HTTP/1.0\r\nContent-Length: {claimed}\r\n\r\n{{".encode()
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split()[1] == b"413"
        assert "at most 1,000,000" in json.loads(body)["error"]
    assert client.get("/api/model")[0] == 200


def test_a_page_that_goes_away_mid_answer_is_no_error(model_path):
    import socket

    program, port, _ = start_program(model_path)
    try:
        for _ in range(5):  # ask for the biggest answer, then hang up at once
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET /api/testset HTTP/1.0\r\n\r\n")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        assert Client(port).get("/api/model")[0] == 200  # still serving
        program.send_signal(signal.SIGINT)
        _, stderr = program.communicate(timeout=30)
    finally:
        program.kill()
    assert "Traceback" not in stderr and "Error" not in stderr


def test_a_post_without_length_is_refused(client):
    status, data = raw_request(client.port, "POST /api/analyse HTTP/1.0")
    assert status == 411 and b"Content-Length" in data


def test_an_unreadable_model_file_gives_a_message_not_a_dead_page(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a model")
    for client, _ in serve(broken):
        status, model = client.get("/api/model")
        assert status == 200 and not model["ok"]
        assert "not a readable .npz model file" in model["error"]
        assert "simple_cnn_from_scratch.py" in model["train_command"]
        assert client.get("/")[0] == 200
        status, answer = client.post("/api/analyse", {"test_index": 0})
        assert status == 503 and "no model is loaded" in answer["error"]


# --------------------------------------------------------------------------------------------
# Training from the page
# --------------------------------------------------------------------------------------------


def read_events(port: int, until: set[str], timeout: float = 120) -> list[dict]:
    """Training events from the Server-Sent Events stream, until one of type in ``until``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", "/api/train/events")
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = response.fp.readline().decode()
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
            if events[-1]["type"] in until:
                break
    connection.close()
    return events


def test_a_training_run_from_the_page_streams_progress_and_saves(tmp_path, monkeypatch):
    monkeypatch.setattr(explorer_api, "QUICK_RUN", {"limit": 1200, "epochs": 2})
    model = tmp_path / "trained.npz"
    for client, _ in serve(model):  # no model yet: the page offers to train one
        assert not client.get("/api/model")[1]["ok"]
        events = []
        listener = threading.Thread(
            target=lambda port=client.port, found=events: found.extend(
                read_events(port, {"finished", "failed"})
            )
        )
        listener.start()
        time.sleep(0.3)  # let the stream connect before the run starts
        status, answer = client.post("/api/train", {"mode": "quick"})
        assert status == 202 and answer["save_path"] == str(model)
        status, refused = client.post("/api/train", {"mode": "quick"})
        assert status == 409 and "already running" in refused["error"]
        listener.join(timeout=180)
        kinds = [event["type"] for event in events]
        assert kinds[-1] == "finished", events[-1]
        assert kinds.count("epoch") == 2 and "progress" in kinds
        progress = next(e for e in events if e["type"] == "progress")
        assert set(progress["dead_fraction"]) == {"conv1", "conv2", "dense1"}
        assert all(0 <= f <= 1 for f in progress["dead_fraction"].values())
        assert decode(progress["filters"]["conv1"]).shape == (6, 1, 5, 5)
        assert decode(progress["maps"]["pool2"]).shape == (16, 5, 5)
        later = [e for e in events if e["type"] == "progress" and e["update_ratio"]]
        assert not later or all(r > 0 for r in later[0]["update_ratio"].values())
        status, loaded = client.get("/api/model")
        assert loaded["ok"] and len(loaded["history"]) == 2  # the page explores the new model
        assert model_file.load_model(model).epoch == 2


def test_ctrl_c_saves_a_running_training_run_first(tmp_path):
    model = tmp_path / "model.npz"
    program, port, address = start_program(model, cwd=tmp_path)
    assert address.startswith("SimpleCNN explorer: http://127.0.0.1:")
    try:
        events = []
        listener = threading.Thread(
            target=lambda: events.extend(read_events(port, {"progress"}, timeout=60))
        )
        listener.start()
        time.sleep(0.3)
        assert Client(port).post("/api/train", {"mode": "full"})[0] == 202
        listener.join(timeout=90)
        assert events and events[-1]["type"] == "progress"
        program.send_signal(signal.SIGINT)
        _, stderr = program.communicate(timeout=60)
    finally:
        program.kill()
    assert program.returncode == 0 and "Traceback" not in stderr
    assert f"saved to {model}" in stderr and "Explorer stopped." in stderr
    saved = model_file.load_model(model)
    assert saved.epoch == 0 and saved.step > 0  # mid-epoch, exactly as the trainer's Ctrl-C


def test_the_program_starts_in_about_a_second_without_tensorflow(model_path, tmp_path):
    code = (
        "import sys, time, threading, explore\n"
        "from explorer import api as explorer_api, server as explorer_server\n"
        "started = time.perf_counter()\n"
        f"explorer = explorer_api.Explorer({str(model_path)!r})\n"
        "server = explorer_server.make_server(explorer, '127.0.0.1', 0)\n"
        "print(time.perf_counter() - started, 'tensorflow' in sys.modules)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60
    )
    total = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    _, tensorflow_loaded = result.stdout.split()
    assert tensorflow_loaded == "False"
    assert total < 5  # imports and model included; loose enough for a slow machine


def test_a_host_other_than_localhost_gets_a_warning(model_path):
    program, _, address = start_program(model_path, "--host", "0.0.0.0")
    assert "http://0.0.0.0:" in address
    try:
        time.sleep(0.5)
        program.send_signal(signal.SIGINT)
        _, stderr = program.communicate(timeout=30)
    finally:
        program.kill()
    assert "has no login" in stderr and program.returncode == 0


def make_no_model(tmp_path: Path, state: str) -> tuple[Path, str]:
    """A --model path without a usable model, and the reason the explorer should give."""
    model = tmp_path / "fashion_model.npz"
    if state == "damaged":
        model.write_bytes(b"not a zip file")
        return model, "not a readable .npz model file"
    if state == "not a model":
        np.savez(model, something=np.zeros(3))
        return model, "not a SimpleCNN model file (format '<none>'"
    if state == "dangling link":
        model.symlink_to(tmp_path / "gone" / "model.npz")
        return model, f"{model}: no such model file; cannot write the model file"
    if state == "no folder":
        return tmp_path / "gone" / "model.npz", "no such model file; cannot write the model file"
    return model, f"{model}: no such model file"


NO_MODEL_STATES = ["missing", "damaged", "not a model", "dangling link", "no folder"]


@pytest.mark.parametrize("state", NO_MODEL_STATES)
def test_without_a_model_the_page_gets_the_reason_and_at_most_one_command(tmp_path, state):
    model, reason = make_no_model(tmp_path, state)
    for client, _ in serve(model):
        status, info = client.get("/api/model")
    assert status == 200 and not info["ok"]
    assert reason in info["error"] and "train one with" not in info["error"]
    if state in ("dangling link", "no folder"):  # the trainer could not save there either
        assert info["train_command"] is None
    else:
        assert info["train_command"] == f"python simple_cnn_from_scratch.py --save {model}"


@pytest.mark.parametrize("state", NO_MODEL_STATES)
def test_without_a_model_the_program_says_why_and_gives_one_command(tmp_path, state):
    model, reason = make_no_model(tmp_path, state)
    program, _, _ = start_program(model, cwd=tmp_path)
    try:
        hint = program.stdout.readline()
        program.send_signal(signal.SIGINT)
        program.communicate(timeout=30)
    finally:
        program.kill()
    assert hint.startswith("No model yet (") and reason in hint
    if state in ("dangling link", "no folder"):
        assert "simple_cnn_from_scratch.py" not in hint
        assert hint.rstrip().endswith("Give --model a model file, or a path where one can be saved")
    else:
        assert hint.count("simple_cnn_from_scratch.py") == 1  # one way to fix it, not two
        assert hint.rstrip().endswith(f"python simple_cnn_from_scratch.py --save {model}")
    assert program.returncode == 0


@pytest.mark.parametrize("has_model", [True, False], ids=["model", "no-model"])
def test_ctrl_c_right_after_the_address_stops_quietly(model_path, tmp_path, has_model):
    """SIGINT sent the moment the address line is read (a script that starts and stops the
    explorer) stops it cleanly, every time: the lines after the address (the missing model's
    advice) are printed where Ctrl-C is already handled."""
    model = model_path if has_model else tmp_path / "missing.npz"
    for _ in range(5):
        program, _, _ = start_program(model, cwd=tmp_path)
        try:
            program.send_signal(signal.SIGINT)
            _, stderr = program.communicate(timeout=30)
        finally:
            program.kill()
        assert program.returncode == 0, stderr
        assert "Traceback" not in stderr and stderr.endswith("Explorer stopped.\n")
