"""How well a model predicts text it has not seen: the held-out loss of Chapter 6.

Every model of the course, from Chapter 2's counts to Chapter 6's GPT, is judged by one number:
the mean negative log-probability, in nats, that it gives to each character of the last tenth of
Tiny Shakespeare, a text it was not trained on. Lower is better; ``exp(loss)`` is the
perplexity, the number of equally likely characters the model is, on average, choosing among.

A GPT sees at most ``block_size`` characters, so the text is scored in overlapping windows, and
every character is scored exactly once, with at least half a window of context before it.

When two models score close, the difference needs its uncertainty: :func:`block_bootstrap`
turns per-character differences into an interval that respects the dependence between
neighbouring characters.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["HELDOUT_METHOD", "IGNORE_INDEX", "Interval", "block_bootstrap", "evaluating",
           "heldout_nats_per_char", "per_char_nats"]

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
def per_char_nats(model: nn.Module, ids: Sequence[int] | torch.Tensor, start: int,
                  end: int | None = None, batch_size: int = 64) -> torch.Tensor:
    """The negative log-probability (nats) of each token of ``ids[start:end]``, in order.

    ``ids`` is the whole encoded text; the characters before ``start`` serve only as context.
    Windows of ``block_size`` ids slide with a stride of ``block_size // 2``; each window scores
    only its last ``block_size // 2`` predictions (the final window scores just what is left), so
    every token is scored exactly once with at least half a block of context.
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
    # The targets [s, e) (e - s <= half) are predicted by the window of inputs ids[b : e-1]
    # (b = e - 1 - block, or 0 near the start of the text) whose targets are ids[b+1 : e].
    spans = [(s, min(s + half, end)) for s in range(start, end, half)]
    nats = torch.empty(end - start)
    with evaluating(model):
        device = next(model.parameters()).device
        for i in range(0, len(spans), batch_size):
            chunk = spans[i:i + batch_size]
            starts = [max(0, e - 1 - block) for _, e in chunk]
            t_len = max(e - 1 - b for b, (_, e) in zip(starts, chunk))
            x = torch.zeros(len(chunk), t_len, dtype=torch.long)
            y = torch.full((len(chunk), t_len), IGNORE_INDEX, dtype=torch.long)
            for j, (b, (s, e)) in enumerate(zip(starts, chunk)):
                x[j, :e - 1 - b] = ids[b:e - 1]
                y[j, :e - 1 - b] = ids[b + 1:e]
            logits = model(x.to(device)).float()
            losses = F.cross_entropy(logits.transpose(1, 2), y.to(device),
                                     ignore_index=IGNORE_INDEX, reduction="none").cpu()
            for j, (b, (s, e)) in enumerate(zip(starts, chunk)):
                L = e - 1 - b
                nats[s - start:e - start] = losses[j, L - (e - s):L]   # the last e - s targets
    return nats


def heldout_nats_per_char(model: nn.Module, ids: Sequence[int] | torch.Tensor, start: int,
                          end: int | None = None, batch_size: int = 64) -> float:
    """Mean nats per token of ``ids[start:end]``, each scored once with >= block_size//2 context
    (the mean of :func:`per_char_nats`)."""
    return float(per_char_nats(model, ids, start, end, batch_size).double().mean())


class Interval(NamedTuple):
    """A mean with its bootstrap standard error and interval."""

    mean: float
    low: float
    high: float
    se: float
    level: float
    blocks: int
    resamples: int

    def __str__(self) -> str:
        return (f"{self.mean:+.4f} ({self.level:.0%} interval {self.low:+.4f} to "
                f"{self.high:+.4f})")


def block_bootstrap(values: Sequence[float] | np.ndarray | torch.Tensor, block: int = 1000,
                    resamples: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """The mean of ``values`` with a block-bootstrap interval (percentile method).

    ``values`` is a sequence along a text, for example the per-character difference in loss of
    two models on the same characters. Neighbouring characters are not independent (a hard
    passage is hard for both models for a while), so the usual ``std / sqrt(n)`` would be too
    small. The block bootstrap cuts the sequence into consecutive blocks of ``block`` values (the
    last one may be shorter), draws as many blocks with replacement ``resamples`` times, and reads
    the interval off the spread of the resampled means; dependence inside a block is kept.

    >>> interval = block_bootstrap([0.5] * 3000, block=1000)
    >>> interval.mean, interval.low, interval.high, interval.blocks
    (0.5, 0.5, 0.5, 3)
    """
    x = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite (a model gave some character probability 0?)")
    if block < 1 or resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need block >= 1, resamples >= 1 and 0 < level < 1, got block={block}, "
                         f"resamples={resamples}, level={level}")
    edges = np.arange(0, x.size, block)
    sums = np.add.reduceat(x, edges)                 # per-block sums and lengths
    lengths = np.diff(np.append(edges, x.size))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[picks].sum(axis=1) / lengths[picks].sum(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(x.mean()), float(low), float(high), float(means.std(ddof=1)),
                    level, len(sums), resamples)
