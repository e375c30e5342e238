"""Modules that moved and settings that were renamed keep their old names, with a
DeprecationWarning saying where they went."""

import subprocess
import sys
from pathlib import Path

import pytest

from training.settings import TrainConfig

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("model_file", "training.model_file", "load_model"),
        ("train_config", "training.settings", "TrainConfig"),
    ],
)
def test_an_old_module_name_still_imports_and_says_where_it_went(old, new, name):
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        f"assert old is new and getattr(old, {name!r}) is getattr(new, {name!r})\n"
        "print([str(w.message) for w in caught if w.category is DeprecationWarning])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"{old} moved to {new.replace('.', '/')}.py" in result.stdout


def test_the_settings_old_keywords_still_work_and_warn():
    # TrainConfig's fields took SimpleCNN's names; notebooks written with the old ones still run.
    with pytest.warns(DeprecationWarning) as caught:
        config = TrainConfig(filters=(8, 16, 32), kernel_size=(3,), padding=("same",))
    assert {str(warning.message).split(" is now")[0] for warning in caught} == {
        "TrainConfig's filters",
        "TrainConfig's kernel_size",
        "TrainConfig's padding",
    }
    assert config == TrainConfig(num_filters=(8, 16, 32), kernel_sizes=(3,), paddings=("same",))
    with pytest.warns(DeprecationWarning, match="padding is now paddings"):
        assert config.padding == ("same",)
    with pytest.raises(TypeError, match="both filters= and num_filters="):
        TrainConfig(filters=(6, 16), num_filters=(6, 16))
