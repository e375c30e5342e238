"""Browser tests of the explorer's page (explorer/): a real Chromium drives the real server.

Each test starts ``python explore.py --model M --port 0`` as a subprocess, as a user would, opens
the page in headless Chromium (Playwright) and checks what it shows through stable hooks:

    #draw                          the drawing pad (a canvas)
    #prediction                    the answer: the digit, or the class name
    #bars .bar[data-class][data-probability]
    canvas.map[data-layer][data-channel][data-max-abs]      one map of a layer
    #arith-sum, #arith-value, #arith-winner, #arith-max     the arithmetic of a clicked pixel
    .filter[data-layer][data-filter]                        a filter (click: off / on)
    #prepared[data-sum]            the 28x28 image the network received (sum of its grey levels)
    #confusion td[data-count], .mistake[data-index], #testset-summary[data-count]
    #loss-curve[data-points], #train-status[data-state], #train-message
    body[data-busy]                "false" once every request the page wanted has been answered

The models are small real ones, trained once per test session. Chromium is
Debian's (apt-get install chromium) or Playwright's own (python -m playwright install chromium);
without either the tests skip, and in CI (the CI environment variable set) they fail.
"""

from __future__ import annotations

import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from explorer_models import save_untrained_model

from download_mnist import FASHION_LABELS
from training import model_file

