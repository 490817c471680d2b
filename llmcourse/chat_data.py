"""A small conversation data set made from Tiny Shakespeare by code (Chapter 8).

Assistants are fine-tuned on conversations that people wrote, or that programs generated. Ours are
generated, deterministically from the corpus and a seed, so every answer can be checked:

* ``speaker`` -- "Who says this line? ..." answered with the speaker's name, as the plays print it
  (``ROMEO``). Only four speakers, with a similar number of lines each, so guessing is right a
  quarter of the time and the model must do better than that to show it learned something.
* ``next_line`` -- "What comes next? ..." answered with the next line of the same
  speech. The answer is in the corpus, but a small model has not memorised the corpus: this kind
  shows an assistant that answers in the right *form* with the wrong *facts*.
* ``arithmetic`` -- "What is 12*7?" answered with a tool call to the calculator, then, after the
  tool's result, ``It is 84.`` The model has to learn when to call and how to copy; the calculator
  does the arithmetic. There are more of these than of the others: copying numbers is a skill,
  and from a few dozen expressions a small model memorises them instead of learning to copy.

The held-out split never shares a speech (for the Shakespeare kinds) or an expression (for the
arithmetic) with the training split. :func:`check_examples` checks every answer against the corpus
and the calculator.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from llmcourse.calculator import format_number, safe_calculate
from llmcourse.chat import check_conversation

__all__ = ["Example", "KINDS", "SPEAKERS", "make_conversations", "check_examples", "speeches",
           "grade_answer"]

KINDS = ("speaker", "next_line", "arithmetic")
#: The speakers of the ``speaker`` questions: four of the most frequent, from four different plays.
SPEAKERS = ("ROMEO", "MENENIUS", "PETRUCHIO", "DUKE VINCENTIO")
# Line lengths (characters) used in questions and answers, so that every conversation fits in
# the 128-character context of Chapter 6's model.
_MIN_LINE, _MAX_LINE, _MAX_NEXT_LINE = 16, 60, 40
SPEAKER_QUESTION = "Who says this line? "
NEXT_LINE_QUESTION = "What comes next? "


@dataclass(frozen=True)
class Example:
    """One conversation of the data set: its ``kind``, the whole ``conversation`` (the user's
    question, then the assistant's turns) and the right ``answer`` (a name, a line or a number)."""

    kind: str
    conversation: tuple[dict, ...]
    answer: str

    @property
    def prompt(self) -> list[dict]:
        """The conversation up to the assistant's first turn: what the model is asked."""
        return [dict(self.conversation[0])]

    @property
    def question(self) -> str:
        return self.conversation[0]["content"]


def speeches(text: str) -> list[tuple[str, list[str]]]:
    """The speeches of the corpus, as ``(speaker, lines)``; a speech is a block of lines after a
    line ``NAME:``, and blocks are separated by blank lines."""
    out = []
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) >= 2 and lines[0].endswith(":"):
            out.append((lines[0][:-1], lines[1:]))
    return out


def _usable(line: str, longest: int = _MAX_LINE) -> bool:
    return _MIN_LINE <= len(line) <= longest and not line.endswith(":")


def _expression(rng: random.Random) -> str:
    form = rng.choice(["+", "-", "*", "/", "(+)*"])
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    if form == "/":
        b = rng.randint(2, 12)
        return f"{b * rng.randint(2, 30)}/{b}"  # whole results only
    if form == "*":
        return f"{a}*{rng.randint(2, 12)}"
    if form == "(+)*":
        return f"({rng.randint(2, 20)}+{rng.randint(2, 20)})*{rng.randint(2, 9)}"
    return f"{a}{form}{b}"


