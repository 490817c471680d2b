"""A small GPT in one readable file (introduced in Chapter 6).

A GPT turns a sequence of token ids into, at every position, scores (logits) for the next token:

1. **embeddings**: each id looks up a learned vector (Chapter 4), and each *position* looks up
   another one, added to it, so that the model knows where in the window a token sits;
2. a stack of **blocks**, each doing two things with a residual connection around each:
   ``x = x + attention(layer_norm(x))``, where every position gathers information from the
   positions before it (Chapter 5), then ``x = x + mlp(layer_norm(x))``, where every position
   thinks on its own with a small two-layer network (Chapter 1's, wider);
3. a final **layer norm** and a **linear layer** from the model width to one score per token of
   the vocabulary. A softmax over those scores is the next-token distribution.

The residual connections give the gradient a direct path from the loss to every layer, and the
layer norms keep the vectors at a steady scale, so that a deep stack trains as easily as a
shallow one. The switches ``mlp``, ``residual`` and ``layer_norm`` of :class:`GPTConfig` remove
one part at a time; Chapter 6 uses them to show what each part earns (``n_layer=0`` is a bigram).

The model can keep its keys and values in a :class:`KVCache` so that generation computes only the
newest token (Chapter 7). Checkpoints are a ``.safetensors`` file of weights beside a ``.json``
file (config, vocabulary, how the model was trained): loading never unpickles Python objects.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from llmcourse.attention import CausalSelfAttention, LayerKVCache
from llmcourse.ngram import CharVocab

__all__ = [
    "GPTConfig", "CharTokenizer", "MLP", "Block", "GPT", "KVCache", "cross_entropy_loss",
    "count_parameters", "save_checkpoint", "load_checkpoint", "load_pretrained",
    "heldout_nats_per_char", "generate", "pretrained_meta", "CHECKPOINT_DIR",
]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
_FORMAT = "llmcourse-gpt"
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class GPTConfig:
    """Every number that fixes the shape of a GPT (and so the shapes of its weights)."""

    vocab_size: int = 65        # number of token ids (65 characters for Tiny Shakespeare)
    block_size: int = 128       # the longest context the model can see (positions 0..block_size-1)
    n_layer: int = 4            # number of blocks stacked (0 = a bigram model)
    n_head: int = 4             # attention heads per block; d_model must divide by it
    d_model: int = 192          # width of every token's vector
    dropout: float = 0.1        # fraction of activations zeroed during training (regularisation)
    bias: bool = False          # biases in the linear layers and layer norms
    mlp_ratio: int = 4          # the MLP's hidden layer is mlp_ratio * d_model wide
    # Switches for the ablation ladder of Chapter 6 (a GPT has all three on):
    mlp: bool = True            # a feed-forward network after attention in each block
    residual: bool = True       # x + f(x) around attention and MLP (off: x = f(x))
    layer_norm: bool = True     # layer norm before attention, before the MLP and before the head

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_head", "d_model", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if isinstance(self.n_layer, bool) or not isinstance(self.n_layer, int) or self.n_layer < 0:
            raise ValueError(f"GPTConfig.n_layer must be an int >= 0, got {self.n_layer!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(f"GPTConfig.d_model must be divisible by n_head, got d_model="
                             f"{self.d_model} and n_head={self.n_head}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GPTConfig":
        if not isinstance(d, dict):
            raise TypeError(f"GPTConfig.from_dict expects a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {unknown}; known fields are "
                             f"{sorted(known)}")
        return cls(**d)


# --------------------------------------------------------------------------------------------
# Tokenizer: one id per character
# --------------------------------------------------------------------------------------------


class CharTokenizer(CharVocab):
    """Characters <-> ids; the id of a character is its index in ``vocab``.

    Chapter 2's :class:`llmcourse.ngram.CharVocab` (same constructor, ``from_text`` and checks),
    with the interface the later chapters use: ``vocab`` and ``vocab_size``, ``encode`` returning
    a list, ``decode`` accepting a tensor, and a JSON form for checkpoints. Tokens added later
    (Chapter 8's chat markers) are appended at the end, so the ids of the characters never
    change; ``vocab`` entries are therefore strings (a character, or a special token).

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.encode("hole")
    [1, 3, 2, 0]
    >>> tok.decode([1, 0, 2, 2, 3])
    'hello'
    """

    entry_rule = "non-empty strings (characters, or special tokens appended after them)"
    unit = "tokens"

    @staticmethod
    def _valid_entry(entry: Any) -> bool:
        return isinstance(entry, str) and len(entry) > 0

    @property
    def vocab(self) -> list[str]:
        """The entries; the id of an entry is its index (the same list as ``chars``)."""
        return self.chars

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharTokenizer({self.vocab_size} tokens)"

    def encode(self, text: str) -> list[int]:
        """The id of every character of ``text``."""
        return super().encode(text).tolist()

    def to_dict(self) -> dict[str, Any]:
        return {"type": "char", "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CharTokenizer":
        if not isinstance(d, dict) or "vocab" not in d:
            raise ValueError(f"a tokenizer dict needs a 'vocab' list, got {d!r:.80}")
        if d.get("type", "char") != "char":
            raise ValueError(f"expected a 'char' tokenizer, got type {d.get('type')!r}")
        return cls(d["vocab"])


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def _layer_norm(config: GPTConfig) -> nn.Module:
    if not config.layer_norm:
        return nn.Identity()
    return nn.LayerNorm(config.d_model, bias=config.bias)


class MLP(nn.Module):
    """Each position on its own: widen, GELU, narrow back. ``(B, T, d) -> (B, T, d)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = config.mlp_ratio * config.d_model
        self.fc = nn.Linear(config.d_model, hidden, bias=config.bias)
        self.proj = nn.Linear(hidden, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc(x))                          # (B, T, mlp_ratio * d)
        return self.dropout(self.proj(h))               # (B, T, d)


class Block(nn.Module):
    """One transformer block: attention then MLP, each after a layer norm, each residual."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.residual = config.residual
        self.ln1 = _layer_norm(config)
        self.attn = CausalSelfAttention(config.d_model, config.n_head, config.dropout, config.bias)
        self.ln2 = _layer_norm(config) if config.mlp else None
        self.mlp = MLP(config) if config.mlp else None

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None,
                return_weights: bool = False):
        a = self.attn(self.ln1(x), cache=cache, return_weights=return_weights)
        a, weights = a if return_weights else (a, None)
        x = x + a if self.residual else a               # (B, T, d)
        if self.mlp is not None:
            m = self.mlp(self.ln2(x))
            x = x + m if self.residual else m           # (B, T, d)
        return (x, weights) if return_weights else x


class KVCache:
    """The keys and values of every block (one :class:`LayerKVCache` each) for generation.

    ``len(cache)`` is the number of positions already processed: the next token passed to the
    model sits at that position. Get an empty one from :meth:`GPT.new_cache`.
    """

    def __init__(self, n_layer: int):
        self.layers: list[LayerKVCache] = [LayerKVCache() for _ in range(n_layer)]
        self._length = 0  # kept here too, so that a 0-layer model (a bigram) has a length

    def __len__(self) -> int:
        return self._length

    def clear(self) -> None:
        for layer in self.layers:
            layer.clear()
        self._length = 0


class GPT(nn.Module):
    """A decoder-only transformer: ``ids (B, T) -> logits (B, T, vocab_size)``.

    ``forward(ids, cache=None)``: with a :class:`KVCache`, ``ids`` holds only the new tokens,
    which sit at positions ``len(cache), len(cache) + 1, ...``; their keys and values are added to
    the cache. The total length may not exceed ``config.block_size``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)   # token -> vector
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)   # position -> vector
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = _layer_norm(config)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)  # vector -> logits
        self._init_weights()

    def _init_weights(self) -> None:
        """Small random weights, the same scale everywhere (as GPT-2).

        Every linear and embedding weight starts from a normal with standard deviation 0.02, and
        biases at zero, so the first logits are near zero: the untrained model predicts about
        uniformly, a loss of ``ln(vocab_size)``. The last linear map of each residual branch
        (attention's ``proj``, the MLP's ``proj``) is scaled down by ``sqrt(2 * n_layer)``: each
        block adds two branches to the residual stream, and without this the stream's variance
        would grow with depth.
        """
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        if self.config.n_layer > 0:
            std = 0.02 / math.sqrt(2 * self.config.n_layer)
            for block in self.blocks:
                nn.init.normal_(block.attn.proj.weight, mean=0.0, std=std)
                if block.mlp is not None:
                    nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=std)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for this model."""
        return KVCache(self.config.n_layer)

    def _check_ids(self, ids: Any, start: int) -> None:
        if not isinstance(ids, torch.Tensor):
            raise TypeError(f"ids must be a torch.LongTensor of shape (batch, time), got "
                            f"{type(ids).__name__}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"ids must be integer token ids (torch.long), got dtype {ids.dtype}")
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(f"ids must have shape (batch, time) with time >= 1, got shape "
                             f"{tuple(ids.shape)} (for one sequence use ids[None])")
        end = start + ids.shape[1]
        if end > self.config.block_size:
            what = f"{ids.shape[1]} tokens" if start == 0 else \
                   f"{start} cached + {ids.shape[1]} new tokens"
            raise ValueError(f"context of {end} tokens ({what}) is longer than the model's "
                             f"block_size={self.config.block_size}; keep only the last "
                             f"{self.config.block_size} tokens")
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= self.config.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} is outside the vocabulary (ids run from 0 to "
                             f"{self.config.vocab_size - 1})")

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None,
                return_weights: bool = False):
        """Logits ``(B, T, vocab_size)``; with ``return_weights=True`` also the attention
        weights of every block, a list of ``(B, n_head, T, T_keys)`` tensors (for plots)."""
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache (model.new_cache()), got "
                            f"{type(cache).__name__}")
        start = len(cache) if cache is not None else 0
        self._check_ids(ids, start)
        t = ids.shape[1]
        pos = torch.arange(start, start + t, device=ids.device)             # (T,)
        x = self.drop(self.tok_emb(ids) + self.pos_emb(pos))                # (B, T, d)
        all_weights = []
        for i, block in enumerate(self.blocks):
            layer_cache = cache.layers[i] if cache is not None else None
            if return_weights:
                x, w = block(x, cache=layer_cache, return_weights=True)
                all_weights.append(w)
            else:
                x = block(x, cache=layer_cache)                             # (B, T, d)
        if cache is not None:
            cache._length = start + t
        logits = self.head(self.ln_f(x))                                    # (B, T, vocab)
        return (logits, all_weights) if return_weights else logits

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per token) of predicting ``targets`` from ``ids``."""
        return cross_entropy_loss(self(ids), targets)

    @property
    def device(self) -> torch.device:
        return self.tok_emb.weight.device


def cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-probability of the targets: ``logits (B, T, V)``, ``targets (B, T)``."""
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"expected logits (batch, time, vocab) and targets (batch, time), got "
                         f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)}")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def count_parameters(model: GPT) -> dict[str, int]:
    """Number of trainable numbers per part: embeddings, attention, mlp, norms, head, total."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects a model, got {type(model).__name__}")
    counts = {"embeddings": 0, "attention": 0, "mlp": 0, "norms": 0, "head": 0}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(("tok_emb", "pos_emb")):
            part = "embeddings"
        elif ".attn." in name:
            part = "attention"
        elif ".mlp." in name:
            part = "mlp"
        elif name.startswith("head"):
            part = "head"
        elif ".ln" in name or name.startswith("ln_"):
            part = "norms"
        else:
            raise ValueError(f"count_parameters does not know which part {name!r} belongs to")
        counts[part] += p.numel()
    counts["total"] = sum(counts.values())
    return counts


@torch.inference_mode()
def generate(model: GPT, prompt: Sequence[int], max_new_tokens: int, temperature: float = 1.0,
             seed: int | None = None) -> list[int]:
    """Sample ``max_new_tokens`` ids after ``prompt`` (plain sampling at ``temperature``).

    Chapter 6's short way into the loop of Chapter 7 (:func:`llmcourse.sampling.generate`, which
    adds greedy, top-k, top-p and stop tokens): the prompt is fed once, then one token per step
    with the key/value cache. When the text no longer fits in the ``block_size`` window, the model
    continues from its last three quarters (:func:`llmcourse.sampling.window_start`). On a CPU it
    runs on one thread: one token's work is too small to split. Returns the new ids.
    """
    from llmcourse.sampling import generate as sampling_generate

    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    ids = list(torch.as_tensor(prompt, dtype=torch.long).flatten().tolist())
    if not ids:
        raise ValueError("generate needs a prompt of at least one token")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    threads = torch.get_num_threads()
    try:
        if model.device.type == "cpu":
            torch.set_num_threads(1)
        return sampling_generate(model, ids, max_new_tokens, temperature=temperature,
                                 generator=gen)
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# Held-out loss: the metric of Chapter 6
# --------------------------------------------------------------------------------------------

