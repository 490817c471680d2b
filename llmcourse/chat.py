"""From base model to assistant: a chat template, special tokens, the loss mask and a tool.

A base model continues documents. To make it answer instead, we fine-tune it on *conversations*,
written in a fixed template so the model can tell who speaks. A conversation is a list of messages,
as in the chat APIs people already know::

    [{"role": "user", "content": "What is 12*7?"},
     {"role": "assistant", "content": "", "tool_call": "12*7"},
     {"role": "tool", "content": "84"},
     {"role": "assistant", "content": "It is 84."}]

The roles are ``system`` (instructions, first message only), ``user``, ``assistant`` and ``tool``
(the result of a tool call). The template writes each message as a role token, the text, and an
end-of-turn token; an assistant's tool call is the token ``<|call|>`` followed by the expression::

    <|user|>What is 12*7?<|end|><|assistant|><|call|>12*7<|end|><|tool|>84<|end|><|assistant|>It is 84.<|end|>

The six **special tokens** get ids after every id of the base tokenizer, so a trained model's
embedding table grows by a few rows and keeps all its old ones (:class:`ChatTokenizer`). Characters
the base vocabulary lacks (Tiny Shakespeare has no digits but ``3``, and no ``+ * / ( )``) are added
the same way. Special tokens enter a conversation only through the template: text that merely
*spells* one (``"<|end|>"`` typed by a user) is refused, as ``allowed_special`` does in Chapter 3.

:meth:`ChatTokenizer.render` returns the ids *and* a mask: 1 on the tokens the model is trained to
write (the assistant's text, its tool calls and its end-of-turn token), 0 on everything it only
reads. :meth:`ChatTokenizer.parse` turns ids back into the conversation. The generation loop
:func:`llmcourse.assistant.generate_reply` lets a model answer and runs the calculator when it
writes a tool call. Fine-tuning a model on conversations,
with the loss on assistant tokens only, is in :mod:`llmcourse.sft`.

Introduced in Chapter 8.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Literal, Sequence

__all__ = [
    "ROLES", "SYSTEM", "USER", "ASSISTANT", "TOOL", "CALL", "END", "SPECIAL_TOKENS",
    "EXTRA_CHARACTERS", "ConversationError", "check_conversation", "ChatTokenizer", "Turn",
    "parse_tool_call",
]

ROLES = ("system", "user", "assistant", "tool")
SYSTEM, USER, ASSISTANT, TOOL = "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"
CALL, END = "<|call|>", "<|end|>"
#: The texts of the special tokens, in the order of their ids (after the base vocabulary).
SPECIAL_TOKENS = (SYSTEM, USER, ASSISTANT, TOOL, CALL, END)
ROLE_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT, "tool": TOOL}
#: Characters a chat tokenizer can always write: printable ASCII and the newline. Those the base
#: tokenizer lacks become new tokens.
EXTRA_CHARACTERS = "".join(c for c in string.printable if c not in "\t\r\x0b\x0c")

_KEYS = {"role", "content", "tool_call"}


class ConversationError(ValueError):
    """A conversation (or a list of ids) does not follow the chat template; the message says
    which message or position is wrong and why."""


# -- conversations ---------------------------------------------------------------------------------
def _special_in(text: str) -> str | None:
    """The special token whose text occurs first in ``text`` (None if none does)."""
    found = [(text.find(s), s) for s in SPECIAL_TOKENS if s in text]
    return min(found)[1] if found else None


def check_conversation(conversation: Sequence[dict]) -> list[dict]:
    """Check that ``conversation`` follows the rules of the template; return it as a new list of
    dicts (``tool_call`` only where present). Raises :class:`ConversationError` or ``TypeError``.

    The rules: every message is a dict with a ``role`` in :data:`ROLES` and a non-empty ``content``
    string (an assistant message that makes a ``tool_call`` may have empty content); no text
    contains a special token's text; a ``system`` message may only come first; the first other
    message is from the ``user``; two ``assistant`` turns never follow each other; a ``tool``
    message answers the tool call of the assistant message just before it, and a tool call is
    answered by a ``tool`` message (unless it is the last message).
    """
    if isinstance(conversation, (str, bytes, dict)) or not isinstance(conversation, Sequence):
        raise TypeError(f"a conversation must be a list of messages (dicts with 'role' and "
                        f"'content'), got {type(conversation).__name__}")
    if len(conversation) == 0:
        raise ConversationError("the conversation is empty; it needs at least one user message")
    out: list[dict] = []
    for i, message in enumerate(conversation):
        where = f"message {i}"
        if not isinstance(message, dict):
            raise TypeError(f"{where} must be a dict with 'role' and 'content', "
                            f"got {type(message).__name__}: {message!r}")
        if not {"role", "content"} <= set(message) or not set(message) <= _KEYS:
            raise ConversationError(f"{where} must have the keys 'role' and 'content' (and, for "
                                    f"an assistant, optionally 'tool_call'), got {sorted(message)}")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ConversationError(f"{where} has the unknown role {role!r}; the roles are "
                                    f"{', '.join(ROLES)}")
        if not isinstance(content, str):
            raise TypeError(f"{where} ({role}): content must be a str, got "
                            f"{type(content).__name__}")
        call = message.get("tool_call")
        if "tool_call" in message:
            if role != "assistant":
                raise ConversationError(f"{where}: only an assistant message can make a "
                                        f"tool_call, this one is from the {role}")
            if not isinstance(call, str) or not call.strip():
                raise ConversationError(f"{where}: tool_call must be a non-empty str (the "
                                        f"expression), got {call!r}")
        if not content.strip() and call is None:
            raise ConversationError(f"{where} ({role}) has empty content")
        for text in (content, call or ""):
            if (special := _special_in(text)) is not None:
                raise ConversationError(
                    f"{where} ({role}) contains the text of the special token {special!r}; "
                    f"special tokens are placed by the template only, never by message text")
        if role == "system" and i > 0:
            raise ConversationError(f"{where}: a system message may only be the first message")
        previous = out[-1] if out else None
        if role != "system" and (previous is None or previous["role"] == "system") \
                and role != "user":
            raise ConversationError(f"{where}: the conversation must start with a user message "
                                    f"(after an optional system message), got {role!r}")
        if previous is not None and previous["role"] == "assistant" and role == "assistant":
            raise ConversationError(f"messages {i - 1} and {i} are two assistant turns in a row; "
                                    f"put a user (or tool) message between them, or join them")
        if role == "tool" and (previous is None or "tool_call" not in previous):
            raise ConversationError(f"{where}: a tool message must follow an assistant message "
                                    f"that makes a tool_call")
        if previous is not None and "tool_call" in previous and role != "tool":
            raise ConversationError(f"{where}: the tool call in message {i - 1} must be "
                                    f"answered by a tool message, got {role!r}")
        out.append({"role": role, "content": content} | ({"tool_call": call} if call else {}))
    return out


def parse_tool_call(text: str) -> tuple[str, str | None]:
    """Split an assistant turn's text into ``(content, expression)``.

    The expression is the text between :data:`CALL` and :data:`END` (or the end of ``text``);
    ``None`` when there is no call. ``parse_tool_call("Let me see.<|call|>2+3<|end|>")`` gives
    ``("Let me see.", "2+3")``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = text.split(END, 1)[0]
    if CALL not in text:
        return text, None
    content, expression = text.split(CALL, 1)
    return content, expression.strip()


