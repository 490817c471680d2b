"""Byte-pair encoding (BPE): turn text into a short list of integer tokens, and back.

A language model reads integers, not letters. This module turns text into integers in three steps:

1. **Bytes.** The text is written in UTF-8, so every string becomes a list of numbers 0..255. These
   256 byte values are the first 256 tokens; no text can contain anything else, so a byte-level
   tokenizer never meets an unknown character.
2. **Training (learning merges).** Count every pair of neighbouring tokens in a training text, take
   the most frequent pair, give it a new id (256, then 257, ...) and replace the pair by the new id
   everywhere. Repeat until the vocabulary has ``vocab_size`` tokens. The list of merges, in the
   order they were learned, *is* the tokenizer.
3. **Encoding.** To encode new text, start from its bytes and keep merging the neighbouring pair
   whose merged token was learned earliest (the lowest id), until no pair can be merged.
   Decoding glues the bytes of the tokens back together.

Before training and encoding, a regular expression (the *split pattern*) cuts the text into chunks,
roughly words with their leading space, numbers and runs of punctuation, and merges never cross a
chunk boundary. :data:`GPT4_SPLIT_PATTERN` is the pattern of OpenAI's ``cl100k_base`` (GPT-4).

Details that make this exact and fast:

* **Ties.** When two pairs are equally frequent, the pair with the smaller ids wins (compare the
  first ids, then the second ones), so training is deterministic. A pair whose merged bytes are
  already a token (``"a"+"bc"`` when ``"ab"+"c"`` was learned) is never merged. This is a safety
  net (we have not seen BPE training produce such a pair): it guarantees that every token has
  different bytes, so merge ``k`` with id ``256 + k`` maps one-to-one onto tiktoken's
  ``mergeable_ranks`` (bytes -> rank).
* **Fast training** (:func:`train_bpe`) counts the pairs once, then after each merge updates only
  the counts of the pairs that merge touched, keeps the counts in a heap (stale entries are skipped
  when they come to the top) and trains on each distinct chunk once, weighted by how often it
  occurs. :func:`train_bpe_recount` is the plain version that recounts every pair after every
  merge; it is slow, easy to check, and the tests require both to learn the same merges.
* **Exact encoding.** :meth:`BPETokenizer.encode` applies tiktoken's rule: within a chunk, merge the
  neighbouring pair whose concatenated bytes form the lowest-ranked token (the leftmost such pair on
  a tie), and a chunk that is a token as a whole becomes that token. The tests check that the ids
  equal those of ``tokenizer.to_tiktoken().encode(...)`` on Shakespeare, Unicode-heavy text and
  random strings. Encoded chunks are cached.
* **Decoding** joins the tokens' bytes and decodes them as UTF-8 with ``errors="replace"``: a list
  of ids can end in the middle of a character (an emoji is four bytes, often two tokens), and such
  broken bytes become the replacement character U+FFFD, as in tiktoken.
* **Special tokens** such as ``"<|endoftext|>"`` get the ids after the merges. Training splits the
  text at them, so they never take part in a merge, and encoding treats them like tiktoken does:
  allowed ones become their single id, others raise an error.

Introduced in Chapter 3 (``chapters/03_tokenization.ipynb``); later chapters use it to turn text
into the token ids a model is trained on.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Literal, Sequence

import regex

__all__ = [
    "GPT4_SPLIT_PATTERN",
    "BPETokenizer",
    "train_bpe",
    "train_bpe_recount",
    "count_pairs",
    "merge_pair",
    "split_text",
    "TokenViewer",
    "token_viewer",
    "tokens_html",
]

#: The split pattern of OpenAI's ``cl100k_base`` encoding (GPT-4), as in ``tiktoken``: English
#: contractions, words with an optional leading non-letter (usually a space), numbers of up to
#: three digits, runs of punctuation, and whitespace (a run of spaces leaves its last space for the
#: next word).
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

#: The pattern that :meth:`BPETokenizer.to_tiktoken` uses when a tokenizer has no split pattern:
#: the whole text is one chunk.
WHOLE_TEXT_PATTERN = r"[\s\S]+"

_FORMAT = "llmcourse-bpe"
_VERSION = 1


# --------------------------------------------------------------------------------------------------
# The two building blocks: count neighbouring pairs, merge one pair
# --------------------------------------------------------------------------------------------------


def count_pairs(ids: Sequence[int], counts: dict[tuple[int, int], int] | None = None,
                weight: int = 1) -> dict[tuple[int, int], int]:
    """Count each pair of neighbouring ids.

    ``count_pairs([1, 2, 3, 1, 2]) -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}``.

    Pass ``counts`` to add to an existing dictionary (``weight`` times each pair).
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    ``merge_pair([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4]``; overlapping occurrences are merged
    from the left: ``merge_pair([5, 5, 5], (5, 5), 6) -> [6, 5]``.
    """
    out: list[int] = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# --------------------------------------------------------------------------------------------------
# Splitting text into chunks
# --------------------------------------------------------------------------------------------------


def _compile(pattern: str | None) -> regex.Pattern | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a regular expression (a str) or None, got "
                        f"{type(pattern).__name__}: {pattern!r}")
    try:
        return regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"pattern must be a valid regular expression, got {pattern!r} ({err})") \
            from None


def _check_special(special_tokens: Iterable[str] | None) -> list[str]:
    if special_tokens is None:
        return []
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a list of strings, got the string "
                        f"{special_tokens!r}; write [{special_tokens!r}]")
    specials = list(special_tokens)
    for s in specials:
        if not isinstance(s, str) or not s:
            raise TypeError(f"each special token must be a non-empty str, got {s!r}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct, got {specials}")
    return specials


def _special_regex(specials: Collection[str]) -> regex.Pattern:
    # Longest first, so that a special token that contains another one wins.
    return regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))


def split_text(text: str, pattern: str | None = GPT4_SPLIT_PATTERN,
               special_tokens: Iterable[str] | None = None) -> list[str]:
    """Cut ``text`` into the chunks that BPE trains on: first at special tokens (which are
    dropped), then with ``pattern`` (``None``: each piece between special tokens is one chunk).

    ``split_text("Hello world!!") -> ['Hello', ' world', '!!']``
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    compiled = _compile(pattern)
    specials = _check_special(special_tokens)
    pieces = _special_regex(specials).split(text) if specials else [text]
    chunks: list[str] = []
    for piece in pieces:
        if compiled is None:
            if piece:
                chunks.append(piece)
        else:
            chunks.extend(c for c in compiled.findall(piece) if c)
    return chunks


def _utf8(text: str) -> bytes:
    """The UTF-8 of ``text``; lone surrogates (not valid Unicode) become U+FFFD, like tiktoken."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


# --------------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------------


class BPETokenizer:
    """A trained byte-level BPE tokenizer (made by :func:`train_bpe`, or :meth:`load`).

    Attributes:

    * ``merges`` -- ``{(id_a, id_b): new_id}`` in the order learned; merge ``k`` has id ``256 + k``;
    * ``vocab`` -- ``{id: bytes}`` for every token: the 256 single bytes, the merged tokens, then
      the special tokens (their UTF-8 text);
    * ``pattern`` -- the split pattern (a regular expression) or ``None`` for no splitting;
    * ``special_tokens`` -- ``{text: id}``, ids after the merges.
    """

    def __init__(self, merges: dict[tuple[int, int], int] | Sequence[tuple[int, int]],
                 pattern: str | None = GPT4_SPLIT_PATTERN,
                 special_tokens: Iterable[str] | dict[str, int] | None = None) -> None:
        pairs = list(merges.items()) if isinstance(merges, dict) else [
            (tuple(p), 256 + k) for k, p in enumerate(merges)]
        self._regex = _compile(pattern)
        self.pattern = pattern
        self.merges: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        self._ranks: dict[bytes, int] = {bytes([i]): i for i in range(256)}
        for k, (pair, new_id) in enumerate(pairs):
            if (not isinstance(pair, tuple) or len(pair) != 2
                    or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)):
                raise ValueError(f"merge {k} must be a pair of two token ids, got {pair!r}")
            if new_id != 256 + k:
                raise ValueError(f"merge {k} must create token id {256 + k}, got {new_id!r}")
            a, b = pair
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"merge {k} ({a}, {b}) may only use ids 0..{new_id - 1} "
                                 f"(earlier tokens), got {pair}")
            token = self.vocab[a] + self.vocab[b]
            if token in self._ranks:
                raise ValueError(f"merge {k} {pair} makes the bytes {token!r}, which token "
                                 f"{self._ranks[token]} already has; every token must be new")
            self.merges[pair] = new_id
            self.vocab[new_id] = token
            self._ranks[token] = new_id
        # Every pair of tokens whose bytes join into a token, with that token's id. It holds the
        # merges and, rarely, other pairs (when "a"+"bc" spells a token learned as "ab"+"c").
        # Looking pairs up here is the same as tiktoken looking up the joined bytes.
        self._pair_ranks: dict[tuple[int, int], int] = {}
        for token, rank in self._ranks.items():
            for cut in range(1, len(token)):
                left, right = self._ranks.get(token[:cut]), self._ranks.get(token[cut:])
                if left is not None and right is not None:
                    self._pair_ranks[(left, right)] = rank
        # Special tokens: a list of texts (ids assigned after the merges) or {text: id}.
        if isinstance(special_tokens, dict):
            specials = dict(special_tokens)
            _check_special(specials)
            expected = list(range(len(self.vocab), len(self.vocab) + len(specials)))
            if sorted(specials.values()) != expected:
                raise ValueError(f"special token ids must follow the merges, i.e. be "
                                 f"{expected}, got {sorted(specials.values())}")
        else:
            names = _check_special(special_tokens)
            specials = {s: len(self.vocab) + i for i, s in enumerate(names)}
        self.special_tokens: dict[str, int] = specials
        for s, i in specials.items():
            self.vocab[i] = s.encode("utf-8")
        self._cache: dict[str, list[int]] = {}

    # -- sizes ------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """The number of tokens: 256 bytes + the merges + the special tokens."""
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        pat = "GPT4_SPLIT_PATTERN" if self.pattern == GPT4_SPLIT_PATTERN else repr(self.pattern)
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"pattern={pat}, special_tokens={list(self.special_tokens)})")

    # -- encoding ---------------------------------------------------------------------------------
    def _encode_chunk(self, data: bytes) -> list[int]:
        """BPE on the bytes of one chunk, with tiktoken's rule (lowest rank first, leftmost on a
        tie; a chunk that is a token as a whole becomes that token)."""
        whole = self._ranks.get(data)
        if whole is not None:
            return [whole]
        if len(data) > 64:
            return self._encode_long_chunk(data)
        ids = list(data)
        ranks = self._pair_ranks
        while len(ids) >= 2:
            best_rank, best_i = None, -1
            for i in range(len(ids) - 1):
                r = ranks.get((ids[i], ids[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best_rank, best_i = r, i
            if best_rank is None:
                break
            ids[best_i:best_i + 2] = [best_rank]
        return ids

    def _encode_long_chunk(self, data: bytes) -> list[int]:
        """The same as :meth:`_encode_chunk`, for long chunks: a linked list of tokens and a heap
        of ``(rank, position)`` so that each merge costs O(log n) instead of a scan."""
        ranks = self._pair_ranks
        ids = list(data)
        n = len(ids)
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        prv = list(range(-1, n - 1))
        heap = [(r, i) for i in range(n - 1) if (r := ranks.get((ids[i], ids[i + 1]))) is not None]
        heapq.heapify(heap)
        while heap:
            r, i = heapq.heappop(heap)
            j = nxt[i]
            if ids[i] < 0 or j < 0 or ranks.get((ids[i], ids[j])) != r:
                continue  # stale: this position changed since the entry was pushed
            ids[i], ids[j] = r, -1
            nxt[i] = nxt[j]
            if nxt[i] >= 0:
                prv[nxt[i]] = i
                if (r2 := ranks.get((r, ids[nxt[i]]))) is not None:
                    heapq.heappush(heap, (r2, i))
            if prv[i] >= 0 and (r2 := ranks.get((ids[prv[i]], r))) is not None:
                heapq.heappush(heap, (r2, prv[i]))
        return [t for t in ids if t >= 0]

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token strings as ordinary text.

        Like tiktoken, only the text that the split pattern matches is encoded; GPT-4's pattern
        matches every character, so ``decode(encode(s)) == s``. A custom pattern that skips some
        characters drops them.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        chunks = [text] if self._regex is None else self._regex.findall(text)
        cache = self._cache
        if len(cache) > 200_000:
            cache.clear()
        out: list[int] = []
        for chunk in chunks:
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(_utf8(chunk)) if chunk else []
                if len(chunk) <= 256:
                    cache[chunk] = ids
            out.extend(ids)
        return out

    def encode(self, text: str, *, allowed_special: Literal["all"] | Collection[str] = (),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """Encode ``text`` into token ids; special tokens work as in tiktoken.

        A special token's text becomes its id only if it is in ``allowed_special`` (or
        ``allowed_special="all"``). By default, text that contains a special token's text raises
        ``ValueError`` (it is "disallowed"); pass ``disallowed_special=()`` to encode it as
        ordinary text instead.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not self.special_tokens:
            return self.encode_ordinary(text)
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special must name special tokens of this tokenizer "
                             f"({sorted(self.special_tokens)}), got {sorted(unknown)}")
        disallowed = (set(self.special_tokens) - allowed if disallowed_special == "all"
                      else set(disallowed_special))
        if disallowed and (m := _special_regex(disallowed).search(text)):
            raise ValueError(
                f"the text contains the special token {m.group()!r}, which is disallowed. Pass "
                f"allowed_special={{{m.group()!r}}} (or 'all') to encode it as a special token, "
                f"or disallowed_special=() to encode it as ordinary text")
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        start = 0
        for m in _special_regex(allowed).finditer(text):
            out.extend(self.encode_ordinary(text[start:m.start()]))
            out.append(self.special_tokens[m.group()])
            start = m.end()
        out.extend(self.encode_ordinary(text[start:]))
        return out

    # -- decoding ---------------------------------------------------------------------------------
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of the tokens ``ids``, joined."""
        vocab = self.vocab
        ids = list(ids)
        try:
            return b"".join(vocab[i] for i in ids)
        except (KeyError, TypeError):
            bad = next(i for i in ids if not (isinstance(i, int) and i in vocab))
            raise ValueError(f"token ids must be integers 0..{len(vocab) - 1}, got {bad!r}") \
                from None

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into text. Bytes that are not valid UTF-8 (e.g. half an emoji) become the
        replacement character U+FFFD, as in tiktoken; ``decode(encode(s)) == s`` for valid text."""
        return self.decode_bytes(list(ids)).decode("utf-8", errors="replace")

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Each token's text on its own (bytes that are not valid UTF-8 on their own as U+FFFD)."""
        return [self.vocab[i].decode("utf-8", errors="replace") for i in ids]

    # -- tiktoken ---------------------------------------------------------------------------------
    def mergeable_ranks(self) -> dict[bytes, int]:
        """``{token bytes: id}`` for bytes and merged tokens: tiktoken's ``mergeable_ranks``."""
        return dict(self._ranks)

    def to_tiktoken(self, name: str = "llmcourse") -> Any:
        """The equivalent ``tiktoken.Encoding`` (same ids for every text)."""
        import tiktoken

        return tiktoken.Encoding(
            name,
            pat_str=WHOLE_TEXT_PATTERN if self.pattern is None else self.pattern,
            mergeable_ranks=self.mergeable_ranks(),
            special_tokens=dict(self.special_tokens),
        )

    # -- saving and loading -----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the tokenizer to a JSON file: pattern, merges in order, special tokens."""
        data = {
            "format": _FORMAT,
            "version": _VERSION,
            "pattern": self.pattern,
            "merges": [list(pair) for pair in self.merges],
            "special_tokens": self.special_tokens,
        }
        Path(path).write_text(json.dumps(data, ensure_ascii=True, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} must be a tokenizer saved by BPETokenizer.save (JSON), "
                             f"but it could not be read: {err}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path} must hold a JSON object with format {_FORMAT!r}, got {got!r}")
        if data.get("version") != _VERSION:
            raise ValueError(f"{path}: expected format version {_VERSION}, got "
                             f"{data.get('version')!r}")
        merges, pattern = data.get("merges"), data.get("pattern")
        specials = data.get("special_tokens", {})
        if not isinstance(merges, list) or not all(
                isinstance(m, list) and len(m) == 2 and all(type(x) is int for x in m)
                for m in merges):
            raise ValueError(f"{path}: 'merges' must be a list of [id, id] pairs, got "
                             f"{str(merges)[:80]}")
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"{path}: 'pattern' must be a string or null, got {pattern!r}")
        if not isinstance(specials, dict) or not all(type(v) is int for v in specials.values()):
            raise ValueError(f"{path}: 'special_tokens' must map texts to ids, got {specials!r}")
        try:
            return cls([tuple(m) for m in merges], pattern=pattern, special_tokens=specials)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path} is corrupt: {err}") from None


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def _check_training_args(text: str, vocab_size: int, pattern: str | None,
                         special_tokens: Iterable[str] | None) -> tuple[list[str], list[str]]:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text must not be empty: BPE learns its merges from a training text, "
                         "got ''")
    specials = _check_special(special_tokens)
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < 256 + len(specials):
        raise ValueError(f"vocab_size must be at least 256 (one token per byte) + "
                         f"{len(specials)} special tokens = {256 + len(specials)}, "
                         f"got {vocab_size}")
    chunks = split_text(text, pattern, specials)
    return chunks, specials


