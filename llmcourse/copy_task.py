"""A task that attention solves and a fixed window cannot: copying a word (introduced in Chapter 5).

Each example is a word of ``length`` random letters, then ``|``, then the same word again::

    kfqzmaxe|kfqzmaxe

A model reads the symbols one by one and predicts the next one. In the first half the next letter
is random, so nothing can predict it. In the second half the next symbol is always the one
``length + 1`` positions back. A model that reads only the last few symbols (an n-gram, or the
fixed-window network :class:`WindowMLP`) never sees that far and can only guess: one letter in 26.
One layer of attention (:class:`AttentionOnlyLM`) learns to look exactly ``length + 1`` positions
back, whatever the letters are, and copies the word almost perfectly.

The model here is deliberately minimal: token and position embeddings, attention layers from
:mod:`llmcourse.attention` with a residual connection, and a linear readout. Chapter 6 adds the
rest of the transformer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .attention import CausalSelfAttention, record_attention

__all__ = ["ALPHABET", "SEP", "CopyTask", "AttentionOnlyLM", "WindowMLP",
           "n_parameters", "train_next_token", "copy_accuracy",
           "attention_for_word"]

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
SEP = "|"
IGNORE = -100  # targets with this value are not scored (F.cross_entropy's ignore_index)


class CopyTask:
    """Random words to copy: ``word | word``, as token ids.

    Symbols: the letters of ``alphabet`` (ids ``0 .. len(alphabet) - 1``), then ``|``.
    A model reads ``inputs`` (the sequence without its last symbol) and predicts ``targets`` (the
    sequence shifted by one); targets in the first half, which nothing can predict, are set to
    ``-100`` so that training and scoring skip them.
    """

    def __init__(self, length: int = 8, alphabet: str = ALPHABET) -> None:
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        if len(set(alphabet)) != len(alphabet) or not alphabet or SEP in alphabet:
            raise ValueError(f"alphabet must be distinct symbols without {SEP!r}, got "
                             f"{alphabet!r}")
        self.length = length
        self.symbols = alphabet + SEP
        self.n_letters = len(alphabet)
        self.sep_id = self.n_letters
        self._index = {s: i for i, s in enumerate(self.symbols)}

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    @property
    def seq_len(self) -> int:
        """The length of a model's input: ``2 * length`` (the last symbol is never an input)."""
        return 2 * self.length

    def encode(self, word: str) -> list[int]:
        """The whole example for ``word`` as ids: ``word | word`` (``2 * length + 1`` ids)."""
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {type(word).__name__}")
        if len(word) != self.length:
            raise ValueError(f"word must have {self.length} letters, got {len(word)}: {word!r}")
        unknown = sorted(set(word) - set(self.symbols[:self.n_letters]))
        if unknown:
            raise ValueError(f"word may use only the letters {self.symbols[:self.n_letters]!r}, "
                             f"got {unknown}")
        half = [self._index[c] for c in word]
        return half + [self.sep_id] + half

    def decode(self, ids) -> str:
        return "".join(self.symbols[int(i)] for i in ids)

    def split(self, sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole examples ``(B, 2L + 1)`` -> ``inputs (B, 2L)`` and ``targets (B, 2L)``."""
        inputs, targets = sequences[:, :-1], sequences[:, 1:].clone()
        targets[:, : self.length] = IGNORE          # the first half and the "|": unpredictable
        return inputs, targets

    def sample(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random examples; every letter is drawn independently, all equally likely."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        half = torch.randint(0, self.n_letters, (n, self.length), generator=generator)  # (n, L)
        sep = torch.full((n, 1), self.sep_id)
        return self.split(torch.cat([half, sep, half], dim=1))                         # (n, 2L+1)


class AttentionOnlyLM(nn.Module):
    """Token and position embeddings, ``n_layers`` of multi-head causal self-attention (each
    added to its input: a residual connection), and a linear map to one score per symbol.

    ``(B, T)`` token ids -> ``(B, T, vocab_size)`` scores (logits) for the next symbol.
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 32, n_heads: int = 2,
                 n_layers: int = 1) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.layers = nn.ModuleList(CausalSelfAttention(d_model, n_heads) for _ in range(n_layers))
        self.out = nn.Linear(d_model, vocab_size)

    def _embed(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2 or idx.shape[1] > self.max_len:
            raise ValueError(f"expected token ids of shape (batch, time <= {self.max_len}), got "
                             f"{tuple(idx.shape)}")
        return self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))  # (B,T,d)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self._embed(idx)
        for layer in self.layers:
            x = x + layer(x)                                         # (B, T, d_model)
        return self.out(x)                                           # (B, T, vocab_size)

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Every layer's attention weights: ``(n_layers, B, n_heads, T, T)``."""
        with record_attention(self) as maps:
            self(idx)
        return torch.stack(maps)


