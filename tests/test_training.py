"""The training program: it learns, repeats itself, resumes exactly, and fails cleanly.

Training runs in-process through ``train(TrainConfig(...))`` on a few thousand images; only the
checks that need a fresh interpreter (``--help``, a bad option, importing) start a subprocess.
"""

import json
import os
import select
import signal
import subprocess
import sys

import numpy as np
import pytest

import simple_cnn_from_scratch as driver
from simple_cnn import SimpleCNN
from training.model_file import load_model

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 3,000 training images (about 1% of a full run), and as many for validation and test.
QUICK = dict(limit=3000, batch_size=32, learning_rate=0.002, shift=1, seed=0, verbose=False)


def quick_config(folder, **changes):
    settings = dict(QUICK, epochs=2, save_path=str(folder / "model.npz"))
    settings.update(changes)
    return driver.TrainConfig(**settings)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """Two uninterrupted epochs: the run every other test compares itself with."""
    folder = tmp_path_factory.mktemp("baseline")
    history_path = folder / "history.json"
    history = driver.train(quick_config(folder, history_path=str(history_path)))
    return history, load_model(folder / "model.npz"), history_path


def assert_same_model(model, expected):
    """Two model files hold exactly the same weights and optimizer states."""
    for filters, expected_filters in zip(model.conv_filters, expected.conv_filters, strict=True):
        assert np.array_equal(filters, expected_filters)
    for pair, expected_pair in zip(model.head_weights, expected.head_weights, strict=True):
        assert np.array_equal(pair[0], expected_pair[0])
        assert np.array_equal(pair[1], expected_pair[1])
    for state, expected_state in zip(
        model.head_optimizer_state, expected.head_optimizer_state, strict=True
    ):
        assert np.array_equal(state, expected_state)
    assert model.conv_optimizer_state.keys() == expected.conv_optimizer_state.keys()
    for name, value in expected.conv_optimizer_state.items():
        assert np.array_equal(model.conv_optimizer_state[name], value)


def without_seconds(history):
    # Wall-clock time is the one number a rerun cannot repeat.
    records = [{k: v for k, v in record.items() if k != "seconds"} for record in history["epochs"]]
    return {**history, "epochs": records}


def test_short_run_learns_well_above_chance(baseline):
    history, _, _ = baseline
    first, second = history["epochs"]
    assert history["test_accuracy"] > 0.8  # 10 classes: chance is 0.1
    assert second["val_accuracy"] > 0.8
    assert second["loss"] < first["loss"]


def test_training_moves_the_convolution_filters(baseline):
    _, model, _ = baseline
    start = SimpleCNN(seed=0)
    # Adam steps of ~1e-3 over ~190 steps: far more than rounding, far less than the filters.
    for trained, initial in (
        (model.conv_filters[0], start.conv1_filters),
        (model.conv_filters[1], start.conv2_filters),
    ):
        change = np.abs(trained - initial).mean()
        assert 1e-3 < change < np.abs(initial).mean()


def test_history_file_is_like_keras_history(baseline):
    history, model, history_path = baseline
    written = json.loads(history_path.read_text())

    assert written == history
    assert [record["epoch"] for record in written["epochs"]] == [1, 2]
    for record in written["epochs"]:
        assert set(record) == {"epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy"}
        assert record["seconds"] > 0 and 0 <= record["val_accuracy"] <= 1
    assert 0 <= written["test_accuracy"] <= 1 and written["test_loss"] > 0
    assert model.history == written["epochs"]  # the model file carries the history too
    assert model.epoch == 2 and model.step == 0


def test_same_seed_gives_the_same_numbers(baseline, tmp_path):
    history = driver.train(quick_config(tmp_path))
    assert without_seconds(history) == without_seconds(baseline[0])
    assert_same_model(load_model(tmp_path / "model.npz"), baseline[1])


