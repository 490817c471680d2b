"""Tests for llmcourse.gpt (shapes, errors, the key/value cache), llmcourse.vocab (the character
tokenizer), llmcourse.metrics (the held-out loss) and llmcourse.checkpoint (the ladder's rungs
are tested in test_ladder.py)."""

import json

import pytest
import numpy as np
import torch
from torch.nn import functional as F

from llmcourse.attention import record_attention
from llmcourse.checkpoint import load_checkpoint, load_pretrained, pretrained_meta, save_checkpoint
from llmcourse.gpt import GPT, GPTConfig, KVCache, count_parameters, cross_entropy_loss
from llmcourse.metrics import block_bootstrap, evaluating, heldout_nats_per_char, per_char_nats
from llmcourse.vocab import CharTokenizer


def small_config(**kw):
    base = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, d_model=16, dropout=0.0)
    base.update(kw)
    return GPTConfig(**base)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(small_config()).eval()


# ---------------------------------------------------------------------------- config, tokenizer


def test_config_round_trip():
    cfg = small_config(bias=True, mlp_ratio=2)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()


@pytest.mark.parametrize("kw, word", [(dict(d_model=15, n_head=2), "divisible"),
                                      (dict(block_size=0), "block_size"),
                                      (dict(dropout=1.0), "dropout"),
                                      (dict(n_layer=-1), "n_layer")])
def test_config_rejects_bad_values(kw, word):
    with pytest.raises(ValueError, match=word):
        small_config(**kw)


def test_config_from_dict_names_unknown_fields():
    with pytest.raises(ValueError, match="n_embd"):
        GPTConfig.from_dict({"n_embd": 3})


def test_tokenizer_round_trip_and_ids():
    text = "To be, or not to be:\nthat is the question. Ünïcødé ✓"
    tok = CharTokenizer.from_text(text)
    assert tok.vocab == sorted(set(text))
    assert tok.vocab_size == len(set(text))
    ids = tok.encode(text)
    assert all(tok.vocab[i] == c for i, c in zip(ids, text))
    assert tok.decode(ids) == text
    assert tok.decode(torch.tensor(ids)) == text
    again = CharTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.vocab == tok.vocab and again.encode(text) == ids


def test_tokenizer_errors():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"'xz'.*position 1"):
        tok.encode("axbz")
    with pytest.raises(ValueError, match="outside the vocabulary.*0 to 2"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="outside"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="str"):
        tok.encode(["a"])
    with pytest.raises(ValueError, match="duplicates"):
        CharTokenizer(["a", "a"])


def test_tokenizer_appended_special_tokens_keep_ids():
    tok = CharTokenizer.from_text("hello")
    longer = CharTokenizer(tok.vocab + ["<|user|>"])
    assert longer.encode("hello") == tok.encode("hello")
    assert longer.decode([longer.vocab_size - 1]) == "<|user|>"


def test_tokenizer_is_chapter_2s_char_vocab():
    from llmcourse.ngram import CharVocab

    text = "to be or not to be"
    tok, vocab = CharTokenizer.from_text(text), CharVocab.from_text(text)
    assert isinstance(tok, CharVocab)
    assert tok.vocab == vocab.chars and tok.encode(text) == vocab.encode(text).tolist()
    with pytest.raises(TypeError, match="non-empty strings.*got ''"):
        CharTokenizer(["a", ""])
    with pytest.raises(TypeError, match=r"single characters.*got '<\|user\|>'"):
        CharVocab(["a", "<|user|>"])     # only the tokenizer takes special tokens
    with pytest.raises(ValueError, match="character 'q' at position 4 is not in the vocabulary "
                                         "of 7 tokens"):
        tok.encode("to bq")


# ---------------------------------------------------------------------------- the model


def test_forward_shapes(model):
    ids = torch.randint(0, 11, (3, 7))
    assert model(ids).shape == (3, 7, 11)
    with record_attention(model) as weights:
        logits = model(ids)
    assert logits.shape == (3, 7, 11)
    assert len(weights) == 2 and weights[0].shape == (3, 2, 7, 7)
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(3, 2, 7))
    assert torch.all(weights[0].triu(diagonal=1) == 0)  # no position looks ahead
    torch.testing.assert_close(model(ids), logits, atol=1e-6, rtol=1e-5)  # fused = ours
    assert all(not b.attn.keep_weights and b.attn.weights is None for b in model.blocks)


def test_untrained_model_predicts_about_uniformly(model):
    ids = torch.randint(0, 11, (4, 16))
    loss = model.loss(ids, torch.randint(0, 11, (4, 16))).item()
    assert abs(loss - torch.log(torch.tensor(11.0)).item()) < 0.1


