"""The text a GPT learns from: its three parts, training windows, batches (Chapter 6).

:func:`prepare_data` encodes a text and cuts it three ways (:func:`llmcourse.vocab.split_three_ways`):
training, validation blocks spread over the text, and the test at its end. Training draws random
windows (:func:`get_batch`) only where a whole window is training text (:func:`window_starts`),
so no validation or test character is ever a training target; :func:`score_validation` scores
the validation blocks, each character once (:func:`llmcourse.metrics.per_char_nats`).
"""

from __future__ import annotations

import numpy as np
import torch

from llmcourse.metrics import per_char_nats
from llmcourse.vocab import CharTokenizer, TextSplit, split_three_ways

__all__ = ["prepare_data", "window_starts", "get_batch", "score_validation", "score_blocks"]


def prepare_data(text: str, tokenizer: CharTokenizer | None = None, test_fraction: float = 0.1,
                 val_every: int = 20) -> tuple[CharTokenizer, torch.Tensor, TextSplit]:
    """Encode ``text``; return ``(tokenizer, ids, split)`` with the :class:`llmcourse.vocab.TextSplit`
    of :func:`llmcourse.vocab.split_three_ways` (training, validation, test)."""
    if not isinstance(text, str) or not text:
        raise ValueError("prepare_data needs a non-empty str")
    tokenizer = tokenizer or CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    # blocks of 1,000 characters; a short text (a test's) gets shorter ones, two per validation
    block = min(1000, max(1, int(len(ids) * (1 - test_fraction)) // (2 * val_every)))
    return tokenizer, ids, split_three_ways(len(ids), test_fraction, val_every, block)


def window_starts(split: TextSplit, block_size: int) -> torch.Tensor:
    """Every start ``s`` whose window ``ids[s : s + block_size + 1]`` is all training text."""
    held = ~split.is_training()
    before = np.concatenate([[0], np.cumsum(held)])           # held-out tokens before each index
    s = np.arange(split.test_start - block_size)
    clean = before[s + block_size + 1] - before[s] == 0
    return torch.from_numpy(s[clean])


def score_validation(model: torch.nn.Module, ids: torch.Tensor, split: TextSplit,
                     max_chars: int = 0) -> float:
    """Mean nats per character over the validation blocks (the first ``max_chars`` of them)."""
    blocks = list(split.val_blocks)
    if max_chars:
        blocks = blocks[:max(1, max_chars // split.block)]
    return score_blocks(model, ids, blocks)


def score_blocks(model: torch.nn.Module, ids: torch.Tensor,
                 blocks: list[tuple[int, int]]) -> float:
    """Mean nats per character over the ``(start, stop)`` blocks of ``ids``, each character once."""
    nats = [per_char_nats(model, ids, start, stop) for start, stop in blocks]
    return float(torch.cat(nats).double().mean())


def get_batch(data: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None,
              starts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows: inputs ``x`` and targets ``y`` (``x`` shifted by one).

    Both are ``(batch_size, block_size)``; ``y[b, t] = data[start_b + t + 1]`` is the token that
    follows ``x[b, :t + 1]``. The windows start anywhere in ``data``, or at one of ``starts``
    (training draws from :func:`window_starts`, so no window touches validation or test text).
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got {type(data).__name__} "
                         f"of shape {tuple(getattr(data, 'shape', ()))}")
    if len(data) < block_size + 1:
        raise ValueError(f"data has {len(data)} tokens; a window needs block_size + 1 = "
                         f"{block_size + 1}")
    if starts is None:
        starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    else:
        starts = starts[torch.randint(0, len(starts), (batch_size,), generator=generator)]
    offsets = torch.arange(block_size + 1)
    windows = data[starts[:, None] + offsets]            # (B, block_size + 1)
    return windows[:, :-1], windows[:, 1:]
