"""Tests for llmcourse.ladder: the rungs of Chapter 6, signal_sizes and run_ladder."""

import json
import math
import random

import pytest
import torch

import llmcourse.batches
import llmcourse.metrics
from llmcourse.batches import prepare_data
from llmcourse.gpt import GPT, GPTConfig
from llmcourse.ladder import (BASE_MODEL, RUNGS, AttentionOnly, AttentionThenMLP, build_rung,
                              run_ladder, signal_sizes)
from llmcourse.train import TrainConfig, train


def small_config(**kw):
    base = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, d_model=16, dropout=0.0)
    base.update(kw)
    return GPTConfig(**base)


@pytest.fixture(scope="module")
def tiny_text():
    rng = random.Random(0)
    return "".join(rng.choice("abcdefgh \n") for _ in range(4000))


# ---------------------------------------------------------------------------- the rungs


@pytest.mark.parametrize("name, change, block", RUNGS)
def test_ladder_rungs_run(name, change, block):
    torch.manual_seed(0)
    m = build_rung(small_config(**{**change, "n_head": min(change.get("n_head", 2), 2)}), block)
    ids = torch.randint(0, 11, (2, 8))
    loss = m.loss(ids, ids)
    loss.backward()
    assert torch.isfinite(loss)
    has_norm = any(isinstance(x, torch.nn.LayerNorm) for x in m.modules())
    assert has_norm == (block is None), name          # the variants have no layer norm at all
    cache = m.new_cache()                             # and run with the cache like the GPT
    torch.testing.assert_close(torch.cat([m.eval()(ids[:, :5], cache), m(ids[:, 5:], cache)], 1),
                               m(ids), atol=1e-5, rtol=1e-5)


def test_ladder_variants_are_what_they_say():
    torch.manual_seed(0)
    cfg = small_config(n_layer=1)
    x = torch.randn(2, 5, 16)
    only, then = AttentionOnly(cfg).eval(), AttentionThenMLP(cfg).eval()
    torch.testing.assert_close(only(x), only.attn(x))           # no residual: x is not added
    torch.testing.assert_close(then(x), then.mlp(then.attn(x)))


# ---------------------------------------------------------------------------- signal_sizes


def _batch(config, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, config.vocab_size, (4, config.block_size), generator=g)
    return x, torch.roll(x, -1, dims=1)


def test_without_residual_and_layer_norm_the_signal_vanishes():
    config = GPTConfig(vocab_size=65, n_layer=4, n_head=4, **BASE_MODEL)
    torch.manual_seed(0)
    gpt = signal_sizes(build_rung(config), *_batch(config))
    torch.manual_seed(0)
    bare = signal_sizes(build_rung(config, AttentionThenMLP), *_batch(config))
    assert [r["where"] for r in gpt] == ["block 0 input"] + [f"after block {i}" for i in
                                                             range(1, 5)]
    assert [r["where"] for r in bare] == [r["where"] for r in gpt]
    # embeddings of the same size go in (both drawn with standard deviation 0.02) ...
    assert bare[0]["activation_rms"] == pytest.approx(gpt[0]["activation_rms"], rel=0.05)
    # ... the GPT's residual stream keeps its size, the bare blocks shrink it at every block
    assert 0.5 < gpt[-1]["activation_rms"] / gpt[0]["activation_rms"] < 4
    sizes = [r["activation_rms"] for r in bare]
    assert all(later < earlier * 1e-2 for earlier, later in zip(sizes, sizes[1:]))
    assert bare[-1]["activation_rms"] < 1e-9 * gpt[-1]["activation_rms"]
    for rows in (gpt, bare):
        assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in rows)
    assert bare[0]["grad_norm"] < 1e-6 * gpt[0]["grad_norm"]   # and almost no gradient comes back


def test_signal_sizes_match_a_direct_computation():
    torch.manual_seed(0)
    m = GPT(small_config(n_layer=1))
    x, y = _batch(m.config)
    rows = signal_sizes(m, x, y)
    emb = m.tok_emb(x) + m.pos_emb(torch.arange(x.shape[1]))
    out = m.blocks[0](emb)
    m.loss(x, y).backward()
    grad = torch.cat([p.grad.flatten() for p in m.blocks[0].parameters()]).norm()
    assert rows[0]["activation_rms"] == pytest.approx(emb.pow(2).mean().sqrt().item(), rel=1e-5)
    assert rows[1]["activation_rms"] == pytest.approx(out.pow(2).mean().sqrt().item(), rel=1e-5)
    assert rows[1]["grad_norm"] == pytest.approx(grad.item(), rel=1e-5)
    bigram = signal_sizes(GPT(small_config(n_layer=0)), x, y)
    assert [r["where"] for r in bigram] == ["block 0 input"]


