"""Tests for llmcourse.ngram: counts, probabilities, smoothing, losses, sampling and errors.

The models are checked against small brute-force implementations written with dictionaries.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.ngram import (CharVocab, KneserNeyModel, NGramModel, as_token_array,
                             split_train_val)


# ---- brute-force references -----------------------------------------------------------------


def brute_counts(tokens, n):
    """(context tuple) -> Counter of next tokens, over positions i >= n - 1."""
    table = defaultdict(Counter)
    for i in range(n - 1, len(tokens)):
        table[tuple(tokens[i - n + 1:i])][tokens[i]] += 1
    return table


def brute_addk_prob(table, context, w, k, V):
    row = table.get(tuple(context), Counter())
    total = sum(row.values())
    if total + k * V == 0:
        return 1.0 / V
    return (row[w] + k) / (total + k * V)


def brute_addk_loss(train, text, n, k, V):
    table = brute_counts(list(train), n)
    logs = []
    for i in range(n - 1, len(text)):
        p = brute_addk_prob(table, text[i - n + 1:i], text[i], k, V)
        logs.append(math.log(p) if p > 0 else -math.inf)
    return -sum(logs) / len(logs)


def brute_kneser_ney(train, n, V, D):
    """Interpolated Kneser-Ney with one fixed discount D, written the slow, obvious way."""
    train = list(train)
    positions = range(n - 1, len(train))
    # raw counts of the longest window; continuation counts for shorter windows
    counts = {}
    for L in range(n):
        if L == n - 1:
            c = defaultdict(Counter)
            for i in positions:
                c[tuple(train[i - L:i])][train[i]] += 1
        else:
            seen = set()
            for i in positions:
                seen.add((train[i - L - 1], tuple(train[i - L:i]), train[i]))
            c = defaultdict(Counter)
            for _, ctx, w in seen:
                c[ctx][w] += 1
        counts[L] = c

    def prob(context, w):
        context = tuple(context)
        p = 1.0 / V
        for L in range(n):
            ctx = context[len(context) - L:] if L else ()
            row = counts[L].get(ctx)
            if not row:
                continue
            total = sum(row.values())
            p = (max(row[w] - D, 0) + D * len(row) * p) / total
        return p

    return prob


# ---- the vocabulary ---------------------------------------------------------------------------


def test_char_vocab_round_trip_and_order():
    vocab = CharVocab.from_text("hello, wörld")
    assert vocab.chars == sorted(set("hello, wörld"))
    assert vocab.size == len(vocab) == 10
    ids = vocab.encode("wörld")
    assert ids.dtype == np.int64
    assert ids.tolist() == [vocab.stoi[c] for c in "wörld"]
    assert vocab.decode(ids) == "wörld"
    assert vocab.decode([]) == ""


def test_char_vocab_errors():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"character 'z' at position 2 is not in the vocabulary of 3"):
        vocab.encode("abz")
    with pytest.raises(ValueError, match=r"ids in \[0, 3\).*got 3 at position 1"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="empty text"):
        CharVocab.from_text("")
    with pytest.raises(TypeError, match="str"):
        vocab.encode([1, 2])
    with pytest.raises(ValueError, match="distinct"):
        CharVocab(["a", "a"])


def test_split_train_val_keeps_the_end_for_validation():
    train, val = split_train_val(np.arange(100), 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    train, val = split_train_val("abcdefghij", 0.2)
    assert (train, val) == ("abcdefgh", "ij")
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val(np.arange(10), 1.5)


# ---- counting and add-k probabilities ----------------------------------------------------------


def test_bigram_by_hand():
    # text: a b a c a b   (a=0, b=1, c=2): after a -> b, c, b ; after b -> a ; after c -> a
    m = NGramModel(2, vocab_size=3).fit([0, 1, 0, 2, 0, 1])
    assert m.counts([0]).tolist() == [0, 2, 1]
    assert m.counts([1]).tolist() == [1, 0, 0]
    np.testing.assert_allclose(m.next_token_probs([0]), [0, 2 / 3, 1 / 3])
    np.testing.assert_array_equal(m.count_table(), [[0, 2, 1], [1, 0, 0], [1, 0, 0]])
    assert m.num_contexts == 3
    # add-one smoothing: (count + 1) / (3 + 3)
    m.k = 1.0
    np.testing.assert_allclose(m.next_token_probs([0]), [1 / 6, 3 / 6, 2 / 6])
    # loss of "a b a" = -(log P(b|a) + log P(a|b)) / 2 = -(log 3/6 + log 2/4) / 2
    assert m.loss([0, 1, 0]) == pytest.approx(-(math.log(3 / 6) + math.log(2 / 4)) / 2)
    assert m.perplexity([0, 1, 0]) == pytest.approx(2.0)


def test_context_counts_count_each_window():
    # text a b a c a b, n = 3: the windows before positions 2..5 are ab, ba, ac, ca, once each
    tokens = [0, 1, 0, 2, 0, 1]
    m = NGramModel(3, vocab_size=3).fit(tokens)
    assert sorted(m.context_counts().tolist()) == [1, 1, 1, 1]
    m = NGramModel(2, vocab_size=3).fit(tokens)
    assert sorted(m.context_counts().tolist()) == [1, 1, 3]   # after a: 3 times, b: once, c: once
    assert m.context_counts().sum() == len(tokens) - 1
    rng = np.random.default_rng(0)
    text = rng.integers(0, 4, 500)
    m = NGramModel(4, vocab_size=4).fit(text)
    brute = brute_counts(text.tolist(), 4)
    assert sorted(m.context_counts().tolist()) == sorted(sum(c.values()) for c in brute.values())


def test_unigram_is_token_frequencies():
    m = NGramModel(1, vocab_size=4).fit([0, 0, 1, 3, 0, 1])
    np.testing.assert_allclose(m.next_token_probs([]), [3 / 6, 2 / 6, 0, 1 / 6])
    np.testing.assert_array_equal(m.count_table(), [3, 2, 0, 1])
    assert m.num_contexts == 1


def test_zero_counts_make_the_loss_infinite_and_add_k_fixes_it():
    m = NGramModel(2, vocab_size=3).fit([0, 1, 0, 1, 0])
    assert m.loss([0, 2]) == math.inf  # "c" never followed "a"
    m.k = 0.5
    assert m.loss([0, 2]) == pytest.approx(-math.log(0.5 / (2 + 1.5)))


def test_unseen_context_gets_the_uniform_distribution():
    m = NGramModel(3, vocab_size=4).fit([0, 1, 2, 0, 1, 3])
    np.testing.assert_allclose(m.next_token_probs([3, 3]), np.full(4, 0.25))
    assert m.counts([3, 3]).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("k", [0.0, 0.01, 1.0])
def test_loss_matches_brute_force(n, k):
    rng = np.random.default_rng(n)
    V = 5
    train = rng.integers(0, V, 400)
    test = np.concatenate([train[:50], rng.integers(0, V, 60)])
    m = NGramModel(n, V, k=k).fit(train)
    assert m.loss(test) == pytest.approx(brute_addk_loss(train, test, n, k, V))
    assert m.loss(train) == pytest.approx(brute_addk_loss(train, train, n, k, V))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_count_table_matches_brute_force(n):
    rng = np.random.default_rng(0)
    V = 4
    tokens = rng.integers(0, V, 300)
    table = NGramModel(n, V).fit(tokens).count_table()
    assert table.shape == (V,) * n
    expected = np.zeros((V,) * n, dtype=np.int64)
    for ctx, row in brute_counts(list(tokens), n).items():
        for w, c in row.items():
            expected[ctx + (w,)] = c
    np.testing.assert_array_equal(table, expected)
    assert table.sum() == len(tokens) - n + 1


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_probabilities_sum_to_one_for_every_context(n):
    rng = np.random.default_rng(1)
    V = 6
    model = NGramModel(n, V, k=0.1).fit(rng.integers(0, V, 500))
    for _ in range(20):
        p = model.next_token_probs(rng.integers(0, V, n - 1))
        assert p.shape == (V,)
        assert p.sum() == pytest.approx(1.0) and p.min() > 0


def test_large_vocabulary_does_not_overflow():
    # BPE-sized vocabulary and a long window: the window codes must still be exact.
    rng = np.random.default_rng(2)
    V = 50257
    train = rng.integers(0, 40, 3000) * 1000 + 257  # ids spread over the whole range
    m = NGramModel(6, V, k=0.5).fit(train)
    assert m.loss(train[:300]) == pytest.approx(brute_addk_loss(train, train[:300], 6, 0.5, V))


def test_accepts_lists_arrays_and_tensors():
    torch = pytest.importorskip("torch")
    tokens = [0, 1, 2, 1, 0, 2, 2, 1]
    a = NGramModel(2, 3, k=0.1).fit(tokens).loss(tokens)
    b = NGramModel(2, 3, k=0.1).fit(np.array(tokens, dtype=np.int32)).loss(np.array(tokens))
    c = NGramModel(2, 3, k=0.1).fit(torch.tensor(tokens)).loss(torch.tensor(tokens))
    assert a == pytest.approx(b) and a == pytest.approx(c)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=3, max_size=60), st.integers(1, 3),
       st.sampled_from([0.0, 0.3, 2.0]))
def test_property_loss_equals_brute_force(tokens, n, k):
    m = NGramModel(n, 4, k=k).fit(tokens)
    assert m.loss(tokens) == pytest.approx(brute_addk_loss(tokens, tokens, n, k, 4))


# ---- Kneser-Ney --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_kneser_ney_matches_brute_force(n):
    rng = np.random.default_rng(n)
    V = 5
    train = rng.integers(0, V, 300)
    test = np.concatenate([train[:40], rng.integers(0, V, 40)])
    model = KneserNeyModel(n, V, discounts=0.75).fit(train)
    prob = brute_kneser_ney(train, n, V, 0.75)
    expected = [math.log(prob(test[i - n + 1:i], test[i])) for i in range(n - 1, len(test))]
    np.testing.assert_allclose(model.token_log_probs(test), expected, rtol=1e-10)


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_kneser_ney_distributions_sum_to_one(n):
    rng = np.random.default_rng(3)
    V = 7
    text = np.tile(rng.integers(0, V, 30), 5)
    text[::11] = rng.integers(0, V, len(text[::11]))
    model = KneserNeyModel(n, V).fit(text)
    contexts = [text[:n - 1], text[20:19 + n], rng.integers(0, V, n - 1)]  # seen and unseen
    for ctx in contexts:
        p = model.next_token_probs(ctx)
        assert p.sum() == pytest.approx(1.0) and p.min() > 0
        # the scoring path (no final renormalisation) gives the same numbers
        rows = [np.append(ctx, w) for w in range(V)]
        scored = np.exp([model.token_log_probs(r)[-1] for r in rows])
        np.testing.assert_allclose(scored, p, rtol=1e-10)


def test_kneser_ney_continuation_counts():
    # "x" follows only "a", but often: as a unigram, Kneser-Ney counts it once (one context).
    vocab = CharVocab.from_text("abcx")
    tokens = vocab.encode("axaxaxaxaxbcab")
    model = KneserNeyModel(2, vocab.size, discounts=0.5).fit(tokens)
    kn_unigram = model._kn_counts[0]
    # distinct left neighbours: of a -> {x, c}, of b -> {x, a}, of c -> {b}, of x -> {a}
    assert dict(zip(vocab.decode(model._pair_keys[0] % vocab.size), kn_unigram.tolist())) == {
        "a": 2, "b": 2, "c": 1, "x": 1}


def test_modified_discounts_follow_chen_and_goodman():
    c = np.array([1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [9])
    y = 10 / (10 + 2 * 5)
    expected = [1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5, 3 - 4 * y * 2 / 3]
    np.testing.assert_allclose(KneserNeyModel._modified_discounts(c), expected)


def _shakespeare_or_skip(num_chars):
    import os

    from llmcourse.data import DATASETS, cache_dir

    name = DATASETS["tinyshakespeare"].filename
    for folder in (os.environ.get("LLMCOURSE_DATA_DIR"), cache_dir()):
        if folder and os.path.isfile(os.path.join(folder, name)):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                return f.read(num_chars)
    pytest.skip("Tiny Shakespeare is not available offline (set LLMCOURSE_DATA_DIR)")


def test_kneser_ney_beats_every_add_k_model_on_real_text():
    text = _shakespeare_or_skip(200_000)
    vocab = CharVocab.from_text(text)
    train, val = split_train_val(vocab.encode(text), 0.1)
    best_add_k = min(NGramModel(n, vocab.size, k=k).fit(train).loss(val)
                     for n in range(1, 7) for k in (0.01, 0.03, 0.1, 0.3, 1.0))
    kneser_ney = KneserNeyModel(6, vocab.size).fit(train).loss(val)
    assert kneser_ney < best_add_k - 0.1


# ---- sampling ----------------------------------------------------------------------------------


def test_sampling_follows_a_deterministic_chain():
    m = NGramModel(2, 3).fit([0, 1, 2, 0, 1, 2, 0])  # a -> b -> c -> a, always
    assert m.sample([0], 5, rng=0).tolist() == [1, 2, 0, 1, 2]
    assert m.sample([0], 5, rng=0, stop_token=0).tolist() == [1, 2, 0]
    assert m.sample([2, 2, 1], 2, rng=0).tolist() == [2, 0]  # only the last n-1 tokens matter


def test_sampling_is_reproducible_and_matches_the_probabilities():
    m = NGramModel(1, 3).fit([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])  # P = .5, .3, .2
    a = m.sample([], 20000, rng=np.random.default_rng(5))
    b = m.sample([], 20000, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.bincount(a, minlength=3) / len(a), [0.5, 0.3, 0.2], atol=0.015)
    assert not np.array_equal(a, m.sample([], 20000, rng=6))


def test_sampling_never_draws_an_impossible_token():
    m = NGramModel(2, 4).fit([0, 1, 0, 3, 0, 1, 0, 3])  # after 0: only 1 or 3
    after_zero = [m.sample([0], 1, rng=s)[0] for s in range(200)]
    assert set(after_zero) == {1, 3}


def test_kneser_ney_samples_are_reproducible():
    vocab = CharVocab.from_text("to be or not to be, that is the question")
    ids = vocab.encode("to be or not to be, that is the question")
    m = KneserNeyModel(3, vocab.size).fit(ids)
    assert m.sample(ids[:2], 30, rng=1).tolist() == m.sample(ids[:2], 30, rng=1).tolist()


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [NGramModel, KneserNeyModel])
def test_errors_name_what_was_expected(cls):
    with pytest.raises(ValueError, match=r"n must be >= 1 .* got 0"):
        cls(0, 5)
    with pytest.raises(TypeError, match="n must be an integer"):
        cls(2.5, 5)
    with pytest.raises(ValueError, match="vocab_size must be >= 1, got 0"):
        cls(2, 0)
    with pytest.raises(RuntimeError, match="not been fitted"):
        cls(2, 5).loss([0, 1])
    with pytest.raises(ValueError, match="tokens must not be empty, got 0 tokens"):
        cls(2, 5).fit([])
    with pytest.raises(ValueError, match="at least n = 3 tokens, got 2"):
        cls(3, 5).fit([0, 1])
    with pytest.raises(ValueError, match=r"ids in \[0, 5\) .*got 7 at position 2"):
        cls(2, 5).fit([0, 1, 7])
    with pytest.raises(ValueError, match=r"got -1 at position 0"):
        cls(2, 5).fit([-1, 1, 2])
    with pytest.raises(TypeError, match="got a str"):
        cls(2, 5).fit("hello")
    with pytest.raises(TypeError, match="integer token ids, got dtype float64"):
        cls(2, 5).fit([0.0, 1.0])
    m = cls(3, 5).fit([0, 1, 2, 3, 4, 0, 1])
    with pytest.raises(ValueError, match=r"context of n - 1 = 2 tokens, got 1"):
        m.next_token_probs([0])
    with pytest.raises(ValueError, match=r"context must be ids in \[0, 5\)"):
        m.next_token_probs([0, 9])
    with pytest.raises(ValueError, match=r"at least n = 3 tokens .* got 2"):
        m.loss([0, 1])
    with pytest.raises(ValueError, match=r"prompt of at least n - 1 = 2 tokens to start from, got 1"):
        m.sample([0], 5, rng=0)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        m.loss(np.zeros((2, 2), dtype=int))


def test_add_k_rejects_negative_k():
    with pytest.raises(ValueError, match="k must be a finite number >= 0, got -1.0"):
        NGramModel(2, 3, k=-1)
    m = NGramModel(2, 3)
    with pytest.raises(TypeError, match="k must be a number"):
        m.k = "big"


def test_count_table_refuses_huge_tables():
    m = NGramModel(4, 200).fit(np.arange(200))
    with pytest.raises(ValueError, match=r"V\*\*n = 200\*\*4"):
        m.count_table()


def test_as_token_array_checks_range():
    assert as_token_array([1, 2], 3).dtype == np.int64
    with pytest.raises(ValueError, match=r"ids in \[0, 3\) .*got 3 at position 0"):
        as_token_array([3], 3)


def test_docstring_examples_run():
    import doctest

    import llmcourse.ngram
    import llmcourse.vocab

    results = [doctest.testmod(m) for m in (llmcourse.ngram, llmcourse.vocab)]
    assert sum(r.attempted for r in results) >= 6 and sum(r.failed for r in results) == 0
