"""llmcourse.checks: the self-checks pass right answers and explain wrong ones."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from llmcourse.checks import (CheckFailed, check_close, check_distribution, check_equal,
                              check_function, check_shape, check_true, check_type)


def message(fn, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as err:
        fn(*args, **kwargs)
    assert isinstance(err.value, AssertionError)  # what nbgrader counts as a failed test
    return str(err.value)


def test_check_close_passes_within_tolerance_and_accepts_tensors():
    check_close(0.1 + 0.2, 0.3)
    check_close(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0]))
    check_close([[1, 2]], np.array([[1.0, 2.0]]))


def test_check_close_says_expected_and_got_and_hint():
    text = message(check_close, 3.0, 4.0, name="double(2)", hint="multiply, don't add")
    first = text.splitlines()[0]
    assert first == "double(2): expected 4, but got 3."
    assert text.splitlines()[-1] == "Hint: multiply, don't add"


def test_check_close_arrays_point_at_the_first_difference():
    text = message(check_close, np.array([1.0, 2.0, 5.0]), np.array([1.0, 2.0, 3.0]), name="p")
    assert "1 of 3 entries differ" in text and "index (2,)" in text and "got 5" in text


def test_check_close_catches_nan_and_none_and_shapes():
    assert "nan or inf" in message(check_close, np.array([np.nan]), np.array([1.0]))
    assert "forget to `return`" in message(check_close, None, 1.0)
    text = message(check_close, np.zeros((3, 2)), np.zeros((2, 3)), name="W")
    assert "expected shape (2, 3), but got shape (3, 2)" in text and "swapped" in text


def test_check_shape_and_dtype():
    check_shape(np.zeros((2, 3)), (2, 3), dtype="float")
    check_shape(torch.zeros(4, dtype=torch.int64), (4,), dtype="int")
    assert "expected dtype float" in message(check_shape, np.zeros(3, dtype=int), (3,), dtype="float")
    assert "got a list" in message(check_shape, [1, 2], (2,))


def test_check_distribution_rows():
    check_distribution(np.array([[0.5, 0.5], [0.1, 0.9]]))
    text = message(check_distribution, np.array([[1.0, 1.0], [1.0, 3.0]]) / 6)
    assert "sum to 1" in text and "keepdims" in text
    assert "in [0, 1]" in message(check_distribution, np.array([1.5, -0.5]))
    assert "overflow" in message(check_distribution, np.array([np.nan, 1.0]))


def test_check_equal_explains_dicts_lists_and_strings():
    text = message(check_equal, {"a": 1, "c": 3}, {"a": 2, "b": 1}, name="counts")
    assert text.splitlines()[0] == ("counts: for key 'a' expected 2, but got 1 "
                                    "(1 of 2 values differ).")
    assert "Missing keys: ['b']" in text and "Unexpected keys: ['c']" in text
    assert message(check_equal, {"a": 1}, {"a": 1, "b": 2}, name="d").splitlines()[0] == (
        "d: the dictionary is missing the key(s) ['b'].")
    text = message(check_equal, [1, 2, 4], [1, 2, 3], name="ids")
    assert "First difference at position 2: expected 3, got 4" in text
    check_equal("abc", "abc")
    check_equal(np.array([1, 2]), np.array([1, 2]))


def test_check_function_names_the_failing_input():
    def double(x):
        return x + 2

    check_function(lambda x: 2 * x, [((2.0,), 4.0), ((5.0,), 10.0)])
    text = message(check_function, double, [((2.0,), 4.0), ((5.0,), 10.0)])
    assert text.startswith("double(5.0): expected 10, but got 7")

    def todo(x):
        raise NotImplementedError()

    assert "not done yet" in message(check_function, todo, [((1,), 1)])


def test_check_true_and_type():
    check_true(True, "never shown")
    assert message(check_true, False, "the loss went up", hint="smaller step") == (
        "the loss went up\nHint: smaller step")
    check_type(3, int)
    assert "expected a int or float, but got a str" in message(check_type, "3", (int, float))


def test_checks_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        message(check_close, np.array([np.inf, 1.0]), np.array([1.0, 1.0]))
        message(check_distribution, np.array([0.0, 0.0]))
