"""Tests for llmcourse.attention and llmcourse.copy_task (Chapter 5), the attention widget and plots.

Our attention, written from matrix products and a softmax, must give PyTorch's fused
``scaled_dot_product_attention`` numbers to 1e-5 in float32 and 1e-10 in float64, for several
shapes, masks and head counts. The multi-head module's two paths (fused, and ours with weights)
agree; its key/value cache gives the uncached output; bad input gets a message that names shapes.
The copy task (look a letter up by content): two attention layers learn it, a full-context network
of the same size does not; the second layer looks at the letter to copy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from llmcourse.attention import (CausalSelfAttention, LayerKVCache, causal_mask, merge_heads,
                                 record_attention,
                                 scaled_dot_product_attention, split_heads)

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
# (leading dims, T_q, T_k, d, d_v)
SHAPES = [((), 1, 1, 1, 1), ((), 5, 5, 8, 8), ((3,), 7, 7, 4, 6), ((2, 4), 6, 9, 16, 16),
          ((2, 3), 1, 12, 8, 5), ((1, 8), 33, 33, 32, 32)]


def _qkv(lead, t_q, t_k, d, d_v, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*lead, t_q, d, generator=g, dtype=dtype),
            torch.randn(*lead, t_k, d, generator=g, dtype=dtype),
            torch.randn(*lead, t_k, d_v, generator=g, dtype=dtype))


def _random_mask(shape, seed=0):
    """A random boolean mask where every row allows at least one key."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(*shape, generator=g) < 0.5
    first = torch.randint(0, shape[-1], shape[:-1], generator=g)
    mask.scatter_(-1, first.unsqueeze(-1), True)
    return mask


# --- scaled_dot_product_attention against PyTorch's ---------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}-{s[1]}x{s[2]}-d{s[3]}")
@pytest.mark.parametrize("mask_kind", ["none", "causal", "random", "broadcast"])
def test_matches_pytorch_sdpa(dtype, shape, mask_kind):
    lead, t_q, t_k, d, d_v = shape
    q, k, v = _qkv(lead, t_q, t_k, d, d_v, dtype)
    if mask_kind == "none":
        mask = None
    elif mask_kind == "causal":          # bottom-right aligned: also right when T_q < T_k
        mask = causal_mask(t_q, t_k)
    elif mask_kind == "random":
        mask = _random_mask((*lead, t_q, t_k))
    else:                                # one mask per batch element, shared by all heads
        mask = _random_mask((*lead[:1], *([1] * (len(lead) - 1)), t_q, t_k), seed=1)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (*lead, t_q, d_v) and weights.shape == (*lead, t_q, t_k)
    assert out.dtype == dtype
    assert (out - expected).abs().max().item() < TOL[dtype]
    assert torch.allclose(weights.sum(-1), torch.ones((), dtype=dtype), atol=TOL[dtype])
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()
    # the weights are softmax(q k^T / sqrt(d)) with the masked scores removed
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    assert torch.allclose(weights, torch.softmax(scores, -1), atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_square_causal_mask_equals_is_causal(dtype):
    q, k, v = _qkv((2, 3), 10, 10, 8, 8, dtype, seed=3)
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(10))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (out - expected).abs().max().item() < TOL[dtype]
    assert torch.equal(weights[0, 0].triu(1), torch.zeros(10, 10, dtype=dtype))


def test_is_causal_aligns_top_left_but_causal_mask_bottom_right():
    """With fewer queries than keys, SDPA's is_causal hides keys the last query should see."""
    q, k, v = _qkv((1,), 2, 5, 4, 4, torch.float64, seed=4)
    ours, _ = scaled_dot_product_attention(q, k, v, causal_mask(2, 5))
    explicit = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(2, 5))
    top_left = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (ours - explicit).abs().max().item() < 1e-10
    assert (ours - top_left).abs().max().item() > 1e-3
    assert causal_mask(2, 5).tolist() == [[True, True, True, True, False],
                                          [True, True, True, True, True]]


