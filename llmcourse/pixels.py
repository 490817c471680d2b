"""A neural network that reads a 3x3 pixel display, trained by hand-written backpropagation.

Introduced in Chapter 1 (``chapters/01_pixel_network.ipynb``).

The task is tiny on purpose. A display has 9 pixels, each +1 (white, lit) or -1 (black, dark),
and shows one of four symbols: a vertical bar, a horizontal bar, a diagonal cross (an X) and a
ring. The network reads the 9 numbers and answers with 4 probabilities, one per symbol.

The network, in the order the numbers flow (``n`` displays at once, one per row)::

    x   (n, 9)   the pixels
    h1  (n, H1)  = tanh(x  @ W1 + b1)     first hidden layer
    h2  (n, H2)  = tanh(h1 @ W2 + b2)     second hidden layer
    s   (n, 4)   = h2 @ W3 + b3           scores ("logits"), one per symbol
    p   (n, 4)   = softmax(s)             probabilities; each row sums to 1

Training lowers the cross-entropy ``-mean(log p[label])`` by gradient descent. The gradients come
from :meth:`PixelNet.backward`, which applies the chain rule layer by layer, from the loss back to
the pixels; ``tests/test_pixels.py`` checks it number by number against PyTorch's autograd.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = [
    "SYMBOL_NAMES", "SYMBOLS", "N_PIXELS", "N_SYMBOLS", "parse_display", "as_displays",
    "flip_pixels", "noisy_dataset", "train_val_split", "best_possible_accuracy",
    "nearest_symbol", "softmax", "cross_entropy", "one_hot", "PixelNet", "train",
    "TrainingHistory", "accuracy", "confusion_matrix", "to_torch",
]

N_PIXELS = 9
N_SYMBOLS = 4

#: The four symbols, in the order of the network's outputs.
SYMBOL_NAMES: tuple[str, ...] = ("vertical bar", "horizontal bar", "diagonal cross", "ring")

_DRAWINGS = {
    "vertical bar": (".#.",
                     ".#.",
                     ".#."),
    "horizontal bar": ("...",
                       "###",
                       "..."),
    "diagonal cross": ("#.#",
                       ".#.",
                       "#.#"),
    "ring": ("###",
             "#.#",
             "###"),
}


def parse_display(drawing: str | Sequence[str]) -> np.ndarray:
    """Turn a drawing into a display: ``#`` is a white pixel (+1), ``.`` a black one (-1).

    ``drawing`` is three rows of three characters, as a list (``["#.#", ".#.", "#.#"]``) or as one
    string with the rows separated by newlines or spaces (``"#.# .#. #.#"``). Returns a float array
    of 9 values, row by row (top-left pixel first).
    """
    if isinstance(drawing, str):
        rows = drawing.split()
    elif isinstance(drawing, (list, tuple)) and all(isinstance(r, str) for r in drawing):
        rows = list(drawing)
    else:
        raise TypeError(f"drawing must be a string or a list of 3 strings, got "
                        f"{type(drawing).__name__}")
    if len(rows) != 3 or any(len(r) != 3 for r in rows):
        raise ValueError(f"drawing must be 3 rows of 3 characters, got rows of lengths "
                         f"{[len(r) for r in rows]}")
    chars = "".join(rows)
    bad = sorted(set(chars) - {"#", "."})
    if bad:
        raise ValueError(f"drawing may contain only '#' (white) and '.' (black), got {bad}")
    return np.array([1.0 if c == "#" else -1.0 for c in chars])


#: The four clean symbols as displays, shape (4, 9), one row per symbol.
SYMBOLS: np.ndarray = np.stack([parse_display(_DRAWINGS[name]) for name in SYMBOL_NAMES])
SYMBOLS.setflags(write=False)


def as_displays(x: Any, *, name: str = "display") -> tuple[np.ndarray, bool]:
    """Check and reshape displays; return ``(array of shape (n, 9), was_single)``.

    Accepts one display (9 values, or a 3x3 grid) or a batch (shape ``(n, 9)`` or ``(n, 3, 3)``),
    as lists, NumPy arrays or PyTorch tensors. Every value must be a finite number in [-1, 1]
    (+1 white, -1 black; values in between are dimly lit pixels). Anything else raises a
    ``ValueError`` or ``TypeError`` that says what was expected and what came.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold numbers in [-1, 1], got {type(x).__name__}: "
                        f"{x!r:.60}") from None
    if arr.ndim == 1:
        if arr.size != N_PIXELS:
            raise ValueError(f"{name} must have {N_PIXELS} values, got {arr.size}")
        arr, single = arr[None, :], True
    elif arr.ndim == 2 and arr.shape == (3, 3):
        arr, single = arr.reshape(1, N_PIXELS), True
    elif arr.ndim == 2:
        if arr.shape[1] != N_PIXELS:
            raise ValueError(f"a batch of displays must have shape (n, {N_PIXELS}), "
                             f"got shape {arr.shape}")
        single = False
    elif arr.ndim == 3 and arr.shape[1:] == (3, 3):
        arr, single = arr.reshape(-1, N_PIXELS), False
    else:
        raise ValueError(f"{name} must be 9 values, a 3x3 grid, or a batch of shape "
                         f"(n, 9) or (n, 3, 3), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} values must be finite numbers in [-1, 1], got nan or inf")
    if arr.size and (arr.min() < -1 or arr.max() > 1):
        raise ValueError(f"{name} values must lie in [-1, 1] (+1 white, -1 black), got values "
                         f"from {arr.min():g} to {arr.max():g}")
    return arr, single