def make_conversations(text: str, *, seed: int = 0, n_speaker: int = 160,
                       n_next_line: int = 80, n_arithmetic: int = 480,
                       held_out: float = 0.2) -> tuple[list[Example], list[Example]]:
    """The training and held-out conversations, made from ``text`` (Tiny Shakespeare).

    Deterministic for a given ``text`` and ``seed``. ``held_out`` is the share of each kind kept
    for evaluation; held-out speaker and next-line questions come from speeches that no training
    question uses, held-out arithmetic from expressions no training question uses.
    """
    if not isinstance(text, str) or not text:
        raise TypeError(f"text must be a non-empty str (the corpus), got {type(text).__name__}")
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a share between 0 and 1, got {held_out!r}")
    for name, n in [("n_speaker", n_speaker), ("n_next_line", n_next_line),
                    ("n_arithmetic", n_arithmetic)]:
        if not isinstance(n, int) or n < 2:
            raise ValueError(f"{name} must be an int >= 2, got {n!r}")
    rng = random.Random(seed)
    all_speeches = speeches(text)
    counts: dict[str, int] = {}
    for speech_id, (_, lines) in enumerate(all_speeches):
        for line in lines:
            counts[line] = counts.get(line, 0) + 1

    def split(items: list, n: int, key) -> tuple[list, list]:
        """n items, the held-out share of them from groups (``key``) the training part lacks."""
        groups: dict = {}
        for item in items:
            groups.setdefault(key(item), []).append(item)
        order = list(groups)
        rng.shuffle(order)
        n_test = max(1, round(n * held_out))
        train, test = [], []
        for g in order:
            member = rng.choice(groups[g])  # one question per group keeps the questions varied
            if len(test) < n_test:
                test.append(member)
            elif len(train) < n - n_test:
                train.append(member)
        if len(train) + len(test) < n:
            raise ValueError(f"the text has too few usable lines for {n} questions")
        return train, test

    # speaker: (speech id, line, speaker), balanced over SPEAKERS
    train_sp, test_sp = [], []
    for who in SPEAKERS:
        items = [(sid, line, who) for sid, (spk, lines) in enumerate(all_speeches) if spk == who
                 for line in lines if _usable(line) and counts[line] == 1]
        a, b = split(items, n_speaker // len(SPEAKERS), key=lambda it: it[0])
        train_sp += a
        test_sp += b

    # next line: (speech id, line, next line) inside one speech, both lines unique in the corpus
    pairs = [(sid, a, b) for sid, (_, lines) in enumerate(all_speeches)
             for a, b in zip(lines, lines[1:])
             if _usable(a, _MAX_NEXT_LINE) and _usable(b, _MAX_NEXT_LINE) and counts[a] == 1]
    train_nl, test_nl = split(pairs, n_next_line, key=lambda it: it[0])

    # arithmetic: distinct expressions
    expressions: list[str] = []
    while len(expressions) < n_arithmetic:
        e = _expression(rng)
        if e not in expressions:
            expressions.append(e)
    n_test = max(1, round(n_arithmetic * held_out))
    test_ar, train_ar = expressions[:n_test], expressions[n_test:]

    def speaker_example(item) -> Example:
        _, line, who = item
        return Example("speaker", (
            {"role": "user", "content": f"{SPEAKER_QUESTION}{line}"},
            {"role": "assistant", "content": who}), who)

    def next_line_example(item) -> Example:
        _, line, following = item
        return Example("next_line", (
            {"role": "user", "content": f"{NEXT_LINE_QUESTION}{line}"},
            {"role": "assistant", "content": following}), following)

    def arithmetic_example(expression: str) -> Example:
        result = format_number(safe_calculate(expression))
        return Example("arithmetic", (
            {"role": "user", "content": f"What is {expression}?"},
            {"role": "assistant", "content": "", "tool_call": expression},
            {"role": "tool", "content": result},
            {"role": "assistant", "content": f"It is {result}."}), result)

    def build(sp, nl, ar) -> list[Example]:
        examples = ([speaker_example(i) for i in sp] + [next_line_example(i) for i in nl]
                    + [arithmetic_example(e) for e in ar])
        random.Random(seed + 1).shuffle(examples)
        return examples

    return build(train_sp, train_nl, train_ar), build(test_sp, test_nl, test_ar)


def check_examples(examples: list[Example], text: str) -> int:
    """Check every example against the corpus and the calculator; return how many were checked.

    A speaker answer must be the speaker of a speech holding the line; a next line must follow the
    line in some speech; an arithmetic answer must be the calculator's result, and the
    conversation must call the calculator on the question's expression. Every conversation must
    follow the chat template. Raises ``ValueError`` naming the first wrong example.
    """
    said_by: dict[str, set[str]] = {}
    follows: dict[str, set[str]] = {}
    for who, lines in speeches(text):
        for a, b in zip(lines, lines[1:] + [None]):
            said_by.setdefault(a, set()).add(who)
            if b is not None:
                follows.setdefault(a, set()).add(b)
    for k, ex in enumerate(examples):
        check_conversation(list(ex.conversation))
        if ex.kind == "speaker":
            line = ex.question.removeprefix(SPEAKER_QUESTION)
            ok = ex.answer in said_by.get(line, ()) and ex.conversation[-1]["content"] == ex.answer
        elif ex.kind == "next_line":
            line = ex.question.removeprefix(NEXT_LINE_QUESTION)
            ok = ex.answer in follows.get(line, ()) and ex.conversation[-1]["content"] == ex.answer
        elif ex.kind == "arithmetic":
            expression = ex.question.removeprefix("What is ").removesuffix("?")
            ok = (ex.conversation[1].get("tool_call") == expression
                  and format_number(safe_calculate(expression)) == ex.answer
                  and ex.conversation[-1]["content"] == f"It is {ex.answer}.")
        else:
            raise ValueError(f"example {k} has the unknown kind {ex.kind!r}; the kinds are {KINDS}")
        if not ok:
            raise ValueError(f"example {k} ({ex.kind}) is wrong: {ex.conversation}")
    return len(examples)


_NAME = re.compile(r"[A-Z][A-Z ]*[A-Z]")
_IT_IS = re.compile(r"It is (-?\d+(?:\.\d+)?)\.")


def grade_answer(example: Example, reply) -> tuple[bool, bool]:
    """``(follows_the_format, is_right)`` for a model's reply (a :class:`llmcourse.assistant.Reply`)
    to ``example``.

    The format: the reply ended its turn with ``<|end|>``; a speaker is a name in capitals; a
    next line is one line of text; arithmetic is a tool call followed by ``It is N.``. Right: the
    name, the line, or the number equals the answer.
    """
    answer = reply.answer.strip()
    if not reply.finished:
        return False, False
    called = bool(reply.tool_calls)
    if example.kind == "speaker":
        form = not called and bool(_NAME.fullmatch(answer))
        return form, form and answer == example.answer
    if example.kind == "next_line":
        form = not called and bool(answer) and "\n" not in answer
        return form, form and answer == example.answer
    m = _IT_IS.fullmatch(answer)
    form = called and m is not None
    return form, form and m.group(1) == example.answer