# -- the tokenizer ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Turn:
    """One turn of a rendered conversation: ``ids[start]`` is its role token, ``ids[stop - 1]``
    its end-of-turn token."""

    role: str
    start: int
    stop: int


class ChatTokenizer:
    """A base tokenizer plus new characters and the special tokens, with ids after the base's.

    ``base`` needs ``vocab_size``, ``encode(text)`` and ``decode(ids)`` (the character tokenizer of
    Chapter 6, or a :class:`llmcourse.bpe.BPETokenizer`). The ids are laid out as::

        0 .. base.vocab_size - 1     the base tokenizer's ids, unchanged
        then                         characters of ``extra_characters`` the base cannot encode
        then                         SPECIAL_TOKENS, in order

    so a model trained with the base tokenizer keeps every embedding row it learned.
    """

    def __init__(self, base: Any, extra_characters: str = EXTRA_CHARACTERS) -> None:
        for attr in ("vocab_size", "encode", "decode"):
            if not hasattr(base, attr):
                raise TypeError(f"base must be a tokenizer with vocab_size, encode and decode; "
                                f"{type(base).__name__} has no {attr!r}")
        if not isinstance(extra_characters, str):
            raise TypeError(f"extra_characters must be a str, got "
                            f"{type(extra_characters).__name__}")
        self.base = base
        self.base_vocab_size = int(base.vocab_size)
        self._known: dict[str, bool] = {}
        new = [c for c in dict.fromkeys(extra_characters) if not self._base_knows(c)]
        self.extra_characters: dict[str, int] = {
            c: self.base_vocab_size + i for i, c in enumerate(new)}
        first = self.base_vocab_size + len(new)
        self.special_tokens: dict[str, int] = {s: first + i for i, s in enumerate(SPECIAL_TOKENS)}
        self._id_to_text = {i: c for c, i in self.extra_characters.items()} | \
            {i: s for s, i in self.special_tokens.items()}
        self.end_id = self.special_tokens[END]
        self.call_id = self.special_tokens[CALL]
        self.role_ids = {role: self.special_tokens[t] for role, t in ROLE_TOKENS.items()}
        self._role_of = {i: role for role, i in self.role_ids.items()}

    @property
    def vocab_size(self) -> int:
        """Base ids + new characters + special tokens."""
        return self.base_vocab_size + len(self.extra_characters) + len(self.special_tokens)

    def __repr__(self) -> str:
        return (f"ChatTokenizer(base={type(self.base).__name__} with {self.base_vocab_size} ids, "
                f"{len(self.extra_characters)} new characters, {len(self.special_tokens)} special "
                f"tokens: vocab_size={self.vocab_size})")

    def _base_knows(self, ch: str) -> bool:
        known = self._known.get(ch)
        if known is None:
            try:
                ids = self.base.encode(ch)
                known = self.base.decode(ids) == ch and all(
                    0 <= i < self.base_vocab_size for i in ids)
            except Exception:  # the base tokenizer cannot encode it (KeyError, ValueError, ...)
                known = False
            self._known[ch] = known
        return known

    # -- text -------------------------------------------------------------------------------------
    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` as plain text: a special token's text becomes ordinary characters."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        out: list[int] = []
        run: list[str] = []  # characters the base tokenizer encodes, not yet encoded
        for ch in text:
            if ch in self.extra_characters:
                if run:
                    out.extend(self.base.encode("".join(run)))
                    run = []
                out.append(self.extra_characters[ch])
            elif self._base_knows(ch):
                run.append(ch)
            else:
                raise ValueError(f"the character {ch!r} (U+{ord(ch):04X}) is in neither the base "
                                 f"vocabulary nor the extra characters of this chat tokenizer")
        if run:
            out.extend(self.base.encode("".join(run)))
        return out

    def encode(self, text: str, *, allowed_special: Literal["all"] | Collection[str] = (),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """Encode ``text``; special tokens work as in Chapter 3 (and tiktoken).

        A special token's text becomes its id only if it is in ``allowed_special``. By default,
        text containing one raises ``ValueError``; ``disallowed_special=()`` encodes it as
        ordinary characters instead.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        allowed = set(SPECIAL_TOKENS) if allowed_special == "all" else set(allowed_special)
        if unknown := allowed - set(SPECIAL_TOKENS):
            raise ValueError(f"allowed_special must name special tokens ({list(SPECIAL_TOKENS)}), "
                             f"got {sorted(unknown)}")
        disallowed = (set(SPECIAL_TOKENS) - allowed if disallowed_special == "all"
                      else set(disallowed_special))
        for s in SPECIAL_TOKENS:
            if s in disallowed and s in text:
                raise ValueError(f"the text contains the special token {s!r}, which is "
                                 f"disallowed. Pass allowed_special={{{s!r}}} (or 'all') to "
                                 f"encode it as a special token, or disallowed_special=() to "
                                 f"encode it as ordinary text")
        out: list[int] = []
        start = 0
        while allowed:
            hits = [(text.find(s, start), s) for s in allowed]
            hits = [(i, s) for i, s in hits if i >= 0]
            if not hits:
                break
            i, s = min(hits, key=lambda h: (h[0], -len(h[1])))
            out.extend(self.encode_ordinary(text[start:i]))
            out.append(self.special_tokens[s])
            start = i + len(s)
        out.extend(self.encode_ordinary(text[start:]))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into text, special tokens as their texts."""
        pieces: list[str] = []
        run: list[int] = []
        for i in ids:
            i = int(i)
            if 0 <= i < self.base_vocab_size:
                run.append(i)
                continue
            if i not in self._id_to_text:
                raise ValueError(f"token ids must be integers 0..{self.vocab_size - 1}, got {i}")
            if run:
                pieces.append(self.base.decode(run))
                run = []
            pieces.append(self._id_to_text[i])
        if run:
            pieces.append(self.base.decode(run))
        return "".join(pieces)

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Each token's text on its own."""
        return [self.decode([i]) for i in ids]

    def is_special(self, token_id: int) -> bool:
        """True for the id of a special token."""
        return int(token_id) in self._role_of or int(token_id) in (self.end_id, self.call_id)

    # -- conversations ----------------------------------------------------------------------------
    def render(self, conversation: Sequence[dict]) -> tuple[list[int], list[int]]:
        """The ids of ``conversation`` in the chat template, and the loss mask.

        ``mask[t]`` is 1 where the model is trained to write token ``t`` (an assistant's text, its
        tool call and its end-of-turn token) and 0 on the tokens it only reads (the role tokens,
        and the system, user and tool messages). Raises :class:`ConversationError` for a
        conversation that breaks the template's rules (see :func:`check_conversation`).
        """
        ids: list[int] = []
        mask: list[int] = []
        for message in check_conversation(conversation):
            trained = int(message["role"] == "assistant")
            body = self.encode_ordinary(message["content"])
            if "tool_call" in message:
                body += [self.call_id] + self.encode_ordinary(message["tool_call"])
            ids += [self.role_ids[message["role"]], *body, self.end_id]
            mask += [0] + [trained] * (len(body) + 1)
        return ids, mask

    def render_text(self, conversation: Sequence[dict]) -> str:
        """The rendered conversation as text, special tokens spelled out (for reading)."""
        return self.decode(self.render(conversation)[0])

    def render_prompt(self, conversation: Sequence[dict]) -> list[int]:
        """The ids that ask the model for the next assistant turn: the conversation (which must end
        with a user or tool message) followed by the ``<|assistant|>`` token."""
        messages = check_conversation(conversation)
        if messages[-1]["role"] not in ("user", "tool"):
            raise ConversationError(f"a prompt must end with a user or tool message, this one "
                                    f"ends with {messages[-1]['role']!r}")
        return self.render(messages)[0] + [self.role_ids["assistant"]]

    def find_turns(self, ids: Sequence[int]) -> list[Turn]:
        """Cut rendered ids into turns. Raises :class:`ConversationError` if a token lies outside
        every turn, a turn does not start with a role token, or the last turn is not ended."""
        turns: list[Turn] = []
        start = None
        for t, i in enumerate(ids):
            i = int(i)
            if start is None:
                if i not in self._role_of:
                    raise ConversationError(f"position {t}: expected a role token "
                                            f"({', '.join(ROLE_TOKENS.values())}) to start a turn, "
                                            f"got {self.decode([i])!r}")
                start = t
            elif i in self._role_of:
                raise ConversationError(f"position {t}: a new turn starts ({self.decode([i])}) "
                                        f"before the turn at position {start} has ended with {END}")
            elif i == self.end_id:
                turns.append(Turn(self._role_of[int(ids[start])], start, t + 1))
                start = None
        if start is not None:
            raise ConversationError(f"the turn that starts at position {start} never ends with "
                                    f"{END}")
        return turns

    def parse(self, ids: Sequence[int]) -> list[dict]:
        """The conversation that ``ids`` render; the inverse of :meth:`render`."""
        messages: list[dict] = []
        for turn in self.find_turns(ids):
            body = [int(i) for i in ids[turn.start + 1: turn.stop - 1]]
            call = None
            if self.call_id in body:
                if turn.role != "assistant":
                    raise ConversationError(f"position {turn.start}: a {turn.role} turn contains "
                                            f"a tool call {CALL}; only an assistant may call")
                k = body.index(self.call_id)
                body, call = body[:k], body[k + 1:]
            inner = body + (call or [])
            if any(self.is_special(i) for i in inner):
                raise ConversationError(f"position {turn.start}: the {turn.role} turn contains "
                                        f"a misplaced special token")
            message = {"role": turn.role, "content": self.decode(body)}
            if call is not None:
                message["tool_call"] = self.decode(call)
            messages.append(message)
        return check_conversation(messages)


def _block_size(model: Any) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "block_size", None)
