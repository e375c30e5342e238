"""Adam for NumPy arrays, the optimizer that trains SimpleCNN's filters.

It follows Keras' ``keras.optimizers.Adam`` step for step, so the filters and the Keras head
learn by the same rule:

    m = beta_1 * m + (1 - beta_1) * g               # running mean of the gradient
    v = beta_2 * v + (1 - beta_2) * g**2            # running mean of its square
    lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)   # bias correction for m, v starting at 0
    p -= lr_t * m / (sqrt(v) + epsilon)
"""

import numpy as np


class NonFiniteUpdateError(ValueError):
    """A gradient so large (or NaN) that Adam's step would not be a finite number."""


class Adam:
    """Adam over a fixed list of parameter arrays, updated in place.

    Parameters
    ----------
    learning_rate, beta_1, beta_2, epsilon : float
        As in ``keras.optimizers.Adam`` (same defaults).
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ):
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.iterations = 0
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Update each array in ``params`` in place from its gradient in ``grads`` (same shapes)."""
        if not self.m:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        if len(params) != len(self.m) or len(grads) != len(params):
            raise ValueError(
                f"Adam was built for {len(self.m)} parameter arrays, "
                f"got {len(params)} parameters and {len(grads)} gradients"
            )
        # Check everything before changing anything, so a bad call leaves the state untouched.
        for i, (p, g, m) in enumerate(zip(params, grads, self.m, strict=True)):
            if not p.shape == g.shape == m.shape:
                raise ValueError(
                    f"gradient {i} has shape {g.shape} but parameter {i} has shape {p.shape} "
                    f"(and this optimizer's state {m.shape}); they must be equal"
                )
        # A gradient whose square overflows would make v infinite and every later step NaN;
        # below this bound m, v and the step stay finite (|m| / sqrt(v) stays small).
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            largest = float(np.abs(g).max(initial=0.0))
            if not largest < np.sqrt(np.finfo(np.result_type(p, g)).max) / 4:
                raise NonFiniteUpdateError(
                    f"gradient {i} (largest magnitude {largest:.3g}) would make Adam's moments "
                    "overflow; nothing was updated"
                )
        self.iterations += 1
        t = self.iterations
        lr_t = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m += (1 - self.beta_1) * (g - m)  # the same as beta_1 * m + (1 - beta_1) * g
            v += (1 - self.beta_2) * (g * g - v)
            p -= (lr_t * m / (np.sqrt(v) + self.epsilon)).astype(p.dtype, copy=False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly where this optimizer is: arrays by name."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for i, (m, v) in enumerate(zip(self.m, self.v, strict=True)):
            state[f"m{i}"] = m.copy()
            state[f"v{i}"] = v.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what state_dict() returned."""
        count = sum(1 for key in state if key.startswith("m"))
        self.iterations = int(state["iterations"])
        self.m = [np.array(state[f"m{i}"]) for i in range(count)]
        self.v = [np.array(state[f"v{i}"]) for i in range(count)]