HELDOUT_METHOD = (
    "mean negative log-probability (nats) of every character of the held-out text, each scored "
    "exactly once, by sliding windows of block_size characters with a stride of block_size // 2 "
    "and scoring only the last block_size // 2 predictions of each window, so every scored "
    "character has at least block_size // 2 characters of context (the text before the held-out "
    "part supplies the context of its first characters)"
)


@torch.no_grad()
def heldout_nats_per_char(model: GPT, ids: Sequence[int] | torch.Tensor, start: int,
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
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        device = model.device
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
            y = torch.full((len(windows), t_len), -100, dtype=torch.long)
            for j, ((s, e), w) in enumerate(zip(chunk, windows)):
                L = len(w)
                x[j, :L] = w
                tgt = ids[e - L:e].clone()                   # targets of the L inputs
                tgt[: L - (e - s)] = -100                    # score only targets s .. e-1
                y[j, :L] = tgt
            logits = model(x.to(device))
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                     y.to(device).reshape(-1), ignore_index=-100,
                                     reduction="sum").item()
    finally:
        model.train(was_training)
    return total / (end - start)


# --------------------------------------------------------------------------------------------
# Checkpoints: weights in safetensors, everything else in JSON
# --------------------------------------------------------------------------------------------


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
    config = GPTConfig.from_dict(record["config"])
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