def _labels(y: Any, n: int) -> np.ndarray:
    """Check class labels: n integers in 0..3."""
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the displays, got shape "
                         f"{arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"labels must be integers 0..{N_SYMBOLS - 1}, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= N_SYMBOLS):
        raise ValueError(f"labels must be integers 0..{N_SYMBOLS - 1}, got values from "
                         f"{arr.min()} to {arr.max()}")
    return arr.astype(np.int64)


def flip_pixels(displays: Any, flip_prob: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``displays`` where each pixel flips colour with probability ``flip_prob``."""
    if not 0.0 <= flip_prob <= 1.0:
        raise ValueError(f"flip_prob must be a probability in [0, 1], got {flip_prob}")
    x, single = as_displays(displays)
    flips = rng.random(x.shape) < flip_prob
    out = np.where(flips, -x, x)
    return out[0] if single else out


def noisy_dataset(n: int, flip_prob: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy displays and their labels.

    Each example picks one of the four symbols at random and flips each of its pixels
    independently with probability ``flip_prob``. Returns ``X`` of shape (n, 9) and integer labels
    ``y`` of shape (n,) (the index into :data:`SYMBOL_NAMES` of the symbol it was made from).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_SYMBOLS, size=n)
    X = flip_pixels(SYMBOLS[y], flip_prob, rng)
    return X, y


def train_val_split(X: np.ndarray, y: np.ndarray, val_fraction: float = 0.2,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle and split into ``X_train, y_train, X_val, y_val``."""
    X, _ = as_displays(X, name="X")
    y = _labels(y, len(X))
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(X))
    n_val = int(round(len(X) * val_fraction))
    val, tr = order[:n_val], order[n_val:]
    return X[tr], y[tr], X[val], y[val]


def best_possible_accuracy(flip_prob: float) -> float:
    """The accuracy of the best possible classifier on :func:`noisy_dataset` displays.

    Some noisy displays are genuinely ambiguous (two flips can turn a vertical bar into something
    as close to a horizontal bar). With only 2**9 = 512 possible displays we can list them all
    and, for each, guess the symbol most likely to have produced it.
    """
    every = np.array(list(itertools.product([-1.0, 1.0], repeat=N_PIXELS)))
    differ = (every[:, None, :] != SYMBOLS[None, :, :]).sum(-1)            # (512, 4)
    likelihood = flip_prob ** differ * (1 - flip_prob) ** (N_PIXELS - differ)
    return float(likelihood.max(axis=1).sum() / N_SYMBOLS)


def nearest_symbol(displays: Any) -> np.ndarray | int:
    """The symbol that differs from each display in the fewest pixels (the first one on a tie).

    A rule with no learning at all, to compare the network with. For black-and-white displays with
    ``flip_prob < 0.5`` it is also the best possible guess (up to ties).
    """
    x, single = as_displays(displays)
    distance = np.abs(x[:, None, :] - SYMBOLS[None, :, :]).sum(-1) / 2     # (n, 4) flipped pixels
    best = distance.argmin(axis=1)
    return int(best[0]) if single else best


