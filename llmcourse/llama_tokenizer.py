"""The tokenizer of a real LLM is Chapter 3's byte-level BPE (introduced in Chapter 9).

SmolLM2's GGUF file stores its tokenizer as two lists: the 49,152 tokens (strings) and the 48,900
merges, in the order they were learned ("Ġ t" makes "Ġt"). That is exactly what
:class:`llmcourse.bpe.BPETokenizer` is made of, so :class:`LlamaTokenizer` loads them into one.
Three details differ from Chapter 3, each handled here:

* **Token strings are GPT-2's byte alphabet.** Every byte is written as one printable character
  (the space 0x20 as ``Ġ``, the newline as ``Ċ``), :func:`bytes_to_unicode`; we turn the strings
  back into bytes.
* **The ids are in another order.** The model's ids start with 17 special tokens
  (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` ...), then 235 single bytes (21 bytes that
  never occur in UTF-8 text, or almost never, such as 0xF5..0xFF or the control byte 0x04, have no
  token at all), then the merges in order. The course's tokenizer numbers bytes 0..255, merges
  from 256 and special tokens last; a table translates each course id into the model's id and
  back. A byte without a token is dropped, as the reference tokenizer does.
* **The pre-split.** Before BPE, the text is cut into chunks that merges never cross: first at
  special tokens, then every digit on its own, then GPT-2's pattern (contractions, words with
  their leading space, runs of punctuation, spaces). :data:`SMOLLM2_SPLIT_PATTERN` does all of it
  in one regular expression.

:func:`render_chatml` writes a conversation in the model's chat template (ChatML):
``<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n``.
"""

from __future__ import annotations

from typing import Any, Collection, Iterable, Literal, Sequence

import numpy as np

from llmcourse.bpe import BPETokenizer

__all__ = ["SMOLLM2_SPLIT_PATTERN", "GPT2_SPLIT_PATTERN", "DEFAULT_SYSTEM", "bytes_to_unicode",
           "LlamaTokenizer", "render_chatml"]

#: GPT-2's split pattern (what ``tokenizers``' ByteLevel pre-tokenizer uses).
GPT2_SPLIT_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                      r"""|\s+(?!\S)|\s+""")

#: SmolLM2's pre-split as one pattern: each digit alone, then GPT-2's pattern without its numbers.
#: A run of spaces before a digit stays whole (``(?![^\s\p{N}])``), as when the digits are cut off
#: first and GPT-2's pattern sees the spaces at the end of a piece.
SMOLLM2_SPLIT_PATTERN = (r"""\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+"""
                         r"""|\s+(?![^\s\p{N}])|\s+""")

#: The system prompt SmolLM2's template adds when a conversation has none.
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable character for each byte: printable Latin-1 bytes stand for themselves,
    the others (control bytes, space, ...) are shifted to 256 + n, so 0x20 becomes 'Ġ'."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, shifted = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


