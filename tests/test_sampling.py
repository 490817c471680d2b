"""llmcourse.sampling: the filters against an independent pure-Python reference, the draw rule,
greedy ties, clear errors, and the generation loop with and without the key/value cache."""

from __future__ import annotations

import math
import random

import pytest
import torch

from llmcourse.sampling import (apply_temperature, greedy_next_token, next_token_probs,
                                sample_from_probs, sample_next_token, top_k_filter, top_p_filter)

# --------------------------------------------------------------------------------------------
# An independent reference, written differently: plain Python floats, and each rule stated per
# token ("fewer than k tokens are strictly larger", "the tokens strictly more likely than this one
# hold less than p") instead of by sorting and cutting.
# --------------------------------------------------------------------------------------------


def ref_softmax(xs):
    finite = [x for x in xs if x != -math.inf]
    top = max(finite)
    es = [0.0 if x == -math.inf else math.exp(x - top) for x in xs]
    total = math.fsum(es)
    return [e / total for e in es]


def ref_top_k_kept(xs, k):
    return [sum(1 for y in xs if y > x) < k for x in xs]


def ref_top_p_kept(xs, p):
    probs = ref_softmax(xs)
    return [math.fsum(q for q in probs if q > pi) < p and pi > 0 for pi in probs]


def ref_distribution(xs, temperature=1.0, top_k=None, top_p=None):
    xs = [x / temperature for x in xs]
    if top_k is not None:
        xs = [x if keep else -math.inf for x, keep in zip(xs, ref_top_k_kept(xs, top_k))]
    if top_p is not None:
        xs = [x if keep else -math.inf for x, keep in zip(xs, ref_top_p_kept(xs, top_p))]
    return ref_softmax(xs)


def random_rows(seed, n_rows=40, ties=False):
    rng = random.Random(seed)
    rows = []
    for _ in range(n_rows):
        v = rng.randint(2, 30)
        if ties:   # few distinct values: many ties, also at the boundaries
            rows.append([float(rng.randint(-2, 2)) for _ in range(v)])
        else:
            rows.append([rng.gauss(0, 2.5) for _ in range(v)])
    return rows


def kept(filtered):
    return torch.isfinite(filtered).tolist()


# --------------------------------------------------------------------------------------------
# Filters against the reference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ties", [False, True])
def test_top_k_keeps_what_the_reference_keeps(ties):
    for row in random_rows(1 + ties, ties=ties):
        for k in range(1, len(row) + 3):
            got = top_k_filter(torch.tensor(row, dtype=torch.float64), k)
            assert kept(got) == ref_top_k_kept(row, k), (row, k)
            assert torch.equal(got[torch.isfinite(got)],
                               torch.tensor(row, dtype=torch.float64)[torch.isfinite(got)])


@pytest.mark.parametrize("ties", [False, True])
def test_top_p_keeps_what_the_reference_keeps(ties):
    rng = random.Random(7)
    for row in random_rows(3 + ties, ties=ties):
        for p in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] + [rng.random() for _ in range(5)]:
            p = max(p, 1e-9)
            got = top_p_filter(torch.tensor(row, dtype=torch.float64), p)
            assert kept(got) == ref_top_p_kept(row, p), (row, p)


@pytest.mark.parametrize("ties", [False, True])
def test_combined_distribution_matches_the_reference(ties):
    rng = random.Random(11 + ties)
    for row in random_rows(5 + ties, ties=ties):
        for _ in range(6):
            t = rng.choice([0.3, 0.7, 1.0, 1.6, 3.0])
            k = rng.choice([None, 1, 2, 5, 50])
            p = rng.choice([None, 0.2, 0.5, 0.8, 0.95, 1.0])
            got = next_token_probs(torch.tensor(row, dtype=torch.float64), temperature=t, top_k=k, top_p=p)
            want = torch.tensor(ref_distribution(row, t, k, p), dtype=torch.float64)
            assert torch.equal(got > 0, want > 0), (row, t, k, p)
            assert torch.allclose(got, want, rtol=0, atol=1e-12), (row, t, k, p)