# --- the pieces of the network -------------------------------------------------------------------

def softmax(scores: Any) -> np.ndarray:
    """Probabilities from scores along the last axis: ``exp(s) / sum(exp(s))``.

    Subtracting each row's maximum first changes nothing mathematically but keeps ``exp`` from
    overflowing on large scores.
    """
    s = np.asarray(scores, dtype=float)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def one_hot(y: Any, n_classes: int = N_SYMBOLS) -> np.ndarray:
    """Integer labels (n,) to rows of 0s with a single 1, shape (n, n_classes)."""
    y = np.asarray(y, dtype=np.int64)
    out = np.zeros((y.size, n_classes))
    out[np.arange(y.size), y] = 1.0
    return out


def cross_entropy(probs: Any, y: Any) -> float:
    """The mean of ``-log(probability given to the right symbol)`` over a batch."""
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (n, classes), got shape {p.shape}")
    y = _labels(y, len(p))
    return float(-np.mean(np.log(np.clip(p[np.arange(len(p)), y], 1e-300, None))))


class PixelNet:
    """The 9 -> H1 -> H2 -> 4 network of Chapter 1, in NumPy, with a hand-written backward pass.

    Weights start small and random (normal, standard deviation ``1/sqrt(inputs)``) and biases at
    zero. ``params`` is a dict of arrays ``W1 (9, H1), b1 (H1,), W2, b2, W3, b3``; a neuron's
    weights are a *column* of its layer's matrix.
    """

    PARAM_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")

    def __init__(self, hidden: tuple[int, int] = (8, 8), seed: int = 0) -> None:
        if (len(hidden) != 2 or not all(isinstance(h, (int, np.integer)) and h > 0
                                        for h in hidden)):
            raise ValueError(f"hidden must be two positive layer sizes, got {hidden!r}")
        rng = np.random.default_rng(seed)
        sizes = [N_PIXELS, *hidden, N_SYMBOLS]
        self.sizes = tuple(int(s) for s in sizes)
        self.params: dict[str, np.ndarray] = {}
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.params[f"W{i}"] = rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(n_in, n_out))
            self.params[f"b{i}"] = np.zeros(n_out)
        self._cache: dict[str, np.ndarray] | None = None

    def copy(self) -> "PixelNet":
        """An independent copy (same weights)."""
        new = PixelNet.__new__(PixelNet)
        new.sizes = self.sizes
        new.params = {k: v.copy() for k, v in self.params.items()}
        new._cache = None
        return new

    def forward(self, displays: Any) -> np.ndarray:
        """Probabilities for a batch (n, 9) -> (n, 4), or for one display (9,) -> (4,).

        Keeps the intermediate values, which :meth:`backward` needs.
        """
        x, single = as_displays(displays)
        P = self.params
        h1 = np.tanh(x @ P["W1"] + P["b1"])            # (n, H1)
        h2 = np.tanh(h1 @ P["W2"] + P["b2"])           # (n, H2)
        scores = h2 @ P["W3"] + P["b3"]                # (n, 4)
        probs = softmax(scores)                        # (n, 4)
        self._cache = {"x": x, "h1": h1, "h2": h2, "probs": probs}
        return probs[0] if single else probs

    predict_proba = forward

    def predict(self, displays: Any) -> np.ndarray | int:
        """The index of the most probable symbol (an int for one display, an array for a batch)."""
        probs = self.forward(displays)
        return int(np.argmax(probs)) if probs.ndim == 1 else probs.argmax(axis=1)

    def loss(self, displays: Any, y: Any) -> float:
        """Mean cross-entropy of the network's probabilities against labels ``y``."""
        x, _ = as_displays(displays)
        return cross_entropy(self.forward(x), y)

    def backward(self, y: Any) -> dict[str, np.ndarray]:
        """Gradients of the mean cross-entropy with respect to every parameter.

        Call right after :meth:`forward` on the same batch. The chain rule, from the loss back::

            dL/ds  = (p - onehot(y)) / n              softmax and cross-entropy together
            dL/dW3 = h2.T @ dL/ds,  dL/db3 = sum of dL/ds over the batch
            dL/dh2 = dL/ds @ W3.T
            dL/dz2 = dL/dh2 * (1 - h2**2)             tanh'(z) = 1 - tanh(z)**2
            ... and the same two steps for layer 2 and layer 1.
        """
        if self._cache is None:
            raise RuntimeError("call forward(displays) before backward(y)")
        c, P = self._cache, self.params
        x, h1, h2, probs = c["x"], c["h1"], c["h2"], c["probs"]
        n = len(x)
        y = _labels(np.atleast_1d(y), n)
        d_scores = (probs - one_hot(y)) / n                    # (n, 4)
        grads = {"W3": h2.T @ d_scores, "b3": d_scores.sum(axis=0)}
        d_z2 = (d_scores @ P["W3"].T) * (1.0 - h2 ** 2)        # (n, H2)
        grads["W2"], grads["b2"] = h1.T @ d_z2, d_z2.sum(axis=0)
        d_z1 = (d_z2 @ P["W2"].T) * (1.0 - h1 ** 2)            # (n, H1)
        grads["W1"], grads["b1"] = x.T @ d_z1, d_z1.sum(axis=0)
        return {k: grads[k] for k in self.PARAM_NAMES}

    def step(self, grads: dict[str, np.ndarray], lr: float) -> None:
        """One gradient-descent step: move every parameter a little against its gradient."""
        for k in self.PARAM_NAMES:
            self.params[k] -= lr * grads[k]


