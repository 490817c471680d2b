"""Next-character counts: the smallest language model that can write.

A language model gives, for a piece of text, a probability for every possible next token. The
simplest way to get such probabilities is to count: find every place where the last few characters
(the *context*) occur in a corpus, tally the character that comes right after, and divide each
tally by the total. To write new text, draw a character from those probabilities, append it, and
repeat with the new last few characters as the context.

The number of characters in the context is the *context length*. A model with context length
``n - 1`` is what Chapter 2 calls an *n-gram model*: it looks at ``n - 1`` characters and predicts
the ``n``-th.

Chapter 0 uses this module for its first experiment on Tiny Shakespeare; Chapter 2 turns the same
idea into proper n-gram models (smoothing, evaluation) in :mod:`llmcourse.ngram`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Mapping

import numpy as np

__all__ = [
    "next_char_counts",
    "next_char_table",
    "to_probabilities",
    "most_likely_next",
    "sample_next_char",
    "generate",
    "readable_char",
]


def _check_text(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}: {value!r:.60}")


def next_char_counts(text: str, context: str) -> Counter[str]:
    """Count the characters that follow each occurrence of ``context`` in ``text``.

    Occurrences may overlap, and an occurrence at the very end of the text (with nothing after it)
    is not counted. The empty context counts every character of the text.

    >>> dict(next_char_counts("banana", "an"))
    {'a': 2}
    """
    _check_text(text, "text")
    _check_text(context, "context")
    k = len(context)
    counts: Counter[str] = Counter()
    start = text.find(context)
    while start != -1 and start + k < len(text):
        counts[text[start + k]] += 1
        start = text.find(context, start + 1)
    return counts


def next_char_table(text: str, context_length: int) -> dict[str, Counter[str]]:
    """Next-character counts for every context of ``context_length`` characters in ``text``, in
    one pass (the counts of an n-gram model with ``n = context_length + 1``).

    ``table[context]`` equals ``next_char_counts(text, context)`` for every context that occurs.
    """
    _check_text(text, "text")
    k = context_length
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f"context_length must be an int >= 0, got {k!r}")
    table: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for i in range(len(text) - k):
        table[text[i : i + k]][text[i + k]] += 1
    return dict(table)


def to_probabilities(counts: Mapping[str, int]) -> dict[str, float]:
    """Divide each count by the sum of all counts, so the values add up to 1.

    Empty counts give an empty dictionary.
    """
    total = sum(counts.values())
    if any(c < 0 for c in counts.values()):
        raise ValueError(f"counts must be >= 0, got {dict(counts)!r:.80}")
    return {char: c / total for char, c in counts.items()} if total else {}


def most_likely_next(counts: Mapping[str, float]) -> str:
    """The character with the largest count (or probability); ties go to the smallest character
    in Python's string order (so the answer never depends on the order of the dictionary)."""
    if not counts:
        raise ValueError("counts must hold at least one character, got an empty mapping")
    return min(counts, key=lambda char: (-counts[char], char))


def sample_next_char(probs: Mapping[str, float], rng: np.random.Generator) -> str:
    """Draw one character from ``probs`` with NumPy's generator ``rng``.

    The characters are sorted first and ``rng.choice`` is called once with their probabilities,
    so the same seed always gives the same character.
    """
    if not probs:
        raise ValueError("probs must hold at least one character, got an empty mapping")
    chars = sorted(probs)
    weights = np.array([probs[c] for c in chars], dtype=float)
    if not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"probabilities must sum to 1, got a sum of {weights.sum():.6g}")
    return chars[int(rng.choice(len(chars), p=weights / weights.sum()))]


def generate(table: Mapping[str, Mapping[str, int]], prompt: str, n_chars: int,
             rng: np.random.Generator, context_length: int | None = None) -> str:
    """Continue ``prompt`` by ``n_chars`` characters sampled from a next-character ``table``.

    At each step the context is the last ``context_length`` characters of the text so far (read
    from the table's keys when not given). Generation stops early if a context was never seen.
    Returns the prompt followed by the new characters.
    """
    _check_text(prompt, "prompt")
    k = len(next(iter(table))) if context_length is None else context_length
    if len(prompt) < k:
        raise ValueError(f"prompt must have at least {k} characters for a model with context "
                         f"length {k}, got {len(prompt)}: {prompt!r}")
    out = prompt
    for _ in range(n_chars):
        counts = table.get(out[len(out) - k :])
        if not counts:
            break
        out += sample_next_char(to_probabilities(counts), rng)
    return out


def readable_char(char: str) -> str:
    """A label that shows whitespace: ``' '`` becomes ``'space'``, ``'\\n'`` becomes ``'newline'``."""
    names = {" ": "space", "\n": "newline", "\t": "tab"}
    return names.get(char, char)