@pytest.mark.parametrize("training", [True, False])
def test_signal_sizes_leaves_the_model_as_it_found_it(training):
    torch.manual_seed(0)
    m = GPT(small_config(dropout=0.5)).train(training)
    x, y = _batch(m.config)
    m.loss(x, y).backward()                          # gradients already there ...
    m.head.weight.grad = None                        # ... and one parameter without any
    before = {n: (p.detach().clone(), None if p.grad is None else p.grad.clone())
              for n, p in m.named_parameters()}
    rows = signal_sizes(m, *_batch(m.config, seed=1))
    assert m.training == training
    for n, p in m.named_parameters():
        weight, grad = before[n]
        assert torch.equal(p, weight), n
        assert (p.grad is None) if grad is None else torch.equal(p.grad, grad), n
    assert rows == signal_sizes(m.train(not training), *_batch(m.config, seed=1))  # eval mode


def test_signal_sizes_errors():
    m = GPT(small_config())
    x, y = _batch(m.config)
    with pytest.raises(ValueError, match="same shape"):
        signal_sizes(m, x, y[:, :-1])
    with pytest.raises(TypeError, match="expects a GPT"):
        signal_sizes(AttentionOnly(small_config()), x, y)


# ---------------------------------------------------------------------------- run_ladder


def test_run_ladder_records_equal_steps_and_seeds(tiny_text, tmp_path, monkeypatch):
    scored = []                                  # every (start, end) the scoring reads

    def recording(model, ids, start, end=None, **kw):
        scored.append((start, len(ids) if end is None else end))
        return per_char_nats(model, ids, start, end, **kw)

    per_char_nats = llmcourse.metrics.per_char_nats
    monkeypatch.setattr(llmcourse.metrics, "per_char_nats", recording)
    monkeypatch.setattr(llmcourse.batches, "per_char_nats", recording)
    record = run_ladder(steps=3, seeds=2, progress=False, out=tmp_path / "ladder.json",
                        text=tiny_text)
    assert json.loads((tmp_path / "ladder.json").read_text()) == json.loads(json.dumps(record))

    _, _, split = prepare_data(tiny_text)
    assert set(split.val_blocks) <= set(scored)                      # validation is scored,
    assert all(end <= split.test_start for _, end in scored)         # the test part never
    assert record["uniform_loss"] == pytest.approx(math.log(len(set(tiny_text))), abs=1e-4)
    assert [r["name"] for r in record["rungs"]] == [name for name, _, _ in RUNGS]
    for rung in record["rungs"]:
        runs = rung["runs"]
        assert [r["seed"] for r in runs] == [0, 1] and all(r["steps"] == 3 for r in runs)
        losses = [r["val_loss"] for r in runs]
        assert rung["val_loss"] == {"mean": pytest.approx(sum(losses) / 2, abs=1e-4),
                                    "min": min(losses), "max": max(losses)}
        rows = len(rung["signal_sizes"]["init"])
        assert rows == rung["config"]["n_layer"] + 1 == len(rung["signal_sizes"]["trained"])
    gpt = record["rungs"][-1]["runs"]
    assert gpt[0]["val_loss"] != gpt[1]["val_loss"]        # the seed changes the run

    # each run is train() with the recipe, the seed, and nothing else
    name, change, block = RUNGS[1]
    config = GPTConfig(vocab_size=len(set(tiny_text)), **{**BASE_MODEL, **change})
    cfg = TrainConfig(**{**record["train_base"], "seed": 1})
    direct = train(config, cfg, tiny_text, progress=False,
                   make_model=lambda c: build_rung(c, block))
    assert record["rungs"][1]["runs"][1]["val_loss"] == direct["history"][-1]["val_loss"]


@pytest.mark.parametrize("kw, word", [(dict(steps=0), "steps"), (dict(seeds=1.5), "seeds")])
def test_run_ladder_checks_its_numbers(kw, word):
    with pytest.raises(ValueError, match=word):
        run_ladder(**kw, text="abc")
