"""Rules for the exercises: a part that asks you to write X must not call someone else's X.

The test cell of every exercise part starts with :func:`check_own_work`. It reads the code of the
learner's function with :mod:`ast` (never by searching its text, so comments and docstrings do not
count) and fails when the function, or a function of the notebook that it calls, uses something the
part forbids:

* what the part names in ``forbid``: a module (``"llmcourse.attention"``: everything defined in
  it), or one object (``"torch.nn.functional.scaled_dot_product_attention"``). A name that ends in a
  method of a class, such as ``"torch.Tensor.softmax"``, also forbids ``.softmax`` called on any
  value (``scores.softmax(-1)``);
* code run from text, and the look-ups that would hide a call from this check: ``eval``,
  ``exec``, ``compile``, ``__import__``, ``globals``, ``vars``, ``locals``, ``importlib``,
  ``sys.modules``, ``subprocess``, ``os.system`` and the like, and attributes such as
  ``__globals__`` or ``__dict__`` (unless the part passes ``allow_exec=True``).

Names are resolved the way Python would resolve them when the function runs: through the
function's own imports, its closure, the notebook's globals and the builtins. So an alias
(``from llmcourse.attention import causal_mask as cm``), a module renamed on import, a default
argument, a wrapper function or class of the notebook, or a global holding the forbidden function
(a variable, a list, a dict, a ``functools.partial``) are all found, and the function itself must be
a function of the notebook (``def`` or ``lambda``), not the course's function under another name.

:func:`check_matrix_product` is a source check of the same kind for a part that asks for a
computation done one way (a one-hot look-up done as a matrix product, not by indexing).

Failures raise :class:`llmcourse.checks.CheckFailed`; the first line of the message says which
function uses what, and that the part asks you to write it yourself (the grader's table shows that
line). How an instructor relaxes a rule for a class: see ``instructors.md``.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any, Callable, Iterable

from .checks import CheckFailed
from .rule_set import NO_EXEC, _is_own_function, _qualname, _Rules, _Use  # noqa: F401
from .uses import _CELL, _Checker

__all__ = ["check_own_work", "check_matrix_product", "find_uses", "NO_EXEC"]


def find_uses(func: Callable, forbid: Iterable[str] = (), *, allow_exec: bool = False) -> list[str]:
    """The forbidden uses in ``func`` and the notebook functions it calls, one line each."""
    rules = _Rules(forbid, allow_exec)
    uses = _Checker(rules).run(func, getattr(func, "__name__", "function"))
    lines, seen = [], set()
    for u in uses:
        text = _describe(func, u)
        if text not in seen:
            seen.add(text)
            lines.append(text)
    return lines


def _describe(func: Callable, use: _Use) -> str:
    name = getattr(func, "__name__", "the function")
    name = "the function" if name == "<lambda>" else name
    inside = "" if use.function == name else f" (in {use.function}, which it calls)"
    if use.function == _CELL:
        inside = (" (in a value computed at the top of the cell that defines it; compare with the "
                  "course's version in a cell of its own)")
    if use.exec_rule == "private":
        return (f"{name} uses {use.what}{inside}: this part does not allow the private functions "
                f"of a library (a leading _: they are how the library does it for you).")
    if use.exec_rule:
        return (f"{name} uses {use.what}{inside}: this part does not allow running code from text "
                f"or looking names up at run time (eval, exec, compile, __import__, globals ...).")
    return (f"{name} uses {use.what}{inside}: this part asks you to write it yourself, "
            f"not to call {use.rule}.")


def check_own_work(func: Any, forbid: Iterable[str] = (), *, allow_exec: bool = False,
                   name: str | None = None) -> None:
    """Fail unless ``func`` is the learner's own function and uses nothing the part forbids.

    ``forbid`` lists modules and objects by their dotted names (see the module's docstring);
    ``eval``, ``exec`` and the other names of :data:`NO_EXEC` are forbidden too unless
    ``allow_exec``.
    """
    __tracebackhide__ = True
    label = name or getattr(func, "__name__", None) or "the answer"
    if not callable(func):
        raise CheckFailed(f"{label} should be a function (def {label}(...): ...), but it is a "
                          f"{type(func).__name__}.")
    if not _is_own_function(func):
        what = _qualname(func)
        raise CheckFailed(f"{label} should be your own function, written with def in this "
                          f"notebook, but it is {what}.\nHint: this part asks you to write it "
                          f"yourself.")
    uses = find_uses(func, forbid, allow_exec=allow_exec)
    if uses:
        details = uses[1:4]
        raise CheckFailed("\n".join([uses[0], *details,
                                     "Hint: the part's text says what you may use; "
                                     "write the rest yourself."]))


# ----------------------------------------------------------------------------------------------
# A source check: the computation is a matrix product, not a look-up by index


_PRODUCT_CALLS = ("numpy.matmul", "numpy.dot", "numpy.einsum", "numpy.tensordot", "numpy.inner",
                  "torch.matmul", "torch.mm", "torch.einsum", "torch.tensordot")
_LOOKUP_CALLS = ("numpy.take", "numpy.take_along_axis", "numpy.choose", "numpy.compress",
                 "torch.index_select", "torch.take", "torch.gather",
                 "torch.nn.functional.embedding", "torch.nn.Embedding")
_LOOKUP_METHODS = {"take", "index_select", "gather", "choose", "compress", "item", "tolist"}


def _mentions(node: ast.AST, names: set[str]) -> bool:
    """Whether ``node`` uses one of ``names`` as data (not only its .shape, .size or len())."""
    skip: set[int] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in ("shape", "size", "ndim", "dtype"):
            skip.update(id(x) for x in ast.walk(sub.value))
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "len":
            skip.update(id(x) for a in sub.args for x in ast.walk(a))
    return any(isinstance(sub, ast.Name) and sub.id in names and id(sub) not in skip
               for sub in ast.walk(node))


def check_matrix_product(func: Callable, data_arg: str, index_arg: str) -> None:
    """Fail unless ``func`` computes a matrix product and never looks rows of ``data_arg`` up by
    the indices in ``index_arg`` (read from the code with :mod:`ast`: comments and docstrings do
    not count)."""
    __tracebackhide__ = True
    name = func.__name__
    check_own_work(func, _LOOKUP_CALLS + ("llmcourse.embeddings",))
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        raise CheckFailed(f"{name}: its code cannot be read (was it made with exec?); write it "
                          f"with def in the notebook.") from None
    # names that hold the table's numbers and names that hold the ids, followed through
    # assignments and loops
    data, index = {data_arg}, {index_arg}
    for _ in range(5):
        for node in ast.walk(tree):
            targets: list[ast.AST] = []
            value: ast.AST | None = None
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
            elif isinstance(node, (ast.For, ast.comprehension)):
                targets, value = [node.target], node.iter
            if value is None:
                continue
            bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if _mentions(value, data):
                data |= bound
            if _mentions(value, index):
                index |= bound
    products = 0
    visitor_globals = func.__globals__
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            products += 1
        elif isinstance(node, ast.Call):
            callee = node.func
            if isinstance(callee, ast.Attribute) and callee.attr in ("dot", "matmul", "mm", "einsum",
                                                                     "tensordot", "inner"):
                products += 1
            if isinstance(callee, ast.Attribute) and callee.attr in _LOOKUP_METHODS and _mentions(
                    callee.value, data):
                raise CheckFailed(f"{name} looks the rows up with .{callee.attr}(...) (line "
                                  f"{node.lineno}): this part asks for the one-hot matrix product."
                                  f"\nHint: build the one-hot matrix and multiply it by the table.")
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if _mentions(node.value, data) and _mentions(node.slice, index):
                raise CheckFailed(f"{name} indexes the table with the ids (line {node.lineno}): this "
                                  f"part asks for the one-hot matrix product, not a look-up."
                                  f"\nHint: build the one-hot matrix and multiply it by the table.")
    del visitor_globals
    unfinished = any(isinstance(n, ast.Raise) and n.exc is not None and "NotImplementedError" in
                     ast.dump(n.exc) for n in ast.walk(tree))
    if not products and unfinished:
        raise NotImplementedError()  # the part is not done yet: the grader says so
    if not products:
        raise CheckFailed(f"{name} computes no matrix product (no @, matmul or dot in its code).\n"
                          f"Hint: build the one-hot matrix and multiply it by the table: "
                          f"one_hot @ table.")

