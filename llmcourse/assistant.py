"""The assistant at work: a model answers a conversation and calls a tool (Chapter 8).

A fine-tuned model (:mod:`llmcourse.sft`) writes the assistant's turn of a conversation rendered
by :class:`llmcourse.chat.ChatTokenizer`. :func:`generate_reply` runs that loop: the prompt ends
with ``<|assistant|>``; Chapter 7's :func:`llmcourse.sampling.generate` adds tokens until the
model writes ``<|end|>``; when the turn holds a tool call (``<|call|>expression``), the expression
goes to the calculator (:func:`llmcourse.calculator.safe_calculate`, never ``eval``), its result
is written into the conversation as a ``tool`` turn, and the model goes on. :class:`Reply` holds
what happened, including why a reply did not finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from llmcourse.calculator import CalculatorError, format_number, safe_calculate
from llmcourse.chat import END, ChatTokenizer, parse_tool_call

__all__ = ["Reply", "generate_reply"]


@dataclass
class Reply:
    """What :func:`generate_reply` produced.

    ``messages``: the new messages (assistant turns, and a tool turn after each tool call);
    ``ids``: the whole token sequence, prompt included; ``finished``: True when the last assistant
    turn ended with ``<|end|>`` and no rule of the template was broken; ``problem``: why not.
    """

    messages: list[dict]
    ids: list[int]
    finished: bool
    problem: str | None = None
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (expression, result text)

    @property
    def answer(self) -> str:
        """The text of the last assistant turn ('' if there is none)."""
        texts = [m["content"] for m in self.messages if m["role"] == "assistant"]
        return texts[-1] if texts else ""


def generate_reply(model: Any, tokenizer: ChatTokenizer, conversation: Sequence[dict], *,
                   max_new_tokens: int = 120, temperature: float = 0.0,
                   tool: Callable[[str], Any] | None = safe_calculate, max_tool_calls: int = 2,
                   generator: Any = None, use_cache: bool = True) -> Reply:
    """Let ``model`` write the next assistant turn of ``conversation`` (which ends with a user
    message), running ``tool`` on each tool call it makes.

    The loop: render the prompt, which ends with ``<|assistant|>``; let Chapter 7's
    :func:`llmcourse.sampling.generate` add tokens (greedy when ``temperature == 0``, else
    sampled) until the model writes ``<|end|>``. If the turn holds a tool call
    (``<|call|>expression``), hand the expression to ``tool`` (by default :func:`safe_calculate`;
    a refusal is written back as ``error: reason``), append ``<|tool|>result<|end|><|assistant|>``
    and let the model continue. At most ``max_new_tokens`` tokens are generated in all. A role
    token written by the model, or two tool calls in one turn, end the loop (the reply is then not
    ``finished``).
    """
    from llmcourse.sampling import generate

    if not isinstance(tokenizer, ChatTokenizer):
        raise TypeError(f"tokenizer must be a ChatTokenizer, got {type(tokenizer).__name__}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    how = {"greedy": True} if temperature == 0 else {"temperature": temperature,
                                                    "generator": generator}
    stops = {tokenizer.end_id, *tokenizer.role_ids.values()}
    ids = tokenizer.render_prompt(conversation)
    reply = Reply(messages=[], ids=ids, finished=False)
    budget, turn_start = max_new_tokens, len(ids)
    while True:
        new = generate(model, ids, budget, stop_ids=stops, use_cache=use_cache, **how)
        ids += new
        budget -= len(new)
        turn = ids[turn_start:]
        last = turn[-1] if turn else None
        if last in tokenizer._role_of:
            reply.problem = f"the model started a new turn with {tokenizer.decode([last])}"
            turn = turn[:-1]
        elif turn.count(tokenizer.call_id) > 1:
            reply.problem = "the model wrote two tool calls in one turn"
        elif last != tokenizer.end_id:
            reply.problem = f"no {END} within {max_new_tokens} tokens"
        if reply.problem is not None:
            if turn:  # the unfinished turn, kept so it can be shown
                body = [t for t in turn if not tokenizer.is_special(t) or t == tokenizer.call_id]
                content, expression = parse_tool_call(tokenizer.decode(body))
                reply.messages.append({"role": "assistant", "content": content}
                                      | ({"tool_call": expression} if expression else {}))
            return reply
        content, expression = parse_tool_call(tokenizer.decode(turn))
        if expression is None:  # an ordinary end of the assistant's turn: done
            reply.messages.append({"role": "assistant", "content": content})
            reply.finished = True
            return reply
        reply.messages.append({"role": "assistant", "content": content, "tool_call": expression})
        if tool is None or len(reply.tool_calls) >= max_tool_calls or budget <= 0:
            reply.problem = "the model made a tool call that was not run"
            return reply
        try:
            result = tool(expression)
            result_text = format_number(result) if isinstance(result, (int, float)) \
                else str(result)
        except CalculatorError as err:
            result_text = f"error: {err.reason}"
        reply.tool_calls.append((expression, result_text))
        reply.messages.append({"role": "tool", "content": result_text})
        ids += [tokenizer.role_ids["tool"], *tokenizer.encode_ordinary(result_text),
                tokenizer.end_id, tokenizer.role_ids["assistant"]]
        turn_start = len(ids)
