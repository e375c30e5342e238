"""The model file: exact round trip, atomic writes, and a clear refusal of anything else.

Nothing read from a model file is trusted: every member is checked by name and by the size its
header claims before it is read, every stored setting by type and range.
"""

import json
import os
import re
import struct
import zipfile

import numpy as np
import pytest

import simple_cnn_from_scratch as driver
from download_mnist import load_dataset
from inference import Classifier, DenseHead, classifier_from_saved, load_classifier
from training import keras_head, model_file
from training.model_file import ModelFileError, SavedModel, load_model, save_model
from training.settings import TrainConfig


def stepped_model(seed=3, **settings):
    """A trainer's model whose weights and both optimizers' states have all moved."""
    config = TrainConfig(seed=seed, batch_size=32, verbose=False, **settings)
    model = driver.build_model(config)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        gradients = [random_like(rng, f) for f in model.cnn.filters]
        model.conv_optimizer.step(model.cnn.filters, gradients)
        head_grads = [random_like(rng, v) for v in model.head.trainable_variables]
        variables = model.head.trainable_variables
        model.head_optimizer.apply_gradients(zip(head_grads, variables, strict=True))
    model.epoch, model.step = 2, 7
    model.history = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    model.partial_epoch = {"loss_sum": 1.5, "correct": 3, "seen": 4, "seconds": 0.1}
    return model


def random_like(rng, array):
    return rng.standard_normal(tuple(array.shape)).astype(np.float32)


def rewrite(source, target, change):
    """Copy the model file ``source`` to ``target`` with ``change(arrays)`` applied."""
    with np.load(source) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    np.savez(target, **arrays)


def set_json(name, **values):
    """A change for rewrite(): update the JSON member ``name`` with ``values``."""

    def change(arrays):
        record = json.loads(str(arrays[name]))
        record.update(values)
        arrays[name] = np.array(json.dumps(record))

    return change


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model = stepped_model()
    save_model(path, driver.to_saved(model))
    return path, model


def test_round_trip_restores_every_weight_and_optimizer_state_exactly(saved):
    path, model = saved
    loaded = load_model(path)
    original = driver.to_saved(model)

    for restored, filters in zip(loaded.conv_filters, model.cnn.filters, strict=True):
        assert np.array_equal(restored, filters) and restored.dtype == np.float32
    for (kernel, bias), layer in zip(
        loaded.head_weights, keras_head.dense_layers(model.head), strict=True
    ):
        assert np.array_equal(kernel, layer.kernel.numpy())
        assert np.array_equal(bias, layer.bias.numpy())
    for name, value in original.conv_optimizer_state.items():
        assert np.array_equal(loaded.conv_optimizer_state[name], value)
    assert int(loaded.head_optimizer_state[0]) == 2  # Keras Adam's iterations
    for restored, variable in zip(
        loaded.head_optimizer_state, model.head_optimizer.variables, strict=True
    ):
        assert np.array_equal(restored, variable.numpy())
    assert (loaded.epoch, loaded.step) == (2, 7)
    assert loaded.config == original.config and loaded.config["batch_size"] == 32
    assert loaded.history == model.history
    assert loaded.partial_epoch == model.partial_epoch
    assert loaded.architecture == {
        "num_filters": [6, 16],
        "kernel_sizes": [5, 5],
        "paddings": [2, 0],
        "input_shape": [1, 28, 28],
        "hidden": [128],
        "dropout": 0.0,
        "num_classes": 10,
    }


def test_numpy_head_equals_keras_head_to_float_rounding(saved):
    # Prediction runs the head in NumPy (no TensorFlow): it must be Keras' head, number for number.
    _, model = saved
    features = np.random.default_rng(0).uniform(0, 3, size=(64, 400)).astype(np.float32)
    keras_logits = model.head(features, training=False).numpy()
    numpy_logits = DenseHead(keras_head.head_weights(model.head)).logits(features)
    np.testing.assert_allclose(numpy_logits, keras_logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [dict(hidden=(), dropout=0.5), dict(hidden=(32, 16), dropout=0.25)],
    ids=["no-hidden-dropout", "two-hidden"],
)
def test_numpy_head_equals_keras_head_for_other_heads(settings):
    model = stepped_model(
        seed=4, num_filters=(4,), kernel_sizes=(3,), paddings=("same",), **settings
    )
    features = np.random.default_rng(1).uniform(0, 2, size=(16, model.cnn.num_features))
    features = features.astype(np.float32)
    keras_logits = model.head(features, training=False).numpy()  # dropout is off at inference
    numpy_logits = DenseHead(keras_head.head_weights(model.head)).logits(features)
    np.testing.assert_allclose(numpy_logits, keras_logits, rtol=1e-5, atol=1e-5)


