"""Vocabularies: characters (and a few special tokens) <-> integer ids.

A model never sees text, only integers. Chapter 2 numbers the distinct characters of a text
(:class:`CharVocab`): a character's id is its place in the sorted list of characters. Chapter 6's
GPT uses the same numbering through :class:`CharTokenizer`, which adds what a model needs: a JSON
form saved with a checkpoint, and room for special tokens (Chapter 8's chat markers) appended
after the characters, so that the ids of the characters never change.

:func:`split_train_val` cuts a text into a training part and its last tenth, the one split the
course uses to measure how well a model predicts text it has not seen. :func:`split_three_ways`
cuts three parts for Chapter 6's GPT: the last tenth is the *test* text, scored once at the end;
blocks spread over what comes before it are the *validation* text that training watches (to
choose the step to keep and the recipe), so the number reported was never used to choose anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["CharVocab", "CharTokenizer", "as_token_array", "split_train_val", "split_three_ways",
           "TextSplit"]


# --------------------------------------------------------------------------------------------
# Characters <-> token ids
# --------------------------------------------------------------------------------------------


class CharVocab:
    """A character vocabulary: every distinct character gets an integer id (sorted order).

    >>> vocab = CharVocab.from_text("hello")
    >>> vocab.chars
    ['e', 'h', 'l', 'o']
    >>> vocab.encode("hell").tolist()
    [1, 0, 2, 2]
    >>> vocab.decode([3, 2])
    'ol'
    """

    #: What one entry of the vocabulary may be, and the word for it in messages (a subclass, the
    #: character tokenizer of Chapter 6, also allows special tokens of several characters).
    entry_rule = "single characters"
    unit = "characters"

    @staticmethod
    def _valid_entry(entry: Any) -> bool:
        return isinstance(entry, str) and len(entry) == 1

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        for c in chars:
            if not self._valid_entry(c):
                raise TypeError(f"a vocabulary holds {self.entry_rule}, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("the entries of a vocabulary must be distinct, got duplicates: "
                             f"{sorted({c for c in chars if chars.count(c) > 1})!r}")
        if not chars:
            raise ValueError("a vocabulary needs at least one entry, got none")
        self.chars: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of all characters that occur in ``text``, in sorted order."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        return cls(sorted(set(text)))

    @property
    def size(self) -> int:
        """The number of characters (token ids run from 0 to ``size - 1``)."""
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self.chars)} characters: {''.join(self.chars)!r})"

    def encode(self, text: str) -> np.ndarray:
        """The token ids of the characters of ``text`` (an int64 array)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        try:
            return np.fromiter((self.stoi[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError:
            raise self._unknown_error(text) from None

    def _unknown_error(self, text: str) -> ValueError:
        """The error for a text with characters outside the vocabulary: which, and where."""
        unknown = "".join(sorted({c for c in text if c not in self.stoi}))
        first = next(i for i, c in enumerate(text) if c not in self.stoi)
        where = f"the vocabulary of {len(self.chars)} {self.unit}"
        if len(unknown) == 1:
            return ValueError(f"character {unknown!r} at position {first} is not in {where}")
        return ValueError(f"characters {unknown!r} are not in {where}; the first, "
                          f"{text[first]!r}, is at position {first}")

    def decode(self, ids: Iterable[int]) -> str:
        """The text whose characters have these token ids."""
        ids = as_token_array(ids, self.size, name="ids", allow_empty=True)
        return "".join(self.chars[i] for i in ids)


def split_train_val(tokens: Sequence[int] | np.ndarray | str, val_fraction: float = 0.1):
    """Split a text (or token array) into a training part and the last ``val_fraction`` of it.

    Holding out the *end* of a text (rather than random positions) keeps validation windows away
    from the training windows that overlap them.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n_val = int(round(len(tokens) * val_fraction))
    if n_val == 0 or n_val == len(tokens):
        raise ValueError(f"cannot split {len(tokens)} tokens with val_fraction={val_fraction}: "
                         "one part would be empty")
    cut = len(tokens) - n_val
    return tokens[:cut], tokens[cut:]


@dataclass(frozen=True)
class TextSplit:
    """Where the three parts of a text of ``end`` tokens lie (made by :func:`split_three_ways`).

    The test is ``[test_start, end)``; validation is the blocks ``val_blocks`` (``(start, stop)``
    pairs) inside the text before it; training is everything else before ``test_start``.
    """

    end: int
    test_start: int
    val_blocks: tuple[tuple[int, int], ...]
    val_every: int
    block: int

    @property
    def val_chars(self) -> int:
        return sum(stop - start for start, stop in self.val_blocks)

    def is_training(self) -> np.ndarray:
        """A boolean mask over ``[0, test_start)``: True where the token is training text."""
        mask = np.ones(self.test_start, dtype=bool)
        for start, stop in self.val_blocks:
            mask[start:stop] = False
        return mask

    def to_dict(self) -> dict[str, Any]:
        return {"train_chars": self.test_start - self.val_chars, "val_chars": self.val_chars,
                "test_chars": self.end - self.test_start, "test_start": self.test_start,
                "validation": f"every {self.val_every}th block of {self.block} characters of "
                              f"the text before the test (the last block of every "
                              f"{self.val_every}, {len(self.val_blocks)} blocks)"}


def split_three_ways(n_tokens: int, test_fraction: float = 0.1, val_every: int = 20,
                     block: int = 1000) -> TextSplit:
    """Cut a text of ``n_tokens`` into training, validation and test parts.

    The test is the last ``test_fraction`` (the held-out end of :func:`split_train_val`). Of the
    text before it, cut into blocks of ``block`` tokens, the last block of every ``val_every`` is
    validation: spread over the whole text, so that it samples every play, as the training does,
    rather than one stretch of it.

    >>> split = split_three_ways(200, block=5, val_every=4)
    >>> split.test_start, split.val_blocks[:2], split.val_chars
    (180, ((15, 20), (35, 40)), 45)
    """
    if not isinstance(n_tokens, (int, np.integer)) or n_tokens < 1:
        raise ValueError(f"n_tokens must be a positive int, got {n_tokens!r}")
    before, _ = split_train_val(np.zeros(n_tokens, dtype=np.int8), test_fraction)
    test_start = len(before)
    if val_every < 2 or block < 1 or test_start < val_every * block:
        raise ValueError(f"cannot take every {val_every}th block of {block} tokens from the "
                         f"{test_start} tokens before the test: need val_every >= 2 and at least "
                         f"val_every x block tokens")
    blocks = tuple((k * block, (k + 1) * block) for k in range(test_start // block)
                   if k % val_every == val_every - 1)
    return TextSplit(n_tokens, test_start, blocks, val_every, block)


def as_token_array(tokens, vocab_size: int, *, name: str = "tokens",
                   allow_empty: bool = False) -> np.ndarray:
    """Check that ``tokens`` are integer ids in ``[0, vocab_size)`` and return them as int64."""
    if isinstance(tokens, str):
        raise TypeError(f"{name} must be a sequence of integer token ids, got a str; "
                        "turn text into ids first, e.g. with CharVocab.encode")
    if hasattr(tokens, "detach"):  # a torch tensor
        tokens = tokens.detach().cpu().numpy()
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got shape {arr.shape}")
    if arr.size == 0:
        if allow_empty:
            return arr.astype(np.int64)
        raise ValueError(f"{name} must not be empty, got 0 tokens")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer token ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = np.flatnonzero((arr < 0) | (arr >= vocab_size))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} must be ids in [0, {vocab_size}) (the vocabulary size), got "
                         f"{int(arr[i])} at position {i}, outside the vocabulary (ids run from 0 "
                         f"to {vocab_size - 1})")
    return arr


# --------------------------------------------------------------------------------------------
# Tokenizer: one id per character
# --------------------------------------------------------------------------------------------


class CharTokenizer(CharVocab):
    """Characters <-> ids; the id of a character is its index in ``vocab``.

    Chapter 2's :class:`llmcourse.ngram.CharVocab` (same constructor, ``from_text`` and checks),
    with the interface the later chapters use: ``vocab`` and ``vocab_size``, ``encode`` returning
    a list, ``decode`` accepting a tensor, and a JSON form for checkpoints. Tokens added later
    (Chapter 8's chat markers) are appended at the end, so the ids of the characters never
    change; ``vocab`` entries are therefore strings (a character, or a special token).

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.encode("hole")
    [1, 3, 2, 0]
    >>> tok.decode([1, 0, 2, 2, 3])
    'hello'
    """

    entry_rule = "non-empty strings (characters, or special tokens appended after them)"
    unit = "tokens"

    @staticmethod
    def _valid_entry(entry: Any) -> bool:
        return isinstance(entry, str) and len(entry) > 0

    @property
    def vocab(self) -> list[str]:
        """The entries; the id of an entry is its index (the same list as ``chars``)."""
        return self.chars

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharTokenizer({self.vocab_size} tokens)"

    def encode(self, text: str) -> list[int]:
        """The id of every character of ``text``."""
        return super().encode(text).tolist()

    def to_dict(self) -> dict[str, Any]:
        return {"type": "char", "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CharTokenizer":
        if not isinstance(d, dict) or "vocab" not in d:
            raise ValueError(f"a tokenizer dict needs a 'vocab' list, got {d!r:.80}")
        if d.get("type", "char") != "char":
            raise ValueError(f"expected a 'char' tokenizer, got type {d.get('type')!r}")
        return cls(d["vocab"])