PROJECT_DIR = Path(__file__).resolve().parent.parent
INSTALL_HINT = (
    "the explorer's browser tests need Playwright (pip install -r requirements-dev.txt) and "
    "Chromium: Debian's (apt-get install chromium) or Playwright's own (python -m playwright "
    "install chromium)"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def no_browser(reason: str):
    """Fail in CI (the browser is part of its setup), skip on a laptop without one."""
    message = f"{reason}; {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # checked again in the browser fixture, which skips or fails with a hint
    sync_playwright = None


# --------------------------------------------------------------------------------------------
# The browser, the models and the servers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        no_browser("Playwright is not installed")
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        debian_chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        try:
            if debian_chromium:
                chromium = playwright.chromium.launch(
                    executable_path=debian_chromium, args=CHROMIUM_ARGS
                )
            else:
                chromium = playwright.chromium.launch(args=CHROMIUM_ARGS)
        except PlaywrightError as error:
            no_browser(f"no Chromium could be started ({str(error).splitlines()[0]})")
        yield chromium
        chromium.close()


def train_model(path: Path, *options: str) -> Path:
    subprocess.run(
        [sys.executable, "simple_cnn_from_scratch.py", *options, "--save", str(path), "--quiet"],
        cwd=PROJECT_DIR,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("explorer-models")


@pytest.fixture(scope="session")
def mnist_model(model_dir) -> Path:
    """The default network on 6,000 digits for 2 epochs: most test digits right."""
    return train_model(model_dir / "mnist.npz", "--limit", "6000", "--epochs", "2")


@pytest.fixture(scope="session")
def wide_model(model_dir) -> Path:
    """32 and 64 filters of 3x3, no padding: many maps per layer, 32 channels per conv2 filter."""
    return train_model(
        model_dir / "wide.npz",
        *("--filters", "32,64", "--kernel-size", "3", "--padding", "valid"),
        *("--limit", "2000", "--epochs", "1"),
    )


@pytest.fixture(scope="session")
def fashion_model(mnist_model, model_dir) -> Path:
    """The MNIST model's weights under a Fashion-MNIST config: the page must name its classes
    (the weights were not trained on clothes, so its answers are meaningless; only names are
    checked)."""
    saved = model_file.load_model(mnist_model)
    saved.config = {**saved.config, "dataset": "fashion"}
    path = model_dir / "fashion.npz"
    model_file.save_model(path, saved)
    return path


class ExplorerServer:
    """``python explore.py --model M --port 0 OPTIONS`` in a subprocess; stop() checks it ends
    cleanly. With --read-only, ``teacher_token`` is the token it printed."""

    def __init__(self, model_path: Path, *options: str):
        self.process = subprocess.Popen(
            [sys.executable, "explore.py", "--model", str(model_path), "--port", "0", *options],
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first_line: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: first_line.put(self.process.stdout.readline()), daemon=True
        ).start()
        try:
            line = first_line.get(timeout=60)
        except queue.Empty:
            self.process.kill()
            pytest.fail("explore.py printed no address within 60 s")
        match = re.search(r"http://\S+/", line)
        if not match:
            self.process.kill()
            _, stderr = self.process.communicate(timeout=10)
            pytest.fail(f"explore.py did not print its address: {line!r} {stderr}")
        self.url = match.group(0)
        self.teacher_token = None
        if "--read-only" in options:
            self.teacher_token = self.process.stdout.readline().rsplit("?teacher=", 1)[1].strip()

    def stop(self, page=None) -> str:
        """Ctrl-C, as a user stops it: the shell's status for it (130) and no traceback.
        Returns its stderr. ``page``, still open on it, first leaves (a page whose server
        stops logs the lost event stream as an error, rightly)."""
        if page is not None:
            page.goto("about:blank")
        self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=60)
        assert self.process.returncode == 130, stderr
        assert "Traceback" not in stderr, stderr
        return stderr


@pytest.fixture(scope="module")
def mnist_server(mnist_model):
    server = ExplorerServer(mnist_model)
    yield server
    server.stop()


@pytest.fixture
def allowed_errors() -> list[str]:
    """What the console may log in a test: a test that makes the server refuse a request (a
    422 for a drawing without a digit, a 409) adds the status it expects, e.g. "status of 422".
    Anything else the console logs as an error fails the test."""
    return []


def open_page(browser, allowed_errors: list[str], **context_options):
    """A new page (and its context) that records every console error and page error, and
    every address it fetches; check_page() asserts on them at the end."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not any(allowed in message.text for allowed in allowed_errors)
            and page.problems.append(f"console error: {message.text}")
        ),
    )
    page.urls = []
    page.on("request", lambda request: page.urls.append(request.url))
    page.in_flight = set()
    page.on("request", lambda request: "/api/" in request.url and page.in_flight.add(request))
    for event in ("requestfinished", "requestfailed"):
        page.on(event, lambda request: page.in_flight.discard(request))
    return context, page


def check_page(context, page) -> None:
    # Close only once every answer has arrived (the event stream never ends: not counted).
    deadline = time.monotonic() + 30
    while [r for r in page.in_flight if "/api/train/events" not in r.url]:
        assert time.monotonic() < deadline, "requests still unanswered after 30 s"
        page.wait_for_timeout(50)
    context.close()
    assert not page.problems, page.problems
    outside = [url for url in page.urls if not url.startswith("http://127.0.0.1:")]
    assert not outside, f"the page fetched from outside its server: {outside}"


@pytest.fixture
def page(browser, allowed_errors):
    """A fresh page at 1280x900. It must not reach anything but the explorer's own server, nor
    log errors (a blocked script or style, a JavaScript exception, a refused request the test
    did not expect)."""
    context, page = open_page(browser, allowed_errors, viewport={"width": 1280, "height": 900})
    yield page
    check_page(context, page)


# --------------------------------------------------------------------------------------------
# Using the page
# --------------------------------------------------------------------------------------------


def open_explorer(page, url: str, generation: int = 1) -> None:
    """Open the page and wait until the model is loaded and every first request answered."""
    page.goto(url)
    page.wait_for_selector(f'#model-line[data-generation="{generation}"]', state="attached")
    wait_until_idle(page)


def wait_until_idle(page) -> None:
    page.wait_for_selector('body[data-busy="false"]', state="attached")


def draw(page, points, lift: bool = True) -> None:
    """One stroke with the mouse through ``points`` in pad units (0..1 across and down)."""
    box = page.locator("#draw").bounding_box()
    screen = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*screen[0])
    page.mouse.down()
    for point in screen[1:]:
        page.mouse.move(*point, steps=2)
    if lift:
        page.mouse.up()


def vertical_stroke(steps: int = 20):
    return [(0.5, 0.15 + 0.7 * i / steps) for i in range(steps + 1)]


def ellipse(steps: int = 40):
    return [
        (
            0.5 + 0.24 * math.sin(2 * math.pi * i / steps),
            0.5 - 0.34 * math.cos(2 * math.pi * i / steps),
        )
        for i in range(steps + 1)
    ]


def probabilities(page) -> list[float]:
    return page.eval_on_selector_all(
        "#bars .bar", "bars => bars.map(bar => Number(bar.dataset.probability))"
    )


def data_values(page, selector: str) -> list[float]:
    return page.eval_on_selector_all(
        selector, "cells => cells.map(cell => Number(cell.dataset.value))"
    )


def number(page, selector: str, attribute: str = "data-value") -> float:
    return float(page.get_attribute(selector, attribute))


def click_map_pixel(page, layer: str, channel: int, row: int, column: int) -> None:
    """Click the centre of pixel (row, column) of a map, whatever size it is shown at."""
    canvas = page.locator(f'canvas.map[data-layer="{layer}"][data-channel="{channel}"]')
    height, width = canvas.evaluate("c => [c.height, c.width]")
    box = canvas.bounding_box()
    canvas.click(
        position={
            "x": (column + 0.5) * box["width"] / width,
            "y": (row + 0.5) * box["height"] / height,
        }
    )
    wait_until_idle(page)


# --------------------------------------------------------------------------------------------
# Drawing and predicting
# --------------------------------------------------------------------------------------------


def test_drawing_a_one_and_a_zero(page, mnist_server):
    open_explorer(page, mnist_server.url)
    page.click("#clear")
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("")
    assert sum(probabilities(page)) == 0, "a blank pad shows no prediction"

    draw(page, vertical_stroke())
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("1")
    shown = probabilities(page)
    assert len(shown) == 10
    assert sum(shown) == pytest.approx(1, abs=1e-4)
    winner = int(page.get_attribute("#bars .bar.winner", "data-class"))
    assert winner == 1 and shown[1] == max(shown)

    page.click("#clear")
    draw(page, ellipse())
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("0")
    assert sum(probabilities(page)) == pytest.approx(1, abs=1e-4)


def test_predicts_while_the_stroke_is_drawn_one_request_at_a_time(page, mnist_server):
    open_explorer(page, mnist_server.url)
    page.click("#clear")
    wait_until_idle(page)
    in_flight, most_in_flight, analyses = [0], [0], []

    def sent(request):
        if request.method == "POST" and "/api/" in request.url:
            in_flight[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])
            if request.url.endswith("/api/analyse"):
                analyses.append(time.monotonic())

    def answered(request):
        if request.method == "POST" and "/api/" in request.url:
            in_flight[0] -= 1

    page.on("request", sent)
    page.on("requestfinished", answered)
    page.on("requestfailed", answered)
    started = time.monotonic()
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 0.15 * box["height"])
    page.mouse.down()
    for i in range(1, 61):  # a slow stroke, about a second, the pen still down at the end
        page.mouse.move(
            box["x"] + box["width"] / 2, box["y"] + (0.15 + 0.7 * i / 60) * box["height"]
        )
        page.wait_for_timeout(15)
    expect(page.locator("#prediction")).to_have_text("1")  # before the pen lifts
    seconds = time.monotonic() - started
    page.mouse.up()
    wait_until_idle(page)
    assert most_in_flight[0] == 1, "never two requests at once"
    assert 2 <= len(analyses) <= seconds * 10 + 3, (len(analyses), seconds)


def test_drawing_with_a_finger_on_a_phone(browser, mnist_server, allowed_errors):
    context, page = open_page(
        browser,
        allowed_errors,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
    )
    open_explorer(page, mnist_server.url)
    page.click("#clear")
    wait_until_idle(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("#draw").bounding_box()
    # Real touch events, as a finger sends them; the page must draw, not scroll.
    touch = context.new_cdp_session(page)
    for i, kind in [(0, "touchStart"), *((i, "touchMove") for i in range(1, 21))]:
        x, y = box["x"] + box["width"] / 2, box["y"] + (0.15 + 0.035 * i) * box["height"]
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("1")
    assert page.evaluate("window.scrollY") == 0, "the stroke scrolled the page"
    # The pad and the answer share the first screen.
    for selector in ["#draw", "#prediction", '#bars .bar[data-class="9"] .bar-track']:
        assert page.locator(selector).bounding_box()["y"] + 10 < 844, selector
    check_page(context, page)


def test_a_tap_draws_a_dot(browser, mnist_server, allowed_errors):
    """A tap (touch down and up at one place) leaves a dot on the pad and the network answers
    it; before, a stroke of one repeated point drew nothing and the server found no digit."""
    context, page = open_page(
        browser,
        allowed_errors,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
    )
    open_explorer(page, mnist_server.url)
    page.click("#clear")
    wait_until_idle(page)
    box = page.locator("#draw").bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_until_idle(page)
    expect(page.locator("#draw")).not_to_have_class(re.compile(r"\bblank\b"))
    expect(page.locator("#draw-message")).to_have_text("")
    expect(page.locator("#prediction")).not_to_have_text("")
    assert float(page.get_attribute("#prepared", "data-sum")) > 0
    check_page(context, page)


def test_undo_and_an_unreadable_drawing(page, mnist_server, allowed_errors):
    allowed_errors.append("status of 422")  # the server finds no digit: the page says why
    open_explorer(page, mnist_server.url)
    page.click("#clear")
    draw(page, vertical_stroke())
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("1")
    draw(page, [(0.25, 0.15), (0.75, 0.15)])  # a bar on top: no longer a clean 1
    wait_until_idle(page)
    changed = probabilities(page)
    page.click("#undo")
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("1")
    assert probabilities(page) != changed

    # Ink everywhere: no digit stands out from the paper, and the server says so (422).
    page.click("#clear")
    for row in range(16):  # 16 strokes 0.075 of the pad wide: they cover it, edges included
        draw(page, [(0.01, 0.01 + 0.98 * row / 15), (0.99, 0.01 + 0.98 * row / 15)])
    wait_until_idle(page)
    expect(page.locator("#draw-message")).to_contain_text("no digit found")
    expect(page.locator("#draw-message")).to_contain_text("pad")  # a drawing's advice
    expect(page.locator("#draw-message")).not_to_contain_text("paper")  # not a photo's
    expect(page.locator("#prediction")).to_have_text("")


# --------------------------------------------------------------------------------------------
# Layers, arithmetic, experiments, gradients
# --------------------------------------------------------------------------------------------


def test_every_layer_is_drawn_with_its_scale(page, mnist_server):
    open_explorer(page, mnist_server.url)  # test digit 0 is loaded at start
    for layer, maps in [("conv1", 6), ("pool1", 6), ("conv2", 16), ("pool2", 16)]:
        assert page.locator(f'canvas.map[data-layer="{layer}"]').count() == maps
    for name in ["features", "hidden1"]:
        assert page.locator(f'canvas.vector[data-layer="{name}"]').count() == 1
    assert page.locator('.layer[data-layer="logits"] .logit').count() == 10
    legend = page.locator('#layers .layer[data-layer="conv1"] .legend')
    scale = float(legend.get_attribute("data-scale"))
    largest = max(
        float(v)
        for v in page.eval_on_selector_all(
            'canvas.map[data-layer="conv1"]', "maps => maps.map(m => m.dataset.maxAbs)"
        )
    )
    assert largest == pytest.approx(scale, rel=1e-5)
    expect(legend).to_contain_text(
        f"this layer: -{scale:.3g} (blue) .. 0 (white) .. +{scale:.3g} (red)"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280, "no sideways scrolling"


def test_a_conv_pixel_is_the_sum_of_its_products(page, mnist_server):
    open_explorer(page, mnist_server.url)
    click_map_pixel(page, "conv2", 3, row=4, column=5)
    expect(page.locator("#arithmetic h3")).to_contain_text("conv2, map 3, pixel (row 4, column 5)")
    total, in_map = number(page, "#arith-sum"), number(page, "#arith-value")
    assert total == pytest.approx(in_map, rel=1e-4, abs=1e-5)
    assert page.text_content("#arith-sum") == page.text_content("#arith-value")
    assert page.locator(".arith-channel").count() == 6  # one row per channel of pool1
    channel_sums = data_values(page, ".arith-channel-sum")
    assert sum(channel_sums) == pytest.approx(total, rel=1e-4, abs=1e-5)
    for channel in range(6):
        row = page.locator(f'.arith-channel[data-channel="{channel}"]')
        window, weights, products = (
            row.locator("table")
            .nth(i)
            .evaluate("t => [...t.querySelectorAll('td')].map(td => Number(td.dataset.value))")
            for i in range(3)
        )
        assert products == pytest.approx(
            [w * f for w, f in zip(window, weights, strict=True)], rel=1e-5, abs=1e-7
        )
        assert sum(products) == pytest.approx(channel_sums[channel], rel=1e-4, abs=1e-6)

    click_map_pixel(page, "conv1", 1, row=0, column=0)  # a corner: the window reads padding
    assert number(page, "#arith-sum") == pytest.approx(
        number(page, "#arith-value"), rel=1e-4, abs=1e-5
    )
    window = page.locator(".arith-channel table").first.evaluate(
        "t => [...t.querySelectorAll('td')].map(td => Number(td.dataset.value))"
    )
    assert window[:2] == [0, 0], "the top-left of the window is padding"


def test_clearing_after_a_click_then_drawing_again(page, mnist_server):
    """The arithmetic panel opens among the layers, which Clear removes: the page carries on."""
    open_explorer(page, mnist_server.url)
    click_map_pixel(page, "conv1", 1, row=5, column=5)
    expect(page.locator("#arithmetic")).to_be_visible()
    page.click("#clear")
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("")
    assert page.locator('canvas.map[data-layer="conv1"]').count() == 0
    expect(page.locator("#why")).to_have_class(re.compile(r"\bempty\b"))
    page.locator("#draw").scroll_into_view_if_needed()  # the click scrolled down to the maps
    draw(page, vertical_stroke())
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("1")
    click_map_pixel(page, "conv2", 3, row=4, column=5)
    expect(page.locator("#arithmetic h3")).to_contain_text("conv2, map 3, pixel (row 4, column 5)")
    assert number(page, "#arith-sum") == pytest.approx(
        number(page, "#arith-value"), rel=1e-4, abs=1e-5
    )


def test_a_pooled_pixel_keeps_the_first_maximum(page, mnist_server):
    open_explorer(page, mnist_server.url)
    # A corner of the picture (all zeros: every pixel ties) and a pixel on the stroke of the 7.
    for row, column in [(0, 0), (3, 5)]:
        click_map_pixel(page, "pool1", 1, row=row, column=column)
        window = data_values(page, ".pool-window td")
        first_maximum = window.index(max(window))
        winner = page.locator("#arith-winner")
        assert (
            int(winner.get_attribute("data-row")),
            int(winner.get_attribute("data-column")),
        ) == (
            first_maximum // 2,
            first_maximum % 2,
        )
        assert number(page, "#arith-max") == pytest.approx(number(page, "#arith-value"))
        assert number(page, "#arith-value") == pytest.approx(max(window))


def test_switching_off_a_filter_and_covering_the_image(page, mnist_server):
    open_explorer(page, mnist_server.url)
    page.click("#clear")
    draw(page, ellipse())
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("0")
    before = probabilities(page)
    conv1_map = page.locator('canvas.map[data-layer="conv1"][data-channel="2"]')
    pool1_map = page.locator('canvas.map[data-layer="pool1"][data-channel="2"]')
    assert float(conv1_map.get_attribute("data-max-abs")) > 0

    page.click('.filter[data-layer="conv1"][data-filter="2"]')
    wait_until_idle(page)
    assert float(conv1_map.get_attribute("data-max-abs")) == 0
    assert float(pool1_map.get_attribute("data-max-abs")) == 0
    assert probabilities(page) != before
    expect(page.locator("#experiments-text")).to_contain_text("conv1 filter 2 off")
    page.click("#filters-on")
    wait_until_idle(page)
    assert float(conv1_map.get_attribute("data-max-abs")) > 0
    assert probabilities(page) == pytest.approx(before, abs=1e-6)

    # Cover the right half of the 0: what is left, a C, is no longer a 0.
    image_sum = float(page.get_attribute("#prepared", "data-sum"))
    page.locator("#prepared").scroll_into_view_if_needed()
    box = page.locator("#prepared").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + 1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] - 1, steps=4)
    page.mouse.up()
    wait_until_idle(page)
    expect(page.locator("#experiments-text")).to_contain_text("rows 0–27, columns 15–27 covered")
    assert 0 < float(page.get_attribute("#prepared", "data-sum")) < image_sum * 0.7
    assert page.text_content("#prediction") != "0"
    page.click("#uncover")
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("0")


def test_why_this_answer(page, mnist_server):
    open_explorer(page, mnist_server.url)  # test digit 0, a 7
    expect(page.locator("#why-question")).to_contain_text("What would make this a 7?")
    assert float(page.get_attribute("#why-gradient", "data-max-abs")) > 0
    assert page.locator('#why-stages canvas.map[data-layer="why-pool2"]').count() == 16
    page.click('.why-class[data-class="3"]')
    wait_until_idle(page)
    expect(page.locator("#why-question")).to_contain_text("What would make this a 3?")
    expect(page.locator('.why-class[data-class="3"]')).to_have_attribute("aria-pressed", "true")


# --------------------------------------------------------------------------------------------
# The test set
# --------------------------------------------------------------------------------------------


def test_the_test_set_and_its_mistakes(page, mnist_server):
    open_explorer(page, mnist_server.url)
    page.wait_for_selector("#confusion td.count")
    counts = page.eval_on_selector_all(
        "#confusion td.count", "cells => cells.map(cell => Number(cell.dataset.count))"
    )
    assert len(counts) == 100
    assert sum(counts) == int(page.get_attribute("#testset-summary", "data-count")) == 10_000

    image_before = page.get_attribute("#prepared", "data-sum")
    mistake = page.locator(".mistake").nth(2)
    index, predicted = mistake.get_attribute("data-index"), mistake.get_attribute("data-predicted")
    mistake.click()
    wait_until_idle(page)
    expect(page.locator("#source")).to_have_attribute("data-test-index", index)
    expect(page.locator("#prediction")).to_have_text(predicted)
    assert page.get_attribute("#prepared", "data-sum") != image_before

    cell = page.locator("#confusion td.clickable").first
    cell_index, cell_predicted = (
        cell.get_attribute("data-index"),
        cell.get_attribute("data-predicted"),
    )
    cell.click()
    wait_until_idle(page)
    expect(page.locator("#source")).to_have_attribute("data-test-index", cell_index)
    expect(page.locator("#prediction")).to_have_text(cell_predicted)


# --------------------------------------------------------------------------------------------
# Other models: many filters, Fashion-MNIST, none at all (and training one from the page)
# --------------------------------------------------------------------------------------------


def test_a_network_with_32_and_64_filters_stays_usable(page, wide_model):
    server = ExplorerServer(wide_model)
    try:
        open_explorer(page, server.url)
        assert page.locator('canvas.map[data-layer="conv1"]').count() == 32
        assert page.locator('canvas.map[data-layer="conv2"]').count() == 64
        assert page.locator('.filter[data-layer="conv2"]').count() == 64
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        click_map_pixel(page, "conv2", 40, row=5, column=5)
        assert page.locator(".arith-channel").count() == 32
        assert number(page, "#arith-sum") == pytest.approx(
            number(page, "#arith-value"), rel=1e-4, abs=1e-5
        )
    finally:
        server.stop(page)


def test_a_fashion_model_names_its_classes(page, fashion_model, allowed_errors):
    allowed_errors.append("status of 503")  # without Fashion-MNIST's test set, said on the page
    server = ExplorerServer(fashion_model)
    try:
        open_explorer(page, server.url)
        names = page.eval_on_selector_all(
            "#bars .bar-label", "labels => labels.map(l => l.textContent)"
        )
        assert names == list(FASHION_LABELS)
        draw(page, ellipse())
        wait_until_idle(page)
        assert page.text_content("#prediction") in FASHION_LABELS
        assert page.locator(".why-class").all_text_contents() == list(FASHION_LABELS)
        if not (PROJECT_DIR / "fashion_mnist_data" / "test_images.npy").is_file():
            expect(page.locator("#testset-summary")).to_contain_text(
                "python download_mnist.py --dataset fashion"
            )
    finally:
        server.stop(page)


def test_no_model_where_none_can_be_saved_shows_why_and_no_command(page, tmp_path):
    model_path = tmp_path / "no-such-folder" / "model.npz"
    server = ExplorerServer(model_path)
    try:
        open_explorer(page, server.url)
        expect(page.locator("#no-model")).to_be_visible()
        expect(page.locator("#model-error")).to_contain_text("no such model file")
        expect(page.locator("#model-error")).to_contain_text("does not exist")
        expect(page.locator("#train-advice")).to_be_hidden()
        # No run could save: the run buttons are not offered, and the page says why.
        expect(page.locator("#train-quick")).to_be_hidden()
        expect(page.locator("#train-full")).to_be_hidden()
        expect(page.locator("#train-refusal")).to_contain_text("could not save")
    finally:
        server.stop(page)


def test_no_model_shows_the_command_then_trains_one_from_the_page(page, tmp_path, allowed_errors):
    model_path = tmp_path / "trained-here.npz"
    server = ExplorerServer(model_path)
    try:
        open_explorer(page, server.url)
        expect(page.locator("#no-model")).to_be_visible()
        expect(page.locator("#explorer")).to_be_hidden()
        expect(page.locator("#model-error")).to_contain_text(str(model_path))
        expect(page.locator("#train-command")).to_have_text(
            f"python simple_cnn_from_scratch.py --save {model_path}"
        )
        expect(page.locator("#train-save-path")).to_have_text(str(model_path))

        allowed_errors.append("status of 409")
        # Two clicks before the first answer: the second run is refused (409), said on the page.
        page.evaluate(
            "document.querySelector('#train-quick').click(); "
            "document.querySelector('#train-quick').click()"
        )
        expect(page.locator("#train-message")).to_contain_text("already running")
        expect(page.locator("#train-message")).to_have_attribute("data-status", "409")
        page.wait_for_selector("#loss-curve:not([data-points='0'])", state="attached")
        first = int(page.get_attribute("#loss-curve", "data-points"))
        expect(page.locator("#train-status")).to_have_attribute(
            "data-state", "finished", timeout=120_000
        )
        assert int(page.get_attribute("#loss-curve", "data-points")) > first, "the curve grew"
        assert page.locator("#train-health tr[data-layer]").count() >= 3

        # The run saved the model, and the page now explores it.
        page.wait_for_selector('#model-line[data-generation="2"]', state="attached")
        wait_until_idle(page)
        expect(page.locator("#explorer")).to_be_visible()
        expect(page.locator("#no-model")).to_be_hidden()
        expect(page.locator("#model-line")).to_contain_text("trained 3 epochs")
        expect(page.locator("#prediction")).to_have_text("7")  # test digit 0
        assert model_path.is_file()
    finally:
        server.stop(page)


def test_stopping_a_run_saves_and_reloads_the_model(page, mnist_model, tmp_path):
    model_path = tmp_path / "model.npz"
    shutil.copyfile(mnist_model, model_path)
    server = ExplorerServer(model_path)
    try:
        open_explorer(page, server.url)
        expect(page.locator("#model-line")).to_contain_text("trained 2 epochs")
        page.click("#train-full")
        expect(page.locator("#train-status")).to_have_attribute("data-state", "running")
        page.wait_for_selector("#train-filters canvas.filter-canvas", state="attached")
        page.wait_for_selector("#train-maps canvas.map", state="attached")
        page.click("#train-stop")
        expect(page.locator("#train-status")).to_have_attribute(
            "data-state", "stopped", timeout=60_000
        )
        page.wait_for_selector('#model-line[data-generation="2"]', state="attached")
        wait_until_idle(page)
        expect(page.locator("#model-line")).not_to_contain_text("trained 2 epochs")
        expect(page.locator("#prediction")).not_to_have_text("")
    finally:
        server.stop(page)


# --------------------------------------------------------------------------------------------
# What a class really does: the sequences a person makes, and what must stay readable
# --------------------------------------------------------------------------------------------


def contrast(page, selector: str) -> float:
    """The WCAG contrast ratio of an element's text colour against its background colour."""
    return page.eval_on_selector(
        selector,
        """element => {
            const style = getComputedStyle(element);
            const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
            const luminance = ([r, g, b]) => {
                const linear = (c) =>
                    (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
                return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
            };
            const [a, b] = [luminance(rgb(style.color)), luminance(rgb(style.backgroundColor))];
            return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        }""",
    )


def test_the_picked_class_and_every_logit_stay_readable(page, mnist_server):
    """The picked class was white on pale blue when hovered (and after a tap, which leaves
    :hover on); the most negative logit was dark text on saturated blue."""
    open_explorer(page, mnist_server.url)
    page.click('.why-class[data-class="3"]')
    wait_until_idle(page)
    page.hover('.why-class[data-class="3"]')
    assert contrast(page, '.why-class[data-class="3"]') >= 4.5
    page.mouse.move(0, 0)
    assert contrast(page, '.why-class[data-class="3"]') >= 4.5
    for index in range(10):
        assert contrast(page, f'#layers .logit[data-class="{index}"] .logit-value') >= 4.5, index


def test_a_phone_shows_the_whole_confusion_matrix_and_the_charts(
    browser, mnist_server, allowed_errors
):
    context, page = open_page(
        browser,
        allowed_errors,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
    )
    open_explorer(page, mnist_server.url)
    page.wait_for_selector("#confusion td.count")
    wrap = page.locator(".confusion-wrap")
    width, scroll = wrap.evaluate("w => [w.clientWidth, w.scrollWidth]")
    assert scroll <= width, f"the matrix is cut: {scroll} px in {width}"
    page.locator("#training-section").scroll_into_view_if_needed()
    for chart in ["#loss-curve", "#accuracy-curve"]:
        expect(page.locator(chart)).to_have_attribute("data-outside", "0")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    check_page(context, page)


def test_a_new_stroke_takes_the_cover_off(page, mnist_server):
    """The prepared image re-centres under a new stroke: a cover left in place would cover
    another part of the digit."""
    open_explorer(page, mnist_server.url)
    page.click("#clear")
    draw(page, ellipse())
    wait_until_idle(page)
    box = page.locator("#prepared").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + 1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] - 1, steps=4)
    page.mouse.up()
    wait_until_idle(page)
    expect(page.locator("#cover-box")).to_be_visible()
    page.locator("#draw").scroll_into_view_if_needed()
    draw(page, [(0.2, 0.1), (0.2, 0.3)])
    wait_until_idle(page)
    expect(page.locator("#cover-box")).to_be_hidden()
    expect(page.locator("#experiments-text")).to_contain_text("cover was taken off")
    expect(page.locator("#uncover")).to_be_disabled()