class WindowMLP(nn.Module):
    """The baseline: predicts the next symbol from the last ``window`` symbols only.

    Their embeddings are concatenated (zeros before the start) and fed to a network with one
    hidden layer, like Chapter 1's. ``(B, T)`` ids -> ``(B, T, vocab_size)`` logits.
    """

    def __init__(self, vocab_size: int, window: int = 4, d_embed: int = 16, hidden: int = 64):
        super().__init__()
        if window < 1 or hidden < 1:
            raise ValueError(f"window and hidden must be >= 1, got window={window}, "
                             f"hidden={hidden}")
        self.window, self.d_embed = window, d_embed
        self.tok = nn.Embedding(vocab_size, d_embed)
        self.net = nn.Sequential(nn.Linear(window * d_embed, hidden), nn.ReLU(),
                                 nn.Linear(hidden, vocab_size))

    @classmethod
    def with_parameters(cls, n_params: int, vocab_size: int, window: int = 4,
                        d_embed: int = 16) -> "WindowMLP":
        """The window network whose hidden layer makes its size closest to ``n_params``."""
        fixed = vocab_size * d_embed + vocab_size                 # embeddings, output biases
        per_hidden = window * d_embed + 1 + vocab_size            # weights in, bias, weights out
        hidden = max(1, round((n_params - fixed) / per_hidden))
        return cls(vocab_size, window, d_embed, hidden)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx)                                            # (B, T, E)
        x = F.pad(x, (0, 0, self.window - 1, 0))                     # (B, T + w - 1, E)
        x = x.unfold(1, self.window, 1)                              # (B, T, E, w)
        x = x.transpose(-1, -2).reshape(idx.shape[0], idx.shape[1], -1)  # (B, T, w * E)
        return self.net(x)                                           # (B, T, vocab_size)


def n_parameters(model: nn.Module) -> int:
    """The number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_next_token(model: nn.Module, task: CopyTask, steps: int = 600, batch_size: int = 64,
                     lr: float = 1e-2, seed: int = 0) -> list[float]:
    """Train ``model`` on fresh random examples with Adam; returns the loss of each step."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, "
                         f"batch_size={batch_size}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        inputs, targets = task.sample(batch_size, generator)
        logits = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def copy_accuracy(model: nn.Module, task: CopyTask, n: int = 1000, seed: int = 1) -> float:
    """The share of copied letters the model predicts right (its most likely symbol counts), on
    ``n`` fresh examples. Guessing scores ``1 / 26``."""
    inputs, targets = task.sample(n, torch.Generator().manual_seed(seed))
    predicted = model(inputs).argmax(dim=-1)                         # (n, 2L)
    scored = targets != IGNORE
    return (predicted[scored] == targets[scored]).float().mean().item()


def attention_for_word(model: AttentionOnlyLM, task: CopyTask, word: str
                       ) -> tuple[list[str], torch.Tensor]:
    """The symbols the model reads for ``word`` (``word|word`` without its last letter) and its
    attention weights on them, ``(n_layers, n_heads, T, T)``."""
    ids = torch.tensor([task.encode(word)[:-1]])                     # (1, 2L)
    return list(task.decode(ids[0])), model.attention_maps(ids)[:, 0]
