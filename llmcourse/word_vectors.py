"""Word vectors: a vocabulary, one vector per word, and the look-ups of Chapter 4.

A trained embedding table is only useful if we can ask it questions. :class:`WordVectors` keeps the
vocabulary and one row per word, and answers with the *cosine similarity*, the cosine of the angle
between two vectors (1: the same direction, 0: unrelated, -1: opposite), which ignores how long the
vectors are: a frequent word's vector tends to be longer without meaning more. On top of it:
:meth:`WordVectors.most_similar` (the nearest words), :meth:`WordVectors.analogy` ("man is to king
as woman is to ?", the words nearest ``king - man + woman``).

:func:`llmcourse.embeddings.train_skipgram` trains such vectors on Tiny Shakespeare and
:func:`llmcourse.embeddings.load_glove` loads GloVe's in the same class.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

__all__ = ["WordVectors", "cosine_similarity"]


def cosine_similarity(a, b) -> float:
    """``a . b / (|a| |b|)``: 1 for the same direction, 0 for perpendicular, -1 for opposite."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"cosine_similarity needs two vectors of the same length, got shapes "
                         f"{a.shape} and {b.shape}")
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        raise ValueError("cosine_similarity is undefined for a zero vector")
    return float(a @ b / norm)


@dataclass
class WordVectors:
    """A vocabulary and one vector per word (row ``i`` of ``vectors`` belongs to ``vocab[i]``).

    ``counts`` (how often each word occurred in training, if known) and ``losses`` (the training
    loss curve, if trained here) are optional.
    """

    vocab: list[str]
    vectors: np.ndarray
    counts: np.ndarray | None = None
    losses: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.vocab = list(self.vocab)
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.vocab):
            raise ValueError(f"vectors must have one row per word: shape ({len(self.vocab)}, dim),"
                             f" got {self.vectors.shape}")
        self.index = {w: i for i, w in enumerate(self.vocab)}
        if len(self.index) != len(self.vocab):
            raise ValueError("vocab holds a word twice")
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.unit = self.vectors / np.maximum(norms, 1e-12)  # rows of length 1, for cosines

    def __repr__(self) -> str:
        return f"WordVectors({len(self.vocab):,} words, {self.dim} dimensions)"

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, word) -> bool:
        return word in self.index

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def _id(self, word: str) -> int:
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {type(word).__name__}: {word!r}")
        try:
            return self.index[word]
        except KeyError:
            # suggestions from the 50,000 first (for GloVe: most frequent) words, to stay fast
            close = difflib.get_close_matches(word.lower(), self.vocab[:50_000], n=5, cutoff=0.7)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self.vocab):,} words)"
                           f"{hint}") from None

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._id(word)]

    def similarity(self, w1: str, w2: str) -> float:
        """The cosine similarity of two words' vectors."""
        return float(self.unit[self._id(w1)] @ self.unit[self._id(w2)])

    def nearest(self, vector, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` words whose vectors have the highest cosine with ``vector``, best first."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.dim,):
            raise ValueError(f"vector must have shape ({self.dim},), got {vector.shape}")
        cos = self.unit @ (vector / max(float(np.linalg.norm(vector)), 1e-12))
        skip = [self.index[w] for w in exclude if w in self.index]
        cos[skip] = -np.inf
        k = min(k, len(self.vocab) - len(set(skip)))
        if k == 0:
            return []
        top = np.argpartition(-cos, k - 1)[:k] if k < len(cos) else np.arange(len(cos))
        top = top[np.lexsort((top, -cos[top]))]  # best first; ties by vocabulary order
        return [(self.vocab[i], float(cos[i])) for i in top[:k]]

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest words to ``word`` by cosine similarity (``word`` itself excluded)."""
        return self.nearest(self.vectors[self._id(word)], k, exclude=[word])

    def analogy(self, a: str, b: str, c: str, k: int = 10) -> list[tuple[str, float]]:
        """"``a`` is to ``b`` as ``c`` is to ?": the words nearest ``b - a + c`` (vectors of
        length 1), with ``a``, ``b`` and ``c`` excluded. ``analogy("man", "king", "woman")``."""
        ids = [self._id(w) for w in (a, b, c)]
        target = self.unit[ids[1]] - self.unit[ids[0]] + self.unit[ids[2]]
        return self.nearest(target, k, exclude=[a, b, c])
