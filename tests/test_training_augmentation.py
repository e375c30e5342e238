"""The trainer's augmentation: seeded by the step, recorded in the model file, exact on resume."""

import json
import signal
import zipfile

import numpy as np
import pytest

import simple_cnn_from_scratch as driver
from training.augmentation import augment
from training.model_file import load_model

DISTORTED = dict(rotation=10.0, scale=0.1, shear=8.0, elastic=1.2, stroke=0.6)
QUICK = dict(limit=1000, batch_size=50, learning_rate=0.002, seed=3, verbose=False)


def config(folder, **changes):
    settings = {**QUICK, "epochs": 2, "save_path": str(folder / "m.npz"), **changes}
    return driver.TrainConfig(**settings)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("augmented")
    history = driver.train(config(folder, **DISTORTED))
    return history, load_model(folder / "m.npz")


def same_weights(model, expected) -> bool:
    arrays = [*model.conv_filters, *(w for pair in model.head_weights for w in pair)]
    expected_arrays = [*expected.conv_filters, *(w for pair in expected.head_weights for w in pair)]
    return all(np.array_equal(a, b) for a, b in zip(arrays, expected_arrays, strict=True))


def test_each_batch_is_distorted_by_a_generator_seeded_by_the_step(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        driver, "train_step", lambda model, images, labels: seen.append(images.copy()) or None
    )
    monkeypatch.setattr(driver.EpochSums, "add", lambda self, result, count: None)
    run = config(tmp_path, **DISTORTED, epochs=1, no_save=True)
    model = driver.build_model(run)
    data = driver.load_data(run)
    driver.train_steps(model, data, driver.StopRequest(), max_steps=3)
    order, shifts = driver.epoch_plan(run.seed, 1, len(data.x_train), run.shift)
    for step, images in enumerate(seen):
        batch = order[step * run.batch_size : (step + 1) * run.batch_size]
        shifted = driver.shift_images(data.x_train[batch], shifts[batch])
        rng = np.random.default_rng([run.seed, 1, step])
        np.testing.assert_array_equal(images, augment(shifted, run.augmentation(), rng))
        assert (images != shifted).any()


def test_a_run_stopped_mid_epoch_and_resumed_is_the_uninterrupted_run(uninterrupted, tmp_path):
    def press_ctrl_c(model, epoch, step):
        if (epoch, step) == (1, 7):
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(driver.TrainingInterrupted):
        driver.train(config(tmp_path, **DISTORTED), on_step=press_ctrl_c)
    history = driver.train(driver.TrainConfig(resume_path=str(tmp_path / "m.npz"), verbose=False))
    assert [r["loss"] for r in history["epochs"]] == [r["loss"] for r in uninterrupted[0]["epochs"]]
    assert same_weights(load_model(tmp_path / "m.npz"), uninterrupted[1])


def test_the_model_file_records_the_augmentation_and_resuming_keeps_it(uninterrupted, tmp_path):
    stored = uninterrupted[1].config
    assert {name: stored[name] for name in DISTORTED} == DISTORTED
    driver.train(config(tmp_path, **DISTORTED, epochs=1))
    path = str(tmp_path / "m.npz")
    changed = config(tmp_path, **{**DISTORTED, "rotation": 5.0}, resume_path=path)
    with pytest.raises(driver.ConfigError, match="--rotation 5.0 differs from the 10.0"):
        driver.train(changed)


def test_augmentation_changes_what_is_learnt(uninterrupted, tmp_path):
    driver.train(config(tmp_path))
    assert not same_weights(load_model(tmp_path / "m.npz"), uninterrupted[1])


def test_a_model_file_from_before_the_augmentation_resumes_without_it(tmp_path):
    driver.train(config(tmp_path, epochs=1))
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    stored = json.loads(np.load(path)["config"].item())
    for name in DISTORTED:
        del stored[name]  # as a file written before these settings existed
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if name != "config.npy":
                archive.writestr(name, data)
        with archive.open("config.npy", "w") as member:
            np.lib.format.write_array(member, np.array(json.dumps(stored)))
    resumed = driver.TrainConfig(resume_path=str(path), epochs=2, verbose=False)
    driver.train(resumed)
    assert {name: load_model(path).config[name] for name in DISTORTED} == dict.fromkeys(
        DISTORTED, 0.0
    )
