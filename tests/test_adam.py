"""Tests for adam.Adam: the same steps as keras.optimizers.Adam, and a state that can be saved."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from gradcheck import rel_error

from adam import Adam, NonFiniteUpdateError

SHAPES = [(6, 1, 5, 5), (16, 6, 5, 5), (10,)]


def gradient_sequence(seed: int, steps: int, scale: float) -> list[list[np.ndarray]]:
    """``steps`` lists of float64 gradients shaped like SHAPES, with some zeros mixed in."""
    rng = np.random.default_rng(seed)
    sequence = []
    for step in range(steps):
        grads = [rng.normal(scale=scale, size=shape) for shape in SHAPES]
        grads[0][0] = 0.0  # a filter that gets no gradient still moves on its momentum
        if step == 3:
            grads = [np.zeros(shape) for shape in SHAPES]  # a whole step of zeros
        sequence.append(grads)
    return sequence


def keras_adam_run(hyperparameters: dict, start: list[np.ndarray], sequence) -> list[np.ndarray]:
    """Parameters after keras.optimizers.Adam applies ``sequence`` to float64 copies of start."""
    variables = [keras.Variable(p.copy(), dtype="float64") for p in start]
    optimizer = keras.optimizers.Adam(**hyperparameters)
    for grads in sequence:
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables, strict=True))
    return [np.asarray(v.numpy()) for v in variables]


def numpy_adam_run(hyperparameters: dict, start: list[np.ndarray], sequence) -> list[np.ndarray]:
    params = [p.copy() for p in start]
    optimizer = Adam(**hyperparameters)
    for grads in sequence:
        optimizer.step(params, grads)
    return params


# Keras rounds learning_rate and the betas to float32 before its bias correction (its
# ops.cast goes through floatx), so with 0.001 or 0.999 it steps about 7e-6 (relative) off exact
# float64 Adam. With values that float32 holds exactly the two must agree to the last bit.
FLOAT32_EXACT = {"learning_rate": 2**-7, "beta_1": 0.875, "beta_2": 1 - 2**-9}


@pytest.mark.parametrize(
    ("hyperparameters", "gradient_scale", "update_tolerance"),
    [
        ({}, 1.0, 2e-5),  # both libraries' defaults
        ({"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-7}, 1.0, 2e-5),
        ({**FLOAT32_EXACT, "epsilon": 1e-7}, 1.0, 1e-12),
        # Gradients as small as epsilon make sqrt(v) ~ epsilon, so where epsilon is added (Keras:
        # to sqrt(v) before bias correction; the Adam paper: after) changes the step by ~80% here.
        ({**FLOAT32_EXACT, "epsilon": 1e-4}, 1e-4, 1e-12),
    ],
    ids=["defaults", "custom", "float32-exact", "epsilon-matters"],
)
def test_matches_keras_adam(hyperparameters, gradient_scale, update_tolerance):
    rng = np.random.default_rng(0)
    start = [rng.normal(size=shape) for shape in SHAPES]
    sequence = gradient_sequence(seed=1, steps=8, scale=gradient_scale)
    ours = numpy_adam_run(hyperparameters, start, sequence)
    theirs = keras_adam_run(hyperparameters, start, sequence)
    for p_start, p_ours, p_theirs in zip(start, ours, theirs, strict=True):
        np.testing.assert_allclose(p_ours, p_theirs, rtol=0, atol=1e-6)
        # Compare the updates too: the parameters alone would hide a small relative difference.
        assert rel_error(p_ours - p_start, p_theirs - p_start) < update_tolerance


def test_step_updates_the_given_arrays_in_place_and_keeps_their_dtype():
    rng = np.random.default_rng(2)
    params = [rng.normal(size=(16, 6, 5, 5)).astype(np.float32), rng.normal(size=(3,))]
    before = [p.copy() for p in params]
    same_objects = list(params)
    Adam(learning_rate=0.1).step(params, [np.ones_like(p) for p in params])
    for p, obj, p_before in zip(params, same_objects, before, strict=True):
        assert p is obj
        assert p.dtype == p_before.dtype
        # First step of Adam moves every entry by about learning_rate against the gradient's sign.
        np.testing.assert_allclose(p, p_before - 0.1, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(3)
    sequence = gradient_sequence(seed=4, steps=6, scale=1.0)
    params = [rng.normal(size=shape) for shape in SHAPES]
    original = Adam(learning_rate=0.01)
    for grads in sequence[:3]:
        original.step(params, grads)
    state = original.state_dict()
    assert all(isinstance(value, np.ndarray) for value in state.values())
    saved_params = [p.copy() for p in params]

    # The original goes on after the snapshot; the snapshot must not follow it.
    for grads in sequence[3:]:
        original.step(params, grads)

    # Through an .npz file, as the model file stores it.
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer) as npz:
        loaded_state = {key: npz[key] for key in npz.files}
    resumed = Adam(learning_rate=0.01)
    resumed.load_state_dict(loaded_state)
    resumed_params = [p.copy() for p in saved_params]
    for grads in sequence[3:]:
        resumed.step(resumed_params, grads)
    for p_resumed, p_original in zip(resumed_params, params, strict=True):
        np.testing.assert_array_equal(p_resumed, p_original)

    # Without the state (fresh moments, step count 1) the same steps land elsewhere.
    fresh_params = [p.copy() for p in saved_params]
    fresh = Adam(learning_rate=0.01)
    for grads in sequence[3:]:
        fresh.step(fresh_params, grads)
    assert not np.allclose(fresh_params[1], params[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("param_shapes", "grad_shapes"),
    [
        ([(6, 16)], [(16,)]),  # would broadcast silently
        ([(6, 16)], [(16, 6)]),
        ([(3,), (4,)], [(3,)]),
    ],
)
def test_step_rejects_gradients_that_do_not_match_the_parameters(param_shapes, grad_shapes):
    params = [np.zeros(shape) for shape in param_shapes]
    grads = [np.ones(shape) for shape in grad_shapes]
    with pytest.raises(ValueError) as excinfo:
        Adam().step(params, grads)
    message = str(excinfo.value)
    assert "\n" not in message
    np.testing.assert_array_equal(params[0], 0.0)  # nothing was updated


def test_a_gradient_that_overflows_the_moments_is_refused_and_changes_nothing():
    # A huge but finite gradient: its square overflows float32, so v would become infinite and
    # the next step NaN. The optimizer refuses it and keeps every number as it was.
    params = [np.ones((2, 2), np.float32)]
    optimizer = Adam(learning_rate=0.1)
    optimizer.step(params, [np.full((2, 2), 0.5, np.float32)])
    before = optimizer.state_dict()
    params_before = params[0].copy()
    with pytest.raises(NonFiniteUpdateError, match="largest magnitude 3e\\+20"):
        optimizer.step(params, [np.full((2, 2), 3e20, np.float32)])
    np.testing.assert_array_equal(params[0], params_before)
    for name, value in optimizer.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    optimizer.step(params, [np.full((2, 2), 0.5, np.float32)])  # and it goes on as before
    assert optimizer.iterations == 2