def test_the_order_is_temperature_then_top_k_then_top_p():
    # top-p before top-k would keep a different set: check against the documented order only
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0])
    probs = next_token_probs(logits, temperature=2.0, top_k=3, top_p=0.6)
    scaled = [x / 2.0 for x in logits.tolist()]
    after_k = [x if keep else -math.inf for x, keep in zip(scaled, ref_top_k_kept(scaled, 3))]
    after_p = [x if keep else -math.inf for x, keep in zip(after_k, ref_top_p_kept(after_k, 0.6))]
    assert probs.tolist() == pytest.approx(ref_softmax(after_p), abs=1e-12)
    assert (probs > 0).tolist() == [True, True, False, False, False]


def test_documented_tie_rules_on_small_examples():
    # top-k: every token tied with the k-th largest value stays (here 3 survive k = 2)
    assert kept(top_k_filter(torch.tensor([1.0, 3.0, 2.0, 2.0, 0.0]), 2)) == [
        False, True, True, True, False]
    assert kept(top_k_filter(torch.tensor([5.0, 5.0, 5.0]), 1)) == [True, True, True]
    # top-p: equal probabilities 0.25 x 4; p = 0.3 is reached at the 2nd token, whose
    # probability 0.25 every token shares: all four stay, whatever the sort order
    assert kept(top_p_filter(torch.zeros(4), 0.3)) == [True] * 4
    # 0.5, 0.25, 0.25: p = 0.6 is reached inside the tie, both tied tokens stay
    logits = torch.log(torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64))
    assert kept(top_p_filter(logits, 0.6)) == [True, True, True]
    assert kept(top_p_filter(logits, 0.5)) == [False, True, False]
    # p = 1 keeps everything, k beyond the vocabulary too
    assert kept(top_p_filter(torch.tensor([10.0, -30.0]), 1.0)) == [True, True]
    assert kept(top_k_filter(torch.tensor([1.0, 2.0]), 10)) == [True, True]


def test_filters_work_row_by_row_on_batches():
    rows = torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    assert kept(top_k_filter(rows, 2)) == [[False, False, True, True], [True, True, False, False]]
    for i in range(2):
        assert torch.equal(top_p_filter(rows, 0.5)[i], top_p_filter(rows[i], 0.5))
        assert torch.equal(next_token_probs(rows, 0.8, 3, 0.9)[i],
                           next_token_probs(rows[i], 0.8, 3, 0.9))


def test_temperature_divides_and_sharpens():
    logits = torch.tensor([2.0, 1.0, 0.0])
    assert apply_temperature(logits, 0.5).tolist() == [4.0, 2.0, 0.0]
    cold, warm = next_token_probs(logits, 0.1), next_token_probs(logits, 10.0)
    assert cold[0] > 0.99 and warm.max() - warm.min() < 0.1
    assert next_token_probs(logits).tolist() == pytest.approx(ref_softmax([2.0, 1.0, 0.0]))


def test_already_masked_logits_stay_impossible():
    logits = torch.tensor([0.0, -math.inf, 1.0, -math.inf])
    for k, p in [(None, None), (3, None), (None, 1.0), (4, 0.99)]:
        probs = next_token_probs(logits, 1.3, k, p)
        assert probs[1] == 0 and probs[3] == 0 and probs.sum().item() == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Drawing a token
# --------------------------------------------------------------------------------------------


def test_the_draw_follows_the_documented_rule():
    probs = torch.tensor([0.1, 0.0, 0.4, 0.2, 0.3], dtype=torch.float64)
    g, twin = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(200):
        got = sample_from_probs(probs, generator=g)
        u = torch.rand(1, 1, generator=twin, dtype=torch.float64).item()
        running, want = 0.0, None
        for i, q in enumerate(probs.tolist()):
            running += q
            if running > u * 1.0:
                want = i
                break
        assert got == want


def test_sampling_matches_the_distribution_and_never_draws_a_removed_token():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    g = torch.Generator().manual_seed(0)
    n = 20_000
    draws = sample_next_token(logits.expand(n, -1), temperature=0.8, top_k=4, generator=g)
    assert draws.shape == (n,) and draws.dtype == torch.long
    freq = torch.bincount(draws, minlength=6).double() / n
    probs = next_token_probs(logits, 0.8, 4)
    assert freq[4] == 0 and freq[5] == 0
    assert torch.allclose(freq, probs, atol=0.015)


