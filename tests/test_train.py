"""Tests for llmcourse.train: batches, schedule, a training step, resume, DDP under torchrun."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmcourse.checkpoint import load_checkpoint
from llmcourse.gpt import GPTConfig
from llmcourse.machine import pick_device
from llmcourse.metrics import heldout_nats_per_char
from llmcourse.train import (TrainConfig, get_batch, learning_rate, prepare_data,
                             score_validation, train, window_starts)

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
        * 40)
TINY = dict(block_size=16, n_layer=1, n_head=2, d_model=16, dropout=0.0)


def tiny_config(text=TEXT, **kw):
    return GPTConfig(vocab_size=len(set(text)), **{**TINY, **kw})


def test_get_batch_targets_are_inputs_shifted_by_one():
    data = torch.arange(100)
    x, y = get_batch(data, 5, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y[:, -1], x[:, -1] + 1)
    assert int(y.max()) <= 99
    with pytest.raises(ValueError, match="block_size \\+ 1 = 9"):
        get_batch(torch.arange(8), 2, 8)


def test_prepare_data_cuts_training_validation_and_test():
    tok, ids, split = prepare_data("abcdefghij" * 20)
    assert len(ids) == 200 and (split.test_start, split.end) == (180, 200)
    assert tok.decode(ids[split.test_start:].tolist()) == "abcdefghij" * 2   # the last tenth
    assert split.block == 4 and split.val_blocks[0] == (76, 80) and split.val_chars == 8
    mask = split.is_training()
    assert mask.sum() == 180 - 8 and not mask[76:80].any()
    tok, ids, split = prepare_data("x" * 1_200_000)
    assert split.block == 1000 and split.val_blocks[:2] == ((19_000, 20_000), (39_000, 40_000))
    assert split.to_dict()["val_chars"] == 54_000


def test_training_windows_never_touch_validation():
    _, ids, split = prepare_data("abcdefghij" * 500)
    starts = window_starts(split, 16)
    held = ~split.is_training()
    for s in starts.tolist():
        assert not held[s:s + 17].any() and s + 17 <= split.test_start
    assert len(starts) > 0.8 * split.test_start
    x, y = get_batch(ids, 64, 16, torch.Generator().manual_seed(0), starts)
    assert torch.equal(y[:, :-1], x[:, 1:])


def test_learning_rate_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr=0.1)
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert learning_rate(100, cfg) == pytest.approx(0.1)
    assert learning_rate(55, cfg) == pytest.approx(0.55)          # half way down the cosine
    timed = TrainConfig(steps=10**6, warmup=10, lr=1.0, min_lr=0.1, max_seconds=10)
    assert learning_rate(20, timed, elapsed=5.0) == pytest.approx(0.55)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")


def test_training_lowers_the_loss_and_records_everything(tmp_path):
    cfg = TrainConfig(steps=60, batch_size=8, lr=1e-2, warmup=5, eval_every=30, seed=0)
    result = train(tiny_config(), cfg, TEXT, out=tmp_path / "m", progress=False)
    hist = result["history"]
    assert [h["step"] for h in hist] == [30, 60]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert hist[-1]["val_loss"] < 0.6 * torch.log(torch.tensor(len(set(TEXT)) * 1.0)).item()
    model, tok, meta = load_checkpoint(tmp_path / "m")
    assert tok.decode(tok.encode(TEXT[:50])) == TEXT[:50]
    for key in ("history", "train_config", "data", "wall_seconds", "cpu_seconds", "machine",
                "heldout_metric", "best_step", "steps_done", "split_note"):
        assert key in meta, key
    assert len(meta["data"]["sha256"]) == 64 and meta["machine"]["torch"] == torch.__version__
    assert meta["val_loss"] == min(h["val_loss"] for h in hist)
    split = result["split"]
    assert meta["data"]["test_start"] == split.test_start
    assert meta["data"]["val_chars"] == split.val_chars > 0
    # the test part is scored once, at the end, with the kept weights; the JSON records it
    ids = torch.tensor(tok.encode(TEXT))
    assert meta["test_loss"] == result["test_loss"] == pytest.approx(
        heldout_nats_per_char(model, ids, split.test_start), abs=1e-4)
    assert (tmp_path / "m-last.optim.safetensors").is_file()


def test_early_stopping_keeps_the_best_validation_step(tmp_path):
    """A learning rate far too high makes the loss climb again: the kept weights are the best."""
    cfg = TrainConfig(steps=40, batch_size=8, lr=0.3, min_lr=0.3, warmup=1, eval_every=10,
                      seed=0, grad_clip=0.0)
    seen = []
    result = train(tiny_config(), cfg, TEXT, out=tmp_path / "m", progress=False,
                   callback=lambda r: seen.append(r["val_loss"]))
    best = min(seen)
    _, ids, split = prepare_data(TEXT)
    kept = score_validation(result["model"], ids, split)
    assert kept == pytest.approx(best, abs=1e-4)
    saved, _, meta = load_checkpoint(tmp_path / "m")
    assert meta["best_step"] == 10 * (seen.index(best) + 1)
    unseen = train(tiny_config(), TrainConfig(steps=10, batch_size=8, eval_every=10,
                                              score_test=False), TEXT, progress=False)
    assert unseen["test_loss"] is None


def test_resume_continues_exactly(tmp_path):
    cfg = TrainConfig(steps=20, batch_size=4, lr=3e-3, warmup=3, eval_every=10, seed=1)
    model_config = tiny_config(dropout=0.1)
    straight = train(model_config, cfg, TEXT, out=tmp_path / "a", progress=False)

    def interrupt(record):
        if record["step"] == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(model_config, cfg, TEXT, out=tmp_path / "b", progress=False, callback=interrupt)
    resumed = train(model_config, cfg, TEXT, out=tmp_path / "b", resume=True, progress=False)
    assert resumed["steps"] == 20
    assert [h["step"] for h in resumed["history"]] == [10, 20]
    for (name, p), q in zip(straight["model"].named_parameters(), resumed["model"].parameters()):
        torch.testing.assert_close(p, q, msg=name)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(model_config, cfg, TEXT, out=tmp_path / "c", resume=True, progress=False)


def test_train_rejects_a_mismatched_vocabulary():
    with pytest.raises(ValueError, match="vocab_size"):
        train(GPTConfig(vocab_size=3, **TINY), TrainConfig(steps=1), TEXT, progress=False)


def _run(args, nproc=None, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.update(env_extra or {})
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "llmcourse.train"]
    else:
        cmd = [sys.executable, "-m", "llmcourse.train"]
    done = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo) gives the weights of one process on the same batch."""
    common = ["--n-layer", "2", "--d-model", "32", "--n-head", "2", "--block-size", "32",
              "--dropout", "0.0", "--steps", "4", "--warmup", "2", "--batch-size", "8",
              "--eval-every", "4", "--eval-chars", "200", "--device", "cpu", "--no-progress",
              "--threads", "1"]
    _run(common + ["--out", str(tmp_path / "single")])
    _run(common + ["--grad-accum", "2", "--out", str(tmp_path / "ddp")], nproc=2)
    one, _, meta1 = load_checkpoint(tmp_path / "single")
    two, _, meta2 = load_checkpoint(tmp_path / "ddp")
    assert meta1["processes"] == 1 and meta2["processes"] == 2
    assert meta2["steps_done"] == 4
    for (name, p), q in zip(one.named_parameters(), two.parameters()):
        torch.testing.assert_close(p, q, atol=2e-5, rtol=1e-4, msg=name)
    # and the run really moved the weights away from their initial values
    torch.manual_seed(1337)
    from llmcourse.gpt import GPT
    init = GPT(one.config)
    assert not torch.allclose(init.head.weight, one.head.weight)


@pytest.mark.parametrize("module, args", [("llmcourse.train", ["--steps", "1"]),
                                          ("llmcourse.ladder", ["--steps", "1"])])
def test_command_line_without_data_prints_one_line(tmp_path, module, args):

    env = {**os.environ, "LLMCOURSE_DATA_DIR": str(tmp_path)}   # a folder with no data set
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"python -m {module}: error: LLMCOURSE_DATA_DIR is set to")


def test_export_onnx_command_line_error_is_one_line(tmp_path):

    proc = subprocess.run([sys.executable, "-m", "llmcourse.export_onnx", str(tmp_path),
                           "--name", "no_such_model"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "python -m llmcourse.export_onnx: error: no shipped checkpoint named 'no_such_model'; "
        "available: ['shakespeare_char']"]
