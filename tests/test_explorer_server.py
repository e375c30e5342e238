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
from explorer_models import save_untrained_model

import predict_digit
from download_mnist import load_dataset
from explorer import api as explorer_api
from explorer import server as explorer_server
from training import model_file
from training.output_files import check_outputs
from training.settings import TrainConfig

PROJECT_DIR = Path(__file__).resolve().parent.parent


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


def test_the_preparation_of_a_drawing_step_by_step(client):
    """/api/preparation: predict_digit's steps, named, the last one the image /api/analyse
    gives; a test digit has none, and a blank drawing none either."""
    ink = np.zeros((112, 112))
    ink[10:40, 12:16] = 0.4  # a faint short stroke near the corner
    status, answer = client.post("/api/preparation", drawing(ink))
    assert status == 200
    expected = predict_digit.preparation_steps((1 - ink).astype(np.float32))
    assert [step["name"] for step in answer["steps"]] == [name for name, _ in expected]
    images = [decode(step["image"]) for step in answer["steps"]]
    assert images[0].shape == (112, 112) and images[-1].shape == (28, 28)
    for image, (_, step_image) in zip(images[:-1], expected[:-1], strict=True):
        assert np.abs(image / 255 - step_image).max() <= 0.5 / 255  # levels 0..255
    assert images[1].max() == 255  # faint ink at full contrast
    assert (images[-1] == decode(client.post("/api/analyse", drawing(ink))[1]["image"])).all()
    assert client.post("/api/preparation", {"test_index": 0})[0] == 400
    assert client.post("/api/preparation", drawing(np.zeros((64, 64))))[0] == 422