def test_a_seeded_generator_repeats_its_draws():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))
    a = [sample_next_token(logits, 1.2, 20, 0.9, torch.Generator().manual_seed(5))
         for _ in range(3)]
    g = torch.Generator().manual_seed(9)
    seq1 = [sample_next_token(logits, generator=g) for _ in range(30)]
    g = torch.Generator().manual_seed(9)
    seq2 = [sample_next_token(logits, generator=g) for _ in range(30)]
    assert a[0] == a[1] == a[2] and isinstance(a[0], int)
    assert seq1 == seq2 and len(set(seq1)) > 5


def test_greedy_takes_the_largest_and_the_smallest_id_on_a_tie():
    assert greedy_next_token(torch.tensor([0.1, 2.0, -1.0])) == 1
    assert greedy_next_token(torch.tensor([1.0, 3.0, 3.0, 0.0, 3.0])) == 1
    assert greedy_next_token([[0.0, 0.0], [1.0, 2.0]]).tolist() == [0, 1]
    assert sample_next_token(torch.tensor([0.0, 5.0, 1.0]), top_k=1) == 1


# --------------------------------------------------------------------------------------------
# Clear errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(temperature=0), ValueError, "temperature must be a finite number > 0, got 0"),
    (dict(temperature=-1.0), ValueError, "greedy"),
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature must be a number"),
    (dict(top_k=0), ValueError, "top_k must be >= 1"),
    (dict(top_k=-3), ValueError, "got -3"),
    (dict(top_k=2.5), TypeError, "top_k must be an int"),
    (dict(top_k=True), TypeError, "top_k must be an int"),
    (dict(top_p=0.0), ValueError, "top_p must be in (0, 1]"),
    (dict(top_p=1.5), ValueError, "got 1.5"),
    (dict(top_p=-0.2), ValueError, "top_p"),
    (dict(top_p="0.5"), TypeError, "top_p must be a number"),
])
def test_bad_settings_raise_clear_errors(kwargs, error, words):
    with pytest.raises(error, match=None) as info:
        sample_next_token(torch.zeros(5), **kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize("logits, error, words", [
    (torch.zeros(0), ValueError, "vocab >= 1"),
    (torch.zeros(2, 3, 4), ValueError, "got shape (2, 3, 4)"),
    (torch.tensor([0.0, float("nan")]), ValueError, "nan"),
    (torch.tensor([0.0, float("inf")]), ValueError, "+inf"),
    (torch.tensor([-math.inf, -math.inf]), ValueError, "all -inf"),
    (torch.tensor([True, False]), TypeError, "real numbers"),
    ("abc", TypeError, "numbers"),
])
def test_bad_logits_raise_clear_errors(logits, error, words):
    with pytest.raises(error) as info:
        sample_next_token(logits)
    assert words in str(info.value)
    with pytest.raises(error):
        greedy_next_token(logits)


# --------------------------------------------------------------------------------------------
# The generation loop, with and without the key/value cache
# --------------------------------------------------------------------------------------------

from llmcourse.checkpoint import load_pretrained  # noqa: E402
from llmcourse.gpt import GPT, GPTConfig  # noqa: E402
from llmcourse.sampling import generate, generate_many, window_start  # noqa: E402

BLOCK = 16


@pytest.fixture(scope="module")
def tiny():
    """A small random GPT whose weights are scaled up, so that its choices vary a lot."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, block_size=BLOCK, n_layer=2, n_head=2, d_model=32,
                          dropout=0.1))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(12.0)
    return model


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer = load_pretrained()
    return model, tokenizer


@torch.no_grad()
def reference_loop(model, prompt, n, choose):
    """The plainest loop: run the model on the context, choose, append. The context is the text
    from ``start`` on; when it no longer fits in block_size tokens, it keeps the last 3/4 block."""
    ids, start, block = list(prompt), 0, model.config.block_size
    for _ in range(n):
        if len(ids) - start > block:
            start = len(ids) - block * 3 // 4
        ids.append(choose(model(torch.tensor([ids[start:]]))[0, -1]))
    return ids[len(prompt):]


def test_the_window_rule():
    assert [window_start(n, 0, 16) for n in (1, 16, 17)] == [0, 0, 5]    # 17 > 16: keep 12
    assert window_start(28, 5, 16) == 16 and window_start(21, 5, 16) == 5
    assert window_start(9, 8, 1) == 8 and window_start(10, 8, 1) == 9   # a window of 1 token
    with pytest.raises(ValueError, match="start <= length"):
        window_start(3, 4, 16)
    with pytest.raises(TypeError, match="block_size must be an int"):
        window_start(3, 0, 16.0)


class CountingModel(torch.nn.Module):
    """Wraps a GPT and records how many tokens each call runs the model on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.calls = model, model.config, []

    def new_cache(self):
        return self.model.new_cache()

    def forward(self, ids, cache=None):
        self.calls.append(ids.shape[1])
        return self.model(ids, cache=cache)


def test_the_cache_is_refilled_only_when_the_context_jumps(tiny):
    counting = CountingModel(tiny)
    out = generate(counting, [1, 2, 3], 300, greedy=True)
    assert out == generate(tiny, [1, 2, 3], 300, greedy=True, use_cache=False)
    refills = [n for n in counting.calls[1:] if n > 1]
    assert counting.calls[0] == 3 and refills == [BLOCK * 3 // 4] * len(refills)
    # the prefill fills 3 of 16 positions; then a refill every 16 - 12 + 1 = 5 steps
    assert len(refills) == (300 - (BLOCK - 3) - 1) // (BLOCK - BLOCK * 3 // 4 + 1) + 1


def test_greedy_is_identical_with_and_without_the_cache_far_past_the_block_size(tiny):
    tiny.eval()
    for prompt in ([3], list(range(13)) * 3):            # shorter and longer than the block
        cached = generate(tiny, prompt, 300, greedy=True)
        uncached = generate(tiny, prompt, 300, greedy=True, use_cache=False)
        assert cached == uncached == reference_loop(tiny, prompt, 300, greedy_next_token)
        assert len(cached) == 300 and len(set(cached)) > 3


@pytest.mark.parametrize("settings", [dict(), dict(temperature=0.7, top_k=5),
                                      dict(temperature=1.5, top_p=0.8)])
def test_seeded_sampling_is_identical_with_and_without_the_cache(tiny, settings):
    runs = [generate(tiny, [1, 2], 300, use_cache=c, generator=torch.Generator().manual_seed(4),
                     **settings) for c in (True, False)]
    g = torch.Generator().manual_seed(4)
    ref = reference_loop(tiny, [1, 2], 300,
                         lambda z: sample_next_token(z[None], generator=g, **settings).item())
    assert runs[0] == runs[1] == ref
    other = generate(tiny, [1, 2], 300, generator=torch.Generator().manual_seed(5), **settings)
    assert other != runs[0]


def test_the_shipped_model_agrees_with_itself_for_300_tokens_past_its_block(shipped):
    model, tok = shipped
    assert model.config.block_size < 300
    prompt = tok.encode("ROMEO:\n")
    greedy = [generate(model, prompt, 300, greedy=True, use_cache=c) for c in (True, False)]
    assert greedy[0] == greedy[1]
    sampled = [generate(model, prompt, 300, temperature=0.9, top_k=40, use_cache=c,
                        generator=torch.Generator().manual_seed(0)) for c in (True, False)]
    assert sampled[0] == sampled[1]
    assert set(tok.decode(sampled[0])) <= set(tok.vocab)


def test_generate_many_is_rows_of_the_same_loop(tiny):
    rows = generate_many(tiny, [5], 4, 40, temperature=1.2, generator=torch.Generator().manual_seed(2))
    same = generate_many(tiny, [5], 4, 40, temperature=1.2, use_cache=False,
                         generator=torch.Generator().manual_seed(2))
    assert rows == same and len(rows) == 4 and all(len(r) == 40 for r in rows)
    assert len({tuple(r) for r in rows}) == 4
    one = generate_many(tiny, [5], 1, 40, generator=torch.Generator().manual_seed(8))
    assert one == [generate(tiny, [5], 40, generator=torch.Generator().manual_seed(8))]


def test_stop_ids_end_generation_after_the_stop_token(tiny):
    full = generate(tiny, [0], 60, greedy=True)
    stop = full[10]
    first = full.index(stop)
    assert generate(tiny, [0], 60, greedy=True, stop_ids=[stop]) == full[:first + 1]
    assert generate(tiny, [0], 60, greedy=True, stop_ids=stop) == full[:first + 1]
    rows = generate_many(tiny, [0], 3, 60, generator=torch.Generator().manual_seed(1),
                         stop_ids={stop})
    assert all(stop not in r[:-1] for r in rows)
    assert all(r[-1] == stop or len(r) == 60 for r in rows)


def test_on_token_sees_every_new_token_and_the_model_mode_is_restored(tiny):
    seen = []
    tiny.train()
    out = generate(tiny, [1], 12, greedy=True, on_token=seen.append)
    assert tiny.training
    tiny.eval()
    assert seen == out == generate(tiny, [1], 12, greedy=True)  # no dropout while generating
    assert generate(tiny, [1], 0) == []


@pytest.mark.parametrize("prompt, kwargs, error, words", [
    ([], {}, ValueError, "the prompt is empty"),
    ([1, 13], {}, ValueError, "token id 13 at position 1 of the prompt is outside the vocabulary"),
    ([-1], {}, ValueError, "outside the vocabulary (ids run from 0 to 12)"),
    ("hello", {}, TypeError, "encode it first"),
    ([1.5], {}, TypeError, "must hold ints"),
    ([1], dict(temperature=0.0), ValueError, "temperature must be a finite number > 0"),
    ([1], dict(top_k=0), ValueError, "top_k must be >= 1"),
    ([1], dict(top_p=1.2), ValueError, "top_p must be in (0, 1]"),
    ([1], dict(greedy=True, temperature=0.5), ValueError, "greedy=True"),
    ([1], dict(stop_ids=[99]), ValueError, "stop_ids must be token ids from 0 to 12"),
    ([1], dict(max_new_tokens=-1), ValueError, "max_new_tokens must be >= 0"),
])
def test_generate_rejects_bad_input_clearly(tiny, prompt, kwargs, error, words):
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(error) as info:
        generate(tiny, prompt, **kwargs)
    assert words in str(info.value)


# --------------------------------------------------------------------------------------------
# The sliders widget (driven as a reader would) and the static grid
# --------------------------------------------------------------------------------------------


def test_the_sampling_widget_follows_its_sliders(shipped):
    import html

    from llmcourse.widgets import sampling_widget

    model, tok = shipped
    w = sampling_widget(model, tok, "ROMEO:\nI will", n_tokens=30, seed=3)
    logits = model(torch.tensor([tok.encode("ROMEO:\nI will")]))[0, -1]
    assert torch.allclose(w.probabilities, next_token_probs(logits), atol=1e-6)
    first = w.sample_text
    assert len(first) == 30 and html.escape(first) in w.sample.value
    w.set(temperature=0.5, top_k=3)
    assert torch.allclose(w.probabilities, next_token_probs(logits, 0.5, 3), atol=1e-6)
    assert int((w.probabilities > 0).sum()) == 3 and "3 of 65 tokens" in w.bars.value
    w.top_p.value = 0.5                                   # a slider moved by hand
    assert torch.allclose(w.probabilities, next_token_probs(logits, 0.5, 3, 0.5), atol=1e-6)
    w.set(temperature=1.0, top_k=65, top_p=1.0)
    assert w.sample_text == first                          # same settings and seed, same text
    w.set(seed=4)
    assert w.sample_text != first
    assert "top_k=None" in repr(w)


def test_the_static_grid_has_one_panel_per_setting(shipped):
    import matplotlib

    matplotlib.use("Agg")
    from llmcourse.plots import plot_sampling_grid

    model, tok = shipped
    logits = model(torch.tensor([tok.encode("ROMEO:\n")]))[0, -1]
    fig = plot_sampling_grid(logits, tok.vocab)
    assert len(fig.axes) == 9
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1].startswith("T = 0.5, top-k = 5: 5 tokens left")
