"""The ladder of Chapter 6: what each part of a transformer block earns, at equal training steps.

Starting from a bigram model (each character predicts the next from itself alone), each rung
adds one part of the GPT:

1. bigram: embedding then linear layer, no context at all;
2. + self-attention: one block holding one attention head (no MLP, no residual, no layer norm);
3. + multi-head: four heads instead of one;
4. + MLP: the feed-forward network after attention;
5. + residual and layer norm: one complete transformer block;
6. deeper without them: four blocks, with neither residual connections nor layer norms;
7. the GPT: four complete blocks.

Every rung is trained for the same number of optimizer steps, with the same batch size and the
same recipe (:mod:`llmcourse.train`), from several seeds (a seed fixes the initial weights and
the batches drawn), so that a difference between rungs is the rung's and not the luck of one
run. Each run is scored at its end on the validation text (the blocks spread over the text that
:func:`llmcourse.batches.score_validation` reads); the test text is never looked at. The mean over
the seeds and the spread (lowest, highest) are recorded for each rung.

Why do the rungs without residual connections and layer norms fail? :func:`signal_sizes` answers
with one forward and backward pass: the size of the activations leaving each block and of the
gradient reaching its weights. Without a residual connection each block multiplies the signal
by the small weights it starts with, so after a few blocks almost nothing is left to learn from.
(On a CPU those four bare blocks are also several times slower per step than the GPT: their
numbers become so small that some fall below float32's normal range, into the *subnormal* numbers
that processors compute slowly; ``torch.set_flush_denormal(True)`` removes the difference.)

The rungs without residual connections or layer norms are variants built here (a variant is a
small module, not a switch inside the GPT): :class:`AttentionOnly` and :class:`AttentionThenMLP`
replace the GPT's blocks, and the final layer norm goes too.

Run ``python -m llmcourse.ladder --steps 1000 --seeds 2 --threads 1``; it writes
``llmcourse/checkpoints/ladder.json``, which Chapter 6 plots.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmcourse.attention import CausalSelfAttention, LayerKVCache
from llmcourse.gpt import GPT, MLP, GPTConfig
from llmcourse.metrics import evaluating

__all__ = ["AttentionOnly", "AttentionThenMLP", "build_rung", "RUNGS", "signal_sizes",
           "run_ladder", "main"]


class AttentionOnly(nn.Module):
    """A block with attention alone: ``x = attention(x)``, no residual, no layer norm."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn = CausalSelfAttention(config.d_model, config.n_head, config.dropout, config.bias)

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None) -> torch.Tensor:
        return self.attn(x, cache)


class AttentionThenMLP(AttentionOnly):
    """Attention then the MLP, ``x = mlp(attention(x))``: no residual, no layer norm."""

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None) -> torch.Tensor:
        return self.mlp(self.attn(x, cache))


def build_rung(config: GPTConfig, block: type[nn.Module] | None = None) -> GPT:
    """A GPT whose blocks are ``block(config)`` (``None``: the GPT's own blocks).

    Without the GPT's blocks the model has no layer norm at all, so the final one goes too.
    """
    model = GPT(config)
    if block is not None:
        model.blocks = nn.ModuleList([block(config) for _ in range(config.n_layer)])
        model.ln_f = nn.Identity()
        model.init_weights()
    return model


# name, what changes in the GPTConfig, the block (None: the GPT's own)
RUNGS: list[tuple[str, dict[str, Any], type[nn.Module] | None]] = [
    ("bigram", dict(n_layer=0), None),
    ("+ self-attention (1 head)", dict(n_layer=1, n_head=1), AttentionOnly),
    ("+ multi-head (4 heads)", dict(n_layer=1, n_head=4), AttentionOnly),
    ("+ MLP", dict(n_layer=1, n_head=4), AttentionThenMLP),
    ("+ residual and layer norm (1 block)", dict(n_layer=1, n_head=4), None),
    ("4 blocks, no residual or layer norm", dict(n_layer=4, n_head=4), AttentionThenMLP),
    ("4 full blocks (the GPT)", dict(n_layer=4, n_head=4), None),
]

BASE_MODEL = dict(block_size=64, d_model=128, dropout=0.0)
# the recipe of every run; run_ladder adds steps, eval_every = steps (one score, at the end),
# the seed, and score_test=False (the ladder never looks at the test text)
BASE_TRAIN = dict(batch_size=32, lr=3e-3, min_lr=3e-4, warmup=30, eval_chars=0)