class LlamaTokenizer:
    """A :class:`~llmcourse.bpe.BPETokenizer` (``.bpe``) that speaks the model's ids.

    ``LlamaTokenizer(tokens, merges, special)``: ``tokens`` the model's token strings by id,
    ``merges`` the ``"a b"`` strings in order, ``special`` the ids of the special tokens.
    """

    def __init__(self, tokens: Sequence[str], merges: Sequence[str], special: Iterable[int],
                 pattern: str = SMOLLM2_SPLIT_PATTERN) -> None:
        special = sorted(set(special))
        char_byte = {c: b for b, c in bytes_to_unicode().items()}
        model_id = {t: i for i, t in enumerate(tokens)}
        course_id = {c: b for c, b in char_byte.items()}          # byte characters -> 0..255
        pairs = []
        for k, merge in enumerate(merges):
            a, sep, b = merge.partition(" ")
            if not sep or a not in course_id or b not in course_id or a + b not in model_id:
                raise ValueError(f"merge {k} {merge!r} does not join two known tokens into a "
                                 f"token of the vocabulary")
            pairs.append((course_id[a], course_id[b]))
            course_id[a + b] = 256 + k
        names = [tokens[i] for i in special]
        self.bpe = BPETokenizer(pairs, pattern=pattern, special_tokens=names)
        to_model = np.full(self.bpe.vocab_size, -1, dtype=np.int64)
        for text, c in course_id.items():
            if text in model_id:
                to_model[c] = model_id[text]
        for name in names:
            to_model[self.bpe.special_tokens[name]] = model_id[name]
        covered = np.sort(to_model[to_model >= 0])
        if len(covered) != len(tokens) or not np.array_equal(covered, np.arange(len(tokens))):
            raise ValueError(f"the merges and special tokens make {len(covered)} of the "
                             f"{len(tokens)} tokens; every token must come from exactly one")
        self._to_model = to_model
        self._to_course = np.empty(len(tokens), dtype=np.int64)
        self._to_course[to_model[to_model >= 0]] = np.nonzero(to_model >= 0)[0]
        #: ``{text: model id}`` of the special tokens.
        self.special_tokens: dict[str, int] = {tokens[i]: i for i in special}

    @property
    def vocab_size(self) -> int:
        return len(self._to_course)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f"LlamaTokenizer(vocab_size={self.vocab_size}, merges={len(self.bpe.merges)}, "
                f"special_tokens={len(self.special_tokens)})")

    def encode(self, text: str, *, allowed_special: Literal["all"] | Collection[str] = (),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """The model's ids of ``text``; special tokens as in :meth:`BPETokenizer.encode`."""
        ids = self.bpe.encode(text, allowed_special=allowed_special,
                              disallowed_special=disallowed_special)
        out = self._to_model[ids] if ids else np.zeros(0, dtype=np.int64)
        return out[out >= 0].tolist()

    def _course_ids(self, ids: Iterable[int]) -> list[int]:
        ids = [int(i) for i in ids]
        bad = next((i for i in ids if not 0 <= i < self.vocab_size), None)
        if bad is not None:
            raise ValueError(f"token ids must be integers 0..{self.vocab_size - 1}, got {bad}")
        return self._to_course[ids].tolist() if ids else []

    def decode(self, ids: Iterable[int]) -> str:
        """The text of the model's ids (broken UTF-8 becomes U+FFFD, as in Chapter 3)."""
        return self.bpe.decode(self._course_ids(ids))

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Each token's text on its own."""
        return self.bpe.token_strings(self._course_ids(ids))

    def encode_chat(self, messages: Sequence[dict], add_generation_prompt: bool = True,
                    system: str | None = DEFAULT_SYSTEM) -> list[int]:
        """The ids of :func:`render_chatml` (``messages``)."""
        text = render_chatml(messages, add_generation_prompt, system)
        return self.encode(text, allowed_special={"<|im_start|>", "<|im_end|>"})


def render_chatml(messages: Sequence[dict], add_generation_prompt: bool = True,
                  system: str | None = DEFAULT_SYSTEM) -> str:
    """SmolLM2's chat template: each message as ``<|im_start|>role\\ncontent<|im_end|>\\n``.

    ``messages`` are dicts with a ``role`` (system, user or assistant) and a ``content`` string. A
    conversation without a system message gets ``system`` first (SmolLM2's default; None for
    none). ``add_generation_prompt`` ends with ``<|im_start|>assistant\\n``, where the model writes.
    """
    from llmcourse.chat import ConversationError, check_conversation

    checked = check_conversation(messages)
    for i, m in enumerate(checked):
        if m["role"] == "tool" or "tool_call" in m:
            raise ConversationError(f"message {i}: SmolLM2's template has no tools; the roles "
                                    f"are system, user and assistant")
        if "<|im_start|>" in m["content"] or "<|im_end|>" in m["content"]:
            raise ConversationError(f"message {i} ({m['role']}) contains the text of a ChatML "
                                    f"special token; only the template places them")
    if checked[0]["role"] != "system" and system is not None:
        checked = [{"role": "system", "content": system}] + checked
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in checked)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")