def test_model_is_causal(model):
    ids = torch.randint(0, 11, (1, 10))
    changed = ids.clone()
    changed[0, 6] = (changed[0, 6] + 1) % 11
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_forward_errors(model):
    with pytest.raises(TypeError, match="dtype torch.float32"):
        model(torch.zeros(1, 3))
    with pytest.raises(TypeError, match="LongTensor"):
        model([[1, 2]])
    with pytest.raises(ValueError, match=r"shape \(batch, time\).*\(5,\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(IndexError):      # values are not checked here (no device sync):
        model(torch.tensor([[1, 11]]))    # sampling.generate checks a prompt's ids
    with pytest.raises(ValueError, match="17 tokens.*block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_cache_matches_uncached_forward(model):
    torch.manual_seed(1)
    ids = torch.randint(0, 11, (2, 16))
    full = model(ids)
    cache = model.new_cache()
    assert isinstance(cache, KVCache) and len(cache) == 0
    pieces = [model(ids[:, :5], cache=cache)]
    assert len(cache) == 5
    for t in range(5, 16):
        pieces.append(model(ids[:, t:t + 1], cache=cache))
    assert len(cache) == 16
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="16 cached \\+ 1 new.*block_size=16"):
        model(ids[:, :1], cache=cache)
    cache.clear()
    assert len(cache) == 0
    torch.testing.assert_close(model(ids[:, :3], cache=cache), full[:, :3], atol=1e-5, rtol=1e-5)


def test_cache_with_bigram_model():
    m = GPT(small_config(n_layer=0)).eval()
    ids = torch.randint(0, 11, (1, 6))
    cache = m.new_cache()
    out = torch.cat([m(ids[:, :2], cache=cache), m(ids[:, 2:], cache=cache)], dim=1)
    torch.testing.assert_close(out, m(ids))
    assert len(cache) == 6


def test_kv_cache_advance():
    cache = KVCache(2)
    cache.advance(3)
    cache.advance(1)
    assert len(cache) == 4
    cache.clear()
    assert len(cache) == 0 and all(len(layer) == 0 for layer in cache.layers)


def test_bias_variant_runs():
    m = GPT(small_config(bias=True))
    ids = torch.randint(0, 11, (2, 8))
    assert torch.isfinite(m.loss(ids, ids))


def test_count_parameters_formula():
    d, V, T, L, r = 16, 11, 16, 2, 4
    counts = count_parameters(GPT(small_config()))
    assert counts["embeddings"] == V * d + T * d
    assert counts["attention"] == L * (3 * d * d + d * d)
    assert counts["mlp"] == L * (2 * r * d * d)
    assert counts["norms"] == (2 * L + 1) * d        # weights only (bias=False)
    assert counts["head"] == d * V
    assert counts["total"] == sum(p.numel() for p in GPT(small_config()).parameters())
    with_bias = count_parameters(GPT(small_config(bias=True)))
    assert with_bias["norms"] == 2 * (2 * L + 1) * d
    assert with_bias["mlp"] == L * (2 * r * d * d + r * d + d)


def test_cross_entropy_matches_definition(model):
    ids = torch.randint(0, 11, (2, 5))
    targets = torch.randint(0, 11, (2, 5))
    logits = model(ids)
    by_hand = -F.log_softmax(logits, -1).gather(-1, targets[..., None]).mean()
    torch.testing.assert_close(cross_entropy_loss(logits, targets), by_hand)
    with pytest.raises(AssertionError, match="targets"):
        cross_entropy_loss(logits, targets[:, :4])


def test_heldout_scores_each_char_once_with_half_a_block(model):
    torch.manual_seed(2)
    ids = torch.randint(0, 11, (90,))
    start, block, half = 37, 16, 8
    got = heldout_nats_per_char(model, ids, start, batch_size=3)
    # by hand: the targets [s, s + half) are scored by the window of block inputs ending at s+half-2
    total = 0.0
    for s in range(start, 90, half):
        e = min(s + half, 90)
        b = max(0, e - 1 - block)
        logp = F.log_softmax(model(ids[None, b:e - 1])[0], -1)
        for t in range(s, e):
            assert t - b >= half                         # at least half a block of context
            total -= logp[t - 1 - b, ids[t]].item()
    assert abs(got - total / (90 - start)) < 1e-5
    assert model.training is False
    with pytest.raises(ValueError, match="start"):
        heldout_nats_per_char(model, ids, 3)
    each = per_char_nats(model, ids, start, batch_size=2)
    assert each.shape == (90 - start,) and abs(each.double().mean().item() - got) < 1e-6
    # target 39 lies in the span [37, 45), scored by the window of inputs ids[28:44]
    logp = F.log_softmax(model(ids[None, 28:44])[0], -1)
    assert abs(each[39 - start].item() + logp[39 - 1 - 28, ids[39]].item()) < 1e-5


def test_block_bootstrap_known_answers():
    # independent values: the interval is the textbook mean +- 1.96 sigma / sqrt(n)
    rng = np.random.default_rng(0)
    iid = rng.normal(0.3, 1.0, 200_000)
    got = block_bootstrap(iid, block=1000, resamples=2000, seed=1)
    assert got.low < 0.3 < got.high
    assert got.se == pytest.approx(1 / np.sqrt(200_000), rel=0.1)
    assert (got.high - got.low) / 2 == pytest.approx(1.96 / np.sqrt(200_000), rel=0.15)
    # values that move together within a block: the spread comes from the 100 block levels, and
    # the naive std/sqrt(n) (10x too small here) would call a zero mean significant
    levels = rng.normal(0.0, 1.0, 100)
    tied = np.repeat(levels, 1000) + rng.normal(0, 0.01, 100_000)
    got = block_bootstrap(tied, block=1000, resamples=4000, seed=2)
    assert got.se == pytest.approx(levels.std(ddof=1) / 10, rel=0.15)
    assert got.se > 5 * tied.std() / np.sqrt(tied.size)
    # the same seed gives the same interval; a constant gives a point
    assert block_bootstrap(iid, seed=1) == block_bootstrap(iid, seed=1)
    assert block_bootstrap([2.0] * 2500).low == block_bootstrap([2.0] * 2500).high == 2.0
    with pytest.raises(ValueError, match="finite"):
        block_bootstrap([0.0, float("inf")])
    with pytest.raises(ValueError, match="1-D"):
        block_bootstrap(np.zeros((2, 2)))


# ---------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path, model):
    tok = CharTokenizer([chr(ord("a") + i) for i in range(11)])
    w, j = save_checkpoint(tmp_path / "m", model, tok, {"note": "test", "loss": 1.5})
    assert w.name == "m.safetensors" and j.name == "m.json"
    loaded, tok2, meta = load_checkpoint(tmp_path / "m")
    assert meta == {"note": "test", "loss": 1.5}
    assert tok2.vocab == tok.vocab
    assert loaded.config == model.config and not loaded.training
    ids = torch.randint(0, 11, (2, 9))
    torch.testing.assert_close(loaded(ids), model(ids))
    record = json.loads(j.read_text())
    assert record["config"]["d_model"] == 16 and len(record["tokenizer"]["vocab"]) == 11


def test_load_rejects_config_that_does_not_match(tmp_path, model):
    tok = CharTokenizer([chr(ord("a") + i) for i in range(11)])
    _, j = save_checkpoint(tmp_path / "m", model, tok)
    record = json.loads(j.read_text())
    record["config"]["d_model"] = 32
    j.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"does not match the weights.*attn.proj.weight has shape \(16, 16\) but the config needs \(32, 32\)"):
        load_checkpoint(tmp_path / "m")
    record["config"]["d_model"] = 16
    record["config"]["n_layer"] = 3
    j.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="missing weight blocks.2"):
        load_checkpoint(tmp_path / "m")


