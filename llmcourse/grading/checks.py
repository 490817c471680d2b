"""Self-checks for the exercise notebooks.

Every visible test cell in ``exercises/`` calls these helpers. They need only NumPy (and accept
PyTorch tensors), so they work the same in JupyterLab, Binder and Colab, with or without nbgrader.

When a check fails it raises :class:`CheckFailed` (a subclass of ``AssertionError``, which is what
nbgrader counts as a failed test) with a message in three parts:

* what was expected,
* what came,
* a hint toward the usual mistake, when the caller gave one or the check can guess one.

The first line of the message is a complete sentence on its own: the autograder shows only that
line in its table. Checks never print to stderr and silence NumPy's warnings while they compare
(nbgrader marks a test cell that writes to stderr as failed).

Introduced in the exercise of Chapter 0 and used by every exercise after it.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "CheckFailed",
    "check_close",
    "check_equal",
    "check_shape",
    "check_distribution",
    "check_function",
    "check_true",
    "check_type",
]


class CheckFailed(AssertionError):
    """A self-check failed. The message says what was expected, what came, and a hint."""


def _fail(first_line: str, details: Sequence[str] = (), hint: str | None = None) -> None:
    lines = [first_line, *details]
    if hint:
        lines.append(f"Hint: {hint}")
    raise CheckFailed("\n".join(lines))


def _short(value: Any, limit: int = 120) -> str:
    """A one-line, length-limited repr for messages."""
    __tracebackhide__ = True  # learners see their test line, not this module
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=4, suppress=True, threshold=12, edgeitems=3):
            text = np.array2string(value, separator=", ").replace("\n", "")
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """Convert lists, scalars, NumPy arrays and PyTorch tensors to a NumPy array."""
    __tracebackhide__ = True  # learners see their test line, not this module
    if value is None:
        _fail(
            f"{name}: expected a number or an array, but got None.",
            hint="did the function forget to `return` its result?",
        )
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor
        value = value.detach().cpu().numpy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(value, dtype=float) if not isinstance(value, np.ndarray) else value
    except (TypeError, ValueError):
        _fail(f"{name}: expected a number or an array of numbers, but got {type(value).__name__}: "
              f"{_short(value)}.")
    raise AssertionError("unreachable")


def check_true(condition: bool, message: str, hint: str | None = None) -> None:
    """Fail with ``message`` (and ``hint``) unless ``condition`` holds."""
    __tracebackhide__ = True  # learners see their test line, not this module
    if not condition:
        _fail(message, hint=hint)


def check_type(value: Any, expected: type | tuple[type, ...], *, name: str = "value",
               hint: str | None = None) -> None:
    """Check ``isinstance(value, expected)``."""
    __tracebackhide__ = True  # learners see their test line, not this module
    if not isinstance(value, expected):
        names = (" or ".join(t.__name__ for t in expected) if isinstance(expected, tuple)
                 else expected.__name__)
        if value is None and hint is None:
            hint = "did the function forget to `return` its result?"
        _fail(f"{name}: expected a {names}, but got a {type(value).__name__}: {_short(value)}.",
              hint=hint)


def check_equal(actual: Any, expected: Any, *, name: str = "value", hint: str | None = None) -> None:
    """Check exact equality (for ints, strings, lists, dicts, tuples and integer arrays)."""
    __tracebackhide__ = True  # learners see their test line, not this module
    if isinstance(expected, np.ndarray) or isinstance(actual, np.ndarray):
        a = _to_numpy(actual, name)
        e = np.asarray(expected)
        if a.shape != e.shape:
            _fail(f"{name}: expected shape {e.shape}, but got shape {a.shape}.", hint=hint)
        if not np.array_equal(a, e):
            where = np.argwhere(a != e)
            first = tuple(int(i) for i in where[0])
            _fail(f"{name}: {len(where)} of {a.size} entries differ from the expected values.",
                  [f"First difference at index {first}: expected {_short(e[first])}, "
                   f"got {_short(a[first])}."], hint)
        return
    if actual == expected:
        return
    if actual is None and hint is None:
        hint = "did the function forget to `return` its result?"
    details: list[str] = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        wrong = [k for k in expected if k in actual and actual[k] != expected[k]]
        # the first line names one concrete difference: the grader's table shows only that line
        if wrong:
            k = wrong[0]
            first = (f"{name}: for key {k!r} expected {_short(expected[k])}, but got "
                     f"{_short(actual[k])} ({len(wrong)} of {len(expected)} values differ).")
        elif missing:
            first = f"{name}: the dictionary is missing the key(s) {_short(missing)}."
        else:
            first = f"{name}: the dictionary has unexpected key(s) {_short(extra)}."
        if missing:
            details.append(f"Missing keys: {_short(missing)}.")
        if extra:
            details.append(f"Unexpected keys: {_short(extra)}.")
        _fail(first, details, hint)
    if isinstance(expected, (list, tuple, str)) and isinstance(actual, (list, tuple, str)):
        if type(actual) is not type(expected):
            details.append(f"Expected a {type(expected).__name__}, got a {type(actual).__name__}.")
        if len(actual) != len(expected):
            details.append(f"Expected length {len(expected)}, got length {len(actual)}.")
        for i, (a, e) in enumerate(zip(actual, expected)):
            if a != e:
                details.append(f"First difference at position {i}: expected {_short(e)}, "
                               f"got {_short(a)}.")
                break
    _fail(f"{name}: expected {_short(expected)}, but got {_short(actual)}.", details, hint)


def check_shape(array: Any, expected_shape: tuple[int, ...], *, name: str = "array",
                dtype: Any = None, hint: str | None = None) -> None:
    """Check an array's (or tensor's) shape and, optionally, its dtype kind.

    ``dtype`` may be a NumPy dtype or a kind such as ``"float"`` or ``"int"``.
    """
    __tracebackhide__ = True  # learners see their test line, not this module
    if array is None or not hasattr(array, "shape"):
        _fail(f"{name}: expected an array of shape {tuple(expected_shape)}, but got a "
              f"{type(array).__name__}: {_short(array)}.",
              hint=hint or ("did the function forget to `return` its result?" if array is None
                            else "convert it with np.array(...)."))
    shape = tuple(array.shape)
    if shape != tuple(expected_shape):
        if hint is None and sorted(shape) == sorted(expected_shape):
            hint = "the axes look swapped: check the order of a transpose or a matrix product."
        _fail(f"{name}: expected shape {tuple(expected_shape)}, but got shape {shape}.", hint=hint)
    if dtype is not None:
        got = np.dtype(str(array.dtype).replace("torch.", ""))
        kinds = {"float": "f", "int": "iu", "bool": "b"}
        ok = got.kind in kinds[dtype] if dtype in kinds else got == np.dtype(dtype)
        if not ok:
            _fail(f"{name}: expected dtype {dtype}, but got dtype {got}.", hint=hint)


def check_close(actual: Any, expected: Any, *, name: str = "value", atol: float = 1e-6,
                rtol: float = 1e-5, hint: str | None = None) -> None:
    """Check that numbers or arrays agree within ``atol + rtol * |expected|``."""
    __tracebackhide__ = True  # learners see their test line, not this module
    a = _to_numpy(actual, name)
    e = _to_numpy(expected, "expected")
    if a.shape != e.shape:
        if a.size == e.size == 1:
            a, e = a.reshape(()), e.reshape(())
        else:
            if hint is None and sorted(a.shape) == sorted(e.shape):
                hint = "the axes look swapped: check the order of a transpose or a matrix product."
            _fail(f"{name}: expected shape {e.shape}, but got shape {a.shape}.", hint=hint)
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(a[np.isfinite(e)])):
            _fail(f"{name}: expected finite numbers, but got nan or inf.",
                  [f"Got {_short(a)}."],
                  hint or "look for log(0), a division by zero, or exp() of a large number.")
        ok = np.isclose(a, e, atol=atol, rtol=rtol, equal_nan=True)
    if np.all(ok):
        return
    if e.ndim == 0:
        diff, tol = abs(float(a) - float(e)), atol + rtol * abs(float(e))
        close = f" (difference {diff:.3g}, allowed {tol:.3g})" if diff < 1000 * tol else ""
        _fail(f"{name}: expected {float(e):.6g}, but got {float(a):.6g}{close}.", hint=hint)
    bad = np.argwhere(~ok)
    first = tuple(int(i) for i in bad[0])
    _fail(f"{name}: {len(bad)} of {e.size} entries differ from the expected values "
          f"(largest difference {float(np.nanmax(np.abs(a - e))):.3g}).",
          [f"First difference at index {first}: expected {float(e[first]):.6g}, "
           f"got {float(a[first]):.6g}."], hint)


def check_distribution(p: Any, *, name: str = "probabilities", axis: int = -1,
                       atol: float = 1e-6, hint: str | None = None) -> None:
    """Check that ``p`` holds probability distributions along ``axis``: finite, in [0, 1],
    summing to 1."""
    __tracebackhide__ = True  # learners see their test line, not this module
    a = _to_numpy(p, name)
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(a)):
            _fail(f"{name}: expected finite probabilities, but some are nan or inf.",
                  [f"Got {_short(a)}."],
                  hint or "subtract the maximum score before exp() to avoid overflow.")
        if a.size and (a.min() < -atol or a.max() > 1 + atol):
            _fail(f"{name}: expected every probability in [0, 1], but found values from "
                  f"{a.min():.4g} to {a.max():.4g}.", hint=hint or
                  "probabilities come from exp() of scores (or counts) divided by their sum.")
        sums = a.sum(axis=axis)
    bad = ~np.isclose(sums, 1.0, atol=max(atol, 1e-6) * max(1, a.shape[axis] if a.ndim else 1))
    if np.any(bad):
        first = _short(np.asarray(sums)[bad].ravel()[:3])
        if hint is None:
            hint = ("divide each row by its own sum (keepdims=True), not by the total."
                    if a.ndim > 1 else "divide by the sum so the values add up to 1.")
        _fail(f"{name}: expected values that sum to 1 along axis {axis}, but sums are {first}.",
              hint=hint)


def check_function(func: Callable[..., Any], cases: Iterable[tuple[tuple, Any]], *,
                   name: str | None = None, atol: float = 1e-6, rtol: float = 1e-5,
                   hint: str | None = None) -> None:
    """Call ``func(*args)`` for each ``(args, expected)`` case and compare the result.

    Numbers and arrays are compared with :func:`check_close`, everything else with
    :func:`check_equal`. The message names the inputs of the first case that fails.
    """
    __tracebackhide__ = True  # learners see their test line, not this module
    fname = name or getattr(func, "__name__", "function")
    for args, expected in cases:
        shown = ", ".join(_short(a, 40) for a in args)
        try:
            result = func(*args)
        except NotImplementedError:
            _fail(f"{fname}({shown}) raised NotImplementedError: the exercise is not done yet.",
                  hint="replace `raise NotImplementedError()` with your code.")
        label = f"{fname}({shown})"
        numeric = isinstance(expected, (float, np.floating, np.ndarray)) or (
            hasattr(expected, "detach"))
        if numeric:
            check_close(result, expected, name=label, atol=atol, rtol=rtol, hint=hint)
        else:
            check_equal(result, expected, name=label, hint=hint)
