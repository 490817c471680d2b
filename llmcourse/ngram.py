"""N-gram language models: predict the next token by counting what followed the same window.

A language model gives a probability to every possible next token, given the tokens so far. An
*n-gram model* makes one simplifying bet: only the last ``n - 1`` tokens (the *context*, or
window) matter. Training is counting. Go through the training text, and for every window of
``n - 1`` tokens count which token came next; the probability of ``w`` after context ``c`` is the
fraction of times that ``c`` was followed by ``w``:

    P(w | c) = count(c, w) / count(c)

Two things go wrong, and this module shows both fixes.

* A pair never seen in training gets probability 0, so one surprising token in held-out text makes
  the loss infinite. *Add-k smoothing* (:class:`NGramModel` with ``k > 0``) pretends that every
  pair was seen ``k`` extra times.
* As ``n`` grows, most windows in new text were never seen at all (sparsity), and counting has
  nothing to say. *Interpolated Kneser-Ney smoothing* (:class:`KneserNeyModel`) mixes the
  estimates of every window length, from the longest down to a single token, and trusts each one
  as much as its counts deserve.

Both models work on any sequence of integer token ids (characters here, BPE tokens later), so the
later chapters can compare neural models against them. Everything is vectorised with NumPy: a
window of ``L`` tokens is encoded as one integer (the id of its last ``L - 1`` tokens times the
vocabulary size, plus the oldest token), ``np.unique`` numbers the distinct windows, and
``np.searchsorted`` finds them again in new text. Fitting models up to n = 8 on a million
characters takes a second or two.

Losses are average negative log-likelihoods in nats (natural logarithm) per token; perplexity is
``exp(loss)``. The first ``n - 1`` tokens of a text are only used as context, never scored.

Introduced in Chapter 2 (``chapters/02_ngram_models.ipynb``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Chapter 2 numbers characters with a CharVocab; it lives in llmcourse.vocab beside the
# tokenizer of Chapter 6, and is imported here so that Chapter 2 finds it where it is used.
from llmcourse.vocab import CharVocab, as_token_array, split_train_val  # noqa: E402
# What both models share (counting, looking windows up, scoring, sampling) is in ngram_base.
from llmcourse.ngram_base import NGramCounts  # noqa: E402

__all__ = ["CharVocab", "NGramModel", "KneserNeyModel", "as_token_array", "split_train_val"]


class NGramModel(NGramCounts):
    """An n-gram model with add-k smoothing.

        P(w | c) = (count(c, w) + k) / (count(c) + k V)

    With ``k = 0`` this is the plain maximum-likelihood estimate (fractions of counts); a window
    never seen in training then gets the uniform distribution, and a pair never seen gets 0.
    ``k`` can be changed after fitting (no need to count again).

    >>> m = NGramModel(2, vocab_size=3).fit([0, 1, 0, 2, 0, 1])
    >>> m.next_token_probs([0]).tolist()
    [0.0, 0.6666666666666666, 0.3333333333333333]
    """

    def __init__(self, n: int, vocab_size: int, k: float = 0.0):
        super().__init__(n, vocab_size)
        self.k = k

    @property
    def k(self) -> float:
        """The pseudo-count added to every (window, next token) pair."""
        return self._k

    @k.setter
    def k(self, value: float) -> None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"k must be a number >= 0, got {type(value).__name__}: {value!r}") from None
        if not value >= 0 or not np.isfinite(value):
            raise ValueError(f"k must be a finite number >= 0, got {value}")
        self._k = value

    def __repr__(self) -> str:
        return f"NGramModel(n={self.n}, vocab_size={self.vocab_size}, k={self.k})"

    def _probs_of_targets(self, ids, found, targets):
        L, V, k = self.n - 1, self.vocab_size, self.k
        c = self._pair_lookup(self._pair_keys[L], self._pair_counts[L], ids[L] * V + targets,
                              found[L])
        total = np.where(found[L], self._ctx_totals[L][ids[L]], 0)
        denom = total + k * V
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denom > 0, (c + k) / np.where(denom > 0, denom, 1), 1.0 / V)

    def _distribution(self, ids, found):
        L, V, k = self.n - 1, self.vocab_size, self.k
        if not found[L]:
            return np.full(V, 1.0 / V)
        row = self._row(L, ids[L], self._pair_counts[L]) + k
        return row / row.sum()


class KneserNeyModel(NGramCounts):
    """Interpolated (modified) Kneser-Ney smoothing: mix every window length from n - 1 down to 0.

    For the longest window the model takes its counts, subtracts a small *discount* ``D`` from
    every count that is not zero, and hands the probability mass it freed to the estimate from the
    window one token shorter, and so on down to a single uniform distribution:

        P_L(w | c) = (max(count(c, w) - D, 0) + D_total(c) * P_{L-1}(w | shorter c)) / count(c)

    where ``D_total(c)`` is the discount summed over the tokens seen after ``c``. A window never
    seen in training simply passes on the shorter window's estimate. The shorter windows count
    *in how many different contexts* a pair appeared rather than how often (Kneser and Ney's
    idea): "Francisco" is frequent but follows almost only "San", so it should not get much
    probability after a window never seen before.

    The discounts are the modified Kneser-Ney ones of Chen and Goodman (1998): three per window
    length (for counts of 1, 2 and 3 or more), estimated from how many pairs were seen once,
    twice, three and four times. Pass ``discounts`` (one number or one per window length) to fix
    them instead.
    """

    def __init__(self, n: int, vocab_size: int, discounts: float | Sequence[float] | None = None):
        super().__init__(n, vocab_size)
        if discounts is not None:
            d = np.atleast_1d(np.asarray(discounts, dtype=float))
            if d.size not in (1, self.n):
                raise ValueError(f"discounts must be one number or one per window length "
                                 f"(n = {self.n}), got {d.size}")
            if np.any(d < 0) or np.any(d > 1):
                raise ValueError(f"discounts must lie in [0, 1], got {d.tolist()}")
        self.fixed_discounts = discounts

    def __repr__(self) -> str:
        return f"KneserNeyModel(n={self.n}, vocab_size={self.vocab_size})"

    def _after_fit(self) -> None:
        V, n = self.vocab_size, self.n
        # The counts each window length uses: raw counts for the longest window, and for shorter
        # ones the number of distinct tokens seen just before the (window, next token) pair.
        self._kn_counts: list[np.ndarray] = [None] * n  # type: ignore[list-item]
        self._kn_counts[n - 1] = self._pair_counts[n - 1]
        for L in range(n - 1):
            longer = self._pair_keys[L + 1]
            parent = self._ctx_keys[L + 1][longer // V] // V  # drop the oldest token
            codes = parent * V + longer % V
            idx = np.searchsorted(self._pair_keys[L], codes)
            self._kn_counts[L] = np.bincount(idx, minlength=len(self._pair_keys[L]))
        self.discounts: list[np.ndarray] = []
        self._kn_totals: list[np.ndarray] = []
        self._backoff_mass: list[np.ndarray] = []
        for L in range(n):
            c = self._kn_counts[L]
            if self.fixed_discounts is not None:
                d_all = np.atleast_1d(np.asarray(self.fixed_discounts, dtype=float))
                d = np.full(3, d_all[0] if d_all.size == 1 else d_all[L])
            else:
                d = self._modified_discounts(c)
            self.discounts.append(d)
            ctx = self._pair_keys[L] // V
            n_ctx = len(self._ctx_keys[L])
            self._kn_totals.append(np.bincount(ctx, weights=c, minlength=n_ctx))
            self._backoff_mass.append(np.bincount(ctx, weights=d[np.minimum(c, 3) - 1],
                                                  minlength=n_ctx))

    @staticmethod
    def _modified_discounts(c: np.ndarray) -> np.ndarray:
        """Chen and Goodman's estimates of the discounts for counts 1, 2 and >= 3."""
        n1, n2, n3, n4 = (int(np.sum(c == r)) for r in (1, 2, 3, 4))
        if min(n1, n2, n3, n4) == 0:  # too few counts to estimate three discounts: use one
            d = np.full(3, n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5)
        else:
            y = n1 / (n1 + 2 * n2)
            d = np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
        # Keep some mass for the shorter windows (so no probability is ever 0), and never take
        # away more than the count itself.
        return np.clip(d, 0.05, [1.0, 2.0, 3.0])

    def _discounted(self, L: int, c: np.ndarray) -> np.ndarray:
        d = self.discounts[L]
        return np.where(c > 0, np.maximum(c - d[np.clip(c, 1, 3) - 1], 0.0), 0.0)

    def _probs_of_targets(self, ids, found, targets):
        V = self.vocab_size
        p = np.full(len(targets), 1.0 / V)
        for L in range(self.n):
            f = found[L]
            c = self._pair_lookup(self._pair_keys[L], self._kn_counts[L], ids[L] * V + targets, f)
            total = self._kn_totals[L][ids[L]]
            mass = self._backoff_mass[L][ids[L]]
            with np.errstate(divide="ignore", invalid="ignore"):
                mixed = (self._discounted(L, c) + mass * p) / total
            p = np.where(f & (total > 0), mixed, p)
        return p

    def _distribution(self, ids, found):
        V = self.vocab_size
        p = np.full(V, 1.0 / V)
        for L in range(self.n):
            if not found[L]:
                break
            total = self._kn_totals[L][ids[L]]
            if total <= 0:
                continue
            c = self._row(L, ids[L], self._kn_counts[L])
            p = (self._discounted(L, c) + self._backoff_mass[L][ids[L]] * p) / total
        return p / p.sum()
