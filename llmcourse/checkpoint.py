"""Checkpoints: a model's weights in safetensors, everything else in JSON (Chapter 6).

A checkpoint is two files with the same name: ``<name>.safetensors`` holds the tensors (plain
numbers: loading one never runs Python code, unlike a pickle), and ``<name>.json`` holds what is
needed to rebuild the model around them (its :class:`llmcourse.gpt.GPTConfig`), the vocabulary,
and a record of how it was made (the command, the seed, the losses). The model the course ships
(``shakespeare_char``, made by ``make checkpoint``) lives in :data:`CHECKPOINT_DIR`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from llmcourse.gpt import GPT, GPTConfig
from llmcourse.vocab import CharTokenizer

__all__ = ["CHECKPOINT_DIR", "save_checkpoint", "load_checkpoint", "load_pretrained",
           "pretrained_meta", "record_whole_run", "save_resume_state", "load_resume_state"]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
_FORMAT = "llmcourse-gpt"
_FORMAT_VERSION = 1
# Earlier checkpoints recorded three switches of the ablation ladder (now llmcourse.ladder's
# variants) in their config; a GPT has all three on.
_LADDER_SWITCHES = ("mlp", "residual", "layer_norm")


def _config_from_record(config: dict[str, Any], json_path: Path) -> GPTConfig:
    config = dict(config)
    for name in _LADDER_SWITCHES:
        if config.pop(name, True) is not True:
            raise ValueError(f"{json_path} holds a model without its {name!r} (an ablation of "
                             f"Chapter 6's ladder): build it with llmcourse.ladder, not as a GPT")
    return GPTConfig.from_dict(config)


def _checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save_checkpoint(path: str | Path, model: GPT, tokenizer: CharTokenizer,
                    meta: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` (weights) and ``<path>.json`` (config, vocabulary, meta).

    ``meta`` is any JSON-serialisable dict (how the model was trained, its losses ...).
    Returns the two paths.
    """
    from safetensors.torch import save_file

    if not isinstance(model, GPT):
        raise TypeError(f"save_checkpoint expects a GPT, got {type(model).__name__}")
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's "
                         f"vocab_size is {model.config.vocab_size}")
    weights_path, json_path = _checkpoint_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path), metadata={"format": _FORMAT})
    record = {"format": _FORMAT, "format_version": _FORMAT_VERSION,
              "config": model.config.to_dict(), "tokenizer": tokenizer.to_dict(),
              "meta": meta or {}}
    json_path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    return weights_path, json_path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[GPT, CharTokenizer, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(model, tokenizer, meta)``.

    The weights are read with safetensors (plain tensors, no pickle) and checked against the
    config of the JSON file: a missing, unexpected or wrongly shaped weight is a ``ValueError``
    naming it. The model is returned in eval mode.
    """
    from safetensors.torch import load_file

    weights_path, json_path = _checkpoint_paths(path)
    for p in (weights_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file {p} not found (a checkpoint is a "
                                    f".safetensors file beside a .json file of the same name)")
    record = json.loads(json_path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ValueError(f"{json_path} is not an llmcourse GPT checkpoint (no "
                         f"'format': {_FORMAT!r})")
    config = _config_from_record(record["config"], json_path)
    tokenizer = CharTokenizer.from_dict(record["tokenizer"])
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"{json_path}: the vocabulary has {tokenizer.vocab_size} tokens but the "
                         f"config says vocab_size={config.vocab_size}")
    model = GPT(config)
    state = load_file(str(weights_path))
    expected = model.state_dict()
    problems = []
    for k in sorted(set(expected) - set(state)):
        problems.append(f"missing weight {k} {tuple(expected[k].shape)}")
    for k in sorted(set(state) - set(expected)):
        problems.append(f"unexpected weight {k} {tuple(state[k].shape)}")
    for k in sorted(set(state) & set(expected)):
        if state[k].shape != expected[k].shape:
            problems.append(f"weight {k} has shape {tuple(state[k].shape)} but the config "
                            f"needs {tuple(expected[k].shape)}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"the config in {json_path.name} does not match the weights in "
                         f"{weights_path.name}: " + "; ".join(problems[:5]) + more)
    model.load_state_dict(state)
    model.to(device).eval()
    return model, tokenizer, record.get("meta", {})


def load_pretrained(name: str = "shakespeare_char", device: str | torch.device = "cpu"
                    ) -> tuple[GPT, CharTokenizer]:
    """The model shipped with the package (trained by ``make checkpoint``), in eval mode."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str such as 'shakespeare_char', got {type(name).__name__}")
    available = sorted(p.stem for p in CHECKPOINT_DIR.glob("*.safetensors"))
    if name not in available:
        raise ValueError(f"no shipped checkpoint named {name!r}; available: {available}")
    model, tokenizer, _ = load_checkpoint(CHECKPOINT_DIR / name, device=device)
    return model, tokenizer