def _too_large(vocab_size: int, n_merges: int, n_special: int) -> ValueError:
    return ValueError(
        f"vocab_size={vocab_size} is more than this text allows: after {n_merges} merges no two "
        f"neighbouring tokens are left to merge, so vocab_size can be at most "
        f"{256 + n_merges + n_special}")


def train_bpe(text: str, vocab_size: int, pattern: str | None = GPT4_SPLIT_PATTERN,
              special_tokens: Iterable[str] | None = None,
              on_merge: Callable[[int, tuple[int, int]], None] | None = None) -> BPETokenizer:
    """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text`` (fast).

    ``pattern`` is the split pattern (default: GPT-4's); ``None`` trains on the whole text without
    splitting. ``special_tokens`` (e.g. ``["<|endoftext|>"]``) get the last ids; the text is cut at
    them so that they never take part in a merge. Ties: the pair with the smaller ids wins.
    ``on_merge(k, pair)``, if given, is called after merge ``k`` (to time training, or to show
    progress).

    The algorithm: every distinct chunk is stored once, with its count, as a linked list of tokens.
    ``where[pair]`` remembers the positions where a pair starts and ``counts[pair]`` how often it
    occurs. A merge visits only the positions of its pair, and there changes the counts of the
    neighbouring pairs (``x a b y``: ``(x, a)`` and ``(b, y)`` lose, ``(x, ab)`` and ``(ab, y)``
    gain). A heap of ``(-count, pair)`` finds the most frequent pair; entries whose count is out of
    date are skipped when they come to the top.
    """
    chunks, specials = _check_training_args(text, vocab_size, pattern, special_tokens)
    n_merges = vocab_size - 256 - len(specials)

    # Nodes: one per byte of every distinct chunk, each chunk a linked list (-1: no neighbour).
    tok: list[int] = []     # the token at each node (-1 once merged into its left neighbour)
    nxt: list[int] = []     # the next node of the same chunk
    prv: list[int] = []     # the previous node of the same chunk
    weight: list[int] = []  # how often the node's chunk occurs in the text
    for chunk, freq in Counter(chunks).items():
        data = _utf8(chunk)
        start, m = len(tok), len(data)
        tok.extend(data)
        weight.extend([freq] * m)
        nxt.extend(range(start + 1, start + m))
        nxt.append(-1)
        prv.append(-1)
        prv.extend(range(start, start + m - 1))
    n = len(tok)
    counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        j = nxt[i]
        if j >= 0:
            pair = (tok[i], tok[j])
            counts[pair] = counts.get(pair, 0) + weight[i]
            where.setdefault(pair, []).append(i)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)

    vocab = {i: bytes([i]) for i in range(256)}
    known = set(vocab.values())
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        # The most frequent pair (smallest ids on a tie), skipping out-of-date heap entries.
        while heap:
            neg, pair = heapq.heappop(heap)
            if counts.get(pair, 0) == -neg and -neg > 0:
                if vocab[pair[0]] + vocab[pair[1]] not in known:
                    break
                del counts[pair]  # its bytes are already a token: never merge this pair
                where.pop(pair, None)
        else:
            raise _too_large(vocab_size, len(merges), len(specials))
        new_id = 256 + len(merges)
        merges.append(pair)
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        known.add(vocab[new_id])

        a, b = pair
        delta: dict[tuple[int, int], int] = {}  # how the merge changes each neighbouring pair
        for i in sorted(set(where.pop(pair))):
            j = nxt[i]
            if tok[i] != a or j < 0 or tok[j] != b:
                continue  # this occurrence is gone (merged away, or overlapped)
            w, p, q = weight[i], prv[i], nxt[j]
            tok[i], tok[j], nxt[i] = new_id, -1, q
            if p >= 0:  # x a b -> x Z: (x, a) loses, (x, Z) gains
                x = tok[p]
                delta[(x, a)] = delta.get((x, a), 0) - w
                delta[(x, new_id)] = delta.get((x, new_id), 0) + w
                where.setdefault((x, new_id), []).append(p)
            if q >= 0:  # a b y -> Z y: (b, y) loses, (Z, y) gains
                prv[q] = i
                y = tok[q]
                delta[(b, y)] = delta.get((b, y), 0) - w
                delta[(new_id, y)] = delta.get((new_id, y), 0) + w
                where.setdefault((new_id, y), []).append(i)
        del counts[pair]
        for p2, d in delta.items():
            if d == 0 or p2 == pair:
                continue
            c = counts.get(p2, 0) + d
            if c > 0:
                counts[p2] = c
                heapq.heappush(heap, (-c, p2))
            else:
                counts.pop(p2, None)
                where.pop(p2, None)
        if on_merge is not None:
            on_merge(new_id - 256, pair)
    return BPETokenizer(merges, pattern=pattern, special_tokens=specials)