def test_the_pages_drawing_as_bytes_is_the_same_drawing(client):
    """The page sends its ink as base64 bytes (0 paper .. 255 ink): read in microseconds where
    a list of 12,544 numbers takes milliseconds; the same levels give the same answer."""
    levels = np.uint8(np.round(255 * vertical_stroke()))
    as_bytes = {"shape": [112, 112], "bytes": base64.b64encode(levels).decode()}
    _, from_bytes = client.post(
        "/api/analyse", {"drawing": {"width": 112, "height": 112, "ink": as_bytes}}
    )
    _, from_list = client.post("/api/analyse", drawing(levels / 255))
    assert np.array_equal(decode(from_bytes["image"]), decode(from_list["image"]))
    assert from_bytes["prediction"] == from_list["prediction"]
    for ink in [
        {"shape": [112, 111], "bytes": as_bytes["bytes"]},  # not the drawing's shape
        {"shape": [112, 112], "bytes": "not base64!"},
        {"shape": [112, 112], "bytes": base64.b64encode(levels[:-1]).decode()},  # too short
        {"shape": [112, 112], "data": as_bytes["bytes"]},  # float32's form
    ]:
        status, answer = client.post(
            "/api/analyse", {"drawing": {"width": 112, "height": 112, "ink": ink}}
        )
        assert status == 400 and "as bytes must be" in answer["error"], answer


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
        # Issue 19: ink of the wrong structure was accepted ([[1]] * 64 reshaped to 8x8).
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 8, "height": 8, "ink": [[1]] * 64}}),
            400,
            "flat list of numbers",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 8, "height": 8, "ink": [[1], 2] + [0] * 62}}),
            400,
            "flat list of numbers",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 8, "height": 8, "ink": [True] * 64}}),
            400,
            "flat list of numbers",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 8, "height": 8, "ink": [None] * 64}}),
            400,
            "flat list of numbers",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 8, "height": 8, "ink": [{"a": 1}] * 64}}),
            400,
            "flat list of numbers",
        ),
        (
            "/api/analyse",
            json.dumps({"drawing": {"width": 8.0, "height": 8, "ink": [0] * 64}}),
            400,
            "width must be",
        ),
        ("/api/analyse", json.dumps({"test_index": True}), 400, "test_index"),
        ("/api/analyse", b'{"test_index": 1e400}', 400, "test_index"),
        ("/api/analyse", json.dumps({"test_index": 0, "cover": [0, 0, 28, True]}), 400, "cover"),
        (
            "/api/analyse",
            json.dumps({"test_index": 0, "disabled": {"conv1": [True]}}),
            400,
            "disabled",
        ),
        ("/api/analyse", b"\xff\xfe{}", 400, "not valid JSON"),
        ("/api/gradient", json.dumps({"test_index": 0, "class": True}), 400, "class"),
        ("/api/gradient", json.dumps({"test_index": 0, "class": 3, "versus": 3}), 400, "versus"),
        ("/api/gradient", json.dumps({"test_index": 0, "class": 3, "versus": "1"}), 400, "versus"),
        (
            "/api/arithmetic",
            json.dumps({"test_index": 0, "layer": "conv1", "channel": 0.0, "row": 0, "column": 0}),
            400,
            "integers",
        ),
        (
            "/api/weight_gradient",
            json.dumps(
                {
                    "test_index": 0,
                    "class": 1,
                    "layer": "conv1",
                    "filter": 6,
                    "channel": 0,
                    "row": 0,
                    "column": 0,
                }
            ),
            400,
            "outside them",
        ),
        (
            "/api/weight_gradient",
            json.dumps(
                {
                    "test_index": 0,
                    "class": 1,
                    "layer": "pool1",
                    "filter": 0,
                    "channel": 0,
                    "row": 0,
                    "column": 0,
                }
            ),
            400,
            "unknown conv layer",
        ),
        ("/api/training_step", json.dumps({"test_index": 0, "label": 10}), 400, "label must be"),
        ("/api/train", json.dumps({"mode": "forever"}), 400, "mode"),
        ("/api/train", json.dumps({"epochs": 0}), 400, "epochs must be 1 to 30"),
        ("/api/train", json.dumps({"epochs": "3"}), 400, "epochs must be"),
        ("/api/train", json.dumps({"learning_rate": 0}), 400, "learning_rate"),
        ("/api/train", json.dumps({"learning_rate": 5}), 400, "learning_rate"),
        ("/api/train", json.dumps({"num_filters": [6]}), 400, "num_filters must be 2 numbers"),
        ("/api/train", json.dumps({"num_filters": [6, 65]}), 400, "from 1 to 64"),
        ("/api/train/pace", json.dumps({"pace": "fast"}), 400, "pace must be"),
        ("/api/train/pace", json.dumps({"pace": "pause"}), 409, "no training run"),
        ("/api/model/restore", json.dumps({}), 409, "original already"),
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


