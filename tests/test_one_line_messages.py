"""Clear messages: what the programs say stays one line whatever a file's name holds, says what a
path is when it cannot be used, and does not echo a value of 5,000 characters back whole."""

import os
import subprocess
import sys

import pytest
from explorer_models import save_untrained_model

import plot_results
import simple_cnn_from_scratch as driver
from plumbing.checks import one_line, printable, shown
from training.messages import interrupted_message, shell_word, what_next
from training.settings import TrainConfig

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_trainer(*args):
    return subprocess.run(
        [sys.executable, "simple_cnn_from_scratch.py", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_resuming_what_is_not_a_file_says_what_it_is(tmp_path, kind):
    """Both were "no such file", which they are not."""
    path = tmp_path / "model.npz"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    result = run_trainer("--resume", str(path))
    expected = "a FIFO" if kind == "fifo" else "a directory"
    assert result.returncode == 2
    assert f"--resume: {path} is {expected}, not a model file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_resuming_a_missing_file_still_says_so(tmp_path):
    result = run_trainer("--resume", str(tmp_path / "gone.npz"))
    assert f"no such file: {tmp_path / 'gone.npz'}" in result.stderr


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--learning-rate"])
def test_a_value_of_5000_characters_is_not_echoed_back_whole(option):
    result = run_trainer(option, "9" * 4999 + "x")
    assert result.returncode == 2
    assert len(result.stderr) < 300 and "(5,002 characters)" in result.stderr


def test_settings_from_a_notebook_do_not_echo_a_huge_value():
    """repr() of an int of more than 4,300 digits is itself a ValueError (Python's limit)."""
    with pytest.raises(ValueError, match="got a number of about 5,001 digits"):
        TrainConfig(batch_size=-(10**5000))
    with pytest.raises(ValueError, match=r"\(100,00\d characters\)") as error:
        TrainConfig(dataset="m" * 100_000)
    assert len(str(error.value)) < 200


def test_the_helpers():
    assert one_line("a\nb\x1b[31m\udcff") == "a\\nb\\x1b[31m\\udcff"
    assert printable("plain.npz") == "plain.npz" and printable("a\nb.npz") == "'a\\nb.npz'"
    assert printable("") == "''"
    assert shown([1] * 3) == "[1, 1, 1]" and shown(10**5000) == "a number of about 5,001 digits"
    assert shell_word("my model.npz") == "'my model.npz'" and shell_word("a\nb") == "$'a\\nb'"
    assert shell_word("it's\n") == "$'it\\'s\\n'"


def test_the_trainer_s_lines_name_a_file_with_a_line_break_on_one_line(tmp_path):
    save = str(tmp_path / "new\nmodel.npz")
    config = TrainConfig(save_path=save, history_path=str(tmp_path / "h\n.json"))
    for message in (interrupted_message(config, 1, 3), what_next(config)):
        for line in message.splitlines():
            assert not line.startswith("model.npz") and not line.startswith(".json")
    assert "--resume $'" in interrupted_message(config, 1, 3)
    assert "saved to '" in interrupted_message(config, 1, 3)


def test_a_training_run_saving_to_a_name_with_a_line_break(tmp_path, capsys):
    save = tmp_path / "new\nmodel.npz"
    assert driver.main(["--epochs", "1", "--limit", "200", "--save", str(save)]) == 0
    out = capsys.readouterr().out
    assert "Model saved to '" in out and "\nmodel.npz" not in out
    assert save.exists()
    with pytest.raises(SystemExit) as stop:
        driver.main(["--epochs", "2", "--batch-size", "64", "--resume", str(save), "--no-save"])
    message = str(stop.value.code)  # "--batch-size 64 differs from the 128 that ... was"
    assert "differs" in message and "new\\nmodel.npz" in message and "\n" not in message


def test_plots_written_into_a_folder_with_a_line_break_are_listed_one_per_line(tmp_path, capsys):
    model = save_untrained_model(tmp_path / "model.npz")
    out = tmp_path / "my\nplots"
    plot_results.main(["--model", str(model), "--out", str(out)])
    printed = capsys.readouterr().out.splitlines()
    wrote = [line for line in printed if line.startswith("wrote ")]
    assert len(wrote) >= 3 and len(wrote) == len(list(out.iterdir()))
    assert all(line.startswith("wrote ") or line.startswith("note: ") for line in printed)
    with pytest.raises(SystemExit) as stop:
        plot_results.main(["--model", str(tmp_path / "no\nmodel.npz"), "--out", str(out)])
    assert "\n" not in str(stop.value.code) and "no\\nmodel.npz" in str(stop.value.code)


def test_a_file_too_big_to_be_a_history_is_not_read_whole(tmp_path):
    """--history on a 3 GB file (a sparse one here): the trainer read it whole to find out
    whether it was a history it wrote (a MemoryError under a ulimit), the plots to draw it."""
    import time
    import tracemalloc

    from plumbing.atomic_write import FileWriteError
    from training.output_files import check_outputs

    big = tmp_path / "big.json"
    with open(big, "wb") as file:
        file.truncate(3 * 2**30)
    tracemalloc.start()
    start = time.perf_counter()
    config = TrainConfig(history_path=str(big), no_save=True)
    with pytest.raises(FileWriteError, match="is not a history file written by this program"):
        check_outputs(config)
    with pytest.raises(plot_results.PlotError, match="3,221,225,472 bytes, far more than a"):
        plot_results.load_history(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - start < 1 and peak < 2**20