def signal_sizes(model: GPT, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, Any]]:
    """How big the signal is at each depth: one forward and backward pass on the batch ``x, y``.

    Returns one row per depth: ``"block 0 input"`` (the token plus position embeddings) and then
    ``"after block i"`` for each block, with

    * ``activation_rms``: the root-mean-square of the activations there (forward hooks catch them);
    * ``grad_norm``: the norm of the gradient of the loss with respect to the parameters that made
      them (the embeddings for the first row, the block's own weights for the others).

    The pass runs in eval mode (no dropout). The model's mode and any gradients its parameters
    already held are put back as they were; the weights are not changed.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"signal_sizes expects a GPT (build_rung makes one), got "
                        f"{type(model).__name__}")
    if not isinstance(y, torch.Tensor) or not isinstance(x, torch.Tensor) or x.shape != y.shape:
        raise ValueError(f"x and y must be tensors of the same shape (batch, time), got "
                         f"{tuple(getattr(x, 'shape', ()))} and {tuple(getattr(y, 'shape', ()))}")
    parts = [("block 0 input", model.drop, [model.tok_emb, model.pos_emb])]
    parts += [(f"after block {i + 1}", b, [b]) for i, b in enumerate(model.blocks)]
    rms, hooks = {}, []
    for where, module, _ in parts:
        def keep_rms(_module, _inputs, output, where=where):
            rms[where] = output.detach().double().pow(2).mean().sqrt().item()
        hooks.append(module.register_forward_hook(keep_rms))
    saved = {p: p.grad for p in model.parameters()}
    rows = []
    try:
        model.zero_grad(set_to_none=True)
        with evaluating(model):
            model.loss(x, y).backward()
        for where, _, owners in parts:
            grads = [p.grad for m in owners for p in m.parameters() if p.grad is not None]
            norm = math.sqrt(sum(g.double().pow(2).sum().item() for g in grads))  # no underflow
            rows.append({"where": where, "activation_rms": rms[where], "grad_norm": norm})
    finally:
        for h in hooks:
            h.remove()
        for p, g in saved.items():
            p.grad = g
    return rows


def _spread(values: list[float]) -> dict[str, float]:
    """The mean of ``values`` and their range, for the error bars of a chapter's figure."""
    return {"mean": round(sum(values) / len(values), 4), "min": min(values), "max": max(values)}


def _three_digits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`signal_sizes` with three significant digits, enough to read them."""
    return [{k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in r.items()}
            for r in rows]


def _run_rung(rung: tuple, text: str, steps: int, seeds: list[int], data: dict[str, Any],
              progress: bool) -> dict[str, Any]:
    """Train one rung from every seed; score each run; measure the signal sizes of the first."""
    from llmcourse.batches import score_blocks
    from llmcourse.gpt import count_parameters
    from llmcourse.train import TrainConfig, train

    name, change, block = rung
    model_config = GPTConfig(vocab_size=data["vocab_size"], **{**BASE_MODEL, **change})

    def make(config: GPTConfig) -> GPT:
        return build_rung(config, block)

    ids, split, probe = data["ids"], data["split"], data["probe"]
    # the training loss is scored on the training block just before each validation block
    train_blocks = [(a - split.block, b - split.block) for a, b in split.val_blocks]
    torch.manual_seed(seeds[0])                  # the initial weights of the first run, as
    sizes = {"init": _three_digits(signal_sizes(make(model_config), *probe))}  # train() makes them
    runs = []
    for seed in seeds:
        cfg = TrainConfig(**BASE_TRAIN, steps=steps, eval_every=steps, seed=seed, score_test=False)
        result = train(model_config, cfg, text, progress=False, make_model=make)
        model = result["model"]
        runs.append({"seed": seed, "steps": result["steps"],
                     "seconds": round(result["wall_seconds"], 1),
                     "cpu_seconds": round(result["cpu_seconds"], 1),
                     "train_loss": round(score_blocks(model, ids, train_blocks), 4),
                     "val_loss": result["history"][-1]["val_loss"]})
        if seed == seeds[0]:
            sizes["trained"] = _three_digits(signal_sizes(model, *probe))
        if progress:
            r = runs[-1]
            print(f"{name:38s} seed {seed}: {r['steps']} steps in {r['seconds']:6.1f} s, train "
                  f"{r['train_loss']:.4f}, validation {r['val_loss']:.4f} nats/char", flush=True)
    return {"name": name, "config": model_config.to_dict(),
            "block": block.__name__ if block else "Block",
            "parameters": count_parameters(model)["total"], "runs": runs,
            "val_loss": _spread([r["val_loss"] for r in runs]),
            "train_loss": _spread([r["train_loss"] for r in runs]),
            "seconds": _spread([r["seconds"] for r in runs]), "signal_sizes": sizes}


def run_ladder(steps: int = 1000, seeds: int = 2, threads: int | None = None,
               progress: bool = True, out: str | Path | None = None,
               text: str | None = None) -> dict[str, Any]:
    """Train every rung for ``steps`` optimizer steps from seeds ``0 .. seeds - 1``.

    Returns (and writes to ``out``, when given) the record Chapter 6 reads: per rung, every run's
    steps, wall and CPU seconds, training and validation loss, their mean and range over the
    seeds, and the signal sizes (:func:`signal_sizes`) of seed 0 at initialisation and after
    training. ``text`` defaults to Tiny Shakespeare.
    """
    from llmcourse.machine import machine_info
    from llmcourse.metrics import HELDOUT_METHOD
    from llmcourse.batches import get_batch, prepare_data, window_starts
    from llmcourse.train import TrainConfig

    for what, value in (("steps", steps), ("seeds", seeds)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what} must be a whole number >= 1, got {value!r}")
    if threads:
        torch.set_num_threads(threads)
    if text is None:
        from llmcourse.data import load_text
        text = load_text("tinyshakespeare")
    defaults = TrainConfig()
    tokenizer, ids, split = prepare_data(text, test_fraction=defaults.test_fraction,
                                         val_every=defaults.val_every)
    block_size = BASE_MODEL["block_size"]
    probe = get_batch(ids, BASE_TRAIN["batch_size"], block_size, torch.Generator().manual_seed(0),
                      window_starts(split, block_size))    # one fixed batch of training windows
    data = {"vocab_size": tokenizer.vocab_size, "ids": ids, "split": split, "probe": probe}
    wall0 = time.perf_counter()
    rows = [_run_rung(rung, text, steps, list(range(seeds)), data, progress) for rung in RUNGS]
    record = {
        "what": "each rung trained for the same number of optimizer steps with the same batch "
                "size and recipe, from each seed (a seed fixes the initial weights and the "
                "batches), then scored once on the validation text; the test text is not used",
        "steps_per_rung": steps, "seeds": list(range(seeds)), "model_base": BASE_MODEL,
        "train_base": {**BASE_TRAIN, "steps": steps, "eval_every": steps, "score_test": False},
        "vocab_size": tokenizer.vocab_size,
        "uniform_loss": round(math.log(tokenizer.vocab_size), 4),
        "uniform_loss_note": "ln(vocab_size): the loss of a uniform guess over the characters",
        "data": {"chars": len(text), **split.to_dict()}, "heldout_metric": HELDOUT_METHOD,
        "val_loss_note": "llmcourse.batches.score_validation: every validation block (see data), "
                         "with the weights of the last step",
        "train_loss_note": "scored the same way, with the same weights, on the training block "
                           "just before each validation block (as many characters, spread over "
                           "the text the same way)",
        "signal_sizes_note": "seed 0, one fixed batch of training windows, eval mode: "
                             "root-mean-square of the activations after each block and norm of "
                             "the gradient of that block's parameters (block 0 input: the "
                             "embeddings)",
        "command": f"python -m llmcourse.ladder --steps {steps} --seeds {seeds} --threads "
                   f"{threads or torch.get_num_threads()}",
        "rungs": rows, "total_seconds": round(time.perf_counter() - wall0, 1),
        "machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if out is not None:
        Path(out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> None:
    from llmcourse.checkpoint import CHECKPOINT_DIR

    p = argparse.ArgumentParser(prog="python -m llmcourse.ladder", description=__doc__.split(
        "\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps per run")
    p.add_argument("--seeds", type=int, default=2, help="runs per rung, from seeds 0, 1, ...")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--out", default=str(CHECKPOINT_DIR / "ladder.json"))
    args = p.parse_args(argv)
    run_ladder(args.steps, args.seeds, args.threads or None, progress=True, out=args.out)


if __name__ == "__main__":
    from llmcourse.cli import run

    raise SystemExit(run(main, "python -m llmcourse.ladder"))