def test_restored_model_predicts_what_the_saved_one_did(saved):
    path, model = saved
    images = load_dataset()[2][:50]
    classifier = load_classifier(path)

    before = driver.classifier(model).predict_proba(images)
    after = classifier.predict_proba(images, batch_size=16)  # batching is invisible
    assert before.shape == (50, 10)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-7)
    # And the Keras head, through the trainer's own model, agrees with the NumPy prediction.
    features = model.cnn.features(images[:, np.newaxis] / np.float32(255))
    keras_probabilities = keras_head.keras.activations.softmax(model.head(features)).numpy()
    np.testing.assert_allclose(after, keras_probabilities, rtol=1e-4, atol=1e-6)


def test_any_architecture_round_trips(tmp_path):
    settings = dict(
        num_filters=(4, 8), kernel_sizes=(3,), paddings=("valid",), hidden=(), dropout=0.5
    )
    model = stepped_model(seed=5, **settings)
    path = tmp_path / "keras-example.npz"
    save_model(path, driver.to_saved(model))
    loaded = load_model(path)
    assert loaded.architecture["num_filters"] == [4, 8] and loaded.architecture["hidden"] == []
    assert len(loaded.head_state) == 1  # the dropout layer's random-number state
    images = load_dataset()[2][:20]
    np.testing.assert_allclose(
        classifier_from_saved(loaded).logits(images),
        driver.classifier(model).logits(images),
        rtol=1e-5,
        atol=1e-6,
    )
    again = driver.build_model(TrainConfig(seed=0, **settings), loaded)
    for restored, filters in zip(again.cnn.filters, model.cnn.filters, strict=True):
        assert np.array_equal(restored, filters)
    assert np.array_equal(
        again.head.non_trainable_variables[0].numpy(), model.head.non_trainable_variables[0]
    )


def test_restored_optimizers_continue_like_the_originals(tmp_path):
    path = tmp_path / "model.npz"
    model = stepped_model()
    save_model(path, driver.to_saved(model))
    loaded = driver.build_model(model.config, load_model(path))
    grads = [np.full_like(filters, 0.5) for filters in model.cnn.filters]

    model.conv_optimizer.step(model.cnn.filters, grads)
    loaded.conv_optimizer.step(loaded.cnn.filters, grads)
    for restored, filters in zip(loaded.cnn.filters, model.cnn.filters, strict=True):
        assert np.array_equal(restored, filters)


def test_save_replaces_the_file_atomically_and_keeps_it_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    model = stepped_model()
    model.epoch, model.history = 1, model.history[:1]
    save_model(path, driver.to_saved(model))
    good = path.read_bytes()

    def disk_full(file, **arrays):
        file.write(b"PK half an archive")
        raise OSError(28, "No space left on device")

    model.epoch = 2
    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", disk_full)
        with pytest.raises(OSError, match="No space"):
            save_model(path, driver.to_saved(model))

    assert path.read_bytes() == good
    assert load_model(path).epoch == 1
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left behind
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_an_empty_path_is_a_clear_error():
    with pytest.raises(ModelFileError, match="the model file path is empty"):
        load_model("")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match=r"no-such\.npz: no such model file"):
        load_model(tmp_path / "no-such.npz")


def write_npy(path, good):
    with open(path, "wb") as file:
        np.save(file, np.zeros(3))


def write_other_zip(path, good):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "a zip archive, but not of a model")


