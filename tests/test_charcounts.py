"""Tests for llmcourse.charcounts (Chapter 0): counting, probabilities, sampling, generation."""

from collections import Counter

import numpy as np
import pytest

from llmcourse.charcounts import (
    generate,
    most_likely_next,
    next_char_counts,
    next_char_table,
    readable_char,
    sample_next_char,
    to_probabilities,
)


def test_counts_small_text():
    assert next_char_counts("banana", "an") == {"a": 2}
    assert next_char_counts("banana", "a") == {"n": 2}  # the final 'a' has nothing after it
    assert next_char_counts("banana", "x") == {}
    assert next_char_counts("banana", "") == {"b": 1, "a": 3, "n": 2}


def test_counts_overlap_and_unicode():
    assert next_char_counts("aaaa", "aa") == {"a": 2}
    assert next_char_counts("crème brûlée, crème", "crè") == {"m": 2}
    assert next_char_counts("日本語の日本", "日本") == {"語": 1}


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_table_agrees_with_counts(k):
    text = "the cat sat on the mat; the end.\nthe"
    table = next_char_table(text, k)
    contexts = {text[i : i + k] for i in range(len(text) - k)}
    assert set(table) == contexts
    for context in contexts:
        assert table[context] == next_char_counts(text, context)


def test_probabilities():
    probs = to_probabilities(Counter({"a": 3, "b": 1}))
    assert probs == pytest.approx({"a": 0.75, "b": 0.25})
    assert to_probabilities({}) == {}
    with pytest.raises(ValueError, match="counts must be >= 0"):
        to_probabilities({"a": -1, "b": 2})


def test_most_likely_breaks_ties_by_character():
    assert most_likely_next({"z": 2, "b": 5, "a": 5}) == "a"
    assert most_likely_next({"e": 0.1, " ": 0.1}) == " "
    with pytest.raises(ValueError, match="at least one character"):
        most_likely_next({})


def test_sampling_is_seeded_and_follows_the_probabilities():
    probs = {"b": 0.2, "a": 0.5, "c": 0.3}
    first = [sample_next_char(probs, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(first)) == 1
    rng = np.random.default_rng(0)
    draws = Counter(sample_next_char(probs, rng) for _ in range(20000))
    for char, p in probs.items():
        assert abs(draws[char] / 20000 - p) < 0.015
    # Same draw as rng.choice over the sorted characters.
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    expected = [["a", "b", "c"][rng2.choice(3, p=[0.5, 0.2, 0.3])] for _ in range(10)]
    assert [sample_next_char(probs, rng1) for _ in range(10)] == expected
    with pytest.raises(ValueError, match="sum to 1"):
        sample_next_char({"a": 2.0}, rng)


def test_generate_only_uses_seen_transitions():
    text = "abcabcabd"
    table = next_char_table(text, 2)
    out = generate(table, "ab", 30, np.random.default_rng(1))
    assert out.startswith("ab")
    for i in range(len(out) - 2):
        assert out[i + 2] in table[out[i : i + 2]]
    # Stops early at a context that was never followed by anything ("bd" ends the text).
    assert generate(table, "bd", 5, np.random.default_rng(0)) == "bd"
    with pytest.raises(ValueError, match="at least 2 characters for a model with context length 2"):
        generate(table, "a", 5, np.random.default_rng(0))
    # an explicit context length reads the same table the same way
    assert (generate(table, "ab", 10, np.random.default_rng(4), context_length=2)
            == generate(table, "ab", 10, np.random.default_rng(4)))


def test_generate_is_deterministic():
    table = next_char_table("to be or not to be, that is the question", 1)
    a = generate(table, "t", 40, np.random.default_rng(5))
    b = generate(table, "t", 40, np.random.default_rng(5))
    assert a == b and len(a) == 41


def test_bad_input():
    with pytest.raises(TypeError, match="text must be a str, got list"):
        next_char_counts(["a", "b"], "a")
    with pytest.raises(ValueError, match="context_length must be an int >= 0, got -1"):
        next_char_table("abc", -1)


def test_readable_char():
    assert [readable_char(c) for c in " \nx"] == ["space", "newline", "x"]