def test_another_seed_gives_other_numbers(baseline, tmp_path):
    history = driver.train(quick_config(tmp_path, seed=1, epochs=1, no_save=True))
    assert history["epochs"][0]["loss"] != baseline[0]["epochs"][0]["loss"]
    assert history["epochs"][0]["val_accuracy"] > 0.5  # but it learns all the same
    assert not (tmp_path / "model.npz").exists()  # --no-save


def test_resume_after_an_epoch_reaches_the_uninterrupted_result(baseline, tmp_path):
    driver.train(quick_config(tmp_path, epochs=1))
    assert load_model(tmp_path / "model.npz").epoch == 1

    history = driver.train(quick_config(tmp_path, resume_path=str(tmp_path / "model.npz")))

    assert without_seconds(history) == without_seconds(baseline[0])
    assert_same_model(load_model(tmp_path / "model.npz"), baseline[1])


def test_ctrl_c_mid_epoch_saves_and_resume_reaches_the_same_result(baseline, tmp_path):
    def press_ctrl_c(model, epoch, step):
        if (epoch, step) == (2, 30):
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(driver.TrainingInterrupted, match="epoch 2, step 30") as stop:
        driver.train(quick_config(tmp_path), on_step=press_ctrl_c)
    assert "--resume" in str(stop.value)
    saved = load_model(tmp_path / "model.npz")
    assert (saved.epoch, saved.step) == (1, 30)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    # Settings come from the file: the resumed run names only the file (and the limit it kept).
    resumed = driver.TrainConfig(resume_path=str(tmp_path / "model.npz"), verbose=False)
    history = driver.train(resumed)

    assert without_seconds(history) == without_seconds(baseline[0])
    assert_same_model(load_model(tmp_path / "model.npz"), baseline[1])


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_the_test_set_stops_and_says_the_model_is_finished(
    tmp_path, monkeypatch, signal_number
):
    evaluate = driver.Classifier.evaluate
    calls = []

    def press_ctrl_c_on_the_test_set(classifier, images, labels):
        calls.append(len(images))
        if len(calls) == 2:  # the first is epoch 1's validation, the second the test set
            signal.raise_signal(signal_number)
        return evaluate(classifier, images, labels)

    monkeypatch.setattr(driver.Classifier, "evaluate", press_ctrl_c_on_the_test_set)
    history_path = tmp_path / "history.json"
    config = quick_config(tmp_path, epochs=1, limit=300, history_path=str(history_path))
    with pytest.raises(driver.TrainingInterrupted, match="after the last epoch") as stop:
        driver.train(config)
    assert stop.value.exit_status == 128 + signal_number
    assert len(calls) == 2 and load_model(tmp_path / "model.npz").epoch == 1
    assert json.loads(history_path.read_text())["test_accuracy"] is None


@pytest.fixture(scope="module")
def finished_model(tmp_path_factory):
    """A model file whose run is over: resuming it only evaluates the test set."""
    folder = tmp_path_factory.mktemp("finished")
    history = driver.train(quick_config(folder, epochs=1, limit=300))
    return folder / "model.npz", history


def test_evaluating_a_finished_model_imports_no_tensorflow(finished_model, tmp_path):
    path, history = finished_model
    program = (
        "import sys, simple_cnn_from_scratch as program\n"
        f"status = program.main(['--resume', {str(path)!r}, '--no-save', '--quiet'])\n"
        "print('tensorflow' in sys.modules, status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.splitlines() == [
        f"Test accuracy: {history['test_accuracy']:.4f}",
        "False 0",
    ]


def test_a_finished_model_resumed_with_another_save_path_is_saved_there(finished_model, tmp_path):
    path, history = finished_model
    copy = tmp_path / "copy.npz"
    config = driver.TrainConfig(resume_path=str(path), save_path=str(copy), verbose=False)
    assert driver.train(config)["test_accuracy"] == history["test_accuracy"]
    assert_same_model(load_model(copy), load_model(path))