def accuracy(net: PixelNet, X: Any, y: Any) -> float:
    """The fraction of displays whose most probable symbol is the right one."""
    x, _ = as_displays(X, name="X")
    y = _labels(y, len(x))
    return float(np.mean(net.predict(x) == y))


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int = N_SYMBOLS) -> np.ndarray:
    """Counts ``C[i, j]`` of displays of symbol ``i`` that were read as symbol ``j``."""
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length, got shapes "
                         f"{t.shape} and {p.shape}")
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (t, p), 1)
    return out


@dataclass
class TrainingHistory:
    """What :func:`train` measured after every epoch."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


def train(net: PixelNet, X: Any, y: Any, *, lr: float = 0.1, epochs: int = 30,
          batch_size: int = 32, X_val: Any = None, y_val: Any = None,
          seed: int = 0) -> TrainingHistory:
    """Train ``net`` in place with mini-batch gradient descent; return the per-epoch history.

    One epoch is one pass over the training set in a fresh random order, ``batch_size``
    displays per step. After each epoch the loss on the whole training set (and, when given,
    the validation loss and accuracy) is recorded.
    """
    X, _ = as_displays(X, name="X")
    y = _labels(y, len(X))
    if lr <= 0 or batch_size < 1 or epochs < 0:
        raise ValueError(f"need lr > 0, batch_size >= 1 and epochs >= 0, got lr={lr}, "
                         f"batch_size={batch_size}, epochs={epochs}")
    if X_val is not None:
        X_val, _ = as_displays(X_val, name="X_val")
        y_val = _labels(y_val, len(X_val))
    rng = np.random.default_rng(seed)
    hist = TrainingHistory()
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = order[start:start + batch_size]
            net.forward(X[batch])
            net.step(net.backward(y[batch]), lr)
        hist.train_loss.append(net.loss(X, y))
        if X_val is not None:
            hist.val_loss.append(net.loss(X_val, y_val))
            hist.val_accuracy.append(accuracy(net, X_val, y_val))
    return hist


def to_torch(net: PixelNet, dtype: Any = None) -> Any:
    """The same network as a ``torch.nn.Sequential`` with the same weights (float64 by default).

    The last layer outputs scores; apply ``torch.softmax`` for probabilities (PyTorch's
    ``cross_entropy`` takes the scores directly). ``nn.Linear`` stores its weight as
    (outputs, inputs), the transpose of ours.
    """
    import torch
    from torch import nn

    dtype = dtype or torch.float64
    linears = []
    for i in range(1, 4):
        W, b = net.params[f"W{i}"], net.params[f"b{i}"]
        lin = nn.Linear(W.shape[0], W.shape[1], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(W.T, dtype=dtype))
            lin.bias.copy_(torch.as_tensor(b, dtype=dtype))
        linears.append(lin)
    return nn.Sequential(linears[0], nn.Tanh(), linears[1], nn.Tanh(), linears[2])