def test_stop_and_the_pace_only_with_a_run(page, mnist_server):
    open_explorer(page, mnist_server.url)
    for button in ["#train-stop", "#train-pause", "#train-step", "#train-slow", "#train-resume"]:
        expect(page.locator(button)).to_be_disabled()
    expect(page.locator("#train-quick")).to_be_enabled()


def test_a_corner_pixels_window_stays_on_its_image(page, mnist_server):
    """conv1's window at pixel (0, 0) reaches 2 pixels into the padding: its mark stays on
    the 28x28 image (it covered the heading above it), and the padding is hatched."""
    open_explorer(page, mnist_server.url)
    click_map_pixel(page, "conv1", 1, row=0, column=0)
    frame = page.locator("#prepared-frame")
    assert frame.evaluate("f => getComputedStyle(f).overflow") == "hidden"
    assert frame.locator(".mark-window").count() == 1
    hatched = page.locator(".arith-channel table").first.locator("td.padding").count()
    assert hatched == 25 - 9, "a 5x5 window at the corner reads 16 cells of padding"


def test_words_and_numbers_say_what_they_are(page, tmp_path):
    """'1 pixels', '-0.00' and 'each table on its own scale' (they share one) were wrong;
    an odd map's last row and column dropped by pooling, and the missing bias, are said."""
    model = save_untrained_model(tmp_path / "odd.npz", kernel_sizes=(3, 4), paddings=(1, 0))
    server = ExplorerServer(model)
    try:
        open_explorer(page, server.url)
        expect(page.locator('#layers .layer[data-layer="conv1"] .layer-note')).to_contain_text(
            "with 1 pixel of zeros around it"
        )
        expect(page.locator('#layers .layer[data-layer="conv1"] .layer-note')).to_contain_text(
            "no bias"
        )
        expect(page.locator('.layer[data-layer="pool2"] .layer-note')).to_contain_text(
            "11×11 is odd: its last row and column fall in no window and are dropped"
        )
        expect(page.locator('#layers .layer[data-layer="pool1"] .legend')).to_contain_text(
            "0 (white) .. +"
        )
        expect(page.locator('#layers .layer[data-layer="pool1"] .legend')).to_have_attribute(
            "data-after-relu", "true"
        )
        click_map_pixel(page, "conv2", 2, row=5, column=5)
        texts = page.eval_on_selector_all(
            "#arithmetic td", "cells => cells.map(c => c.textContent)"
        )
        assert texts and not any(text.startswith("-0.00") and float(text) == 0 for text in texts)
        assert "-0.00" not in texts
        expect(page.locator("#arithmetic .legend-text")).to_contain_text("three scales")
        expect(page.locator("#arithmetic")).not_to_contain_text("own scale")
    finally:
        server.stop(page)


