"""Training the course's GPT on a CPU: our live recipe against nanoGPT's CPU recipe, side by side.

Both recipes run on our implementation (``llmcourse.gpt`` / ``llmcourse.train``) in one process,
one after the other, on the same machine:

* **live recipe** (``llmcourse.train.LIVE_MODEL`` / ``LIVE_TRAIN``): the one Chapter 6 trains in
  front of the reader;
* **nanoGPT's CPU recipe** from its README (4 layers, 4 heads, 128 wide, block 64, batch 12,
  learning rate 1e-3 with a cosine over 2000 iterations, dropout 0; its README reports a
  validation loss of about 1.88 after about 3 minutes on a laptop).

Equal wall time: each recipe trains for ``SECONDS`` with its cosine compressed into that time
(``TrainConfig.max_seconds``), then is scored on the validation part with
``score_validation``. nanoGPT's recipe is also run as published (all 2000 iterations), with
its time. Then training throughput (tokens per second) of the live recipe with 1 and 2 threads.

Run: ``python benchmarks/train_gpt.py``; results go to ``benchmarks/results/train_gpt.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe  # noqa: E402

from llmcourse.data import load_text  # noqa: E402
from llmcourse.gpt import GPT, GPTConfig, count_parameters, cross_entropy_loss  # noqa: E402
from llmcourse.train import (LIVE_MODEL, LIVE_TRAIN, NANOGPT_CPU_MODEL,  # noqa: E402
                             NANOGPT_CPU_TRAIN, TrainConfig, get_batch, make_optimizer,
                             prepare_data, train, window_starts)

SECONDS = 90.0
OUT = Path(__file__).parent / "results" / "train_gpt.md"


def race(text: str, model_kw: dict, train_kw: dict, seconds: float | None) -> dict:
    vocab = len(set(text))
    kw = dict(train_kw, eval_every=10**9)
    if seconds:
        kw.update(steps=10**6, max_seconds=seconds)
    result = train(GPTConfig(vocab_size=vocab, **model_kw), TrainConfig(**kw), text,
                   progress=False)
    return {"steps": result["steps"], "seconds": result["wall_seconds"],
            "cpu": result["cpu_seconds"], "loss": result["history"][-1]["val_loss"],
            "params": count_parameters(result["model"])["total"],
            "tokens": result["steps"] * train_kw["batch_size"] * model_kw["block_size"]}


def tokens_per_second(text: str, threads: int, steps: int = 20) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tok, ids, split = prepare_data(text)
    starts = window_starts(split, LIVE_MODEL["block_size"])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **LIVE_MODEL))
    cfg = TrainConfig(**LIVE_TRAIN)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(0)
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        x, y = get_batch(ids, cfg.batch_size, LIVE_MODEL["block_size"], gen, starts)
        opt.zero_grad()
        cross_entropy_loss(model(x), y).backward()
        opt.step()
    return steps * cfg.batch_size * LIVE_MODEL["block_size"] / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(2)
    text = load_text("tinyshakespeare")
    load_before = os.getloadavg()[0]
    live = race(text, LIVE_MODEL, LIVE_TRAIN, SECONDS)
    nano = race(text, NANOGPT_CPU_MODEL, NANOGPT_CPU_TRAIN, SECONDS)
    nano_full = race(text, NANOGPT_CPU_MODEL, NANOGPT_CPU_TRAIN, None)
    live_steps = race(text, LIVE_MODEL, LIVE_TRAIN, None)
    tps = {}
    for _ in range(2):                      # alternate, keep the best of each
        for threads in (1, 2):
            tps[threads] = max(tps.get(threads, 0.0), tokens_per_second(text, threads))
    torch.set_num_threads(2)
    load_after = os.getloadavg()[0]

    def row(name, r):
        return (f"| {name} | {r['params']:,} | {r['steps']:,} | {r['tokens'] / 1e6:.2f} M | "
                f"{r['seconds']:.0f} s | {r['cpu']:.0f} s | **{r['loss']:.3f}** |")

    lines = [
        "# Training the course's GPT on a CPU",
        "",
        f"Measured by `benchmarks/train_gpt.py` on {describe()}.",
        f"Load average {load_before:.1f} before and {load_after:.1f} after the runs: other jobs "
        "shared the 2 cores, so absolute times are upper bounds; the rows were measured one after "
        "the other in the same run.",
        "",
        "Validation loss: nats per character on the validation part of Tiny Shakespeare (the last "
        "block of 1,000 characters of every 20 before the test 10 %), each character scored once "
        "with at least half a block of context (`llmcourse.train.score_validation`). Both "
        "recipes run on our implementation.",
        "",
        f"## Equal wall time: {SECONDS:.0f} s each (cosine schedule compressed into the time)",
        "",
        "| recipe | parameters | steps | tokens seen | wall time | CPU time | validation loss |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row(f"live recipe (Chapter 6), {LIVE_MODEL}, lr {LIVE_TRAIN['lr']}, batch "
            f"{LIVE_TRAIN['batch_size']}", live),
        row(f"nanoGPT CPU recipe, batch {NANOGPT_CPU_TRAIN['batch_size']}, lr "
            f"{NANOGPT_CPU_TRAIN['lr']}", nano),
        "",
        "## Each recipe as written (fixed number of steps)",
        "",
        "| recipe | parameters | steps | tokens seen | wall time | CPU time | validation loss |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row("live recipe, as in the chapter", live_steps),
        row("nanoGPT CPU recipe, 2000 iterations (its README: about 1.88)", nano_full),
        "",
        "## Throughput of the live recipe (training steps, best of 2 rounds)",
        "",
        "| threads | tokens per second |",
        "|---:|---:|",
        f"| 1 | {tps[1]:,.0f} |",
        f"| 2 | {tps[2]:,.0f} |",
        "",
        f"Goal for the live recipe: at most 1.80 nats per character within {SECONDS:.0f} s, "
        f"ahead of nanoGPT's recipe at the same time. Measured: {live['loss']:.3f} against "
        f"{nano['loss']:.3f}.",
        "",
    ]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