def test_resume_refuses_to_change_the_run_settings(tmp_path):
    driver.train(quick_config(tmp_path, epochs=1, limit=300))
    model_path = str(tmp_path / "model.npz")
    changed = quick_config(tmp_path, limit=300, batch_size=64, resume_path=model_path)
    with pytest.raises(driver.ConfigError, match="--batch-size 64 differs from the 32"):
        driver.train(changed)
    with pytest.raises(driver.ConfigError, match="--limit 3000 differs from the 300"):
        driver.train(quick_config(tmp_path, resume_path=model_path))
    # A finished model resumed to the epochs it has only reports its test result again.
    finished = driver.TrainConfig(epochs=1, resume_path=model_path, verbose=False)
    assert driver.train(finished)["epochs"] == load_model(model_path).history


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_loss_stops_and_keeps_the_last_good_model(tmp_path):
    def spoil_weights(model, epoch, step):
        if (epoch, step) == (2, 5):
            model.cnn.conv2_filters[0, 0, 0, 0] = np.inf  # as a diverging run would

    with pytest.raises(
        driver.NonFiniteLossError, match="epoch 2, step 6.*keeps the end of epoch 1"
    ):
        driver.train(quick_config(tmp_path, limit=1000), on_step=spoil_weights)
    kept = load_model(tmp_path / "model.npz")  # would refuse a file holding inf or NaN
    assert (kept.epoch, kept.step) == (1, 0)


def test_a_resumed_run_that_diverges_suggests_a_new_run(tmp_path):
    driver.train(quick_config(tmp_path, epochs=1, limit=300))

    def spoil_weights(model, epoch, step):
        model.cnn.conv2_filters[0, 0, 0, 0] = np.inf

    resumed = driver.TrainConfig(
        resume_path=str(tmp_path / "model.npz"), epochs=2, verbose=False, changed={"epochs"}
    )
    with pytest.raises(driver.NonFiniteLossError) as error:
        driver.train(resumed, on_step=spoil_weights)
    # --learning-rate cannot change when resuming: the advice must be one that works.
    assert "start a new run (without --resume) with a smaller --learning-rate" in str(error.value)


def test_gradients_that_overflow_stop_training_like_a_non_finite_loss(tmp_path):
    def inflate_the_head_gradient(model, epoch, step):
        if (epoch, step) == (2, 5):
            head_step = model.head_step

            def overflowing(features, labels):
                loss, correct, d_features, head_gradients = head_step(features, labels)
                return loss, correct, d_features * 0 + 3e38, head_gradients  # finite, huge

            model.head_step = overflowing

    with pytest.raises(
        driver.NonFiniteLossError, match="epoch 2, step 6.*keeps the end of epoch 1"
    ):
        driver.train(quick_config(tmp_path, limit=1000), on_step=inflate_the_head_gradient)
    assert load_model(tmp_path / "model.npz").epoch == 1


@pytest.mark.parametrize("spoiled", ["loss", "d_features"])
def test_a_loss_or_its_gradient_that_is_nan_stops_training(tmp_path, spoiled):
    # Checked once per step: the loss in train_step, the gradient where SimpleCNN.backward
    # takes it. Either stops the run with the same message, before a filter moves.
    def spoil_the_head_step(model, epoch, step):
        if (epoch, step) == (2, 5):
            head_step = model.head_step

            def nan(features, labels):
                loss, correct, d_features, head_gradients = head_step(features, labels)
                if spoiled == "loss":
                    return loss * np.nan, correct, d_features, head_gradients
                return loss, correct, d_features * np.nan, head_gradients

            model.head_step = nan

    with pytest.raises(
        driver.NonFiniteLossError, match="epoch 2, step 6.*keeps the end of epoch 1"
    ):
        driver.train(quick_config(tmp_path, limit=1000), on_step=spoil_the_head_step)
    assert load_model(tmp_path / "model.npz").epoch == 1


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # adam.py's, expected
def test_an_optimizer_state_that_overflows_stops_training_like_a_non_finite_loss(tmp_path):
    # Gradients near 1e22 are finite, but Adam's running mean of their squares is not, and the
    # next step turns it into NaN filters. Stopped at the step itself, the run never saves an
    # optimizer state that no program here loads (Ctrl-C or an epoch's end right after it).
    def inflate_the_head_gradient(model, epoch, step):
        if (epoch, step) == (2, 5):
            head_step = model.head_step

            def huge_once(features, labels):
                model.head_step = head_step  # one step only: the rest of the run looks fine
                loss, correct, d_features, head_gradients = head_step(features, labels)
                return loss, correct, d_features * 1e25, head_gradients

            model.head_step = huge_once

    with pytest.raises(
        driver.NonFiniteLossError, match="epoch 2, step 6.*keeps the end of epoch 1"
    ):
        driver.train(quick_config(tmp_path, limit=1000), on_step=inflate_the_head_gradient)
    assert load_model(tmp_path / "model.npz").epoch == 1


