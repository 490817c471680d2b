"""Attention: each token takes its meaning from its context (introduced in Chapter 5).

An embedding gives a token one vector, whatever surrounds it (Chapter 4). Attention lets every
position build a new vector as a weighted mix of the vectors around it:

1. each position asks a question, its *query* ``q``, and offers a *key* ``k`` and a *value* ``v``
   (three linear maps of its vector);
2. the score of position ``i`` for position ``j`` is the dot product ``q_i . k_j``, divided by
   ``sqrt(d)`` so that the scores do not grow with the width ``d`` and saturate the softmax;
3. a mask removes the pairs that may not be used (for next-token prediction: the future);
4. a softmax over each row turns the scores into weights that sum to 1;
5. the output of position ``i`` is the weighted sum of the values.

Multi-head attention does this several times in parallel on narrow slices of the vector (each head
its own projections), concatenates the heads and mixes them with one more linear map.

This module holds the reusable version: :func:`scaled_dot_product_attention` written from matrix
products and a softmax, :func:`causal_mask`, :func:`split_heads` and :func:`merge_heads`, and
:class:`CausalSelfAttention`, the batched multi-head module that the GPT of Chapter 6 stacks. The
module can keep the keys and values it has computed in a :class:`LayerKVCache`, so that
generation (Chapter 7) computes only the new token.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["scaled_dot_product_attention", "causal_mask", "split_heads", "merge_heads",
           "LayerKVCache", "CausalSelfAttention", "record_attention"]


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def causal_mask(n_queries: int, n_keys: int | None = None, device=None) -> torch.Tensor:
    """A boolean mask, True where query ``i`` may attend to key ``j``: ``j`` not in its future.

    With as many queries as keys this is the lower triangle. With fewer queries than keys (the
    queries are the *last* positions, as when a key/value cache holds the earlier ones) the
    triangle is aligned to the bottom right: the last query sees every key. (PyTorch's
    ``is_causal=True`` aligns it to the top left instead, which is wrong for that case.)
    """
    n_keys = n_queries if n_keys is None else n_keys
    if n_queries < 1 or n_keys < n_queries:
        raise ValueError(f"causal_mask needs 1 <= n_queries <= n_keys, got n_queries={n_queries}, "
                         f"n_keys={n_keys}")
    offset = n_keys - n_queries
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril(diagonal=offset)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention from matrix products and a softmax; returns ``(output, weights)``.

    Shapes: ``q`` is ``(..., T_q, d)``, ``k`` is ``(..., T_k, d)``, ``v`` is ``(..., T_k, d_v)``;
    the leading dimensions (batch, heads, ...) are shared. ``mask`` is boolean, True where a query
    may attend to a key, of shape ``(T_q, T_k)`` or any shape that broadcasts to
    ``(..., T_q, T_k)``. The output is ``(..., T_q, d_v)`` and the weights ``(..., T_q, T_k)``.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have at least 2 dimensions (..., T, d), got shape "
                             f"{_shape(t)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dimension d, got q {_shape(q)} and "
                         f"k {_shape(k)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of positions T_k, got k {_shape(k)} "
                         f"and v {_shape(v)}")
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"q, k and v must share their leading (batch, head) dimensions, got "
                         f"q {_shape(q)}, k {_shape(k)}, v {_shape(v)}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])          # (..., T_q, T_k)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a boolean tensor (True = may attend), got "
                            f"{getattr(mask, 'dtype', type(mask).__name__)}")
        try:
            full = torch.broadcast_shapes(mask.shape, scores.shape)
        except RuntimeError:
            full = None
        if full != scores.shape:
            raise ValueError(f"mask of shape {_shape(mask)} does not fit the scores of shape "
                             f"{_shape(scores)} (expected (T_q, T_k) = ({t_q}, {t_k}) or a shape "
                             f"that broadcasts to it)")
        empty = ~mask.any(dim=-1)
        if empty.any():
            row = tuple(int(i) for i in empty.nonzero()[0])
            raise ValueError(f"row {row} of the mask (shape {_shape(mask)}) allows no key at all: "
                             "its softmax would divide by zero (every query must be allowed at "
                             "least one key)")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)                             # (..., T_q, T_k)
    return weights @ v, weights                                         # (..., T_q, d_v)


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """Cut the last dimension into ``n_head`` slices: ``(B, T, d_model) -> (B, n_head, T, d_head)``.

    Head ``h`` gets the columns ``h * d_head .. (h + 1) * d_head - 1`` with ``d_head =
    d_model // n_head``; each head then attends on its own.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"expected x of shape (batch, time, d_model), got "
                         f"{_shape(x) if isinstance(x, torch.Tensor) else type(x).__name__}")
    b, t_len, d_model = x.shape
    if n_head < 1 or d_model % n_head != 0:
        raise ValueError(f"d_model must be divisible by n_head, got d_model={d_model} and "
                         f"n_head={n_head}")
    return x.view(b, t_len, n_head, d_model // n_head).transpose(1, 2)  # (B, H, T, dh)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Put the heads side by side again: ``(B, n_head, T, d_head) -> (B, T, n_head * d_head)``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"expected x of shape (batch, n_head, time, d_head), got "
                         f"{_shape(x) if isinstance(x, torch.Tensor) else type(x).__name__}")
    b, n_head, t_len, d_head = x.shape
    return x.transpose(1, 2).contiguous().view(b, t_len, n_head * d_head)  # (B, T, d_model)