def test_load_errors(tmp_path, model):
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_checkpoint(tmp_path / "nothing")
    with pytest.raises(ValueError, match="vocab_size"):
        save_checkpoint(tmp_path / "m", model, CharTokenizer("abc"))
    with pytest.raises(ValueError, match="available"):
        load_pretrained("no_such_model")


def test_shipped_checkpoint_loads():
    model, tok = load_pretrained()
    assert not model.training
    assert model.config.vocab_size == tok.vocab_size
    meta = pretrained_meta()["meta"]
    assert meta["test_loss"] < 2.5 and meta["val_loss"] < 2.5 and meta["data"]["sha256"]
    ids = torch.tensor([tok.encode("ROMEO:\nWhat light")])
    logits = model(ids)
    assert logits.shape == (1, ids.shape[1], tok.vocab_size)
    # a trained model finds Shakespeare likelier than the uniform guess by a wide margin
    loss = model.loss(ids[:, :-1], ids[:, 1:]).item()
    assert loss < 0.8 * torch.log(torch.tensor(float(tok.vocab_size))).item()


def test_evaluating_restores_the_mode(model):
    model.train()
    with evaluating(model):
        assert not model.training
    assert model.training
    with pytest.raises(RuntimeError), evaluating(model):
        raise RuntimeError("a failed measurement")
    assert model.training


def test_old_checkpoint_config_with_ladder_switches_loads(tmp_path, model):
    tok = CharTokenizer([chr(ord("a") + i) for i in range(11)])
    _, j = save_checkpoint(tmp_path / "m", model, tok)
    record = json.loads(j.read_text())
    record["config"].update(mlp=True, residual=True, layer_norm=True)   # as older files have
    j.write_text(json.dumps(record))
    assert load_checkpoint(tmp_path / "m")[0].config == model.config
    record["config"]["residual"] = False
    j.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="'residual'.*llmcourse.ladder"):
        load_checkpoint(tmp_path / "m")