def train_bpe_recount(text: str, vocab_size: int, pattern: str | None = GPT4_SPLIT_PATTERN,
                      special_tokens: Iterable[str] | None = None,
                      on_merge: Callable[[int, tuple[int, int]], None] | None = None
                      ) -> BPETokenizer:
    """The plain trainer: after every merge, count all pairs again (slow; the reference).

    Same arguments and the same merges as :func:`train_bpe`, in a few readable lines.
    """
    chunks, specials = _check_training_args(text, vocab_size, pattern, special_tokens)
    n_merges = vocab_size - 256 - len(specials)
    ids = [list(_utf8(c)) for c in chunks]
    vocab = {i: bytes([i]) for i in range(256)}
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        counts: dict[tuple[int, int], int] = {}
        for chunk_ids in ids:
            count_pairs(chunk_ids, counts)
        # A pair whose bytes already form a token is never merged (tokens stay distinct).
        known = set(vocab.values())
        candidates = [p for p in counts if vocab[p[0]] + vocab[p[1]] not in known]
        if not candidates:
            raise _too_large(vocab_size, len(merges), len(specials))
        pair = min(candidates, key=lambda p: (-counts[p], p))  # most frequent, then smallest ids
        new_id = 256 + len(merges)
        ids = [merge_pair(chunk_ids, pair, new_id) for chunk_ids in ids]
        merges.append(pair)
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        if on_merge is not None:
            on_merge(new_id - 256, pair)
    return BPETokenizer(merges, pattern=pattern, special_tokens=specials)