def test_why_follows_the_answer_and_compares_two_classes(page, mnist_server):
    """The class picked stayed across drawings; now a new drawing asks about its own answer.
    'Rather than' asks about the difference of two logits."""
    open_explorer(page, mnist_server.url)
    page.click('.why-class[data-class="3"]')
    wait_until_idle(page)
    expect(page.locator("#why-question")).to_contain_text("make this a 3?")
    page.locator("#draw").scroll_into_view_if_needed()
    page.click("#clear")
    draw(page, vertical_stroke())
    wait_until_idle(page)
    expect(page.locator("#why-question")).to_contain_text("make this a 1?")
    page.select_option("#why-versus", "7")
    wait_until_idle(page)
    expect(page.locator("#why-question")).to_contain_text("a 1 rather than a 7?")
    assert float(page.get_attribute("#why-times-input", "data-max-abs")) > 0


def test_a_filter_weights_gradient_equals_the_backward_pass(page, mnist_server):
    open_explorer(page, mnist_server.url)
    bank = page.locator('#why-filters .filter[data-layer="why-conv1"][data-filter="2"] canvas')
    bank.scroll_into_view_if_needed()
    box = bank.bounding_box()
    bank.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5})  # weight (2, 2)
    wait_until_idle(page)
    expect(page.locator("#weight-gradient h3")).to_contain_text(
        "conv1, filter 2, channel 0, weight (row 2, column 2)"
    )
    total, network = number(page, "#weight-sum"), number(page, "#weight-network")
    assert total == pytest.approx(network, rel=1e-4, abs=1e-7)
    expect(page.locator("#weight-gradient")).to_contain_text("✓ the same number")