def raw_exchange(port: int, data: bytes) -> tuple[int, dict, bytes]:
    """Send bytes exactly as written; the status, headers (lower-case names) and body of the
    first answer."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        (["2", "5"], "differ"),  # issue 19: of two, the first was used silently
        (["²"], "number of bytes"),  # issue 19: isdigit() but not int(): a traceback
        (["-1"], "number of bytes"),
        (["+2"], "number of bytes"),
        (["0x2"], "number of bytes"),
        (["2e0"], "number of bytes"),
        (["٢"], "number of bytes"),  # an Arabic-Indic two: a digit to str.isdigit()
    ],
)
def test_a_content_length_that_is_not_one_number_is_refused(client, lengths, message):
    head = "".join(f"Content-Length: {value}\r\n" for value in lengths)
    request = f"POST /api/analyse HTTP/1.1\r\nHost: x\r\n{head}\r\n{{}}".encode()
    status, headers, body = raw_exchange(client.port, request)
    assert status == 400 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert message in error and "\n" not in error
    assert client.get("/api/model")[0] == 200


def test_a_chunked_body_is_read(client):
    body = json.dumps({"test_index": 0}).encode()
    request = (
        b"POST /api/analyse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    )
    status, _, answer = raw_exchange(client.port, request)
    assert status == 200 and json.loads(answer)["prediction"] in range(10)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"])
@pytest.mark.parametrize("path", ["/api/analyse", "/api/model", "/api/train/events"])
def test_a_method_a_path_does_not_take_gets_405_with_one_line(client, method, path):
    """Issue 19: the standard library's server answered 501 with an HTML page."""
    status, headers, body = raw_exchange(
        client.port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert status == 405 and headers["allow"] in ("GET", "POST")
    if method != "HEAD":  # an answer to HEAD has no body
        error = json.loads(body)["error"]
        assert f"{method} is not allowed" in error and "\n" not in error


def test_the_page_answers_head_and_refuses_other_methods(client):
    status, _, body = raw_exchange(
        client.port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 200 and body == b""
    status, headers, body = raw_exchange(
        client.port, b"DELETE /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert (
        status == 405 and headers["allow"] == "GET, HEAD" and "DELETE" in json.loads(body)["error"]
    )


def test_two_hundred_drawings_arriving_at_once_are_all_answered(client):
    """A classroom that draws at the same moment: every connection is accepted (the listen
    backlog was 5, and a quarter to three quarters of them got a connection reset) and
    answered."""
    body = json.dumps(drawing(vertical_stroke())).encode()
    start = threading.Barrier(200)
    statuses = []

    def ask():
        connection = http.client.HTTPConnection("127.0.0.1", client.port, timeout=120)
        start.wait()
        try:
            connection.request("POST", "/api/analyse", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        except OSError as error:
            statuses.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 200, [s for s in statuses if s != 200][:3]


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


def read_events(
    port: int, until: set[str], timeout: float = 120, events: list | None = None
) -> list[dict]:
    """Training events from the Server-Sent Events stream, until one of type in ``until``;
    each is appended to ``events`` as it arrives (a list another thread watches)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", "/api/train/events")
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    events = [] if events is None else events
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


def test_a_run_saves_to_its_own_file_can_be_paced_and_the_original_restored(
    tmp_path, model_path, monkeypatch
):
    """A run never replaces the model explored: it saves beside it, every page is told, and
    "restore the original" brings the original back. Paused, it holds between two steps;
    each "step" shows one more step with its gradients."""
    monkeypatch.setattr(explorer_api, "QUICK_RUN", {"limit": 12800, "epochs": 2})
    original = tmp_path / "mine.npz"
    original.write_bytes(model_path.read_bytes())
    events = []
    for client, _ in serve(original):
        listener = threading.Thread(target=read_events, args=(client.port, {"model"}, 180, events))
        listener.start()
        time.sleep(0.3)
        status, answer = client.post("/api/train", {"mode": "quick", "epochs": 1})
        assert status == 202 and answer["save_path"] == str(tmp_path / "mine-explorer-run.npz")
        deadline = time.monotonic() + 120
        while not any(e["type"] == "progress" for e in events):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.post("/api/train/pace", {"pace": "pause"})[0] == 202
        time.sleep(1.0)  # the step in progress ends, and its snapshot arrives
        paused_at = len(events)
        time.sleep(1.0)
        assert len(events) == paused_at, "a paused run holds still"
        assert client.post("/api/train/pace", {"pace": "step"})[0] == 202
        deadline = time.monotonic() + 30
        while not [e for e in events[paused_at:] if e["type"] == "progress"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stepped = [e for e in events[paused_at:] if e["type"] == "progress"]
        assert len(stepped) == 1 and stepped[0]["pace"] == "pause"
        assert decode(stepped[0]["conv_gradients"]["conv1"]).shape == (6, 1, 5, 5)
        assert client.post("/api/train/pace", {"pace": "run"})[0] == 202
        deadline = time.monotonic() + 120
        while not any(e["type"] in ("finished", "failed") for e in events):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        finished = next(e for e in events if e["type"] in ("finished", "failed"))
        assert finished["type"] == "finished", finished
        assert finished["model_path"] == str(tmp_path / "mine-explorer-run.npz")
        assert original.read_bytes() == model_path.read_bytes()  # untouched
        info = client.get("/api/model")[1]
        assert info["path"] == finished["model_path"] and info["original_path"] == str(original)
        assert client.post("/api/model/restore", {})[0] == 200
        listener.join(timeout=30)
        assert events[-1]["type"] == "model" and str(original) in events[-1]["message"]
        assert client.get("/api/model")[1]["path"] == str(original)


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
    assert program.returncode == 130 and "Traceback" not in stderr  # the shell's, as the trainer's
    assert f"saved to {model}" in stderr and "Explorer stopped." in stderr
    saved = model_file.load_model(model)
    assert saved.epoch == 0 and saved.step > 0  # mid-epoch, exactly as the trainer's Ctrl-C


def test_ctrl_c_with_requests_in_flight_stops_cleanly(model_path):
    """Issue 19: Ctrl-C while requests were being answered printed an OSError: [Errno 9]
    traceback. The answers in flight are sent, then it stops with the shell's status."""
    program, port, _ = start_program(model_path)
    body = json.dumps(drawing(vertical_stroke())).encode()
    stop_asking = threading.Event()
    answers = []

    def keep_asking(path):
        while not stop_asking.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                if path == "/api/testset":
                    connection.request("GET", path)
                else:
                    connection.request("POST", path, body, {"Content-Type": "application/json"})
                answers.append(connection.getresponse().status)
            except OSError:
                pass  # the server has stopped listening
            finally:
                connection.close()

    askers = [
        threading.Thread(target=keep_asking, args=(path,))
        for path in ["/api/testset"] * 2 + ["/api/analyse"] * 6
    ]
    try:
        for asker in askers:
            asker.start()
        time.sleep(2)
        program.send_signal(signal.SIGINT)
        _, stderr = program.communicate(timeout=60)
    finally:
        stop_asking.set()
        for asker in askers:
            asker.join()
        program.kill()
    assert answers and set(answers) == {200}
    assert program.returncode == 130
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert stderr.endswith("Explorer stopped.\n")


def test_sigterm_stops_it_with_the_shells_status(model_path):
    program, port, _ = start_program(model_path)
    try:
        assert Client(port).get("/api/model")[0] == 200
        program.send_signal(signal.SIGTERM)
        _, stderr = program.communicate(timeout=30)
    finally:
        program.kill()
    assert program.returncode == 143 and "Traceback" not in stderr  # 128 + 15, as the trainer


def test_read_only_refuses_training_but_the_teachers_page_may(model_path):
    program, port, _ = start_program(model_path, "--read-only")
    try:
        teacher = program.stdout.readline()
        assert teacher.startswith("Read-only: viewers cannot train.")
        token = teacher.rsplit("?teacher=", 1)[1].strip()
        client = Client(port)
        assert client.get("/api/model")[1]["read_only"] is True
        for path, body in [
            ("/api/train", {"mode": "quick"}),
            ("/api/train/stop", {}),
            ("/api/train/pace", {"pace": "pause"}),
            ("/api/model/restore", {}),
            ("/api/train", {"mode": "quick", "teacher_token": "guess"}),
        ]:
            status, answer = client.post(path, body)
            assert status == 403 and "read-only" in answer["error"], (path, answer)
        # With the token, the request is the teacher's: it gets past the check.
        status, answer = client.post("/api/train/stop", {"teacher_token": token})
        assert status == 409 and "no training run" in answer["error"]
        assert client.post("/api/analyse", {"test_index": 0})[0] == 200  # viewers still explore
        program.send_signal(signal.SIGINT)
        program.communicate(timeout=30)
    finally:
        program.kill()


def test_a_filter_weights_gradient_is_the_sum_the_backward_pass_computes(client, model_path):
    """The page's "click a weight": the sum over positions of input x upstream gradient,
    and SimpleCNN.gradients' own number for the same weight, equal."""
    from inference import images_to_input, load_classifier

    classifier = load_classifier(str(model_path))
    image = load_dataset()[2][0]
    x = images_to_input(image[np.newaxis])
    outputs = classifier.head.forward(classifier.cnn.features(x))
    d_logits = np.zeros_like(outputs[-1])
    d_logits[0, 7], d_logits[0, 1] = 1.0, -1.0
    expected = classifier.cnn.gradients(x, classifier.head.backward(outputs, d_logits)).filters
    for layer, weight in [
        ("conv1", (2, 0, 0, 4)),
        ("conv2", (11, 3, 2, 2)),
        ("conv2", (0, 5, 4, 0)),
    ]:
        status, answer = client.post(
            "/api/weight_gradient",
            {
                "test_index": 0,
                "class": 7,
                "versus": 1,
                "layer": layer,
                **dict(zip(["filter", "channel", "row", "column"], weight, strict=True)),
            },
        )
        assert status == 200, answer
        stage = int(layer[-1]) - 1
        assert answer["network_value"] == pytest.approx(float(expected[stage][weight]), rel=1e-6)
        assert answer["sum"] == pytest.approx(answer["network_value"], rel=1e-4, abs=1e-7)
        products = decode(answer["products"])
        np.testing.assert_allclose(
            products, decode(answer["inputs"]) * decode(answer["upstream"]), rtol=1e-5, atol=1e-8
        )


def test_the_gradient_of_one_class_against_another(client):
    _, plain = client.post("/api/gradient", {"test_index": 0, "class": 7})
    _, other = client.post("/api/gradient", {"test_index": 0, "class": 1})
    _, versus = client.post("/api/gradient", {"test_index": 0, "class": 7, "versus": 1})
    np.testing.assert_allclose(
        decode(versus["input"]), decode(plain["input"]) - decode(other["input"]), atol=1e-5
    )
    assert versus["score"] == pytest.approx(plain["logit"] - other["logit"], abs=1e-4)
    image = decode(client.post("/api/analyse", {"test_index": 0})[1]["image"]) / 255
    np.testing.assert_allclose(
        decode(plain["gradient_x_input"]), decode(plain["input"]) * image, atol=1e-6
    )


def test_one_training_step_stage_by_stage(client, model_path):
    """The loss, its gradient at the logits, the filters' gradients and Adam's update, as the
    trainer's step computes them (SimpleCNN.gradients, adam.Adam), changing nothing."""
    from adam import Adam
    from inference import images_to_input, load_classifier, softmax

    _, before = client.get("/api/model")
    status, step = client.post("/api/training_step", {"test_index": 5, "label": 3})
    assert status == 200, step
    classifier = load_classifier(str(model_path))
    images, labels = load_dataset()[2:]
    batch = np.concatenate([images[5:6], images[:7]])
    batch_labels = np.concatenate([[3], labels[:7]])
    x = images_to_input(batch)
    outputs = classifier.head.forward(classifier.cnn.features(x))
    probabilities = softmax(outputs[-1])
    loss = -np.log(probabilities[np.arange(8), batch_labels]).mean()
    assert step["count"] == 8 and step["loss"] == pytest.approx(loss, rel=1e-5)
    d_logits = (probabilities - np.eye(10)[batch_labels]) / 8
    np.testing.assert_allclose(decode(step["d_logits"]), d_logits[0], atol=1e-6)
    d_filters = classifier.cnn.gradients(x, classifier.head.backward(outputs, d_logits)).filters
    filters = [f.copy() for f in classifier.cnn.filters]
    Adam(learning_rate=step["learning_rate"]).step(
        filters, [g.astype(np.float32) for g in d_filters]
    )
    for stage, shown in enumerate(step["stages"]):
        np.testing.assert_allclose(
            decode(shown["d_filters"]), d_filters[stage], rtol=1e-4, atol=1e-8
        )
        np.testing.assert_allclose(
            # Where a gradient is near Adam's epsilon, float32 sums in another order move the
            # step by a little: 2e-6 against steps of the learning rate, 1e-3.
            decode(shown["update"]),
            filters[stage] - classifier.cnn.filters[stage],
            atol=2e-6,
        )
    assert client.get("/api/model")[1] == before  # nothing changed


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
    assert "has no login" in stderr and "--read-only" in stderr and program.returncode == 130


def make_no_model(tmp_path: Path, state: str) -> tuple[Path, str, Path | None]:
    """A --model path without a usable model, the reason the explorer should give, and the path
    it should suggest saving one at: one the trainer accepts (None: there is none)."""
    model = tmp_path / "fashion_model.npz"
    beside = tmp_path / "fashion_model-2.npz"  # where the trainer would not overwrite model
    if state == "damaged":
        model.write_bytes(b"not a zip file")
        return model, "not a readable .npz model file", beside
    if state == "not a model":
        np.savez(model, something=np.zeros(3))
        return model, "not a SimpleCNN model file (format '<none>'", beside
    if state == "notes":  # a user's own file: the trainer refuses to overwrite it
        notes = tmp_path / "notes.txt"
        notes.write_text("my notes\n")
        return (
            notes,
            "exists and is not a model file written by this program",
            tmp_path / "notes.npz",
        )
    if state == "dangling link":
        model.symlink_to(tmp_path / "gone" / "model.npz")
        return model, f"{model}: no such model file; cannot write the model file", beside
    if state == "no folder":
        gone = tmp_path / "gone" / "model.npz"
        return gone, "no such model file; cannot write the model file", None
    if state == "a folder":  # a model file inside it is suggested
        return tmp_path, "not a regular file", tmp_path / "simple_cnn_model.npz"
    if state == "empty":  # --model '' raised in the new code before its test
        return "", "the model file path is empty; give the path of a .npz model file; no run", None
    return model, f"{model}: no such model file", model


NO_MODEL_STATES = [
    "missing",
    "damaged",
    "not a model",
    "notes",
    "dangling link",
    "no folder",
    "a folder",
    "empty",
]


@pytest.mark.parametrize("state", NO_MODEL_STATES)
def test_without_a_model_the_page_gets_the_reason_and_at_most_one_command(tmp_path, state):
    model, reason, save_at = make_no_model(tmp_path, state)
    for client, _ in serve(model):
        status, info = client.get("/api/model")
    assert status == 200 and not info["ok"]
    assert reason in info["error"] and "train one with" not in info["error"]
    if save_at is None:  # the trainer could not save there either
        assert info["train_command"] is None and info["run_path"] is None
        assert info["run_refusal"]
    else:
        assert info["train_command"] == f"python simple_cnn_from_scratch.py --save {save_at}"
        assert info["run_path"] == str(save_at)
        if save_at != model and state != "a folder":  # the trainer refused --model's path
            assert f"a run saves to {save_at} instead" in info["error"]


@pytest.mark.parametrize("state", NO_MODEL_STATES)
def test_without_a_model_the_program_says_why_and_gives_one_command(tmp_path, state):
    """The command it suggests is one the trainer accepts (issue 19: --model notes.txt
    suggested --save notes.txt, which the trainer refuses)."""
    model, reason, save_at = make_no_model(tmp_path, state)
    program, _, _ = start_program(model, cwd=tmp_path)
    try:
        hint = program.stdout.readline()
        program.send_signal(signal.SIGINT)
        program.communicate(timeout=30)
    finally:
        program.kill()
    assert hint.startswith("No model yet (") and reason in hint
    if save_at is None:
        assert "simple_cnn_from_scratch.py" not in hint
        assert hint.rstrip().endswith("Give --model a model file, or a path where one can be saved")
    else:
        assert hint.count("simple_cnn_from_scratch.py") == 1  # one way to fix it, not two
        assert hint.rstrip().endswith(f"python simple_cnn_from_scratch.py --save {save_at}")
        # The trainer's own check of --save accepts it (it raised for notes.txt).
        check_outputs(TrainConfig(save_path=str(save_at), verbose=False))
    assert program.returncode == 130


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
        assert program.returncode == 130, stderr
        assert "Traceback" not in stderr and stderr.endswith("Explorer stopped.\n")


# --------------------------------------------------------------------------------------------
# Drawings answered in worker processes (as python explore.py answers them)
# --------------------------------------------------------------------------------------------


def serve_in_processes(model: Path, processes: int = 2):
    explorer = explorer_api.Explorer(str(model))
    server = explorer_server.make_server(explorer, "127.0.0.1", 0, processes=processes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.processes.warm_up()
    return Client(server.server_address[1]), explorer, server


def stop_serving(explorer, server) -> None:
    explorer.close()
    server.shutdown()
    server.server_close()


WORKER_REQUESTS = [
    ("/api/analyse", drawing(vertical_stroke())),
    ("/api/preparation", drawing(vertical_stroke())),
    ("/api/analyse", {"test_index": 3}),
    ("/api/analyse", {**drawing(vertical_stroke()), "disabled": {"conv1": [0, 2]}}),
    ("/api/analyse", {"test_index": 5, "cover": [0, 0, 14, 28]}),
    ("/api/gradient", {"test_index": 3, "class": 7, "versus": 1}),
    ("/api/arithmetic", {"test_index": 3, "layer": "conv2", "channel": 1, "row": 4, "column": 5}),
    ("/api/arithmetic", {"test_index": 3, "layer": "pool1", "channel": 0, "row": 2, "column": 3}),
    (
        "/api/weight_gradient",
        {
            "test_index": 3,
            "class": 7,
            "layer": "conv1",
            "filter": 0,
            "channel": 0,
            "row": 1,
            "column": 2,
        },
    ),
    ("/api/analyse", drawing(np.zeros((64, 64)))),  # blank: 422
    ("/api/analyse", {"test_index": 10**6}),  # 400
    ("/api/arithmetic", {"test_index": 3, "layer": "dense", "channel": 0, "row": 0, "column": 0}),
]


def test_worker_processes_answer_exactly_as_the_server_itself(client, model_path, monkeypatch):
    """Every request a worker process answers gets the answer (and the refusal) the server's
    own threads give, and this process computes none of it."""
    expected = [client.post(path, body) for path, body in WORKER_REQUESTS]
    assert [status for status, _ in expected] == [200] * 9 + [422, 400, 400]

    def computed_here(*args, **kwargs):
        raise AssertionError("a drawing was answered in the server's own process")

    monkeypatch.setattr(explorer_server.analysis, "analyse", computed_here)
    monkeypatch.setattr(explorer_server.analysis, "class_gradients", computed_here)
    monkeypatch.setattr(explorer_server.analysis, "conv_arithmetic", computed_here)
    monkeypatch.setattr(explorer_server.analysis, "weight_gradient", computed_here)
    in_processes, explorer, server = serve_in_processes(model_path)
    try:
        answers = [in_processes.post(path, body) for path, body in WORKER_REQUESTS]
    finally:
        stop_serving(explorer, server)
    assert answers == expected


def test_after_the_model_changes_the_workers_answer_for_the_new_one(tmp_path):
    """A finished run or a restore makes the server explore another model: the next drawing's
    answer comes from it, not from the copy the workers started with."""
    first = save_untrained_model(tmp_path / "first.npz", seed=1)
    second = save_untrained_model(tmp_path / "second.npz", seed=2)
    stroke = drawing(vertical_stroke())
    expected = {}
    for model in (first, second):
        alone = explorer_api.Explorer(str(model))
        expected[model] = explorer_server._as_json(
            lambda alone=alone: explorer_api.analyse(alone, stroke), 200
        )
    assert expected[first] != expected[second]
    client, explorer, server = serve_in_processes(first)
    try:
        assert client.post("/api/analyse", stroke) == (200, json.loads(expected[first][1]))
        with explorer.lock:  # as a finished run switches the model explored
            explorer.model_path = str(second)
            explorer.load_model()
        assert client.post("/api/analyse", stroke) == (200, json.loads(expected[second][1]))
    finally:
        stop_serving(explorer, server)


def worker_pids(pid: int) -> list[int]:
    """The explorer's worker processes among process ``pid``'s children (not, say, the
    resource tracker multiprocessing may start beside them)."""
    children = [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return [
        child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def started_workers(pid: int, seconds: float = 30) -> list[int]:
    """The worker processes of explore.py's process ``pid``, once it has started one."""
    deadline = time.monotonic() + seconds
    while not worker_pids(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return worker_pids(pid)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds workers in Linux's /proc")
def test_a_worker_killed_mid_burst_costs_no_answer(model_path):
    """A worker killed (out of memory, by hand) while drawings are being answered: each of
    them is asked again of new workers, and every page gets its answer."""
    client, explorer, server = serve_in_processes(model_path)
    statuses = []

    def draw():
        for _ in range(5):
            statuses.append(client.post("/api/analyse", drawing(vertical_stroke()))[0])

    try:
        threads = [threading.Thread(target=draw) for _ in range(12)]
        for thread in threads:
            thread.start()
        time.sleep(0.1)
        os.kill(worker_pids(os.getpid())[0], signal.SIGKILL)
        for thread in threads:
            thread.join()
        assert statuses == [200] * 60
        assert client.post("/api/analyse", drawing(vertical_stroke()))[0] == 200
    finally:
        stop_serving(explorer, server)


def test_the_program_answers_drawings_in_worker_processes_and_ctrl_c_stops_them(model_path):
    program, port, _ = start_program(model_path)
    try:
        client = Client(port)
        workers = started_workers(program.pid)
        assert workers, "explore.py started no worker processes"
        assert client.post("/api/analyse", drawing(vertical_stroke()))[0] == 200
        program.send_signal(signal.SIGINT)
        _, stderr = program.communicate(timeout=30)
    finally:
        program.kill()
    assert program.returncode == 130
    assert "Traceback" not in stderr and stderr.endswith("Explorer stopped.\n"), stderr
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def start_in_own_group(model: Path):
    """explore.py as a service manager starts it: in a process group of its own."""
    program = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "explore.py"), "--model", str(model), "--port", "0"],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    address = program.stdout.readline()
    started_workers(program.pid)
    return program, int(address.split(":")[3].split("/")[0])


def gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [
            pid
            for pid in pids
            if Path(f"/proc/{pid}").exists()
            and ") Z " not in Path(f"/proc/{pid}/stat").read_text()  # a zombie has ended
        ]
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds workers in Linux's /proc")
def test_sigterm_to_the_whole_group_during_a_burst_stops_it_cleanly(model_path):
    """systemd, `timeout` and `kill -- -PGID` send SIGTERM to every process of the program:
    the workers leave stopping to the explorer, which answers what it took and exits 143."""
    program, port = start_in_own_group(model_path)
    workers = worker_pids(program.pid)
    statuses = []

    def draw():
        try:
            statuses.append(Client(port).post("/api/analyse", drawing(vertical_stroke()))[0])
        except OSError:
            statuses.append("refused")  # asked after the explorer had stopped listening

    try:
        threads = [threading.Thread(target=draw) for _ in range(40)]
        for thread in threads:
            thread.start()
        time.sleep(0.05)
        os.killpg(program.pid, signal.SIGTERM)
        for thread in threads:
            thread.join()
        _, stderr = program.communicate(timeout=30)
    finally:
        program.kill()
    assert program.returncode == 143, stderr
    assert stderr == "Explorer stopped.\n"
    assert set(statuses) <= {200, "refused"}, statuses
    assert gone(workers, 5)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds workers in Linux's /proc")
def test_workers_exit_when_the_explorer_is_killed(model_path):
    program, _ = start_in_own_group(model_path)
    workers = worker_pids(program.pid)
    assert workers
    program.kill()
    program.wait(timeout=10)
    assert gone(workers, 5), "worker processes outlived the explorer"