def test_causal_mask_values_and_errors():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False],
                                       [True, True, True]]
    assert causal_mask(1, 4).tolist() == [[True, True, True, True]]
    assert causal_mask(3, 3).dtype == torch.bool
    with pytest.raises(ValueError, match="n_queries=4, n_keys=2"):
        causal_mask(4, 2)
    with pytest.raises(ValueError, match="1 <= n_queries"):
        causal_mask(0)


# --- clear errors --------------------------------------------------------------------------------

def test_mismatched_shapes_are_named():
    q, k, v = _qkv((2,), 4, 6, 8, 8, torch.float32)
    with pytest.raises(ValueError, match=r"q \(2, 4, 8\) and k \(2, 6, 5\)"):
        scaled_dot_product_attention(q, k[..., :5], v)
    with pytest.raises(ValueError, match=r"k \(2, 6, 8\) and v \(2, 5, 8\)"):
        scaled_dot_product_attention(q, k, v[:, :5])
    with pytest.raises(ValueError, match=r"leading.*q \(2, 4, 8\), k \(3, 6, 8\)"):
        scaled_dot_product_attention(q, torch.randn(3, 6, 8), torch.randn(3, 6, 8))
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*\(8\)"):
        scaled_dot_product_attention(torch.randn(8), k, v)
    with pytest.raises(TypeError, match="q must be a torch.Tensor, got ndarray"):
        scaled_dot_product_attention(np.zeros((4, 8)), k, v)


