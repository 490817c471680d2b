"""Generating text: choosing the next token, and the generation loop (introduced in Chapter 7).

A language model gives, for the next token, one score (a *logit*) per token of the vocabulary.
Generation repeats four steps: run the model on the text so far, turn the scores of the last
position into a choice of one token, append it, and go again, until a stop token or a length limit.

**Choosing a token.** :func:`greedy_next_token` takes the highest score. :func:`sample_next_token`
draws at random from the softmax of the scores, after three optional changes, always applied in
this order:

1. **temperature** ``T > 0``: divide every logit by ``T``. ``T < 1`` sharpens the distribution
   (toward greedy), ``T > 1`` flattens it (toward uniform).
2. **top-k** ``k >= 1`` (:func:`top_k_filter`): keep the tokens whose (scaled) logit is at least
   the ``k``-th largest logit; set the others to ``-inf``. *Ties:* every token that ties with the
   ``k``-th largest value is kept, so more than ``k`` tokens survive when several share that
   value. A ``k`` larger than the vocabulary keeps everything.
3. **top-p** ``0 < p <= 1`` (:func:`top_p_filter`, "nucleus sampling"): compute the softmax of
   the logits left after step 2 (in float64), sort the probabilities from large to small, add
   them up in that order and stop at the first token where the running sum is ``>= p``; call its
   probability ``t``. Keep every token whose probability is ``>= t``; set the others to ``-inf``.
   *Ties:* every token that ties with ``t`` is kept (so the order among equal probabilities never
   matters). If rounding keeps the running sum below ``p`` to the end, every token with a
   probability above zero is kept. ``p = 1`` keeps everything.

The distribution actually sampled is the softmax (in float64) of what is left
(:func:`next_token_probs`). A draw is made the same way each time, so it is easy to repeat in
another language: take one uniform number ``u`` in ``[0, 1)`` from the generator
(``torch.rand``), add the probabilities up in order of token id, and choose the first token whose
running sum is greater than ``u`` times the total. A token of probability zero is never chosen.

**Greedy ties:** :func:`greedy_next_token` returns the smallest id among equal largest logits.

**The loop and its cache.** :func:`generate` runs the loop. The model can only see
``block_size`` tokens, so its context is a window onto the end of the text, by one rule
(:func:`window_start`): the window grows with the text until it holds ``block_size`` tokens; when
one more token would not fit, it restarts with the last three quarters of a window
(``block_size * 3 // 4`` tokens) and grows again. Without a cache, every step runs the model on
the whole context again. With the key/value cache of :class:`llmcourse.gpt.KVCache`, the context
is run once (the *prefill*) and every later step runs the model on the one new token only, reusing
the keys and values of the earlier ones. When the window restarts, every token in it moves to a
new position, so the cached keys and values (made with the old positions) are no longer valid:
the cache is filled again, once, from the new context, and the steps after it are cheap again.
Both loops see exactly the same tokens at every step, so they give the same tokens. (Sliding the
window by one token per step instead would invalidate the cache at every step past the window.)
:func:`generate_many` runs the same loop for several samples of one prompt side by side.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from llmcourse.metrics import evaluating

__all__ = [
    "apply_temperature", "top_k_filter", "top_p_filter", "next_token_probs",
    "sample_from_probs", "sample_next_token", "greedy_next_token", "window_start", "generate",
    "generate_many",
]


# --------------------------------------------------------------------------------------------
# Checking the inputs
# --------------------------------------------------------------------------------------------


def _as_logits(logits: Any, name: str = "logits") -> torch.Tensor:
    """A float64 tensor of shape (V,) or (B, V), checked."""
    if isinstance(logits, torch.Tensor):
        t = logits.detach()
    else:
        try:
            t = torch.as_tensor(logits)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a tensor (or array/list) of numbers, got "
                            f"{type(logits).__name__}") from None
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.dim() not in (1, 2) or t.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (vocab,) or (batch, vocab) with vocab >= 1, got "
                         f"shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if torch.isnan(t).any():
        raise ValueError(f"{name} contain nan")
    if torch.isposinf(t).any():
        raise ValueError(f"{name} contain +inf")
    if not torch.isfinite(t).any(dim=-1).all():
        raise ValueError(f"every row of {name} needs at least one finite value (got a row that "
                         f"is all -inf: no token would be possible)")
    return t


def _check_temperature(temperature: Any) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number > 0, got {type(temperature).__name__}")
    if not temperature > 0 or temperature != temperature or temperature == float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature} "
                         f"(for the most likely token use greedy_next_token / greedy=True)")
    return float(temperature)


def _check_top_k(top_k: Any) -> int | None:
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"top_k must be an int >= 1 or None, got {type(top_k).__name__} "
                        f"{top_k!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for no top-k filter), got {top_k}")
    return top_k


def _check_top_p(top_p: Any) -> float | None:
    if top_p is None:
        return None
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
        raise TypeError(f"top_p must be a number in (0, 1] or None, got {type(top_p).__name__}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (a share of the probability), got {top_p}")
    return float(top_p)


# --------------------------------------------------------------------------------------------
# Temperature, top-k, top-p
# --------------------------------------------------------------------------------------------


def apply_temperature(logits: Any, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (float64). ``temperature`` must be > 0."""
    t = _as_logits(logits)
    return t / _check_temperature(temperature)


