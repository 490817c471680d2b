"""A small GPT in one readable file (introduced in Chapter 6).

A GPT turns a sequence of token ids into, at every position, scores (logits) for the next token:

1. **embeddings**: each id looks up a learned vector (Chapter 4), and each *position* looks up
   another one, added to it, so that the model knows where in the window a token sits;
2. a stack of **blocks**, each doing two things with a residual connection around each:
   ``x = x + attention(layer_norm(x))``, where every position gathers information from the
   positions before it (Chapter 5), then ``x = x + mlp(layer_norm(x))``, where every position
   thinks on its own with a small two-layer network (Chapter 1's, wider);
3. a final **layer norm** and a **linear layer** from the model width to one score per token of
   the vocabulary. A softmax over those scores is the next-token distribution.

The residual connections give the gradient a direct path from the loss to every layer, and the
layer norms keep the vectors at a steady scale, so that a deep stack trains as easily as a
shallow one (:mod:`llmcourse.ladder` removes them to show it; ``n_layer=0`` is a bigram).

The model can keep its keys and values in a :class:`KVCache` so that generation computes only the
newest token (Chapter 7). Around the model: :mod:`llmcourse.vocab` (characters <-> ids),
:mod:`llmcourse.train` (the training loop), :mod:`llmcourse.metrics` (the held-out loss) and
:mod:`llmcourse.checkpoint` (saving and loading).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from llmcourse.attention import CausalSelfAttention, LayerKVCache

__all__ = ["GPTConfig", "MLP", "Block", "KVCache", "GPT", "cross_entropy_loss",
           "count_parameters"]


@dataclass
class GPTConfig:
    """Every number that fixes the shape of a GPT (and so the shapes of its weights)."""

    vocab_size: int = 65        # number of token ids (65 characters for Tiny Shakespeare)
    block_size: int = 128       # the longest context the model can see (positions 0..block_size-1)
    n_layer: int = 4            # number of blocks stacked (0 = a bigram model)
    n_head: int = 4             # attention heads per block; d_model must divide by it
    d_model: int = 192          # width of every token's vector
    dropout: float = 0.1        # fraction of activations zeroed during training (regularisation)
    bias: bool = False          # biases in the linear layers and layer norms
    mlp_ratio: int = 4          # the MLP's hidden layer is mlp_ratio * d_model wide

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_head", "d_model", "mlp_ratio", "n_layer"):
            value, low = getattr(self, name), 0 if name == "n_layer" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"GPTConfig.{name} must be an int >= {low}, got {value!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(f"GPTConfig.d_model must be divisible by n_head, got d_model="
                             f"{self.d_model} and n_head={self.n_head}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GPTConfig":
        if not isinstance(d, dict):
            raise TypeError(f"GPTConfig.from_dict expects a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {unknown}; known fields are "
                             f"{[f.name for f in fields(cls)]}")
        return cls(**d)


class MLP(nn.Module):
    """Each position on its own: widen, GELU, narrow back. ``(B, T, d) -> (B, T, d)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = config.mlp_ratio * config.d_model
        self.fc = nn.Linear(config.d_model, hidden, bias=config.bias)
        self.proj = nn.Linear(hidden, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc(x))                          # (B, T, mlp_ratio * d)
        return self.dropout(self.proj(h))               # (B, T, d)