def test_a_pooled_pixels_gradient_goes_to_the_first_maximum(page, mnist_server):
    open_explorer(page, mnist_server.url)
    page.locator(
        'canvas.map[data-layer="why-pool1"][data-channel="1"]'
    ).scroll_into_view_if_needed()
    click_map_pixel(page, "why-pool1", 1, row=7, column=7)
    expect(page.locator("#routing")).to_be_visible()
    values = data_values(page, "#routing td")
    assert sum(1 for value in values if value != 0) <= 1, "only the winner gets the gradient"
    expect(page.locator("#routing")).to_contain_text("the first maximum")


def test_one_training_step_stage_by_stage(page, mnist_server):
    open_explorer(page, mnist_server.url)  # test digit 0, a 7: the step is told it is a 7
    expect(page.locator('#step-labels .step-label[data-class="7"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    page.click("#step-go")
    wait_until_idle(page)
    expect(page.locator("#step")).to_have_attribute("data-shown", "1")
    page.click("#step-next")
    expect(page.locator("#step")).to_have_attribute("data-shown", "2")
    page.click("#step-all")
    expect(page.locator("#step")).to_have_attribute("data-shown", "8")  # 2 stages: 8 parts
    d_logits = data_values(page, "#step-d-logits .logit-value")
    assert d_logits[7] < 0 and all(value >= 0 for i, value in enumerate(d_logits) if i != 7)
    assert sum(d_logits) == pytest.approx(0, abs=1e-5)  # probabilities minus a one-hot, over N


def test_the_answer_strip_stays_in_view_and_shows_an_experiments_change(page, mnist_server):
    open_explorer(page, mnist_server.url)
    page.click('.filter[data-layer="conv1"][data-filter="1"]')  # scrolls to the filters
    wait_until_idle(page)
    strip = page.locator("#answer-strip")
    assert strip.bounding_box()["y"] <= 1, "the strip sticks to the top of the window"
    changes = data_values(page, "#strip-cells .strip-change")
    assert len(changes) == 10 and sum(changes) == pytest.approx(0, abs=0.5)
    expect(page.locator("#strip-note")).to_contain_text("since the experiment began")


def test_frozen_scales_keep_their_colours_through_an_experiment(page, mnist_server):
    open_explorer(page, mnist_server.url)
    legend = page.locator('#layers .layer[data-layer="conv2"] .legend')
    before = float(legend.get_attribute("data-scale"))
    page.check("#freeze-scales")
    page.click('.filter[data-layer="conv1"][data-filter="1"]')
    wait_until_idle(page)
    assert float(legend.get_attribute("data-scale")) == before
    expect(legend).to_contain_text("(frozen)")
    page.uncheck("#freeze-scales")
    assert float(legend.get_attribute("data-scale")) != before


def test_every_view_after_a_reload(page, mnist_server):
    """A reload in the middle of things (a pixel clicked, a filter off) starts clean, with
    every view drawn again."""
    open_explorer(page, mnist_server.url)
    click_map_pixel(page, "conv1", 1, row=5, column=5)
    page.click('.filter[data-layer="conv1"][data-filter="2"]')
    wait_until_idle(page)
    page.reload()
    page.wait_for_selector('#model-line[data-generation="1"]', state="attached")
    wait_until_idle(page)
    expect(page.locator("#prediction")).to_have_text("7")
    assert page.locator('canvas.map[data-layer="conv2"]').count() == 16
    assert page.locator('#filters .filter[data-layer="conv2"]').count() == 16
    expect(page.locator(".filter.off")).to_have_count(0)
    expect(page.locator("#arithmetic")).to_be_hidden()
    expect(page.locator("#why-question")).to_contain_text("make this a 7?")
    assert page.locator("#why-filters canvas.filter-canvas").count() == 22
    page.wait_for_selector("#confusion td.count")
    assert int(page.get_attribute("#loss-curve", "data-points")) > 0
    expect(page.locator("#answer-strip")).to_be_attached()
    expect(page.locator("#true-class")).to_have_text("true: 7")


def test_read_only_for_viewers_the_teacher_may_train(page, mnist_model, tmp_path):
    model = tmp_path / "class.npz"
    shutil.copyfile(mnist_model, model)
    server = ExplorerServer(model, "--read-only")
    try:
        open_explorer(page, server.url)
        expect(page.locator("#read-only-note")).to_be_visible()
        for button in ["#train-quick", "#train-full", "#train-stop", "#train-pause"]:
            expect(page.locator(button)).to_be_hidden()
        open_explorer(page, f"{server.url}?teacher={server.teacher_token}")
        expect(page.locator("#read-only-note")).to_be_hidden()
        expect(page.locator("#train-quick")).to_be_visible()
    finally:
        server.stop(page)


def test_two_runs_in_a_row_with_a_pixel_clicked_then_the_original_back(page, mnist_model, tmp_path):
    """Issue 18: after a click on a pixel, a run that finished and a second one stopped left
    the page on the old model (answer kept, bars empty). Each run's model loads, every page is
    told, and the original comes back."""
    model = tmp_path / "mine.npz"
    shutil.copyfile(mnist_model, model)
    server = ExplorerServer(model)
    try:
        open_explorer(page, server.url)
        click_map_pixel(page, "conv1", 1, row=5, column=5)
        page.fill("#train-epochs", "1")
        page.click("#train-quick")
        expect(page.locator("#train-status")).to_have_attribute(
            "data-state", "finished", timeout=120_000
        )
        page.wait_for_selector('#model-line[data-generation="2"]', state="attached")
        wait_until_idle(page)
        expect(page.locator("#model-notice")).to_contain_text("mine-explorer-run.npz")
        expect(page.locator("#model-line")).to_contain_text("trained 1 epoch")
        assert sum(probabilities(page)) == pytest.approx(1, abs=1e-4)
        assert page.locator('canvas.map[data-layer="conv1"]').count() == 6

        click_map_pixel(page, "pool1", 1, row=3, column=3)
        page.click("#train-full")
        page.wait_for_selector("#train-maps canvas.map", state="attached", timeout=120_000)
        page.click("#train-pause")
        expect(page.locator("#training-section")).to_have_attribute("data-pace", "pause")
        page.click("#train-step")
        page.wait_for_selector("#train-gradients canvas.filter-canvas", state="attached")
        page.click("#train-stop")
        expect(page.locator("#train-status")).to_have_attribute(
            "data-state", "stopped", timeout=60_000
        )
        page.wait_for_selector('#model-line[data-generation="3"]', state="attached")
        wait_until_idle(page)
        assert sum(probabilities(page)) == pytest.approx(1, abs=1e-4)
        expect(page.locator("#prediction")).not_to_have_text("")
        expect(page.locator("#model-notice")).to_contain_text("was stopped")

        page.click("#restore-original")
        page.wait_for_selector('#model-line[data-generation="4"]', state="attached")
        wait_until_idle(page)
        expect(page.locator("#model-line")).to_contain_text("trained 2 epochs")
        expect(page.locator("#model-notice")).to_contain_text("original model is back")
        assert model.read_bytes() == mnist_model.read_bytes(), "the original was never replaced"
    finally:
        server.stop(page)


def test_the_preparation_step_by_step(page, mnist_server):
    """'Step by step' shows how the drawing became the image the network receives; a test
    digit has no steps (MNIST prepared it); Clear empties it, and the next drawing fills it."""
    open_explorer(page, mnist_server.url)  # the first test digit
    page.click("#preparation summary")
    wait_until_idle(page)
    expect(page.locator("#preparation .preparation-note")).to_contain_text("comes prepared")
    steps = page.locator("#preparation .preparation-step")
    expect(steps).to_have_count(0)

    page.click("#clear")
    wait_until_idle(page)
    draw(page, [(0.1 + 0.01 * i, 0.1 + 0.02 * i) for i in range(15)])  # small, slanted, high
    wait_until_idle(page)
    expect(steps).to_have_count(5)
    captions = steps.locator("figcaption").all_inner_texts()
    assert captions[0] == "1. the ink, bright on black"
    assert captions[-1].startswith("5. in MNIST's 20x20 box")
    shapes = page.eval_on_selector_all(
        "#preparation canvas", "canvases => canvases.map(c => [c.height, c.width])"
    )
    assert shapes[-1] == [28, 28] and shapes[0][0] > 28  # the pad's drawing, then smaller
    last = page.get_attribute('#preparation [data-step="4"] canvas', "data-sum")
    assert last == page.get_attribute("#prepared", "data-sum") != "0"

    page.click("#clear")
    wait_until_idle(page)
    expect(steps).to_have_count(0)
    draw(page, ellipse())
    wait_until_idle(page)
    expect(steps).to_have_count(5)
    again = page.get_attribute('#preparation [data-step="4"] canvas', "data-sum")
    assert again == page.get_attribute("#prepared", "data-sum") not in ("0", last)
