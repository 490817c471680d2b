"""What every n-gram model of Chapter 2 shares: counting windows, finding them again, scoring.

:class:`NGramCounts` counts, for every window length from 0 to ``n - 1`` tokens, which token
followed each distinct window of the training text. The two models of :mod:`llmcourse.ngram`
differ only in how they turn those counts into probabilities: add-k smoothing
(:class:`llmcourse.ngram.NGramModel`) or Kneser-Ney (:class:`llmcourse.ngram.KneserNeyModel`).
Scoring, the loss, perplexity and sampling are the same for both and live here.

The counting is vectorised with NumPy: a window of ``L`` tokens is encoded as one integer,
``np.unique`` numbers the distinct windows, and ``np.searchsorted`` finds them again in new text.
"""

from __future__ import annotations

import numpy as np

from llmcourse.vocab import as_token_array

__all__ = ["NGramCounts"]


class NGramCounts:
    """What every n-gram model shares: the counting, the lookup of windows, scoring, sampling.

    After :meth:`fit`, for every window length ``L = 0 .. n-1`` the model holds

    * ``_ctx_keys[L]``: the sorted integer codes of the distinct windows of ``L`` tokens; a
      window's id is its position in this array. The code of a window is
      ``id(last L-1 tokens) * V + oldest token``: at most (text length) * V, so it fits an
      int64 even for BPE vocabularies and long windows.
    * ``_pair_keys[L]``, ``_pair_counts[L]``: the distinct (window id, next token) pairs, coded as
      ``window_id * V + next``, sorted, and how often each occurred.
    * ``_ctx_totals[L]``: how often each window occurred (the sum of its pair counts).

    Only positions ``i >= n - 1`` (where the full window exists) are counted, at every length.
    """

    def __init__(self, n: int, vocab_size: int):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an integer >= 1, got {type(n).__name__}: {n!r}")
        if n < 1:
            raise ValueError(f"n must be >= 1 (1 = unigram, 2 = bigram, ...), got {n}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
            raise TypeError(f"vocab_size must be an integer >= 1, got {type(vocab_size).__name__}")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.n = int(n)
        self.vocab_size = int(vocab_size)
        self._fitted = False

    # ---- counting -------------------------------------------------------------------------

    def fit(self, tokens) -> "NGramCounts":
        """Count every window of ``n - 1`` tokens and what followed it (and every shorter window).

        Returns the model itself, so ``model = NGramModel(3, V).fit(train)`` works.
        """
        t = as_token_array(tokens, self.vocab_size)
        n, V = self.n, self.vocab_size
        if len(t) < n:
            raise ValueError(f"a {n}-gram model needs a training text of at least n = {n} tokens, "
                             f"got {len(t)}")
        target = t[n - 1:]
        m = len(target)
        self._ctx_keys: list[np.ndarray] = []
        self._pair_keys: list[np.ndarray] = []
        self._pair_counts: list[np.ndarray] = []
        self._ctx_totals: list[np.ndarray] = []
        ids = np.zeros(m, dtype=np.int64)  # the empty window: one window, id 0
        for L in range(n):
            if L == 0:
                keys = np.zeros(1, dtype=np.int64)
            else:
                oldest = t[n - 1 - L: n - 1 - L + m]  # the token L places before the target
                keys, ids = np.unique(ids * V + oldest, return_inverse=True)
                ids = ids.reshape(-1).astype(np.int64)
            pair_keys, pair_counts = np.unique(ids * V + target, return_counts=True)
            self._ctx_keys.append(keys)
            self._pair_keys.append(pair_keys)
            self._pair_counts.append(pair_counts.astype(np.int64))
            self._ctx_totals.append(np.bincount(ids, minlength=len(keys)).astype(np.int64))
        self.num_train_tokens = len(t)
        self._fitted = True
        self._after_fit()
        return self

    def _after_fit(self) -> None:
        """Hook for subclasses: precompute what their probabilities need."""

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError(f"this {type(self).__name__} has not been fitted yet; "
                               "call .fit(tokens) first")

    @property
    def num_contexts(self) -> int:
        """How many distinct windows of ``n - 1`` tokens the training text holds."""
        self._check_fitted()
        return len(self._ctx_keys[self.n - 1])

    def context_counts(self) -> np.ndarray:
        """How often each distinct window of ``n - 1`` tokens occurred in training (one count per
        window, in no particular order; their sum is the number of positions counted)."""
        self._check_fitted()
        return self._ctx_totals[self.n - 1].copy()

    # ---- finding windows in new text ------------------------------------------------------

    def _lookup(self, tokens: np.ndarray, positions: np.ndarray):
        """Window ids, for every length L, of the windows that end just before ``positions``.

        Returns lists ``ids[L]`` and ``found[L]`` (boolean: the window occurred in training).
        A window can only have been seen if its shorter suffix was, so ``found`` only shrinks.
        """
        V = self.vocab_size
        ids = np.zeros(len(positions), dtype=np.int64)
        found = np.ones(len(positions), dtype=bool)
        all_ids, all_found = [ids], [found]
        for L in range(1, self.n):
            keys = self._ctx_keys[L]
            code = ids * V + tokens[positions - L]
            idx = np.minimum(np.searchsorted(keys, code), len(keys) - 1)
            found = found & (keys[idx] == code)
            ids = np.where(found, idx, 0)
            all_ids.append(ids)
            all_found.append(found)
        return all_ids, all_found

    @staticmethod
    def _pair_lookup(pair_keys: np.ndarray, values: np.ndarray, codes: np.ndarray,
                     valid: np.ndarray) -> np.ndarray:
        """``values`` of the pairs with these codes (0 where a pair was never seen)."""
        idx = np.minimum(np.searchsorted(pair_keys, codes), len(pair_keys) - 1)
        hit = valid & (pair_keys[idx] == codes)
        return np.where(hit, values[idx], 0)

    def _row(self, L: int, ctx_id: int, values: np.ndarray) -> np.ndarray:
        """The dense vector (length V) of ``values`` of all pairs of window ``ctx_id``."""
        V = self.vocab_size
        keys = self._pair_keys[L]
        lo, hi = np.searchsorted(keys, [ctx_id * V, (ctx_id + 1) * V])
        row = np.zeros(V, dtype=values.dtype)
        row[keys[lo:hi] - ctx_id * V] = values[lo:hi]
        return row

    def _context_ids(self, context) -> tuple[list[int], list[bool]]:
        c = as_token_array(context, self.vocab_size, name="context", allow_empty=True)
        if len(c) != self.n - 1:
            raise ValueError(f"a {self.n}-gram model predicts from a context of n - 1 = "
                             f"{self.n - 1} tokens, got {len(c)}")
        tokens = np.append(c, 0)
        ids, found = self._lookup(tokens, np.array([len(c)]))
        return [int(i[0]) for i in ids], [bool(f[0]) for f in found]

    # ---- what subclasses provide ----------------------------------------------------------

    def _probs_of_targets(self, ids, found, targets: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _distribution(self, ids: list[int], found: list[bool]) -> np.ndarray:
        raise NotImplementedError

    # ---- public API -----------------------------------------------------------------------

    def counts(self, context) -> np.ndarray:
        """How often each token followed ``context`` (n - 1 tokens) in training (length V)."""
        self._check_fitted()
        ids, found = self._context_ids(context)
        L = self.n - 1
        if not found[L]:
            return np.zeros(self.vocab_size, dtype=np.int64)
        return self._row(L, ids[L], self._pair_counts[L])

    def count_table(self, max_entries: int = 10_000_000) -> np.ndarray:
        """All counts as a dense array of shape ``(V,) * n``: ``table[a, b]`` counts "a then b".

        Only sensible for small ``n`` and ``V``; refuses tables above ``max_entries`` entries.
        """
        self._check_fitted()
        V, n = self.vocab_size, self.n
        if V ** n > max_entries:
            raise ValueError(f"a dense table would have V**n = {V}**{n} = {V ** n} entries, more "
                             f"than max_entries = {max_entries}; use counts(context) instead")
        # Decode each window id into its tokens, oldest first, from the chain of codes.
        tokens_of = [np.zeros((1, 0), dtype=np.int64)]
        for L in range(1, n):
            keys = self._ctx_keys[L]
            parent, oldest = keys // V, keys % V
            tokens_of.append(np.column_stack([oldest, tokens_of[L - 1][parent]]))
        L = n - 1
        ctx, nxt = self._pair_keys[L] // V, self._pair_keys[L] % V
        flat = np.zeros(V ** n, dtype=np.int64)
        index = np.zeros(len(ctx), dtype=np.int64)
        for j in range(L):
            index = index * V + tokens_of[L][ctx, j]
        flat[index * V + nxt] = self._pair_counts[L]
        return flat.reshape((V,) * n)

    def next_token_probs(self, context) -> np.ndarray:
        """The model's probability for every possible next token after ``context``.

        ``context`` holds exactly ``n - 1`` token ids. Returns an array of length V summing to 1.
        """
        self._check_fitted()
        ids, found = self._context_ids(context)
        return self._distribution(ids, found)

    def token_log_probs(self, tokens) -> np.ndarray:
        """``log P(token_i | previous n-1 tokens)`` for every position ``i >= n - 1`` of a text."""
        self._check_fitted()
        t = as_token_array(tokens, self.vocab_size)
        if len(t) < self.n:
            raise ValueError(f"to score a text a {self.n}-gram model needs at least n = {self.n} "
                             f"tokens (n - 1 of context and one to predict), got {len(t)}")
        positions = np.arange(self.n - 1, len(t))
        ids, found = self._lookup(t, positions)
        p = self._probs_of_targets(ids, found, t[positions])
        with np.errstate(divide="ignore"):
            return np.log(p)

    def loss(self, tokens) -> float:
        """Average negative log-likelihood in nats per token (the cross-entropy).

        Infinite if the model gives probability 0 to a token that occurs.
        """
        return float(-np.mean(self.token_log_probs(tokens)))

    def perplexity(self, tokens) -> float:
        """``exp(loss)``: the number of equally likely choices that would be as surprising."""
        return float(np.exp(self.loss(tokens)))

    def seen_context_fraction(self, tokens) -> float:
        """The fraction of positions of a text whose window of n - 1 tokens occurred in training."""
        self._check_fitted()
        t = as_token_array(tokens, self.vocab_size)
        if len(t) < self.n:
            raise ValueError(f"need at least n = {self.n} tokens, got {len(t)}")
        _, found = self._lookup(t, np.arange(self.n - 1, len(t)))
        return float(np.mean(found[-1]))

    def sample(self, prompt, num_tokens: int, rng: np.random.Generator | int | None = None,
               stop_token: int | None = None) -> np.ndarray:
        """Generate up to ``num_tokens`` new tokens after ``prompt``, one at a time.

        Each step looks at the last n - 1 tokens, asks for the next-token probabilities and draws
        one token from them with ``rng`` (a ``np.random.Generator`` or a seed). Generation stops
        early after ``stop_token`` (which is included). Returns only the new tokens.
        """
        self._check_fitted()
        p = as_token_array(prompt, self.vocab_size, name="prompt", allow_empty=True)
        if len(p) < self.n - 1:
            raise ValueError(f"a {self.n}-gram model needs a prompt of at least n - 1 = "
                             f"{self.n - 1} tokens to start from, got {len(p)}")
        if num_tokens < 0:
            raise ValueError(f"num_tokens must be >= 0, got {num_tokens}")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        window = list(p[len(p) - (self.n - 1):]) if self.n > 1 else []
        out = []
        for _ in range(num_tokens):
            probs = self.next_token_probs(window)
            cdf = np.cumsum(probs)
            token = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            token = min(token, self.vocab_size - 1)
            out.append(token)
            if self.n > 1:
                window = window[1:] + [token]
            if stop_token is not None and token == stop_token:
                break
        return np.array(out, dtype=np.int64)