def pretrained_meta(name: str = "shakespeare_char") -> dict[str, Any]:
    """The JSON record (config, vocabulary, how it was trained) of a shipped checkpoint."""
    _, json_path = _checkpoint_paths(CHECKPOINT_DIR / name)
    if not json_path.is_file():
        raise ValueError(f"no shipped checkpoint named {name!r} ({json_path} not found)")
    return json.loads(json_path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# Resume state: optimizer moments and generator in safetensors, never pickle
# --------------------------------------------------------------------------------------------


def save_resume_state(path: Path, model: GPT, optimizer: torch.optim.Optimizer,
                      generator: torch.Generator, step: int, tokenizer: CharTokenizer,
                      meta: dict) -> None:
    """A checkpoint at ``path`` plus what a stopped run needs to go on exactly where it was:
    the optimizer's moments, the batch generator, the dropout generator and the step."""
    from safetensors.torch import save_file

    save_checkpoint(path, model, tokenizer, meta)
    tensors = {"generator_state": generator.get_state(), "step": torch.tensor([step]),
               "torch_rng_state": torch.get_rng_state()}       # dropout's random numbers
    names = {id(p): n for n, p in model.named_parameters()}
    for p, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{key}/{names[id(p)]}"] = value.detach().cpu().contiguous().reshape(
                    value.shape if value.dim() else (1,))
    save_file(tensors, str(path.with_name(path.name + ".optim.safetensors")))


def load_resume_state(path: Path, model: GPT, optimizer: torch.optim.Optimizer,
                      generator: torch.Generator) -> tuple[int, dict]:
    """Put the state of :func:`save_resume_state` back; returns ``(step, meta)``."""
    from safetensors.torch import load_file

    loaded, _, meta = load_checkpoint(path)
    model.load_state_dict(loaded.state_dict())
    tensors = load_file(str(path.with_name(path.name + ".optim.safetensors")))
    generator.set_state(tensors.pop("generator_state"))
    step = int(tensors.pop("step")[0])
    torch.set_rng_state(tensors.pop("torch_rng_state"))
    params = dict(model.named_parameters())
    for key_name, value in tensors.items():
        key, name = key_name.split("/", 1)
        p = params[name]
        state = optimizer.state[p]
        state[key] = value.reshape(()) if key == "step" else value.to(p.device)
    return step, meta


def record_whole_run(best_json: Path, final: dict[str, Any]) -> None:
    """After training, the best checkpoint's JSON also records the whole run: its history, steps
    and times (the weights stay those of the best step), and the test score of those weights."""
    if not best_json.is_file():
        return
    record = json.loads(best_json.read_text(encoding="utf-8"))
    record["meta"].update({k: final[k] for k in ("history", "steps_done", "wall_seconds",
                                                 "cpu_seconds", "machine", "test_loss")})
    record["meta"]["run_note"] = ("weights are from best_step; wall/cpu seconds and history "
                                  "cover the whole run of steps_done steps")
    best_json.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n",
                         encoding="utf-8")
