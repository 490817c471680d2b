"""How well a model predicts text it has not seen: the held-out loss of Chapter 6.

Every model of the course, from Chapter 2's counts to Chapter 6's GPT, is judged by one number:
the mean negative log-probability, in nats, that it gives to each character of the last tenth of
Tiny Shakespeare, a text it was not trained on. Lower is better; ``exp(loss)`` is the
perplexity, the number of equally likely characters the model is, on average, choosing among.

A GPT sees at most ``block_size`` characters, so the text is scored in overlapping windows, and
every character is scored exactly once, with at least half a window of context before it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["HELDOUT_METHOD", "IGNORE_INDEX", "evaluating", "heldout_nats_per_char"]

#: Targets with this id are not scored by ``F.cross_entropy`` (its default ``ignore_index``):
#: the held-out windows here and Chapter 8's chat masks use it for "no prediction wanted".
IGNORE_INDEX = -100


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (no dropout) for a measurement, then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


HELDOUT_METHOD = (
    "mean negative log-probability (nats) of every character of the held-out text, each scored "
    "exactly once, by sliding windows of block_size characters with a stride of block_size // 2 "
    "and scoring only the last block_size // 2 predictions of each window, so every scored "
    "character has at least block_size // 2 characters of context (the text before the held-out "
    "part supplies the context of its first characters)"
)


@torch.no_grad()
def heldout_nats_per_char(model: nn.Module, ids: Sequence[int] | torch.Tensor, start: int,
                          end: int | None = None, batch_size: int = 64) -> float:
    """Mean nats per token of ``ids[start:end]``, each scored once with >= block_size//2 context.

    ``ids`` is the whole encoded text; the characters before ``start`` serve only as context.
    Windows of ``block_size`` ids slide with a stride of ``block_size // 2``; each window scores
    only its last ``block_size // 2`` predictions (the final window scores just what is left).
    The model is put in eval mode for the measurement and restored afterwards.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    n = len(ids)
    end = n if end is None else end
    block = model.config.block_size
    half = block // 2
    if block < 2:
        raise ValueError(f"the model's block_size must be >= 2, got {block}")
    if not half <= start < end <= n:
        raise ValueError(f"need block_size // 2 = {half} <= start < end <= len(ids) = {n}, got "
                         f"start={start}, end={end}")
    # A window of length L = min(block, ...) starting at b predicts ids[b+1 : b+L+1]. The
    # predictions of targets [s, e) (e - s <= half) come from the window ending at target e - 1.
    spans = [(s, min(s + half, end)) for s in range(start, end, half)]
    total = 0.0
    with evaluating(model):
        device = next(model.parameters()).device
        for i in range(0, len(spans), batch_size):
            chunk = spans[i:i + batch_size]
            windows = []
            for s, e in chunk:
                b = max(0, e - 1 - block)                    # inputs ids[b : e-1], <= block
                windows.append(ids[b:e - 1])
            # inputs ids[b : e-1], targets ids[b+1 : e]; all windows have length block except
            # possibly near the start of the text (then start < block and b = 0).
            t_len = max(len(w) for w in windows)
            x = torch.zeros(len(windows), t_len, dtype=torch.long)
            y = torch.full((len(windows), t_len), IGNORE_INDEX, dtype=torch.long)
            for j, ((s, e), w) in enumerate(zip(chunk, windows)):
                L = len(w)
                x[j, :L] = w
                tgt = ids[e - L:e].clone()                   # targets of the L inputs
                tgt[: L - (e - s)] = IGNORE_INDEX            # score only targets s .. e-1
                y[j, :L] = tgt
            logits = model(x.to(device))
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                     y.to(device).reshape(-1), ignore_index=IGNORE_INDEX,
                                     reduction="sum").item()
    return total / (end - start)