class Block(nn.Module):
    """One transformer block: attention then MLP, each after a layer norm, each residual."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config.d_model, config.n_head, config.dropout, config.bias)
        self.ln2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)           # positions exchange information
        x = x + self.mlp(self.ln2(x))                   # each position works on what it got
        return x                                        # (B, T, d)


class KVCache:
    """The keys and values of every block (one :class:`LayerKVCache` each) for generation.

    ``len(cache)`` is the number of positions already processed: the next token passed to the
    model sits at that position. Get an empty one from :meth:`GPT.new_cache`; the model calls
    :meth:`advance` after each pass through it.
    """

    def __init__(self, n_layer: int):
        self.layers = [LayerKVCache() for _ in range(n_layer)]
        self.length = 0   # kept here too, so that a 0-layer model (a bigram) has a length

    def __len__(self) -> int:
        return self.length

    def advance(self, n: int) -> None:
        """Record that ``n`` more positions have been processed."""
        self.length += n

    def clear(self) -> None:
        for layer in self.layers:
            layer.clear()
        self.length = 0


class GPT(nn.Module):
    """A decoder-only transformer: ``ids (B, T) -> logits (B, T, vocab_size)``.

    ``forward(ids, cache=None)``: with a :class:`KVCache`, ``ids`` holds only the new tokens,
    which sit at positions ``len(cache), len(cache) + 1, ...``; their keys and values are added to
    the cache. The total length may not exceed ``config.block_size``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)   # token -> vector
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)   # position -> vector
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)  # vector -> logits
        self.init_weights()

    def init_weights(self) -> None:
        """Small random weights, the same scale everywhere (as GPT-2).

        Every linear and embedding weight starts from a normal with standard deviation 0.02, and
        biases at zero, so the first logits are near zero: the untrained model predicts about
        uniformly, a loss of ``ln(vocab_size)``. Layer norms start as the identity (gain 1, bias
        0). The last linear map of each residual branch (attention's ``proj``, the MLP's ``proj``)
        is scaled down by ``sqrt(2 * n_layer)``: each block adds two branches to the residual
        stream, and without this the stream's variance would grow with depth.
        """
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        std = 0.02 / math.sqrt(2 * max(1, self.config.n_layer))
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=std)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for this model."""
        return KVCache(len(self.blocks))

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits ``(B, T, vocab_size)`` for token ids ``(B, T)``.

        The shapes are checked here (the door every caller passes); the ids' values are not, as
        that would wait for the device at every step: an id outside the vocabulary makes the
        embedding raise an ``IndexError``.
        """
        start = len(cache) if cache is not None else 0
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
            got = f"dtype {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise TypeError(f"ids must be a torch.LongTensor of token ids, got {got}")
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(f"ids must have shape (batch, time) with time >= 1, got shape "
                             f"{tuple(ids.shape)} (for one sequence use ids[None])")
        t = ids.shape[1]
        if start + t > self.config.block_size:
            what = f"{t} tokens" if start == 0 else f"{start} cached + {t} new tokens"
            raise ValueError(f"context of {start + t} tokens ({what}) is longer than the model's "
                             f"block_size={self.config.block_size}; keep only the last "
                             f"{self.config.block_size} tokens")
        pos = torch.arange(start, start + t, device=ids.device)             # (T,)
        x = self.drop(self.tok_emb(ids) + self.pos_emb(pos))                # (B, T, d)
        for i, block in enumerate(self.blocks):
            x = block(x, cache.layers[i] if cache is not None else None)    # (B, T, d)
        if cache is not None:
            cache.advance(t)
        return self.head(self.ln_f(x))                                      # (B, T, vocab)

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per token) of predicting ``targets`` from ``ids``."""
        return cross_entropy_loss(self(ids), targets)

    @property
    def device(self) -> torch.device:
        return self.tok_emb.weight.device


def cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-probability of the targets: ``logits (B, T, V)``, ``targets (B, T)``."""
    assert logits.dim() == 3 and targets.shape == logits.shape[:2], "logits (B, T, V), targets (B, T)"
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Number of trainable numbers per part: embeddings, attention, mlp, norms, head, total."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects a model, got {type(model).__name__}")
    counts = {"embeddings": 0, "attention": 0, "mlp": 0, "norms": 0, "head": 0}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(("tok_emb", "pos_emb")):
            part = "embeddings"
        elif ".attn." in name:
            part = "attention"
        elif ".mlp." in name:
            part = "mlp"
        elif name.startswith("head"):
            part = "head"
        elif ".ln" in name or name.startswith("ln_"):
            part = "norms"
        else:
            raise ValueError(f"count_parameters does not know which part {name!r} belongs to")
        counts[part] += p.numel()
    counts["total"] = sum(counts.values())
    return counts
