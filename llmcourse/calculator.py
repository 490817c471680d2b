"""A safe calculator: the tool that the assistant of Chapter 8 may call.

A model that writes ``<|call|>12*7<|end|>`` asks for a computation; the generation loop hands the
text ``12*7`` to :func:`safe_calculate` and feeds the result back. The text comes from a model (and,
through the model, from whoever wrote the prompt), so it must be treated as hostile. Python's
``eval`` would run *any* expression -- ``__import__('os').system(...)``, or ``9**9**9``, which
never finishes. So we never call ``eval``. Instead:

1. the text is limited in length and parsed with :mod:`ast` into a syntax tree, without running it;
2. every node of the tree is checked against a short list of what is allowed: numbers, the four
   operations ``+ - * /``, a leading ``-`` or ``+``, and parentheses (which shape the tree and leave
   no node of their own); names, attribute access, calls, powers and everything else are refused;
3. the tree is evaluated by a few lines of our own, with exact fractions, checking the size of
   every intermediate result, so no input can make it run long or use much memory.

A refused expression raises :class:`CalculatorError` (a ``ValueError``) whose ``reason`` says why.
Introduced in Chapter 8.
"""

from __future__ import annotations

import ast
from fractions import Fraction

__all__ = ["CalculatorError", "safe_calculate", "format_number", "MAX_EXPRESSION_LENGTH",
           "MAX_DEPTH", "MAX_MAGNITUDE"]

#: The longest expression accepted, in characters.
MAX_EXPRESSION_LENGTH = 200
#: The deepest syntax tree accepted (each operation or pair of parentheses adds a level or so).
MAX_DEPTH = 30
#: The largest number (in absolute value, numerator or denominator) a literal or any intermediate
#: result may have.
MAX_MAGNITUDE = 10**18

# Symbols people write for the operations, mapped to Python's.
_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "−": "-", "–": "-"})

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_REFUSED = {  # node type -> the reason given to the caller
    ast.Name: "names (such as variables or functions) are not allowed",
    ast.Attribute: "attribute access (a dot after a value) is not allowed",
    ast.Call: "function calls are not allowed",
    ast.Subscript: "indexing with [...] is not allowed",
    ast.Lambda: "lambda functions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "and/or are not allowed",
}


class CalculatorError(ValueError):
    """The calculator refused an expression; ``reason`` says why in a few words."""

    def __init__(self, expression: str, reason: str) -> None:
        shown = expression if len(expression) <= 60 else expression[:57] + "..."
        super().__init__(f"cannot calculate {shown!r}: {reason}")
        self.expression = expression
        self.reason = reason


def _depth(tree: ast.AST) -> int:
    """The depth of the syntax tree, found without recursion (so deep trees cannot crash it)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _check_size(value: Fraction, expression: str) -> Fraction:
    if abs(value.numerator) > MAX_MAGNITUDE or value.denominator > MAX_MAGNITUDE:
        raise CalculatorError(expression, f"a number or an intermediate result is too large or "
                                          f"too finely divided (the limit is {MAX_MAGNITUDE:.0e})")
    return value


def _evaluate(node: ast.AST, expression: str) -> Fraction:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CalculatorError(expression, f"only numbers are allowed, got the constant "
                                              f"{value!r}")
        exact = Fraction(value) if isinstance(value, int) else Fraction(repr(value))  # 0.1 -> 1/10
        return _check_size(exact, expression)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _evaluate(node.operand, expression)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            raise CalculatorError(expression, "powers (**) are not allowed")
        if type(node.op) not in _BINARY:
            raise CalculatorError(expression, f"only + - * / are allowed, got the operator "
                                              f"{type(node.op).__name__}")
        left = _evaluate(node.left, expression)
        right = _evaluate(node.right, expression)
        if isinstance(node.op, ast.Add):
            result = left + right
        elif isinstance(node.op, ast.Sub):
            result = left - right
        elif isinstance(node.op, ast.Mult):
            result = left * right
        else:
            if right == 0:
                raise CalculatorError(expression, "division by zero")
            result = left / right
        return _check_size(result, expression)
    for kind, reason in _REFUSED.items():
        if isinstance(node, kind):
            raise CalculatorError(expression, reason)
    raise CalculatorError(expression, f"only numbers, + - * / and parentheses are allowed, "
                                      f"got {type(node).__name__}")


def safe_calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely; return an ``int`` when the result is whole.

    Allowed: numbers (``12``, ``1.5``), ``+ - * /`` (also written ``× ÷ −``), a leading sign,
    and parentheses. Anything else -- names, attribute access, calls, powers, strings, very long
    or deeply nested input, numbers beyond ``MAX_MAGNITUDE`` -- raises :class:`CalculatorError`
    with the reason. The work is bounded by the input's length, so no input can hang it.

    >>> safe_calculate("3 * (4 + 5)")
    27
    >>> safe_calculate("7 / 2")
    3.5
    """
    if not isinstance(expression, str):
        raise TypeError(f"expression must be a str, got {type(expression).__name__}")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CalculatorError(expression, f"the expression is too long ({len(expression)} "
                                          f"characters, the limit is {MAX_EXPRESSION_LENGTH})")
    text = expression.translate(_SYMBOLS).strip()
    if not text:
        raise CalculatorError(expression, "the expression is empty")
    level = deepest = 0  # nesting of parentheses, counted before Python's parser sees it
    for ch in text:
        level += (ch == "(") - (ch == ")")
        deepest = max(deepest, level)
    if deepest > MAX_DEPTH:
        raise CalculatorError(expression, f"the expression is nested too deeply (the limit is "
                                          f"{MAX_DEPTH} levels)")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        detail = getattr(err, "msg", None) or type(err).__name__
        raise CalculatorError(expression, f"not a valid expression ({detail})") from None
    if _depth(tree) > MAX_DEPTH:
        raise CalculatorError(expression, f"the expression is nested too deeply (the limit is "
                                          f"{MAX_DEPTH} levels)")
    value = _evaluate(tree.body, expression)
    return value.numerator if value.denominator == 1 else float(value)


def format_number(value: int | float) -> str:
    """A number as the calculator's answer is written back to the model: ``84``, ``3.5``,
    ``0.333333`` (at most six decimals, no trailing zeros)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"value must be an int or a float, got {type(value).__name__}")
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")