# --------------------------------------------------------------------------------------------------
# Showing tokens: coloured HTML and a live text box
# --------------------------------------------------------------------------------------------------

#: Light background colours for tokens (dark text stays readable on all of them).
TOKEN_COLOURS = ["#cfe3f5", "#fbe0b5", "#c9ecd9", "#f6cdb8", "#ecd2e4", "#d4edf9", "#f8f0b0"]


def _token_label(data: bytes) -> str:
    """A token's text for display: invalid UTF-8 as \\x.. escapes, spaces and newlines visible."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "".join(f"\\x{b:02x}" for b in data)
    return text.replace(" ", "\u00b7").replace("\n", "\u21b5").replace("\t", "\u2192")


def tokens_html(tokenizer: BPETokenizer, text: str, show_ids: bool = True,
                allowed_special: Literal["all"] | Collection[str] = "all") -> str:
    """HTML that shows ``text`` cut into its tokens: one coloured box per token, id underneath.

    Spaces show as ``·`` and newlines as ``↵``; a token that is only part of a character (its bytes
    are not valid UTF-8 on their own) shows its bytes, e.g. ``\\xf0\\x9f``.
    """
    import html

    ids = tokenizer.encode(text, allowed_special=allowed_special)
    boxes = []
    for k, i in enumerate(ids):
        colour = TOKEN_COLOURS[k % len(TOKEN_COLOURS)]
        label = html.escape(_token_label(tokenizer.vocab[i]))
        under = (f"<span style='display:block;font-size:0.7em;color:#555'>{i}</span>"
                 if show_ids else "")
        boxes.append(
            f"<span style='display:inline-block;text-align:center;margin:1px;padding:1px 3px;"
            f"background:{colour};color:#111;border-radius:3px;font-family:monospace;"
            f"white-space:pre'>{label}{under}</span>")
    return ("<div style='line-height:2.2;background:#fcfcfc;padding:6px;border-radius:4px'>"
            + "".join(boxes) + f"<div style='color:#333;font-size:0.85em'>{len(text)} characters, "
            f"{len(_utf8(text))} bytes, {len(ids)} tokens</div></div>")


class TokenViewer:
    """A text box; as you type, the text below is shown cut into coloured tokens with their ids.

    Parts: ``text_box`` (an ``ipywidgets.Textarea``), ``output`` (an ``ipywidgets.HTML`` with the
    coloured tokens) and ``widget`` (the whole layout). ``set_text(s)`` types ``s`` into the box;
    ``ids`` and ``tokens`` read what is shown.
    """

    def __init__(self, tokenizer: BPETokenizer, text: str = "") -> None:
        import ipywidgets as w

        self.tokenizer = tokenizer
        self.text_box = w.Textarea(value=text, placeholder="Type some text",
                                   layout=w.Layout(width="100%", height="80px"))
        self.output = w.HTML()
        self.text_box.observe(lambda _change: self._refresh(), names="value")
        self.widget = w.VBox([self.text_box, self.output])
        self.ids: list[int] = []
        self._refresh()

    @property
    def text(self) -> str:
        """The text in the box."""
        return self.text_box.value

    @property
    def tokens(self) -> list[str]:
        """The shown tokens as text (see :meth:`BPETokenizer.token_strings`)."""
        return self.tokenizer.token_strings(self.ids)

    def set_text(self, text: str) -> None:
        """Put ``text`` in the box, as typing would; the tokens update."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        self.text_box.value = text

    def _refresh(self) -> None:
        self.ids = self.tokenizer.encode(self.text, allowed_special="all")
        self.output.value = tokens_html(self.tokenizer, self.text)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"TokenViewer(text={self.text[:40]!r}, ids={self.ids[:20]})"


def token_viewer(tokenizer: BPETokenizer, text: str = "") -> TokenViewer:
    """A live :class:`TokenViewer` for ``tokenizer``, starting with ``text`` in the box."""
    if not isinstance(tokenizer, BPETokenizer):
        raise TypeError(f"tokenizer must be a BPETokenizer, got {type(tokenizer).__name__}")
    return TokenViewer(tokenizer, text)