class LayerKVCache:
    """The keys and values one attention layer has computed so far, shape ``(B, H, T, d_head)``.

    Generation (Chapter 7) fills it with the prompt once (the *prefill*), then appends one
    position per new token, so each step computes the query, key and value of the new token only.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new positions and return all keys and values held."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def clear(self) -> None:
        self.k = self.v = None


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, batched: ``(B, T, d_model) -> (B, T, d_model)``.

    One linear map makes the queries, keys and values of all heads at once; each head works on a
    slice of width ``d_model // n_head``; the heads are concatenated and mixed by ``proj``.

    ``forward(x, cache=None)``:
    - PyTorch's fused ``F.scaled_dot_product_attention`` computes the attention (the tests check
      that it equals :func:`scaled_dot_product_attention`, the one built in Chapter 5);
    - with a :class:`LayerKVCache`, ``x`` holds only the new positions: their keys and values are
      appended to the cache and the queries attend to everything the cache holds;
    - to look at the weights ``(B, n_head, T_q, T_k)``, run the model inside
      :func:`record_attention`: the layer then computes them with our function and keeps them.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model < 1 or n_head < 1:
            raise ValueError(f"d_model and n_head must be >= 1, got d_model={d_model}, "
                             f"n_head={n_head}")
        if d_model % n_head != 0:
            raise ValueError(f"d_model must be divisible by n_head, got d_model={d_model} and "
                             f"n_head={n_head} ({d_model} % {n_head} = {d_model % n_head})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.n_head, self.d_head = d_model, n_head, d_model // n_head
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)   # queries, keys, values of all heads
        self.proj = nn.Linear(d_model, d_model, bias=bias)      # mixes the concatenated heads
        self.resid_dropout = nn.Dropout(dropout)
        self.keep_weights = False                  # set by record_attention
        self.weights: torch.Tensor | None = None   # the last weights, while keep_weights is set

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, T, d_model) -> (B, n_head, T, d_head)``."""
        return split_heads(t, self.n_head)

    def merge_heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, n_head, T, d_head) -> (B, T, d_model)``."""
        return merge_heads(t)

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:   # Chapter 5's readers call this layer
            raise ValueError(f"expected x of shape (batch, time, d_model={self.d_model}), got "
                             f"{_shape(x)}")
        q, k, v = self.qkv(x).split(self.d_model, dim=-1)           # 3 x (B, T, d_model)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, H, T, dh)
        if cache is not None:
            k, v = cache.append(k, v)                                # (B, H, T_k, dh)
        t_q, t_k = q.shape[-2], k.shape[-2]
        drop = self.dropout if self.training else 0.0
        if self.keep_weights:   # inside record_attention: our own function, which gives weights
            y, self.weights = scaled_dot_product_attention(
                q, k, v, causal_mask(t_q, t_k, device=x.device))
            if drop > 0:
                y = F.dropout(self.weights, drop) @ v
        elif t_q == t_k:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        elif t_q == 1:      # one new token sees every key: no mask needed
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        else:               # fewer queries than keys: the causal triangle sits bottom right
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=causal_mask(t_q, t_k, device=x.device), dropout_p=drop)
        return self.resid_dropout(self.proj(self.merge_heads(y)))  # (B, T, d_model)


@contextmanager
def record_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Keep the attention weights of every attention layer inside ``model``.

    An attention layer is one with a ``keep_weights`` attribute (:class:`CausalSelfAttention`,
    and the real model's attention in :mod:`llmcourse.llama`): while it is set, the layer computes
    its weights with :func:`scaled_dot_product_attention` and stores them in ``weights``.

    Yields a list that each forward pass of such a layer appends its weights to, shape
    ``(B, n_head, T_q, T_k)``, in the order the layers run (so one pass through a GPT adds one
    map per block)::

        with record_attention(model) as maps:
            model(ids)
        maps[0][0, 2]     # block 0, sequence 0, head 2: (T, T)
    """
    layers = [m for m in model.modules() if hasattr(m, "keep_weights")]
    maps: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda mod, args, out: maps.append(mod.weights))
             for layer in layers]
    for layer in layers:
        layer.keep_weights = True
    try:
        yield maps
    finally:
        for layer, hook in zip(layers, hooks):
            layer.keep_weights, layer.weights = False, None
            hook.remove()