def test_a_model_with_a_non_finite_number_is_never_saved(tmp_path):
    # However it got there (the head's Keras Adam, say), a file holding infinity would be one
    # that load_model refuses: neither resumable nor, by --save, replaceable.
    def spoil_the_head_optimizer(model, epoch, step):
        if (epoch, step) == (1, model.steps_per_epoch):
            moment = model.head_optimizer.variables[3]  # a velocity (iterations, rate, m, v)
            moment.assign(np.full(moment.shape, np.inf, np.float32))

    with pytest.raises(driver.NonFiniteLossError, match="nothing was saved"):
        driver.train(quick_config(tmp_path, limit=1000), on_step=spoil_the_head_optimizer)
    assert not (tmp_path / "model.npz").exists()


def test_loops_implementation_trains_like_the_fast_one(tmp_path):
    # The slow reference path is real: the same few steps give the same filters.
    results = {}
    for impl in ("fast", "loops"):
        config = quick_config(tmp_path, limit=12, batch_size=4, epochs=1, impl=impl)
        config.save_path = str(tmp_path / f"{impl}.npz")
        driver.train(config)
        results[impl] = load_model(config.save_path)
    np.testing.assert_allclose(
        results["loops"].conv_filters[1], results["fast"].conv_filters[1], atol=1e-5
    )


def test_shift_moves_each_image_by_its_offset():
    images = np.random.default_rng(0).integers(1, 256, size=(2, 28, 28), dtype=np.uint8)
    shifted = driver.shift_images(images, np.array([[1, -2], [0, 0]]))
    assert np.array_equal(shifted[0, 1:, :26], images[0, :27, 2:])  # down 1, left 2
    assert not shifted[0, 0].any() and not shifted[0, :, 26:].any()  # uncovered edges are black
    assert np.array_equal(shifted[1], images[1])


