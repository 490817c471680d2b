"""A task that needs attention to look things up by content (introduced in Chapter 5).

Each example is a *story* of ``story`` different letters in random order, a bar ``|``, then a
*piece* of the same story that starts at a random place::

    kfqzmaxebrwdjotu|xebrwdj
                      ^ after "x" comes "e": the letter that followed "x" in the story

A model reads the symbols one by one and predicts the next one. The story and the first letter of
the piece are random, so nothing can predict them and they are not scored. After that, every next
letter is the one that followed the current letter in the story: to find it, a model must find
*where the current letter occurred before* and copy what came after it. Where that is depends on
the letters, not on a fixed distance: it lies between ``piece + 1`` and ``story`` positions back.

Two layers of attention solve this the way trained transformers do (an *induction head*, Olsson et
al. 2022): in the first layer each position looks at the position before it and takes in which
letter stood there; in the second the current letter looks for the position whose previous letter
matches it, and copies that position's letter. A network that sees the whole sequence at once but
has no attention (:class:`WindowMLP` with a window as long as the sequence) must learn a separate
comparison for every pair of positions, and with as many parameters as the attention model it
cannot.

The attention model (:class:`AttentionOnlyLM`) is deliberately minimal: token and position
embeddings, attention layers from :mod:`llmcourse.attention`, each added to its input (a residual
connection), and a linear readout. Chapter 6 adds the rest of the transformer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .attention import CausalSelfAttention, record_attention
from .metrics import IGNORE_INDEX

__all__ = ["ALPHABET", "SEP", "IGNORE", "CopyTask", "AttentionOnlyLM", "WindowMLP",
           "n_parameters", "train_next_token", "copy_accuracy", "accuracy_by_distance",
           "attention_for_example"]

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
SEP = "|"
IGNORE = IGNORE_INDEX  # targets with this value are not scored (F.cross_entropy's ignore_index)


class CopyTask:
    """Stories to look things up in: ``story | piece``, as token ids.

    Symbols: the letters of ``alphabet`` (ids ``0 .. len(alphabet) - 1``), then ``|``. A story is
    ``story`` different letters; the piece is ``piece + 1`` consecutive letters of the story,
    starting at a random place. A model reads ``inputs`` (the example without its last symbol)
    and predicts ``targets`` (the example shifted by one); the targets nothing can predict (the
    story, and the first letter of the piece) are set to ``-100`` so that training and scoring
    skip them, which leaves ``piece`` scored targets per example.
    """

    def __init__(self, story: int = 16, piece: int = 6, alphabet: str = ALPHABET) -> None:
        if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet) \
                or SEP in alphabet:
            raise ValueError(f"alphabet must be distinct symbols without {SEP!r}, got "
                             f"{alphabet!r}")
        for name, value in (("story", story), ("piece", piece)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if story > len(alphabet):
            raise ValueError(f"story must be at most {len(alphabet)} (the letters in the "
                             f"alphabet), got {story}")
        if piece + 1 >= story:
            raise ValueError(f"piece + 1 must be shorter than the story, got piece={piece} and "
                             f"story={story}")
        self.story, self.piece = story, piece
        self.symbols = alphabet + SEP
        self.n_letters = len(alphabet)
        self.sep_id = self.n_letters
        self._index = {s: i for i, s in enumerate(self.symbols)}

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    @property
    def seq_len(self) -> int:
        """The length of a model's input: ``story + 1 + piece`` (the last symbol is never read)."""
        return self.story + 1 + self.piece

    @property
    def distances(self) -> range:
        """How far back the letter to copy can lie: ``piece + 1 .. story`` positions."""
        return range(self.piece + 1, self.story + 1)

    def encode(self, example: str) -> list[int]:
        """``"story|piece"`` as ids, what a model reads (at most :attr:`seq_len` symbols). The
        story must be ``story`` different letters of the alphabet, the piece 1 to ``piece``
        consecutive letters of the story that stop before its last letter (nothing follows it)."""
        if not isinstance(example, str):
            raise TypeError(f"example must be a str 'story|piece', got {type(example).__name__}")
        if example.count(SEP) != 1:
            raise ValueError(f"example must be 'story{SEP}piece' with one {SEP!r}, got {example!r}")
        story, piece = example.split(SEP)
        letters = self.symbols[:self.n_letters]
        unknown = sorted(set(story + piece) - set(letters))
        if unknown:
            raise ValueError(f"example may use only the letters {letters!r} and one {SEP!r}, got "
                             f"{unknown}")
        if len(story) != self.story or len(set(story)) != len(story):
            raise ValueError(f"the story must have {self.story} different letters, got "
                             f"{len(story)} letters ({len(set(story))} different): {story!r}")
        if not 1 <= len(piece) <= self.piece or piece not in story[:-1]:
            raise ValueError(f"the piece must be 1 to {self.piece} consecutive letters of the "
                             f"story {story!r} before its last letter, got {piece!r}")
        return [self._index[c] for c in example]

    def decode(self, ids) -> str:
        return "".join(self.symbols[int(i)] for i in ids)

    def sample(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random examples as ``inputs (n, seq_len)`` and ``targets (n, seq_len)``: every
        story equally likely, every start of the piece equally likely."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        letters = torch.rand(n, self.n_letters, generator=generator).argsort(dim=1)
        story = letters[:, :self.story]                                           # (n, S), distinct
        start = torch.randint(0, self.story - self.piece, (n, 1), generator=generator)
        piece = story.gather(1, start + torch.arange(self.piece + 1))             # (n, P + 1)
        sep = torch.full((n, 1), self.sep_id)
        sequences = torch.cat([story, sep, piece], dim=1)                         # (n, S + P + 2)
        inputs, targets = sequences[:, :-1], sequences[:, 1:].clone()
        targets[:, : self.story + 1] = IGNORE      # the story and the piece's first letter
        return inputs, targets


class AttentionOnlyLM(nn.Module):
    """Token and position embeddings, ``n_layer`` of multi-head causal self-attention (each
    added to its input: a residual connection), and a linear map to one score per symbol.

    ``(B, T)`` token ids -> ``(B, T, vocab_size)`` scores (logits) for the next symbol.
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 32, n_head: int = 2,
                 n_layer: int = 1) -> None:
        super().__init__()
        if n_layer < 1:
            raise ValueError(f"n_layer must be >= 1, got {n_layer}")
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.layers = nn.ModuleList(CausalSelfAttention(d_model, n_head) for _ in range(n_layer))
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
        """Every layer's attention weights: ``(n_layer, B, n_head, T, T)``."""
        with record_attention(self) as maps:
            self(idx)
        return torch.stack(maps)


class WindowMLP(nn.Module):
    """The baseline without attention: predicts the next symbol from the last ``window`` symbols.

    With ``window`` as long as the input (``task.seq_len``) it sees every symbol before the
    position it predicts, the same context as attention: a *full-context* network. The symbols'
    embeddings are concatenated (zeros before the start) and fed to a network with one hidden
    layer, like Chapter 1's. ``(B, T)`` ids -> ``(B, T, vocab_size)`` logits.
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
def _predictions(model: nn.Module, task: CopyTask, n: int, seed: int):
    inputs, targets = task.sample(n, torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    predicted = model(inputs).argmax(dim=-1)                         # (n, seq_len)
    model.train(was_training)
    return predicted, targets


def copy_accuracy(model: nn.Module, task: CopyTask, n: int = 1000, seed: int = 12345) -> float:
    """The share of scored letters the model predicts right (its most likely symbol counts), on
    ``n`` fresh examples (the seed differs from training's). A blind guess among the story's
    other letters scores ``1 / (story - 1)``."""
    predicted, targets = _predictions(model, task, n, seed)
    scored = targets != IGNORE
    return (predicted[scored] == targets[scored]).float().mean().item()


def accuracy_by_distance(model: nn.Module, task: CopyTask, n: int = 1000, seed: int = 12345
                         ) -> dict[int, float]:
    """Accuracy for each distance back to the letter to copy: ``{distance: share right}`` over
    :attr:`CopyTask.distances`, on the same ``n`` examples as :func:`copy_accuracy`."""
    predicted, targets = _predictions(model, task, n, seed)
    inputs, _ = task.sample(n, torch.Generator().manual_seed(seed))
    # the piece starts at story[start]; every scored target of an example lies story - start back
    start = (inputs[:, : task.story] == inputs[:, task.story + 1: task.story + 2]).int().argmax(1)
    distance = (task.story - start).unsqueeze(1).expand_as(targets)   # (n, seq_len)
    scored = targets != IGNORE
    right = predicted == targets
    return {d: right[scored & (distance == d)].float().mean().item() for d in task.distances}


def attention_for_example(model: AttentionOnlyLM, task: CopyTask, example: str
                          ) -> tuple[list[str], torch.Tensor]:
    """The symbols of ``example`` (``"story|piece"``) and the model's attention weights on them,
    ``(n_layer, n_head, T, T)``: the model reads the whole example."""
    ids = torch.tensor([task.encode(example)])                       # (1, T)
    return list(example), model.attention_maps(ids)[:, 0]
