"""Training a GPT on a text (introduced in Chapter 6); run as ``python -m llmcourse.train``.

The loop is the one every language model is trained with, at a small scale:

1. cut ``batch_size`` random windows of ``block_size + 1`` characters from the training text;
   the first ``block_size`` are the input, the same window shifted by one is the target;
2. the model's mean cross-entropy on those targets is the loss; backpropagation gives its gradient;
3. the gradient is clipped to a maximum norm (one unlucky batch cannot throw the weights far) and
   AdamW takes a step, with a learning rate that warms up linearly and then decays along a cosine;
4. every ``eval_every`` steps the model is scored on the *validation* blocks
   (:func:`llmcourse.batches.score_validation`); when that improves, a checkpoint is saved
   (early stopping: the weights kept are those of the best validation score, not the last);
5. at the end the kept weights are scored once on the *test* text, the last 10 %: the number,
   chosen on nothing, that a chapter reports (:mod:`llmcourse.batches` makes the three parts).

The same script trains data-parallel on several processes with PyTorch's own engine: under
``torchrun --nproc_per_node=N`` every process takes a slice of each batch, computes its gradient,
and DistributedDataParallel averages the gradients before every step, so all processes keep the
same weights (gloo on CPUs, NCCL on GPUs). ``--grad-accum`` splits each process's slice into
micro-batches whose gradients add up before the step. Only rank 0 logs and saves.

Checkpoints are safetensors + JSON (:func:`llmcourse.checkpoint.save_checkpoint`); the state needed to
resume (optimizer moments, random generator, step) is one more safetensors file, so resuming
never unpickles anything either.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from llmcourse.batches import get_batch, prepare_data, score_validation, window_starts
from llmcourse.checkpoint import (load_resume_state, record_whole_run, save_checkpoint,
                                  save_resume_state)
from llmcourse.gpt import GPT, GPTConfig, count_parameters, cross_entropy_loss
from llmcourse.machine import machine_info, pick_device
from llmcourse.metrics import HELDOUT_METHOD, heldout_nats_per_char

__all__ = ["TrainConfig", "LIVE_MODEL", "LIVE_TRAIN", "NANOGPT_CPU_MODEL", "NANOGPT_CPU_TRAIN",
           "learning_rate", "make_optimizer", "optimizer_step", "train", "main",
           # from llmcourse.batches, importable from here too
           "prepare_data", "window_starts", "get_batch", "score_validation"]


@dataclass
class TrainConfig:
    """How to train (the model's shape is a :class:`llmcourse.gpt.GPTConfig`)."""

    steps: int = 2000             # optimizer steps
    batch_size: int = 32          # windows per optimizer step, over all processes together
    grad_accum: int = 1           # micro-batches per process per step
    lr: float = 2e-3              # peak learning rate
    min_lr: float = 2e-4          # learning rate at the end of the cosine
    warmup: int = 100             # steps of linear warm-up
    weight_decay: float = 0.1     # AdamW's decay of the matrices (not of biases, norms, embeddings)
    beta2: float = 0.99           # AdamW's second-moment decay (0.99 suits small batches)
    grad_clip: float = 1.0        # maximum gradient norm (0 = no clipping)
    eval_every: int = 250         # steps between validation scores (and the last step)
    eval_chars: int = 0           # score only the first eval_chars of validation (0 = all)
    seed: int = 1337
    val_every: int = 20           # validation: the last of every 20 blocks before the test
    test_fraction: float = 0.1    # test: the end of the text, scored once with the kept weights
    score_test: bool = True       # score the test part at the end (False: leave it unseen)
    max_seconds: float = 0.0      # stop early after this much wall time (0 = no limit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The live recipe: Chapter 6 trains it in front of the reader (about a minute on 2 CPU cores),
# and benchmarks/train_gpt.py races it against nanoGPT's published CPU recipe.
# Two blocks, not four: in a minute a shallow model makes more steps than a deep one; depth
# pays off in the hour the shipped model trained.
LIVE_MODEL = dict(block_size=64, n_layer=2, n_head=4, d_model=128, dropout=0.0)
LIVE_TRAIN = dict(steps=600, batch_size=32, lr=3e-3, min_lr=3e-4, warmup=30)
# nanoGPT's CPU recipe for Tiny Shakespeare (its README), on our implementation.
NANOGPT_CPU_MODEL = dict(block_size=64, n_layer=4, n_head=4, d_model=128, dropout=0.0)
NANOGPT_CPU_TRAIN = dict(steps=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup=100)


def learning_rate(step: int, cfg: TrainConfig, elapsed: float | None = None) -> float:
    """Linear warm-up for ``cfg.warmup`` steps, then a cosine from ``lr`` down to ``min_lr``.

    With a time budget (``cfg.max_seconds`` > 0 and the ``elapsed`` seconds given) the cosine
    follows whichever runs out first, the steps or the time, so a run of fixed duration still
    ends at ``min_lr`` (the ladder of Chapter 6 trains every model for the same time).
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.max_seconds > 0 and elapsed is not None:
        progress = max(progress, min(1.0, elapsed / cfg.max_seconds))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   losses: Iterable[torch.Tensor], lr: float, grad_clip: float = 0.0) -> float:
    """One step of training, the same in every chapter that trains a network.

    Set the learning rate, clear the previous step's gradients, backpropagate each loss of
    ``losses`` (the parts of one batch: their gradients add up), clip the gradient's norm to
    ``grad_clip`` (0: no clipping), and let the optimizer move the weights. Returns the sum of
    the losses. ``losses`` may be a generator: each loss is computed only when it is needed.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for loss in losses:
        loss.backward()
        total += loss.item()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return total


def make_optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices of linear layers only."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_matrix = p.dim() >= 2 and not name.startswith(("tok_emb", "pos_emb"))
        (decay if is_matrix else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def train(model_config: GPTConfig, cfg: TrainConfig, text: str, *,
          out: str | Path | None = None, resume: bool = False, device: str = "cpu",
          progress: bool = True, callback: Callable[[dict], None] | None = None,
          extra_meta: dict | None = None, verbose: bool = False,
          make_model: Callable[[GPTConfig], torch.nn.Module] = GPT) -> dict[str, Any]:
    """Train a GPT on ``text`` and return ``{"model", "tokenizer", "history", ...}``.

    ``make_model(config)`` builds the model (Chapter 6's ladder passes its variants).

    ``out`` (optional): where the best checkpoint goes (``out.safetensors`` + ``out.json``);
    the resume state goes to ``out-last.*``. ``callback(record)`` is called after every
    evaluation with ``{"step", "train_loss", "val_loss", "seconds"}``. The returned model holds
    the weights of the best validation score; ``result["test_loss"]`` is their score on the
    test part (``None`` when ``cfg.score_test`` is False).
    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is set up here.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = pick_device(device)
    distributed = world > 1
    if distributed:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
    if distributed and cfg.max_seconds:
        raise ValueError("max_seconds (a time budget) would stop the processes at different "
                         "steps; under torchrun give a number of steps instead")
    per_rank = cfg.batch_size // world
    if cfg.batch_size % (world * cfg.grad_accum) != 0:
        raise ValueError(f"batch_size={cfg.batch_size} must divide by processes x grad_accum = "
                         f"{world} x {cfg.grad_accum}")
    micro = per_rank // cfg.grad_accum

    tokenizer, ids, split = prepare_data(text, test_fraction=cfg.test_fraction,
                                         val_every=cfg.val_every)
    if model_config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"model_config.vocab_size={model_config.vocab_size} but the text has "
                         f"{tokenizer.vocab_size} distinct characters")
    starts = window_starts(split, model_config.block_size)

    torch.manual_seed(cfg.seed)                        # same initial weights on every rank
    model = make_model(model_config).to(dev)
    optimizer = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # same windows on every rank: each takes
    dropout_seed = cfg.seed + 2 + rank                 # its slice of the global batch
    torch.manual_seed(dropout_seed)
    out = Path(out) if out is not None else None
    last = out.with_name(out.name + "-last") if out is not None else None
    start_step, history, best, best_state = 0, [], float("inf"), None
    test_loss = None
    prior_wall, prior_cpu = 0.0, 0.0
    if resume:
        if last is None or not last.with_name(last.name + ".json").is_file():
            raise FileNotFoundError(f"nothing to resume: {last}.json not found")
        start_step, meta = load_resume_state(last, model, optimizer, gen)
        history = meta.get("history", [])
        best = min([h["val_loss"] for h in history] or [float("inf")])
        prior_wall = meta.get("wall_seconds", 0.0)
        prior_cpu = meta.get("cpu_seconds", 0.0)
        best_file = out.with_name(out.name + ".safetensors")
        if best_file.is_file():                  # the weights of the best step so far
            from safetensors.torch import load_file
            best_state = load_file(str(best_file))

    ddp_model = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP
        ddp_model = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    def meta_now(step: int) -> dict:
        best_rec = min(history, key=lambda h: h["val_loss"]) if history else None
        return {
            "steps_done": step, "best_step": best_rec["step"] if best_rec else None,
            "val_loss": best_rec["val_loss"] if best_rec else None,
            "test_loss": test_loss,
            "train_loss": best_rec["train_loss"] if best_rec else None,
            "heldout_metric": HELDOUT_METHOD,
            "val_chars_scored": (min(split.val_chars, cfg.eval_chars) if cfg.eval_chars
                                 else split.val_chars),
            "split_note": "test = ids[test_start:], scored once with the weights of best_step; "
                          "validation = the last block of every val_every blocks before it, "
                          "watched during training (it chose best_step); training = the rest, "
                          "in windows that never touch a validation block",
            "train_loss_note": "mean training loss over the steps since the previous evaluation"
                               + (f" (with dropout {model_config.dropout})"
                                  if getattr(model_config, "dropout", 0) else " (no dropout)"),
            "history": history, "train_config": cfg.to_dict(),
            "parameters": count_parameters(model),
            "data": {"name": "tinyshakespeare", "chars": len(text),
                     "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                     **split.to_dict()},
            "wall_seconds": round(prior_wall + time.perf_counter() - wall0, 1),
            "cpu_seconds": round(prior_cpu + time.process_time() - cpu0, 1),
            "cpu_seconds_note": "CPU time of the rank-0 process (all its threads)",
            "processes": world, "device": str(dev), "machine": machine_info(),
            **(extra_meta or {}),
        }

    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, initial=start_step, desc="training", unit="step")
    model.train()
    running, n_running = 0.0, 0
    step = start_step
    while step < cfg.steps:
        lr = learning_rate(step, cfg, time.perf_counter() - wall0)
        x, y = get_batch(ids, cfg.batch_size, model_config.block_size, gen, starts)
        x, y = x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank]

        def micro_losses():   # this process's slice in grad_accum parts; DDP averages the
            for k in range(cfg.grad_accum):   # gradients of all processes at the last part
                last_part = k == cfg.grad_accum - 1 or not distributed
                with contextlib.nullcontext() if last_part else ddp_model.no_sync():
                    part = slice(k * micro, (k + 1) * micro)
                    logits = ddp_model(x[part].to(dev))
                    yield cross_entropy_loss(logits, y[part].to(dev)) / cfg.grad_accum

        step_loss = optimizer_step(model, optimizer, micro_losses(), lr, cfg.grad_clip)
        step += 1
        running += step_loss
        n_running += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.1e}")
        out_of_time = cfg.max_seconds and time.perf_counter() - wall0 >= cfg.max_seconds
        if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
            if rank == 0:
                val = score_validation(model, ids, split, cfg.eval_chars)
                record = {"step": step, "train_loss": round(running / max(1, n_running), 4),
                          "val_loss": round(val, 4),
                          "seconds": round(prior_wall + time.perf_counter() - wall0, 1)}
                history.append(record)
                running, n_running = 0.0, 0
                line = (f"step {step}: train {record['train_loss']:.4f}, validation "
                        f"{record['val_loss']:.4f} nats/char, {record['seconds']} s")
                if bar is not None:
                    bar.write(line)
                elif verbose:
                    print(line, flush=True)
                if val < best:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    if out is not None:
                        save_checkpoint(out, model, tokenizer, meta_now(step))
                if out is not None:
                    save_resume_state(last, model, optimizer, gen, step, tokenizer, meta_now(step))
                best = min(best, val)
                if callback is not None:
                    callback(record)
            if out_of_time:
                break
    if bar is not None:
        bar.close()
    if rank == 0 and best_state is not None:
        model.load_state_dict(best_state)        # early stopping: keep the best validation step
        if cfg.score_test:
            test_loss = round(heldout_nats_per_char(model, ids, split.test_start), 4)
            if verbose or bar is not None:
                print(f"test (scored once, weights of step {meta_now(step)['best_step']}): "
                      f"{test_loss:.4f} nats/char", flush=True)
    if out is not None and rank == 0:
        record_whole_run(out.with_name(out.name + ".json"), meta_now(step))
    result = {"model": model, "tokenizer": tokenizer, "history": history, "steps": step,
              "split": split, "test_loss": test_loss,
              "wall_seconds": prior_wall + time.perf_counter() - wall0,
              "cpu_seconds": prior_cpu + time.process_time() - cpu0, "meta": meta_now(step)}
    return result


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _yes_no(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m llmcourse.train",
        description="Train the course's character-level GPT on Tiny Shakespeare. "
                    "Data-parallel: torchrun --nproc_per_node=N -m llmcourse.train ...")
    for f in fields(GPTConfig):
        if f.name == "vocab_size":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, type=_yes_no, default=f.default,
                           help=f"model: {f.name} (true/false)")
        else:
            p.add_argument(flag, type=type(f.default), default=f.default, help=f"model: {f.name}")
    for f in fields(TrainConfig):
        kind = _yes_no if isinstance(f.default, bool) else type(f.default)
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default,
                       help=f"training: {f.name}")
    p.add_argument("--out", default=None,
                   help="checkpoint path without suffix (writes OUT.safetensors and OUT.json)")
    p.add_argument("--resume", action="store_true", help="continue from OUT-last.*")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--data", default="tinyshakespeare", help="a data set of llmcourse.data")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from llmcourse.data import load_text

    text = load_text(args.data)
    vocab_size = len(set(text))
    model_config = GPTConfig(vocab_size=vocab_size, **{
        f.name: getattr(args, f.name) for f in fields(GPTConfig) if f.name != "vocab_size"})
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    extra = {"command": "python -m llmcourse.train " + " ".join(sys.argv[1:] if argv is None
                                                                else argv)}
    result = train(model_config, cfg, text, out=args.out, resume=args.resume,
                   device=args.device, progress=not args.no_progress, extra_meta=extra,
                   verbose=True)
    if int(os.environ.get("RANK", "0")) == 0 and result["history"]:
        best = min(h["val_loss"] for h in result["history"])
        print(f"done: {result['steps']} steps, best validation {best:.4f} nats/char, "
              f"{result['wall_seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    from llmcourse.cli import run

    raise SystemExit(run(main, "python -m llmcourse.train"))