def top_k_filter(logits: Any, k: int) -> torch.Tensor:
    """Keep the logits ``>=`` the ``k``-th largest of their row; the others become ``-inf``.

    Ties at the boundary are all kept, so more than ``k`` tokens may survive; ``k`` larger than
    the vocabulary keeps everything. Works on ``(V,)`` and ``(B, V)``; returns float64.

    >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0, 3.0]), 1).tolist()
    [-inf, 3.0, -inf, 3.0]
    """
    t = _as_logits(logits)
    k = _check_top_k(k)
    if k is None:
        raise TypeError("top_k_filter needs k, an int >= 1, got None")
    if k >= t.shape[-1]:
        return t.clone()
    kth = torch.topk(t, k, dim=-1).values[..., -1:]               # the k-th largest, (..., 1)
    return t.masked_fill(t < kth, float("-inf"))


def top_p_filter(logits: Any, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities add up to ``>= p``.

    The probabilities are the softmax of ``logits`` (float64). Sorted from large to small, they
    are added up until the sum first reaches ``p``; the probability ``t`` of the token reached
    there is the threshold: tokens with probability ``>= t`` are kept (all ties with ``t`` too),
    the others become ``-inf``. ``p = 1`` keeps everything. Works on ``(V,)`` and ``(B, V)``.

    >>> top_p_filter(torch.log(torch.tensor([0.5, 0.2, 0.3])), 0.7).isfinite().tolist()
    [True, False, True]
    """
    t = _as_logits(logits)
    p = _check_top_p(p)
    if p is None:
        raise TypeError("top_p_filter needs p, a number in (0, 1], got None")
    if p == 1.0:
        return t.clone()
    probs = torch.softmax(t, dim=-1)
    ordered = torch.sort(probs, dim=-1, descending=True).values
    running = torch.cumsum(ordered, dim=-1)
    reached = (running < p).sum(dim=-1, keepdim=True)              # index where the sum reaches p
    never = reached >= t.shape[-1]                                 # rounding: sum stayed below p
    threshold = torch.gather(ordered, -1, reached.clamp(max=t.shape[-1] - 1))
    positive_min = torch.where(probs > 0, probs, torch.inf).min(dim=-1, keepdim=True).values
    threshold = torch.where(never, positive_min, threshold)
    return t.masked_fill(probs < threshold, float("-inf"))


def next_token_probs(logits: Any, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> torch.Tensor:
    """The distribution :func:`sample_next_token` draws from (float64, same shape as logits).

    Temperature first, then top-k, then top-p (see the module's docstring), then a softmax.
    """
    t = apply_temperature(logits, temperature)
    k, p = _check_top_k(top_k), _check_top_p(top_p)
    if k is not None:
        t = top_k_filter(t, k)
    if p is not None:
        t = top_p_filter(t, p)
    return torch.softmax(t, dim=-1)


def sample_from_probs(probs: torch.Tensor, generator: torch.Generator | None = None):
    """Draw one token id per row of ``probs`` ((V,) -> int, (B, V) -> LongTensor (B,)).

    One uniform ``u`` in [0, 1) per row from ``generator`` (``torch.rand``); the chosen id is the
    first whose running sum of probabilities, in order of id, exceeds ``u`` times the total.
    """
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if probs.dim() not in (1, 2) or probs.shape[-1] == 0:
        raise ValueError(f"probs must have shape (vocab,) or (batch, vocab), got "
                         f"{tuple(probs.shape)}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    p = probs.detach().to(torch.float64)
    if not torch.isfinite(p).all() or (p < 0).any() or not (p.sum(-1) > 0).all():
        raise ValueError("probs must be finite, >= 0, with a positive sum in every row")
    rows = p.reshape(-1, p.shape[-1])
    running = torch.cumsum(rows, dim=-1)                            # (B, V)
    u = torch.rand(rows.shape[0], 1, generator=generator, dtype=torch.float64)
    ids = torch.searchsorted(running, u * running[:, -1:], right=True).squeeze(-1)
    # u * total can round up to the total itself: fall back on the last possible token
    last = (rows.shape[-1] - 1) - torch.argmax((rows.flip(-1) > 0).to(torch.int8), dim=-1)
    ids = torch.minimum(ids, last)
    return int(ids[0]) if probs.dim() == 1 else ids


def sample_next_token(logits: Any, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None):
    """Draw the next token from ``logits`` after temperature, top-k and top-p (in that order).

    ``logits`` of shape ``(V,)`` give an ``int``; ``(B, V)`` give a LongTensor ``(B,)``.
    ``generator`` (a seeded ``torch.Generator``) makes the draw repeatable.
    """
    return sample_from_probs(next_token_probs(logits, temperature, top_k, top_p), generator)


def greedy_next_token(logits: Any):
    """The id of the largest logit (the smallest such id on a tie): ``(V,) -> int``,
    ``(B, V) -> LongTensor (B,)``."""
    t = _as_logits(logits)
    ids = torch.argmax((t == t.max(dim=-1, keepdim=True).values).to(torch.int8), dim=-1)
    return int(ids) if t.dim() == 1 else ids


# --------------------------------------------------------------------------------------------
# The generation loop
# --------------------------------------------------------------------------------------------


def _prompt_list(prompt_ids: Any, vocab_size: int) -> list[int]:
    if isinstance(prompt_ids, torch.Tensor):
        if prompt_ids.dim() != 1 or prompt_ids.is_floating_point():
            raise ValueError(f"prompt_ids must be a 1-D tensor of integer ids, got dtype "
                             f"{prompt_ids.dtype} and shape {tuple(prompt_ids.shape)}")
        ids = prompt_ids.tolist()
    elif isinstance(prompt_ids, (list, tuple)):
        ids = list(prompt_ids)
    elif isinstance(prompt_ids, str):
        raise TypeError("prompt_ids must be token ids, got a str: encode it first "
                        "(tokenizer.encode(text))")
    else:
        raise TypeError(f"prompt_ids must be a list of ints or a 1-D tensor, got "
                        f"{type(prompt_ids).__name__}")
    if not ids:
        raise ValueError("the prompt is empty: give at least one token id to start from")
    for pos, i in enumerate(ids):
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"prompt_ids must hold ints, got {i!r} at position {pos}")
        if not 0 <= i < vocab_size:
            raise ValueError(f"token id {i} at position {pos} of the prompt is outside the "
                             f"vocabulary (ids run from 0 to {vocab_size - 1})")
    return ids


def _check_loop_settings(model: Any, max_new_tokens: Any, temperature: Any, top_k: Any,
                         top_p: Any, greedy: bool, generator: Any) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens must be an int >= 0, got {type(max_new_tokens).__name__}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    config = getattr(model, "config", None)
    if not hasattr(config, "block_size") or not hasattr(config, "vocab_size") or not hasattr(
            model, "new_cache"):
        raise TypeError(f"model must be a language model such as llmcourse.gpt.GPT (with .config.block_size and "
                        f".new_cache()), got {type(model).__name__}")
    if greedy:
        if temperature != 1.0 or top_k is not None or top_p is not None:
            raise ValueError(f"greedy=True takes the most likely token, so temperature, top_k and "
                             f"top_p do not apply; got temperature={temperature}, top_k={top_k}, "
                             f"top_p={top_p}")
        return
    _check_temperature(temperature)
    _check_top_k(top_k)
    _check_top_p(top_p)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")


def _stop_set(stop_ids: Any, vocab_size: int) -> set[int]:
    if stop_ids is None:
        return set()
    if isinstance(stop_ids, int) and not isinstance(stop_ids, bool):
        stop_ids = [stop_ids]
    stops = set()
    for s in stop_ids:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < vocab_size:
            raise ValueError(f"stop_ids must be token ids from 0 to {vocab_size - 1}, got {s!r}")
        stops.add(s)
    return stops


def window_start(length: int, start: int, block_size: int) -> int:
    """The window rule of generation: where the model's context starts in a text of ``length``.

    The model sees the tokens from ``start`` on (``start`` is where its context started at the
    previous step; 0 at the first). While they fit in ``block_size`` tokens, the start stays and
    the context grows by one token per step. Once they no longer fit, the start jumps so that the
    last ``max(1, 3 * block_size // 4)`` tokens remain, and the context grows again from there.
    Both loops of :func:`generate` use this rule, so they see the same tokens; with the key/value
    cache, a jump is the only time the cache has to be filled again.

    >>> [window_start(n, 0, 8) for n in (5, 8, 9)]        # 9 tokens no longer fit: keep 6
    [0, 0, 3]
    >>> window_start(10, 3, 8), window_start(12, 3, 8)   # 7 from 3 fit; 9 do not
    (3, 6)
    """
    for name, value in (("length", length), ("start", start), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if block_size < 1 or not 0 <= start <= length:
        raise ValueError(f"need block_size >= 1 and 0 <= start <= length, got block_size="
                         f"{block_size}, start={start}, length={length}")
    if length - start <= block_size:
        return start
    return length - max(1, block_size * 3 // 4)


def _loop(model: Any, ids: list[int], rows: int, max_new_tokens: int, choose: Callable,
          use_cache: bool, stops: set[int], on_token: Callable | None) -> list[list[int]]:
    """The generation loop for ``rows`` copies of the prompt ``ids``; returns the new ids."""
    block = model.config.block_size
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    seq = torch.tensor([ids] * rows, dtype=torch.long, device=device)   # (rows, T)
    new = torch.empty(rows, 0, dtype=torch.long, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    with evaluating(model):
        cache, start = None, 0                  # the model sees seq[:, start:]
        for _ in range(max_new_tokens):
            moved = window_start(seq.shape[1], start, block)
            if not use_cache:
                logits = model(seq[:, moved:])                        # the whole context again
            elif cache is not None and moved == start:
                logits = model(seq[:, -1:], cache=cache)              # only the newest token
            else:   # the first step, or the context jumped: fill the cache from it, once
                cache = model.new_cache()
                logits = model(seq[:, moved:], cache=cache)
            start = moved
            token = choose(logits[:, -1]).to(device)                  # (rows,)
            seq = torch.cat([seq, token[:, None]], dim=1)
            new = torch.cat([new, token[:, None]], dim=1)
            if on_token is not None:
                on_token(int(token[0]) if rows == 1 else token.tolist())
            if stops:
                done |= torch.isin(token, torch.tensor(sorted(stops), device=device))
                if bool(done.all()):
                    break
    out = []
    for row in new.tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        out.append(row[:cut])
    return out


@torch.no_grad()
def generate(model: Any, prompt_ids: Any, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
             use_cache: bool = True, stop_ids: Iterable[int] | int | None = None,
             generator: torch.Generator | None = None,
             on_token: Callable[[int], Any] | None = None) -> list[int]:
    """Continue ``prompt_ids`` by up to ``max_new_tokens`` tokens; returns the new ids.

    - ``greedy=True`` takes the most likely token each step (then temperature, top_k and top_p
      must stay at their defaults); otherwise :func:`sample_next_token` draws it with
      ``temperature``, ``top_k``, ``top_p`` and ``generator`` (one uniform number per step).
    - The model sees at most ``model.config.block_size`` tokens, the window of
      :func:`window_start`: when the text outgrows it, the last three quarters of it remain.
    - ``use_cache=True`` runs the context once and then one token per step through a
      :class:`llmcourse.gpt.KVCache`, filling the cache again only when the window restarts.
      ``use_cache=False`` runs the whole context every step. Both give the same tokens.
    - Generation stops after a token in ``stop_ids`` (that token is the last one returned).
    - ``on_token(id)`` is called after each new token (to stream text or time the steps).

    The model runs in eval mode (no dropout) and is put back in its previous mode afterwards.
    """
    _check_loop_settings(model, max_new_tokens, temperature, top_k, top_p, greedy, generator)
    ids = _prompt_list(prompt_ids, model.config.vocab_size)
    stops = _stop_set(stop_ids, model.config.vocab_size)
    if greedy:
        def choose(logits):
            return greedy_next_token(logits)
    else:
        def choose(logits):
            return sample_next_token(logits, temperature, top_k, top_p, generator)
    return _loop(model, ids, 1, max_new_tokens, choose, use_cache, stops, on_token)[0]


@torch.no_grad()
def generate_many(model: Any, prompt_ids: Any, num_samples: int, max_new_tokens: int,
                  temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, use_cache: bool = True,
                  stop_ids: Iterable[int] | int | None = None,
                  generator: torch.Generator | None = None) -> list[list[int]]:
    """``num_samples`` sampled continuations of one prompt, computed side by side as a batch.

    The same loop as :func:`generate` (the same cache, the same rules), with one row per sample;
    each step draws one uniform number per row. Each continuation ends after its first token in
    ``stop_ids``; the loop runs until every row has stopped or ``max_new_tokens`` is reached.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    _check_loop_settings(model, max_new_tokens, temperature, top_k, top_p, False, generator)
    ids = _prompt_list(prompt_ids, model.config.vocab_size)
    stops = _stop_set(stop_ids, model.config.vocab_size)

    def choose(logits):
        return sample_next_token(logits, temperature, top_k, top_p, generator)

    return _loop(model, ids, num_samples, max_new_tokens, choose, use_cache, stops, None)