def test_mask_errors():
    q, k, v = _qkv((2,), 4, 6, 8, 8, torch.float32)
    with pytest.raises(ValueError, match=r"mask of shape \(6, 4\) does not fit the scores of "
                                         r"shape \(2, 4, 6\).*\(T_q, T_k\) = \(4, 6\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(6, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not fit"):    # broadcasts, but grows the scores
        scaled_dot_product_attention(q, k, v, torch.ones(3, 2, 4, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean.*torch.float32"):
        scaled_dot_product_attention(q, k, v, torch.ones(4, 6))
    empty = torch.ones(4, 6, dtype=torch.bool)
    empty[2] = False
    with pytest.raises(ValueError, match=r"row \(2,\) of the mask \(shape \(4, 6\)\) allows no "
                                         r"key.*divide by zero"):
        scaled_dot_product_attention(q, k, v, empty)


def test_module_errors():
    with pytest.raises(ValueError, match=r"d_model=10 and n_head=3 \(10 % 3 = 1\)"):
        CausalSelfAttention(10, 3)
    with pytest.raises(ValueError, match="must be >= 1"):
        CausalSelfAttention(8, 0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        CausalSelfAttention(8, 2, dropout=1.0)
    attn = CausalSelfAttention(8, 2)
    with pytest.raises(ValueError, match=r"d_model=8\), got \(2, 5, 6\)"):
        attn(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"got \(5, 8\)"):
        attn(torch.randn(5, 8))
    with pytest.raises(ValueError, match="d_model=10 and n_head=4"):
        split_heads(torch.randn(1, 3, 10), 4)
    with pytest.raises(ValueError, match=r"\(batch, n_head, time, d_head\), got \(3, 4\)"):
        merge_heads(torch.randn(3, 4))


# --- heads and the multi-head module -------------------------------------------------------------

def test_split_and_merge_heads():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 2)
    assert torch.equal(heads[1, 2, 0], x[1, 0, 4:6])       # head 2 holds columns 4 and 5
    assert torch.equal(merge_heads(heads), x)
    attn = CausalSelfAttention(8, 4)
    assert torch.equal(attn.split_heads(x), heads) and torch.equal(attn.merge_heads(heads), x)


def _by_hand(attn: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """The module's output computed one head at a time from its weights, with loops."""
    d, h, dh = attn.d_model, attn.n_head, attn.d_head
    w, b = attn.qkv.weight, attn.qkv.bias
    outs = []
    for seq in x:
        t = seq.shape[0]
        heads = []
        for i in range(h):
            cols = slice(i * dh, (i + 1) * dh)
            q = seq @ w[:d][cols].T + b[:d][cols]
            k = seq @ w[d:2 * d][cols].T + b[d:2 * d][cols]
            v = seq @ w[2 * d:][cols].T + b[2 * d:][cols]
            scores = q @ k.T / math.sqrt(dh)
            scores = scores.masked_fill(torch.ones(t, t).triu(1).bool(), float("-inf"))
            heads.append(torch.softmax(scores, -1) @ v)
        outs.append(torch.cat(heads, -1) @ attn.proj.weight.T + attn.proj.bias)
    return torch.stack(outs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("d_model,n_head", [(8, 1), (8, 2), (12, 3), (16, 4), (32, 8)])
def test_fused_and_weights_paths_agree_with_a_hand_computation(dtype, d_model, n_head):
    torch.manual_seed(0)
    attn = CausalSelfAttention(d_model, n_head).to(dtype).eval()
    x = torch.randn(3, 7, d_model, dtype=dtype)
    with torch.no_grad():
        fused = attn(x)
        with record_attention(attn) as maps:
            ours = attn(x)
        weights = maps[0]
        hand = _by_hand(attn, x)
    assert fused.shape == ours.shape == (3, 7, d_model)
    assert weights.shape == (3, n_head, 7, 7)
    assert (fused - ours).abs().max().item() < TOL[dtype]
    assert (hand - ours).abs().max().item() < TOL[dtype] * 10
    assert torch.equal(weights.triu(1), torch.zeros_like(weights))   # no peeking ahead
    assert torch.allclose(weights.sum(-1), torch.ones((), dtype=dtype))


@pytest.mark.parametrize("keep_weights", [False, True])
@pytest.mark.parametrize("n_head", [1, 4])
def test_kv_cache_prefill_then_steps_equals_uncached(keep_weights, n_head):
    torch.manual_seed(1)
    attn = CausalSelfAttention(16, n_head).double().eval()
    attn.keep_weights = keep_weights     # our own attention function instead of the fused one
    x = torch.randn(2, 11, 16, dtype=torch.float64)

    def run(part, cache):
        return attn(part, cache=cache)

    with torch.no_grad():
        full = run(x, None)
        cache = LayerKVCache()
        pieces = [run(x[:, :5], cache)]                         # prefill
        for t in range(5, 8):                                    # one token at a time
            pieces.append(run(x[:, t:t + 1], cache))
        pieces.append(run(x[:, 8:], cache))                      # 3 queries, 11 keys
    assert len(cache) == 11 and cache.k.shape == (2, n_head, 11, 16 // n_head)
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-10
    cache.clear()
    assert len(cache) == 0 and cache.k is None


def test_dropout_is_used_in_training_only():
    torch.manual_seed(2)
    attn = CausalSelfAttention(16, 2, dropout=0.5)
    x = torch.randn(2, 6, 16)
    attn.train()
    assert not torch.allclose(attn(x), attn(x))
    attn.eval()
    assert torch.equal(attn(x), attn(x))
    with record_attention(attn):
        with_weights = attn(x)
    assert torch.allclose(attn(x), with_weights, atol=1e-5)


# --- the copy task -------------------------------------------------------------------------------

def test_copy_task_examples():
    from llmcourse.copy_task import IGNORE, CopyTask

    task = CopyTask(story=8, piece=3)
    assert task.vocab_size == 27 and task.seq_len == 12 and list(task.distances) == [4, 5, 6, 7, 8]
    ids = task.encode("abcdefgh|cde")
    assert task.decode(ids) == "abcdefgh|cde" and len(ids) == 12
    inputs, targets = task.sample(50, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (50, 12)
    assert (targets[:, :9] == IGNORE).all() and (targets[:, 9:] >= 0).all()
    assert (inputs[:, 8] == task.sep_id).all()
    for story, piece, target in zip(inputs[:, :8], inputs[:, 9:], targets[:, 9:]):
        assert len(set(story.tolist())) == 8                     # the story's letters differ
        start = story.tolist().index(piece[0].item())
        assert torch.equal(piece, story[start:start + 3])        # the piece is a run of the story
        assert torch.equal(target, story[start + 1:start + 4])   # the letter after each one
    for bad, message in [("abcdefg|cd", "story must have 8 different letters, got 7"),
                         ("abcdefgg|cd", r"got 8 letters \(7 different\)"),
                         ("abcdefgh|ce", "consecutive letters of the story"),
                         ("abcdefgh|gh", "before its last letter"),
                         ("abcdefgh|cdef", "1 to 3 consecutive"),
                         ("abcdefgh", "one '\\|'"), ("abCdefgh|d", r"\['C'\]")]:
        with pytest.raises(ValueError, match=message):
            task.encode(bad)
    with pytest.raises(ValueError, match="piece \\+ 1 must be shorter than the story"):
        CopyTask(story=4, piece=3)
    with pytest.raises(ValueError, match="story must be a positive int"):
        CopyTask(story=0)


@pytest.fixture(scope="module")
def copy_models():
    from llmcourse.copy_task import (AttentionOnlyLM, CopyTask, WindowMLP, n_parameters,
                                     train_next_token)

    torch.set_num_threads(1)
    task = CopyTask(story=16, piece=6)
    torch.manual_seed(0)
    model = AttentionOnlyLM(task.vocab_size, task.seq_len, d_model=32, n_head=2, n_layer=2)
    train_next_token(model, task, steps=400, seed=0)
    torch.manual_seed(0)
    baseline = WindowMLP.with_parameters(n_parameters(model), task.vocab_size,
                                         window=task.seq_len, d_embed=8)
    train_next_token(baseline, task, steps=400, seed=0)
    return task, model, baseline


def test_attention_looks_up_and_the_full_context_network_does_not(copy_models):
    from llmcourse.copy_task import accuracy_by_distance, copy_accuracy, n_parameters

    task, model, baseline = copy_models
    assert baseline.window == task.seq_len                      # it sees the whole input
    assert abs(n_parameters(baseline) - n_parameters(model)) < 0.02 * n_parameters(model)
    assert copy_accuracy(model, task) >= 0.97
    assert copy_accuracy(baseline, task) < 0.25
    by_distance = accuracy_by_distance(model, task)
    assert list(by_distance) == list(task.distances)
    assert min(by_distance.values()) >= 0.9                      # at every distance
    assert max(accuracy_by_distance(baseline, task).values()) < 0.3


def test_accuracy_by_distance_counts_each_example_once():
    from llmcourse.copy_task import CopyTask, accuracy_by_distance, copy_accuracy

    task = CopyTask(story=6, piece=2)

    class Oracle(torch.nn.Module):                               # predicts the right letter
        def forward(self, idx):
            logits = torch.zeros(*idx.shape, task.vocab_size)
            for b, row in enumerate(idx.tolist()):
                story = row[:task.story]
                for t in range(task.story + 1, len(row)):
                    logits[b, t, story[story.index(row[t]) + 1]] = 1.0
            return logits

    assert copy_accuracy(Oracle(), task, n=50) == 1.0
    assert accuracy_by_distance(Oracle(), task, n=50) == {3: 1.0, 4: 1.0, 5: 1.0, 6: 1.0}


def test_the_second_layer_looks_at_the_letter_to_copy(copy_models):
    from llmcourse.copy_task import attention_for_example

    task, model, _ = copy_models
    example = "kfqzmaxebrwdjotu|maxebr"
    tokens, maps = attention_for_example(model, task, example)
    assert "".join(tokens) == example
    assert maps.shape == (2, 2, 23, 23)
    story = example[:16]
    first = maps[0].sum(0)                                     # layer 1, both heads
    for p in range(1, 16):                                     # over the story: the previous one
        assert first[p].argmax().item() == p - 1
    second = maps[1].sum(0)
    for p in range(17, 23):                                    # the piece: the letter after its own
        assert second[p].argmax().item() == story.index(example[p]) + 1


# --- the widget and the plots --------------------------------------------------------------------

def test_attention_widget_follows_the_reader(copy_models):
    from llmcourse.copy_task import attention_for_example
    from llmcourse.widgets import attention_map_widget

    task, model, _ = copy_models
    examples = ["kfqzmaxebrwdjotu|maxebr", "abcdefghijklmnop|hij"]
    widget = attention_map_widget(lambda e: attention_for_example(model, task, e), examples,
                                  n_layer=2, n_head=2)
    assert widget.tokens == list(examples[0])
    assert np.allclose(widget.weights, attention_for_example(model, task, examples[0])[1][0, 0])
    widget.select(layer=1, head=1)
    assert np.allclose(widget.weights, attention_for_example(model, task, examples[0])[1][1, 1])
    assert "layer 2, head 2" in widget.map.value and "<table" in widget.map.value
    assert widget.map.value.count("masked\"") == 23 * 22 // 2  # the future, drawn grey
    widget.set_sentence(examples[1])
    assert widget.tokens == list(examples[1]) and widget.message.value == ""
    widget.set_sentence("abc|a")                               # a reader typing: story too short
    assert "story must have 16 different letters" in widget.message.value
    assert widget.tokens == list(examples[1])                  # the last map stays
    with pytest.raises(ValueError, match="head must be 0..1, got 2"):
        widget.select(head=2)
    with pytest.raises(TypeError, match="attention must be a function"):
        attention_map_widget("not a function", examples, 1, 2)


def test_widget_with_several_layers_and_a_bad_attention_function():
    from llmcourse.widgets import attention_map_widget

    maps = np.random.default_rng(0).random((3, 2, 4, 4))
    widget = attention_map_widget(lambda s: (s.split(), maps), ["a b c d"], n_layer=3,
                                  n_head=2)
    widget.select(layer=2, head=1)
    assert np.array_equal(widget.weights, maps[2, 1])
    assert len(widget.layer.options) == 3
    with pytest.raises(ValueError, match=r"shape \(n_layer, n_head, T, T\) = \(3, 2, 2, 2\)"):
        widget.set_sentence("a b")


def test_attention_plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmcourse.plots import plot_attention, plot_attention_heads

    w = torch.softmax(torch.randn(3, 4), -1)
    fig = plot_attention(w, ["a", "b", "c"], ["w", "x", "y", "z"], annotate=True)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "z"]
    assert np.allclose(ax.images[0].get_array(), w.numpy())
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(len\(queries\), len\(keys\)\) = \(2, 4\), got \(3, 4\)"):
        plot_attention(w, ["a", "b"], ["w", "x", "y", "z"])
    fig = plot_attention_heads(np.stack([w[:, :3]] * 2), ["a", "b", "c"])
    assert [a.get_title() for a in fig.axes] == ["head 1", "head 2"]
    plt.close(fig)


def test_masked_cells_are_drawn_apart_from_zero_weight():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmcourse.attention import causal_mask
    from llmcourse.plots import plot_attention
    from llmcourse.widgets import attention_map_html

    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])  # a zero that may be seen
    fig = plot_attention(w, ["a", "b", "c"], annotate=True, mask=causal_mask(3))
    ax = fig.axes[0]
    image = ax.images[0].get_array()
    assert image.mask.tolist() == (~causal_mask(3)).tolist()   # the future is not painted as 0
    assert len(ax.patches) == 3                                # ... but hatched grey
    assert sorted(t.get_text() for t in ax.texts) == ["0.00"] * 2 + ["0.50"] * 2 + ["1.00"] * 2
    plt.close(fig)
    with pytest.raises(ValueError, match=r"mask must be a boolean array of shape \(3, 3\)"):
        plot_attention(w, ["a", "b", "c"], mask=np.ones((3, 3)))
    html = attention_map_html(w.numpy(), ["a", "b", "c"], mask=causal_mask(3).numpy())
    assert html.count('masked"') == 3 and "grey = masked" in html
    assert "masked" not in attention_map_html(w.numpy(), ["a", "b", "c"])
