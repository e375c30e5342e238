"""Every program answers a bad command line with one line: what was wrong, and where the options
are listed (exit status 2), and never accepts an abbreviated option. The long-running ones stop
quietly on Ctrl-C or SIGTERM from the moment they start."""

import os
import signal
import subprocess
import sys

import pytest

from plumbing.command_line import ArgumentParser

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = [
    "simple_cnn_from_scratch.py",
    "predict_digit.py",
    "plot_results.py",
    "download_mnist.py",
    "explore.py",
    "benchmarks/bench_conv_stack.py",
    "benchmarks/bench_explorer.py",
    "benchmarks/bench_memory.py",
    "benchmarks/bench_training.py",
    "benchmarks/bench_winograd.py",
]


@pytest.mark.parametrize("program", PROGRAMS)
def test_an_unknown_option_gets_one_line(program, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(PROJECT_DIR, program), "--no-such-option", "x.png"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    name = os.path.basename(program)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"{name}: error: ")
    assert "--no-such-option" in result.stderr
    assert result.stderr.endswith("(--help lists the options)\n")
    assert os.listdir(tmp_path) == []


def test_the_parser_refuses_abbreviations_and_explains_in_one_line(capsys):
    parser = ArgumentParser(prog="program")
    parser.add_argument("--epochs", type=int, default=1)
    assert parser.parse_args(["--epochs", "3"]).epochs == 3
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--epoch", "3"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "program: error: unrecognized arguments: --epoch 3 (--help lists the options)\n"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "many"])
    assert capsys.readouterr().err == (
        "program: error: argument --epochs: invalid int value: 'many' (--help lists the options)\n"
    )


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_the_explorer_refuses_a_port_out_of_range_the_same_way(port, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(PROJECT_DIR, "explore.py"), "--port", port],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"explore.py: error: --port must be 0 to 65535, got {port} (--help lists the options)\n"
    )


@pytest.mark.parametrize("program", ["simple_cnn_from_scratch.py", "explore.py"])
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_program_starts_ends_it_quietly(tmp_path, program, signal_number):
    # NumPy's import is most of a program's first tenth of a second; this stand-in, found first
    # on the path, receives the signal there.
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text(
        f"import os, time\nos.kill(os.getpid(), {int(signal_number)})\ntime.sleep(30)\n"
    )
    result = subprocess.run(
        [sys.executable, os.path.join(PROJECT_DIR, program)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (128 + signal_number, "", "")


@pytest.mark.parametrize("argv", [["--dataset", "x" * 5000], ["--bogus" + "y" * 300]])
def test_a_long_value_quoted_back_by_argparse_is_cut_short(argv, capsys):
    from plumbing.command_line import ArgumentParser

    parser = ArgumentParser(prog="program")
    parser.add_argument("--dataset", choices=["mnist", "fashion"])
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and len(message) < 300 and "characters)" in message


def test_a_long_path_in_an_error_is_shown_whole(tmp_path):
    """A path of 140 characters (deep folders are common) was cut at 80: the user could not see
    which file was meant."""
    missing = os.path.join("a_folder_with_a_long_name" * 5, "model.npz")  # 135 characters
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(PROJECT_DIR, "simple_cnn_from_scratch.py"),
            "--resume",
            missing,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"no such file: {missing} (--help lists the options)" in result.stderr
