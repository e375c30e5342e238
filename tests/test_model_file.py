"""The model file: exact round trip, atomic writes, and a clear refusal of anything else."""

import json
import os
import zipfile

import numpy as np
import pytest

import model_file
from adam import Adam
from download_mnist import load_dataset
from model_file import ModelFileError, load_model, predict_proba, save_model
from simple_cnn import SimpleCNN


def stepped_model(seed=3):
    """A small model whose weights and both optimizers' states have all moved from their start."""
    rng = np.random.default_rng(seed)
    cnn = SimpleCNN(seed=seed)
    head = model_file.build_head(seed=seed)
    conv_optimizer = Adam(learning_rate=0.01)
    head_optimizer = model_file.build_head_optimizer(head, 0.01)
    filters = [cnn.conv1_filters, cnn.conv2_filters]
    for _ in range(2):
        conv_optimizer.step(filters, [random_like(rng, f) for f in filters])
        head_grads = [random_like(rng, v) for v in head.trainable_variables]
        head_optimizer.apply_gradients(zip(head_grads, head.trainable_variables, strict=True))
    return cnn, head, conv_optimizer, head_optimizer


def random_like(rng, array):
    return rng.standard_normal(array.shape).astype(np.float32)


def save_stepped(path, **overrides):
    cnn, head, conv_optimizer, head_optimizer = stepped_model()
    fields = dict(
        cnn=cnn,
        head=head,
        conv_optimizer=conv_optimizer,
        head_optimizer=head_optimizer,
        epoch=2,
        config={"seed": 3, "batch_size": 32},
        history=[{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}],
        step=7,
        partial_epoch={"loss_sum": 1.5, "correct": 3, "seen": 4, "seconds": 0.1},
    )
    fields.update(overrides)
    save_model(path, **fields)
    return fields


def rewrite(source, target, change):
    """Copy the model file ``source`` to ``target`` with ``change(arrays)`` applied."""
    with np.load(source) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    np.savez(target, **arrays)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    return path, save_stepped(path)


def test_round_trip_restores_every_weight_and_optimizer_state_exactly(saved):
    path, fields = saved
    loaded = load_model(path)

    assert np.array_equal(loaded.cnn.conv1_filters, fields["cnn"].conv1_filters)
    assert np.array_equal(loaded.cnn.conv2_filters, fields["cnn"].conv2_filters)
    assert loaded.cnn.conv1_filters.dtype == np.float32
    for restored, original in zip(loaded.head.weights, fields["head"].weights, strict=True):
        assert np.array_equal(restored.numpy(), original.numpy())
    conv_state = loaded.conv_optimizer.state_dict()
    for name, value in fields["conv_optimizer"].state_dict().items():
        assert np.array_equal(conv_state[name], value)
    head_state = loaded.head_optimizer.variables
    assert int(head_state[0].numpy()) == 2  # iterations
    for restored, original in zip(head_state, fields["head_optimizer"].variables, strict=True):
        assert np.array_equal(restored.numpy(), original.numpy())
    assert (loaded.epoch, loaded.step) == (2, 7)
    assert loaded.config == fields["config"]
    assert loaded.history == fields["history"]
    assert loaded.partial_epoch == fields["partial_epoch"]


def test_restored_model_predicts_what_the_saved_one_did(saved):
    path, fields = saved
    images = load_dataset()[2][:50]
    loaded = load_model(path)

    before = predict_proba(fields["cnn"], fields["head"], images)
    after = predict_proba(loaded.cnn, loaded.head, images, batch_size=16)  # batching is invisible

    assert before.shape == (50, 10)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-7)


def test_restored_optimizers_continue_like_the_originals(tmp_path):
    path = tmp_path / "model.npz"
    fields = save_stepped(path)
    loaded = load_model(path)
    grads = [
        np.full_like(loaded.cnn.conv1_filters, 0.5),
        np.full_like(loaded.cnn.conv2_filters, -1),
    ]

    fields["conv_optimizer"].step([fields["cnn"].conv1_filters, fields["cnn"].conv2_filters], grads)
    loaded.conv_optimizer.step([loaded.cnn.conv1_filters, loaded.cnn.conv2_filters], grads)

    assert np.array_equal(loaded.cnn.conv1_filters, fields["cnn"].conv1_filters)
    assert np.array_equal(loaded.cnn.conv2_filters, fields["cnn"].conv2_filters)


def test_save_replaces_the_file_atomically_and_keeps_it_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save_stepped(path, epoch=1)
    good = path.read_bytes()

    def disk_full(file, **arrays):
        file.write(b"PK half an archive")
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", disk_full)
        with pytest.raises(OSError, match="No space"):
            save_stepped(path, epoch=2)

    assert path.read_bytes() == good
    assert load_model(path).epoch == 1
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left behind
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


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
        (lambda a: a.update(history=np.array('{"a": 1}')), "bad training record"),
        (lambda a: a.pop("epoch"), "bad training record"),
        (lambda a: a.pop("head_optimizer.3"), "head optimizer state"),
        (lambda a: a.update({"conv_optimizer.m0": np.zeros(3)}), "conv optimizer state"),
        (lambda a: a.pop("conv_optimizer.iterations"), "conv optimizer state"),
        (lambda a: a.update(conv_optimizer_settings=np.array("{}}")), "conv optimizer state"),
    ],
    ids=[
        "other-format",
        "no-format",
        "conv1-shape",
        "head-shape",
        "dtype",
        "missing-weight",
        "nan",
        "config",
        "history",
        "epoch",
        "head-optimizer",
        "conv-optimizer-shape",
        "conv-optimizer-missing",
        "conv-optimizer-settings",
    ],
)
def test_other_architectures_and_bad_contents_are_refused(saved, tmp_path, change, problem):
    path = tmp_path / "changed.npz"
    rewrite(saved[0], path, change)

    with pytest.raises(ModelFileError, match=problem) as error:
        load_model(path)
    assert "\n" not in str(error.value)


def test_predict_proba_checks_the_image_shape(saved):
    loaded = load_model(saved[0])
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        predict_proba(loaded.cnn, loaded.head, np.zeros((2, 1, 28, 28), np.uint8))


def test_model_file_is_a_plain_npz_anyone_can_read(saved):
    with np.load(saved[0], allow_pickle=False) as archive:
        assert str(archive["format"]) == model_file.FORMAT
        assert archive["conv1_filters"].shape == (6, 1, 5, 5)
        assert json.loads(str(archive["config"]))["batch_size"] == 32