def test_epoch_plan_depends_only_on_seed_and_epoch():
    first, shifts = driver.epoch_plan(seed=5, epoch=3, count=100, max_shift=2)
    again, shifts_again = driver.epoch_plan(seed=5, epoch=3, count=100, max_shift=2)
    other, _ = driver.epoch_plan(seed=5, epoch=4, count=100, max_shift=2)
    assert np.array_equal(first, again) and np.array_equal(shifts, shifts_again)
    assert sorted(first) == list(range(100)) and not np.array_equal(first, other)
    assert shifts.min() == -2 and shifts.max() == 2


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def run_program(*args, cwd=PROJECT_DIR):
    return subprocess.run(
        [sys.executable, os.path.join(PROJECT_DIR, "simple_cnn_from_scratch.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_explains_every_option():
    result = run_program("--help")
    assert result.returncode == 0
    for option in (
        "--epochs",
        "--batch-size",
        "--learning-rate",
        "--seed",
        "--data-dir",
        "--dataset",
        "--impl",
        "--limit",
        "--history",
        "--save",
        "--no-save",
        "--resume",
        "--quiet",
    ):
        assert option in result.stdout


def test_bad_option_is_a_one_line_argparse_error():
    result = run_program("--epochs", "0")
    assert result.returncode == 2
    assert result.stderr == (
        "simple_cnn_from_scratch.py: error: --epochs must be an integer greater than 0, got 0 "
        "(--help lists the options)\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "-3"], "--batch-size must be an integer greater than 0, got -3"),
        (["--epochs", "two"], "argument --epochs: expected an integer, got 'two'"),
        (["--learning-rate", "nan"], "--learning-rate must be a number greater than 0, got nan"),
        (["--learning-rate", "inf"], "--learning-rate must be a number greater than 0, got inf"),
        (["--limit", "0"], "--limit must be an integer greater than 0, got 0"),
        (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"),
        (["--seed", str(2**32)], "--seed must be an integer from 0 to 4294967295"),
        (["--dropout", "1"], "--dropout must be a number in [0, 1), got 1.0"),
        (["--padding", "same,-1"], "--padding must be an integer from 0 to 64, got -1"),
        (["--resume", "no-such-model.npz"], "argument --resume: no such file: no-such-model.npz"),
        (["--save", "no-such-dir/model.npz"], "does not exist"),
        (["--save", "a.npz", "--no-save"], "not allowed with argument"),
        (["--dataset", "cifar"], "invalid choice: 'cifar'"),
    ],
)
def test_invalid_values_get_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        driver.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "content",
    ["my notes", '{"loss": 0.1}', "[" * 100_000 + "]" * 100_000],
    ids=["text", "other-json", "deeply-nested-json"],
)
def test_an_existing_file_that_is_not_a_history_is_never_overwritten(tmp_path, content):
    path = tmp_path / "notes.json"
    path.write_text(content)
    config = quick_config(tmp_path, history_path=str(path))
    with pytest.raises(driver.FileWriteError, match="not a history file written by this program"):
        driver.check_outputs(config)
    assert path.read_text() == content


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_a_tensorboard_folder_that_cannot_be_made_is_refused_before_training(tmp_path, where):
    (tmp_path / "notes.txt").write_text("mine")
    folder = tmp_path / "notes.txt" / "logs" if where == "under-a-file" else "/proc/logs"
    config = quick_config(tmp_path, tensorboard_dir=str(folder))
    with pytest.raises(driver.FileWriteError, match="TensorBoard") as error:
        driver.check_outputs(config)
    assert str(folder) in str(error.value) and "\n" not in str(error.value)


def test_settings_from_code_take_paths_and_numpy_numbers(tmp_path):
    # What a notebook passes: pathlib paths, and numbers that come out of NumPy.
    config = driver.TrainConfig(
        save_path=tmp_path / "model.npz",
        seed=np.int64(3),
        batch_size=np.int32(32),
        learning_rate=np.float32(0.5),
        limit=np.uint16(300),
    )
    assert config.save_path == str(tmp_path / "model.npz")
    assert (config.seed, config.batch_size, config.limit) == (3, 32, 300)
    assert type(config.seed) is int and type(config.learning_rate) is float
    assert config.learning_rate == 0.5
    json.dumps(driver.settings.run_settings(config))  # plain values: the model file's JSON
    with pytest.raises(driver.ConfigError, match="--seed"):
        driver.TrainConfig(seed=np.float64(1.5))
    with pytest.raises(driver.ConfigError, match="--epochs"):
        driver.TrainConfig(epochs=np.bool_(True))


def test_importing_the_program_only_defines_things(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import simple_cnn_from_scratch"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": PROJECT_DIR},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""  # TensorFlow's start-up noise too
    assert os.listdir(tmp_path) == []


def test_main_quiet_prints_only_the_test_accuracy(tmp_path, capsys):
    history_path = tmp_path / "history.json"
    argv = ["--limit", "300", "--epochs", "1", "--quiet", "--no-save"]
    assert driver.main([*argv, "--history", str(history_path)]) == 0
    accuracy = json.loads(history_path.read_text())["test_accuracy"]
    assert capsys.readouterr().out == f"Test accuracy: {accuracy:.4f}\n"


def test_the_last_lines_say_what_to_try_next_with_the_model_saved(tmp_path, capsys):
    model_path = tmp_path / "model.npz"
    argv = ["--limit", "300", "--epochs", "1", "--save", str(model_path)]
    assert driver.main(argv) == 0
    *_, accuracy, predict, explore = capsys.readouterr().out.splitlines()
    assert accuracy.startswith("Test accuracy: ")
    assert predict.endswith(f"python predict_digit.py --model {model_path} IMAGE")
    assert explore.endswith(f"python explore.py --model {model_path}")
    # Resumed without --save, the run saved to the file it resumed: the commands name it.
    copy = tmp_path / "copy.npz"
    copy.write_bytes(model_path.read_bytes())
    assert driver.main(["--resume", str(copy)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"python explore.py --model {copy}")


def test_main_turns_a_damaged_resume_file_into_one_line(tmp_path):
    damaged = tmp_path / "model.npz"
    damaged.write_bytes(b"not a model at all")
    with pytest.raises(SystemExit) as exit_:
        driver.main(["--resume", str(damaged), "--quiet"])
    assert str(exit_.value).startswith(f"error: {damaged}: not a readable .npz model file")


def test_ctrl_c_in_the_program_saves_and_exits_with_130(tmp_path):
    model_path = tmp_path / "model.npz"
    program = subprocess.Popen(
        [sys.executable, os.path.join(PROJECT_DIR, "simple_cnn_from_scratch.py")]
        + ["--limit", "2000", "--epochs", "100", "--save", str(model_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in program.stdout:
            if line.startswith("Epoch 2/100"):  # epoch 1 is done and saved
                program.send_signal(signal.SIGINT)
                break
        stdout, stderr = program.communicate(timeout=120)
    finally:
        program.kill()
    assert program.returncode == 130
    assert "Traceback" not in stderr
    assert f"--resume {model_path}" in stderr
    saved = load_model(model_path)
    assert saved.epoch >= 1 and saved.config["epochs"] == 100


def test_a_closed_terminal_sighup_saves_the_run_and_exits_with_129(tmp_path):
    model_path = tmp_path / "model.npz"
    terminal, program_side = os.openpty()  # a terminal: the live progress bar writes each step
    program = subprocess.Popen(
        [sys.executable, os.path.join(PROJECT_DIR, "simple_cnn_from_scratch.py")]
        + ["--limit", "2000", "--epochs", "100", "--save", str(model_path)],
        cwd=tmp_path,
        stdout=program_side,
        stderr=program_side,
    )
    os.close(program_side)
    try:
        seen = b""
        while b"Epoch 2/100" not in seen:  # epoch 1 is done and saved
            ready, _, _ = select.select([terminal], [], [], 120)
            assert ready, seen[-500:]
            seen += os.read(terminal, 4096)
        os.close(terminal)  # the terminal window closes: writing to it now fails...
        program.send_signal(signal.SIGHUP)  # ... and its processes get SIGHUP
        program.wait(timeout=120)
    finally:
        program.kill()
    assert program.returncode == 128 + signal.SIGHUP  # not killed, nor failed writing
    saved = load_model(model_path)
    assert saved.epoch >= 1 and saved.config["epochs"] == 100


@pytest.mark.parametrize("buffered", [False, True], ids=["line-by-line", "buffered"])
def test_output_piped_to_a_reader_that_quits_saves_and_exits_with_141(tmp_path, buffered):
    """`| head`, or quitting `less`: the run stops at its next save point, saved, with the
    resume command on stderr and the status a broken pipe has (128 + SIGPIPE), no traceback."""
    model_path = tmp_path / "model.npz"
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)  # set where the suite runs, it would unbuffer "buffered"
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"  # a reader that quits after a line of its choice
    program = subprocess.Popen(
        [sys.executable, os.path.join(PROJECT_DIR, "simple_cnn_from_scratch.py")]
        + ["--limit", "2000", "--epochs", "100", "--save", str(model_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Line by line, the reader quits once epoch 1 has started; buffered, the program's
        # first flush (the progress bar's, at the end of epoch 1) brings the lines it quits on.
        for line in program.stdout:
            if line.startswith("Epoch 1/100" if not buffered else "MNIST"):
                break
        program.stdout.close()
        stderr = program.stderr.read()
        program.wait(timeout=120)
    finally:
        program.kill()
    assert program.returncode == 128 + signal.SIGPIPE, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    saved = load_model(model_path)  # the progress bar writes (and fails) at an epoch's end
    assert saved.step == 0 and (saved.epoch == 1 or (buffered and saved.epoch >= 1))
    assert stderr.startswith(f"Interrupted at the end of epoch {saved.epoch}; saved to ")
    assert f"--resume {model_path}" in stderr


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_stops_at_once_with_its_own_status(monkeypatch, capsys, signal_number):
    def signalled_twice(*args, **kwargs):
        signal.raise_signal(signal_number)  # the first asks to stop after the step...
        signal.raise_signal(signal_number)  # ... the second stops now

    monkeypatch.setattr(driver, "train_epoch", signalled_twice)
    status = driver.main(["--limit", "300", "--epochs", "1", "--no-save", "--quiet"])
    assert status == 128 + signal_number
    assert capsys.readouterr().err == "\nInterrupted.\n"


def test_main_reports_an_interrupted_run_with_status_130(monkeypatch, capsys):
    def interrupted(config):
        raise driver.TrainingInterrupted("Interrupted at epoch 3, step 7; saved to m.npz.")

    monkeypatch.setattr(driver, "train", interrupted)
    assert driver.main(["--quiet"]) == 130
    assert "saved to m.npz" in capsys.readouterr().err


def test_the_default_padding_is_named_when_it_does_not_fit_the_stages(capsys):
    """--padding defaults to LeNet-5's 2,0: a network of other than two stages is told so, in one
    line naming --padding; one value for all stages works."""
    with pytest.raises(SystemExit):
        driver.parse_args(["--filters", "6,16,32"])
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.endswith(
        ": error: --padding has 2 values (2,0: LeNet-5's, the default) for 3 stages; give one "
        "per stage, or one for all (--help lists the options)\n"
    )
    for paddings in [None, (2, 0)]:  # left out or given, the same true sentence
        settings = {} if paddings is None else {"paddings": paddings}
        with pytest.raises(driver.ConfigError, match=r"^--padding has 2 values \(2,0: LeNet"):
            driver.TrainConfig(num_filters=(6, 16, 32), **settings)
    with pytest.raises(driver.ConfigError, match=r"^--padding has 3 values \(1,1,1\) for 1 stage;"):
        driver.TrainConfig(num_filters=(6,), paddings=(1, 1, 1))
    with pytest.raises(driver.ConfigError, match=r"^--kernel-size has 2 values \(3,5\) for 3"):
        driver.TrainConfig(num_filters=(6, 16, 32), kernel_sizes=(3, 5), paddings=("same",))
    config = driver.parse_args(["--filters", "8,16,32", "--kernel-size", "3", "--padding", "same"])
    assert [stage.out_size for stage in config.network_stages()] == [(14, 14), (7, 7), (3, 3)]


def test_resuming_a_three_stage_run_may_repeat_its_filters(tmp_path):
    """The network of a resumed run is the saved one: --filters repeated as saved is accepted
    (the default padding does not get in the way), a different one is refused as a change."""
    model = tmp_path / "m.npz"
    model.touch()  # parse_args checks that it exists; resumed_config gets its settings below
    saved = driver.settings.run_settings(
        driver.TrainConfig(num_filters=(8, 16, 32), kernel_sizes=(3,), paddings=("same",))
    )
    resumed = driver.settings.resumed_config(
        driver.parse_args(["--resume", str(model), "--filters", "8,16,32", "--epochs", "8"]), saved
    )
    assert (resumed.num_filters, resumed.paddings, resumed.epochs) == ((8, 16, 32), ("same",), 8)
    with pytest.raises(driver.ConfigError, match="--filters 6,16,32 differs from the 8,16,32"):
        driver.settings.resumed_config(
            driver.parse_args(["--resume", str(model), "--filters", "6,16,32"]), saved
        )