@pytest.mark.parametrize(
    "write, problem",
    [
        (lambda path, good: path.write_bytes(good[: len(good) // 2]), "not a readable"),
        (lambda path, good: path.write_bytes(good[:-300]), "not a readable"),
        (lambda path, good: path.write_bytes(b"this is not a model"), "not a readable"),
        (lambda path, good: path.write_bytes(b""), "not a readable"),
        (write_npy, "single NumPy array"),
        (write_other_zip, "not a SimpleCNN model file"),
    ],
    ids=["truncated-half", "truncated-end", "text", "empty", "npy", "other-zip"],
)
def test_damaged_files_are_refused_with_one_line(saved, tmp_path, write, problem):
    good = saved[0].read_bytes()
    path = tmp_path / "bad.npz"
    write(path, good)

    with pytest.raises(ModelFileError, match=problem) as error:
        load_model(path)
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda a: a.update(format=np.array("keras-v3")), "not a SimpleCNN model file"),
        (lambda a: a.pop("format"), "not a SimpleCNN model file"),
        (lambda a: a.update(conv1_filters=np.zeros((8, 1, 3, 3))), "another architecture"),
        (lambda a: a.update({"head.0.kernel": np.zeros((400, 64))}), "another architecture"),
        (lambda a: a.update(conv2_filters=np.array(["a"] * 2400).reshape(16, 6, 5, 5)), "arch"),
        (lambda a: a.pop("head.1.bias"), "head.1.bias is missing"),
        (lambda a: a["conv2_filters"].__setitem__((0, 0, 0, 0), np.nan), "NaN"),
        (lambda a: a.update(config=np.array("{not json")), "bad training record"),
        (lambda a: a.update(config=np.array("[" * 10**5 + "]" * 10**5)), "bad training record"),
        (lambda a: a.update(history=np.array('{"a": 1}')), "bad training record"),
        (lambda a: a.pop("epoch"), "epoch is missing"),
        (lambda a: a.update({"conv_optimizer.m0": np.zeros(3)}), "conv optimizer state"),
        (lambda a: a.pop("conv_optimizer.m1"), "conv optimizer state"),
        (lambda a: a.pop("conv_optimizer.iterations"), "conv optimizer state"),
        (lambda a: a.update(conv_optimizer_settings=np.array("{}}")), "bad training record"),
        (set_json("conv_optimizer_settings", epsilon=0.0), "conv optimizer"),  # 0 / 0 = NaN
        (set_json("conv_optimizer_settings", learning_rate=0.0), "conv optimizer"),
        (lambda a: a.update(extra=np.zeros(3)), "unknown member 'extra'"),
        (lambda a: a.update(architecture=np.array('{"filters": [6]}')), "architecture"),
        (set_json("architecture", filters=[6, 16, 32, 64, 128]), "impossible architecture"),
        (set_json("architecture", dropout=1.5), "bad dropout"),
        (set_json("config", batch_size=0), "batch-size must be an integer greater than 0"),
        (set_json("config", learning_rate=None), "learning-rate must be a number"),
        (set_json("config", seed=-1), "seed must be an integer from 0"),
        (set_json("config", epochs="many"), "epochs must be an integer greater than 0"),
        (set_json("config", dataset="cifar"), "dataset must be one of"),
        (set_json("config", shift=9), "shift must be an integer from 0 to 4"),
        (set_json("config", color="red"), "unknown setting 'color'"),
        (set_json("partial_epoch", seen=-4), "partial_epoch"),
        (lambda a: a.update(step=np.array(-1)), "step is -1"),
        (lambda a: a.update(epoch=np.array(2.5)), "epoch is float64"),
        (lambda a: a.update(history=np.array('[{"epoch": "one"}]')), "history"),
        (lambda a: a.update(history=np.array("[]")), "history"),  # 2 epochs done, none recorded
        (lambda a: a.update(history=np.array('[{"epoch": 1}, {"epoch": 1}]')), "history"),
        (lambda a: a.update(epoch=np.array(5)), "history"),  # 5 done, 2 recorded
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_other_architectures_and_bad_contents_are_refused(saved, tmp_path, change, problem):
    path = tmp_path / "changed.npz"
    rewrite(saved[0], path, change)

    with pytest.raises(ModelFileError, match=problem) as error:
        load_model(path)
    assert "\n" not in str(error.value)


def set_position(step, **partial_epoch):
    """A change for rewrite(): the position a mid-epoch save records (step, running sums)."""

    def change(arrays):
        arrays["step"] = np.array(step)
        arrays["partial_epoch"] = np.array(json.dumps(partial_epoch))

    return change


@pytest.mark.parametrize(
    "change, problem",
    [
        (set_position(3), "partial_epoch"),  # mid-epoch, but no running sums
        (set_position(3, loss_sum=0.0, correct=0, seen=0, seconds=0.0), "partial_epoch"),
        (set_position(0, loss_sum=9.0, correct=9, seen=10**9, seconds=1.0), "partial_epoch"),
        (set_position(3, loss_sum=9.0, correct=9, seen=97, seconds=1.0), "partial_epoch"),
    ],
    ids=["step-without-sums", "step-with-no-images", "sums-without-step", "more-than-the-steps"],
)
def test_a_position_that_contradicts_its_running_sums_is_refused(saved, tmp_path, change, problem):
    path = tmp_path / "position.npz"
    rewrite(saved[0], path, change)  # the fixture's batch size is 32: 3 steps are 96 images
    with pytest.raises(ModelFileError, match=problem) as error:
        load_model(path)
    assert "\n" not in str(error.value)


def replace_head_layer(index, kernel_shape):
    """A change for rewrite(): head layer ``index`` gets zero weights of ``kernel_shape``."""

    def change(arrays):
        arrays[f"head.{index}.kernel"] = np.zeros(kernel_shape, np.float32)
        arrays[f"head.{index}.bias"] = np.zeros(kernel_shape[1], np.float32)

    return change


def changes(*steps):
    def change(arrays):
        for step in steps:
            step(arrays)

    return change


@pytest.mark.parametrize(
    "change, problem",
    [
        (set_json("config", hidden=[64]), "hidden"),
        (set_json("config", filters=[8, 16]), "filters"),
        (set_json("config", kernel_size=[3]), "kernel"),
        (set_json("config", padding=["valid"]), "padding"),
        (set_json("config", dropout=0.5), "dropout"),
        # Weights that fit the stored architecture, but no program here reads such images...
        (
            changes(
                set_json("architecture", input_shape=[1, 32, 32]), replace_head_layer(0, (576, 128))
            ),
            "28x28",
        ),
        # ... or has such classes: MNIST and Fashion-MNIST have 10.
        (changes(set_json("architecture", num_classes=3), replace_head_layer(1, (128, 3))), "10"),
    ],
    ids=["hidden", "filters", "kernel-size", "padding", "dropout", "input-32x32", "3-classes"],
)
def test_settings_that_contradict_the_architecture_are_refused(saved, tmp_path, change, problem):
    path = tmp_path / "contradicts.npz"
    rewrite(saved[0], path, change)
    with pytest.raises(ModelFileError, match=problem) as error:
        load_model(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_head_optimizer_state_that_does_not_fit_is_refused_when_resuming(saved, tmp_path):
    path = tmp_path / "changed.npz"
    last = len(load_model(saved[0]).head_optimizer_state) - 1
    rewrite(saved[0], path, lambda a: a.pop(f"head_optimizer.{last}"))
    with pytest.raises(ModelFileError, match="head optimizer state does not match"):
        driver.build_model(TrainConfig(seed=3, resume_path=str(path)), load_model(path))


def claim_size(path, member, size):
    """Make the zip's central directory claim that ``member`` decompresses to ``size`` bytes."""
    data = bytearray(path.read_bytes())
    entry = data.rfind(member.encode()) - 46  # a central directory entry: 46 bytes, then the name
    assert data[entry : entry + 4] == b"PK\x01\x02"
    struct.pack_into("<I", data, entry + 24, size)  # its "uncompressed size" field
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", ["conv1_filters.npy", "head_optimizer.2.npy", "history.npy"])
def test_members_claiming_absurd_sizes_are_refused_before_reading(saved, tmp_path, member):
    path = tmp_path / "claims.npz"
    path.write_bytes(saved[0].read_bytes())
    claim_size(path, member, 3 * 10**9)  # 3 GB; nothing is read to find out
    with pytest.raises(ModelFileError, match="claims 3,000,000,000 bytes") as error:
        load_model(path)
    assert member.removesuffix(".npy") in str(error.value)


def test_an_unknown_member_is_refused_by_name_without_reading_it(saved, tmp_path, monkeypatch):
    path = tmp_path / "extra.npz"
    rewrite(saved[0], path, lambda a: a.update(junk=np.zeros(10)))
    claim_size(path, "junk.npy", 3 * 10**9)
    opened = []
    original_open = zipfile.ZipFile.open

    def recording_open(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return original_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)
    with pytest.raises(ModelFileError, match="unknown member 'junk'"):
        load_model(path)
    assert "junk.npy" not in opened


@pytest.mark.parametrize(
    ("member", "header", "claim"),
    [
        (
            "history",
            b"'descr': '<U2', 'fortran_order': False, 'shape': (), }",
            b"'descr': '<U250000000000', 'fortran_order': False, 'shape': (), }",
        ),
        ("conv1_filters", b"'shape': (6, 1, 5, 5), }", b"'shape': (6000000, 1, 5, 5), }"),
    ],
)
def test_a_header_claiming_a_huge_array_is_refused_before_reading(
    saved, tmp_path, member, header, claim
):
    small = tmp_path / "small.npz"
    rewrite(saved[0], small, lambda arrays: arrays.update(history=np.array("[]")))
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(small) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == f"{member}.npy":
                # The .npy header is padded with spaces to a fixed length: the claim takes some.
                start, padding = data.index(header), len(claim) - len(header)
                assert data[start + len(header) :][:padding] == b" " * padding
                data = data[:start] + claim + data[start + len(header) + padding :]
            target.writestr(info.filename, data)  # a valid zip: right sizes and checksums
    with pytest.raises(ModelFileError, match=member) as error:
        load_model(path)
    assert re.search(r"claims more numbers|expected float|damaged \.npy header", str(error.value))


def test_files_of_the_first_version_still_load(saved, tmp_path):
    def first_version(arrays):
        arrays["format"] = np.array("simple-cnn-lenet5-v1")
        del arrays["architecture"]
        config = json.loads(str(arrays["config"]))
        for name in ("filters", "kernel_size", "padding", "hidden", "dropout"):
            config.pop(name)
        arrays["config"] = np.array(json.dumps(config))

    path = tmp_path / "v1.npz"
    rewrite(saved[0], path, first_version)
    loaded = load_model(path)
    assert loaded.architecture == {  # LeNet-5 and Dense(128) -> Dense(10), SimpleCNN's names
        "num_filters": [6, 16],
        "kernel_sizes": [5, 5],
        "paddings": [2, 0],
        "input_shape": [1, 28, 28],
        "hidden": [128],
        "dropout": 0.0,
        "num_classes": 10,
    }
    assert np.array_equal(loaded.conv_filters[1], saved[1].cnn.conv2_filters)


def inflate(arrays):
    """A change for rewrite(): finite weights, so large that the outputs overflow float32."""
    arrays["head.0.kernel"] = np.full_like(arrays["head.0.kernel"], 3e37)


def test_a_model_whose_outputs_overflow_is_refused_with_a_message(saved, tmp_path):
    path = tmp_path / "huge.npz"
    rewrite(saved[0], path, inflate)
    # Refused when loaded, before any image: every program that predicts (predict_digit, the
    # plots, the explorer's analysis and gradients) gets the message instead of NaN.
    with pytest.raises(ModelFileError, match="not finite") as error:
        load_classifier(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_the_live_classifier_still_reports_outputs_that_overflow(saved):
    classifier = classifier_from_saved(load_model(saved[0]))
    classifier.head.weights[0] = (np.full_like(classifier.head.weights[0][0], 3e37), 0)
    with pytest.raises(ModelFileError, match="outputs are not finite"):
        classifier.predict_proba(load_dataset()[2][:3])


def test_resuming_a_model_whose_outputs_overflow_is_refused_before_training(saved, tmp_path):
    path = tmp_path / "huge.npz"
    rewrite(saved[0], path, inflate)
    config = TrainConfig(resume_path=str(path), no_save=True, verbose=False)
    with pytest.raises(ModelFileError, match="not finite") as error:
        driver.train(config)  # not "training diverged ... try a smaller --learning-rate"
    assert str(error.value).startswith(str(path))


def test_predict_proba_checks_the_image_shape(saved):
    classifier = load_classifier(saved[0])
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        classifier.predict_proba(np.zeros((2, 1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        classifier.predict_proba(np.zeros((2, 28, 28), np.float32))
    assert isinstance(classifier, Classifier)


def test_model_file_is_a_plain_npz_anyone_can_read(saved):
    with np.load(saved[0], allow_pickle=False) as archive:
        assert str(archive["format"]) == model_file.FORMAT
        assert archive["conv1_filters"].shape == (6, 1, 5, 5)
        assert json.loads(str(archive["config"]))["batch_size"] == 32
        assert json.loads(str(archive["architecture"]))["hidden"] == [128]


def test_the_files_names_for_the_network_settings_are_unchanged(saved, tmp_path):
    """The file stores "filters", "kernel_size" and "padding" (its format is older than their
    names in TrainConfig); loading gives TrainConfig's names, and refuses the new ones in a file."""
    with np.load(saved[0], allow_pickle=False) as archive:
        stored = json.loads(str(archive["config"]))
        architecture = json.loads(str(archive["architecture"]))
    assert (stored["filters"], stored["kernel_size"], stored["padding"]) == ([6, 16], [5], [2, 0])
    assert not {"num_filters", "kernel_sizes", "paddings"} & set(stored)
    assert architecture["filters"] == [6, 16] and "num_filters" not in architecture
    loaded = load_model(saved[0]).config
    assert (loaded["num_filters"], loaded["kernel_sizes"], loaded["paddings"]) == (
        [6, 16],
        [5],
        [2, 0],
    )
    assert not {"filters", "kernel_size", "padding"} & set(loaded)
    path = tmp_path / "new-names.npz"
    rewrite(saved[0], path, set_json("config", num_filters=[6, 16]))
    with pytest.raises(ModelFileError, match="unknown setting 'num_filters'"):
        load_model(path)


def test_saved_model_defaults_describe_an_untrained_file():
    model = SavedModel(architecture={}, conv_filters=[], head_weights=[])
    assert (model.epoch, model.step, model.history) == (0, 0, [])
