"""Supervised fine-tuning: a base model trained further on conversations (Chapter 8).

The same next-token training as in Chapter 6, with two changes. The model first gets rows for the
tokens the chat tokenizer added (:func:`grow_vocabulary`: new characters and special tokens, every
trained row kept). And the loss counts only what the assistant writes, as marked by the mask of
:meth:`llmcourse.chat.ChatTokenizer.render` (:func:`assistant_loss` measures it,
:func:`finetune` minimises it with Chapter 6's optimizer and learning-rate schedule).

Introduced in Chapter 8.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from llmcourse.chat import ChatTokenizer, _block_size
from llmcourse.metrics import IGNORE_INDEX, evaluating

__all__ = ["grow_vocabulary", "assistant_loss", "finetune"]


def grow_vocabulary(model: Any, vocab_size: int, *, copy_rows: Mapping[int, int] | None = None,
                    seed: int = 0) -> Any:
    """Give ``model`` rows for token ids it has never seen, keeping every trained row.

    The token embedding (and the output layer, tied to it or not) grow from ``config.vocab_size``
    to ``vocab_size`` rows. A new row starts as the mean of the trained rows plus a little noise,
    so new tokens start out as an "average token" rather than as something extreme. ``copy_rows``
    maps some new ids to old ids whose rows they start as (embedding, output row and bias): new
    tokens that must be told apart from the first step (the digits, say) can start as distinct
    old tokens instead of as near-identical averages. Returns the model (changed in place).
    """
    import torch
    from torch import nn

    old = int(model.config.vocab_size)
    if not isinstance(vocab_size, int) or vocab_size < old:
        raise ValueError(f"vocab_size must be an int >= the model's {old}, got {vocab_size!r}")
    copy_rows = dict(copy_rows or {})
    for new_id, old_id in copy_rows.items():
        if not (isinstance(new_id, int) and old <= new_id < vocab_size):
            raise ValueError(f"copy_rows keys must be new ids, from {old} to {vocab_size - 1}; "
                             f"got {new_id!r}")
        if not (isinstance(old_id, int) and 0 <= old_id < old):
            raise ValueError(f"copy_rows values must be trained ids, from 0 to {old - 1}; "
                             f"got {old_id!r} (for new id {new_id})")
    if vocab_size == old:
        return model
    embeddings = [(n, m) for n, m in model.named_modules()
                  if isinstance(m, nn.Embedding) and m.num_embeddings == old]
    if len(embeddings) > 1:  # the position embedding may have as many rows: prefer the token one
        embeddings = [(n, m) for n, m in embeddings if "pos" not in n.lower()]
    heads = [(n, m) for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and m.out_features == old]
    if len(embeddings) != 1 or len(heads) != 1:
        raise ValueError(f"expected one token embedding and one output layer with {old} rows, "
                         f"found {[n for n, _ in embeddings]} and {[n for n, _ in heads]}")
    (emb_name, emb), (head_name, head) = embeddings[0], heads[0]
    tied = head.weight is emb.weight
    g = torch.Generator().manual_seed(seed)

    def grown(weight: torch.Tensor) -> torch.Tensor:
        w = weight.detach()
        extra = w.mean(0, keepdim=True) + 0.1 * w.std() * torch.randn(
            vocab_size - old, w.shape[1], generator=g, dtype=w.dtype)
        for new_id, old_id in copy_rows.items():
            extra[new_id - old] = w[old_id]
        return torch.cat([w, extra.to(w.dtype)])

    new_emb = nn.Embedding(vocab_size, emb.embedding_dim)
    new_emb.weight = nn.Parameter(grown(emb.weight))
    new_head = nn.Linear(head.in_features, vocab_size, bias=head.bias is not None)
    if tied:
        new_head.weight = new_emb.weight
    else:
        new_head.weight = nn.Parameter(grown(head.weight))
    if head.bias is not None:
        b = head.bias.detach()
        extra_b = b.mean().expand(vocab_size - old).clone()
        for new_id, old_id in copy_rows.items():
            extra_b[new_id - old] = b[old_id]
        new_head.bias = nn.Parameter(torch.cat([b, extra_b]))
    for name, module in [(emb_name, new_emb), (head_name, new_head)]:
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)
    model.config.vocab_size = vocab_size
    return model


def _batch(rendered: Sequence[tuple[list[int], list[int]]], pad_id: int):
    """Inputs and targets for next-token training; targets are -100 (ignored) where the mask is 0
    and in the padding."""
    import torch

    length = max(len(ids) for ids, _ in rendered)
    x = torch.full((len(rendered), length - 1), pad_id, dtype=torch.long)
    y = torch.full((len(rendered), length - 1), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, mask) in enumerate(rendered):
        t = torch.tensor(ids)
        x[row, : len(ids) - 1] = t[:-1]
        m = torch.tensor(mask[1:], dtype=torch.bool)
        y[row, : len(ids) - 1] = torch.where(m, t[1:], torch.tensor(IGNORE_INDEX))
    return x, y


def _rendered(tokenizer: ChatTokenizer, conversations: Sequence[Sequence[dict]], block: int | None):
    out = []
    for k, conversation in enumerate(conversations):
        ids, mask = tokenizer.render(conversation)
        if block is not None and len(ids) - 1 > block:
            raise ValueError(f"conversation {k} renders to {len(ids)} tokens, more than the "
                             f"model's context of {block} + 1")
        out.append((ids, mask))
    return out


def assistant_loss(model: Any, tokenizer: ChatTokenizer, conversations: Sequence[Sequence[dict]],
                   *, batch_size: int = 64) -> float:
    """The mean cross-entropy (nats per token) on the assistant tokens of ``conversations``: how
    well the model predicts what the assistant says, given everything before it."""
    import torch
    from torch.nn import functional as F

    rendered = _rendered(tokenizer, conversations, _block_size(model))
    total, count = 0.0, 0
    with evaluating(model), torch.no_grad():
        for i in range(0, len(rendered), batch_size):
            x, y = _batch(rendered[i: i + batch_size], tokenizer.end_id)
            logits = model(x)
            total += float(F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(),
                                           ignore_index=IGNORE_INDEX, reduction="sum"))
            count += int((y != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("the conversations hold no assistant tokens to measure")
    return total / count


def finetune(model: Any, tokenizer: ChatTokenizer, conversations: Sequence[Sequence[dict]],
             cfg: Any = None, *, progress: bool = False,
             on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Supervised fine-tuning: train ``model`` to write the assistant turns of ``conversations``.

    Each step draws ``cfg.batch_size`` conversations at random, renders them with their loss masks
    and takes one optimizer step on the cross-entropy of the assistant tokens only (the rest of
    each conversation is context). ``cfg`` is Chapter 6's :class:`llmcourse.train.TrainConfig`
    (steps, batch size, learning rates, warm-up, weight decay, gradient clipping, seed); the
    optimizer and learning-rate schedule are Chapter 6's too (:func:`llmcourse.train.make_optimizer`,
    :func:`llmcourse.train.learning_rate`). ``on_step(step, loss)`` is called after every step.
    Returns the training loss of every step.
    """
    import torch
    from torch.nn import functional as F

    from llmcourse.train import TrainConfig, learning_rate, make_optimizer, optimizer_step

    cfg = TrainConfig(steps=200, batch_size=16, lr=2e-3, min_lr=2e-4, warmup=20,
                      weight_decay=0.0) if cfg is None else cfg
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a llmcourse.train.TrainConfig, got {type(cfg).__name__}")
    rendered = _rendered(tokenizer, conversations, _block_size(model))
    if len(rendered) == 0:
        raise ValueError("finetune needs at least one conversation")
    if int(model.config.vocab_size) < tokenizer.vocab_size:
        raise ValueError(f"the model has {model.config.vocab_size} token rows but the tokenizer "
                         f"has {tokenizer.vocab_size} ids; call grow_vocabulary(model, "
                         f"{tokenizer.vocab_size}) first")
    g = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    losses: list[float] = []
    model.train()
    steps = range(cfg.steps)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="fine-tuning", unit="step")
    for step in steps:
        picks = torch.randint(len(rendered), (cfg.batch_size,), generator=g).tolist()
        x, y = _batch([rendered[p] for p in picks], tokenizer.end_id)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX)
        losses.append(optimizer_step(model, optimizer, [loss], learning_rate(step, cfg),
                                     cfg.grad_clip))
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses
