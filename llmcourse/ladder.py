"""The ladder of Chapter 6: what each part of a transformer block earns, at equal training time.

Starting from a bigram model (each character predicts the next from itself alone), each rung
adds one part of the GPT and is trained for the same number of seconds on the same machine with
the same recipe (:mod:`llmcourse.train`), then scored on the held-out text with
:func:`llmcourse.metrics.heldout_nats_per_char`:

1. bigram: embedding then linear layer, no context at all;
2. + self-attention: one block holding one attention head (no MLP, no residual, no layer norm);
3. + multi-head: four heads instead of one;
4. + MLP: the feed-forward network after attention;
5. + residual and layer norm: one complete transformer block;
6. deeper without them: four blocks, with neither residual connections nor layer norms;
7. the GPT: four complete blocks.

The rungs without residual connections or layer norms are variants built here (a variant is a
small module, not a switch inside the GPT): :class:`AttentionOnly` and :class:`AttentionThenMLP`
replace the GPT's blocks, and the final layer norm goes too.

Run ``python -m llmcourse.ladder`` (about ``7 x seconds``); it writes
``llmcourse/checkpoints/ladder.json``, which Chapter 6 plots.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmcourse.attention import CausalSelfAttention, LayerKVCache
from llmcourse.gpt import GPT, MLP, GPTConfig

__all__ = ["AttentionOnly", "AttentionThenMLP", "build_rung", "RUNGS", "run_ladder", "main"]


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
BASE_TRAIN = dict(steps=100_000, batch_size=32, lr=3e-3, min_lr=3e-4, warmup=30,
                  eval_every=100_000, eval_chars=0)


def run_ladder(seconds: float = 60.0, threads: int | None = None, progress: bool = True,
               out: str | Path | None = None) -> dict[str, Any]:
    """Train every rung for ``seconds`` and return (and optionally write) the results."""
    from llmcourse.data import load_text
    from llmcourse.gpt import count_parameters
    from llmcourse.machine import machine_info
    from llmcourse.train import TrainConfig, train

    if threads:
        torch.set_num_threads(threads)
    text = load_text("tinyshakespeare")
    vocab_size = len(set(text))
    rows = []
    for name, change, block in RUNGS:
        model_config = GPTConfig(vocab_size=vocab_size, **{**BASE_MODEL, **change})
        cfg = TrainConfig(**BASE_TRAIN, max_seconds=seconds)
        result = train(model_config, cfg, text, progress=progress,
                       make_model=lambda c, block=block: build_rung(c, block))
        final = result["history"][-1]
        rows.append({"name": name, "config": model_config.to_dict(),
                     "block": block.__name__ if block else "Block",
                     "parameters": count_parameters(result["model"])["total"],
                     "steps": result["steps"], "seconds": round(result["wall_seconds"], 1),
                     "cpu_seconds": round(result["cpu_seconds"], 1),
                     "train_loss": final["train_loss"], "heldout_loss": final["heldout_loss"]})
        if progress:
            print(f"{name:40s} {rows[-1]['steps']:5d} steps  held-out "
                  f"{final['heldout_loss']:.4f} nats/char", flush=True)
    record = {
        "what": "each rung trained for the same wall time from the same seed with the same "
                "recipe, then scored on the whole held-out 10 % of Tiny Shakespeare",
        "seconds_per_rung": seconds, "model_base": BASE_MODEL, "train_base": BASE_TRAIN,
        "command": f"python -m llmcourse.ladder --seconds {seconds:g}",
        "rungs": rows, "machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                        time.gmtime()),
    }
    if out is not None:
        Path(out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> None:
    from llmcourse.checkpoint import CHECKPOINT_DIR

    p = argparse.ArgumentParser(prog="python -m llmcourse.ladder", description=__doc__.split(
        "\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="training time per rung")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--out", default=str(CHECKPOINT_DIR / "ladder.json"))
    args = p.parse_args(argv)
    run_ladder(args.seconds, args.threads or None, progress=True, out=args.out)


if __name__ == "__main__":
    from llmcourse.cli import run

    raise SystemExit(run(main, "python -m llmcourse.ladder"))
