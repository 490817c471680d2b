"""Tests for llmcourse.gpt: shapes, errors, the key/value cache, checkpoints, the tokenizer."""

import json

import pytest
import torch
from torch.nn import functional as F

from llmcourse.gpt import (GPT, CharTokenizer, GPTConfig, KVCache, count_parameters,
                           cross_entropy_loss, generate, heldout_nats_per_char, load_checkpoint,
                           load_pretrained, pretrained_meta, save_checkpoint)


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
    cfg = small_config(bias=True, mlp=False)
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
    logits, weights = model(ids, return_weights=True)
    assert logits.shape == (3, 7, 11)
    assert len(weights) == 2 and weights[0].shape == (3, 2, 7, 7)
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(3, 2, 7))
    assert torch.all(weights[0].triu(diagonal=1) == 0)  # no position looks ahead
    torch.testing.assert_close(model(ids), logits)


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
    with pytest.raises(ValueError, match="token id 11 is outside the vocabulary"):
        model(torch.tensor([[1, 11]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[-1, 2]]))
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


@pytest.mark.parametrize("kw", [dict(mlp=False), dict(residual=False), dict(layer_norm=False),
                                dict(n_layer=0), dict(bias=True)])
def test_ablations_run(kw):
    m = GPT(small_config(**kw))
    ids = torch.randint(0, 11, (2, 8))
    loss = m.loss(ids, ids)
    loss.backward()
    assert torch.isfinite(loss)


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
    with pytest.raises(ValueError, match="targets"):
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
    assert meta["heldout_loss"] < 2.5 and meta["data"]["sha256"]
    ids = torch.tensor([tok.encode("ROMEO:\nWhat light")])
    logits = model(ids)
    assert logits.shape == (1, ids.shape[1], tok.vocab_size)
    # a trained model finds Shakespeare likelier than the uniform guess by a wide margin
    loss = model.loss(ids[:, :-1], ids[:, 1:]).item()
    assert loss < 0.8 * torch.log(torch.tensor(float(tok.vocab_size))).item()


def test_generate_is_seeded_and_runs_past_the_block(model):
    a = generate(model, [1, 2, 3], 40, seed=0)
    assert len(a) == 40 and all(0 <= i < 11 for i in a)   # 43 > block_size = 16
    assert generate(model, [1, 2, 3], 40, seed=0) == a
    assert generate(model, [1, 2, 3], 40, seed=1) != a
    # a very low temperature picks the most likely token
    cold = generate(model, [4, 5], 1, temperature=1e-4, seed=0)
    assert cold[0] == int(model(torch.tensor([[4, 5]]))[0, -1].argmax())
    with pytest.raises(ValueError, match="temperature"):
        generate(model, [1], 3, temperature=0)
    with pytest.raises(ValueError, match="prompt"):
        generate(model, [], 3)
