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
import builtins
import dis
import functools
import importlib
import inspect
import linecache
import os
import sys
import sysconfig
import textwrap
import types
from pathlib import Path
from typing import Any, Callable, Iterable

from .checks import CheckFailed

__all__ = ["check_own_work", "check_matrix_product", "find_uses", "NO_EXEC"]

#: Forbidden in every checked part unless it passes ``allow_exec=True``: running code from text,
#: and the dynamic look-ups that would hide a forbidden call from the check.
NO_EXEC = ("builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__",
           "builtins.globals", "builtins.vars", "builtins.locals", "builtins.breakpoint",
           "builtins", "importlib", "sys.modules", "subprocess", "runpy", "code", "codeop",
           "ctypes", "marshal", "pickle", "os.system", "os.popen", "os.execv", "os.execl",
           "os.execvp", "os.spawnv", "os.spawnl", "os.fork", "types.FunctionType",
           "types.CodeType", "types.LambdaType")

#: Attributes that reach around the check (a function's globals, a module's namespace ...).
#: Rules that are about running code, not about writing the part yourself (for the message).
_EXEC_ONLY = {"import *", "getattr"}

#: Forbidden as modules, not for what they define (``len`` and ``range`` live in builtins).
_MODULE_ONLY = {"builtins"}

_DUNDER_ESCAPES = {"__globals__", "__builtins__", "__code__", "__dict__", "__subclasses__",
                   "__getattribute__", "__import__", "__loader__", "__spec__", "__closure__"}

# Where libraries live (the standard library, site-packages, this package); code anywhere else
# (a notebook's cells, a file the learner wrote) is the learner's own. Not sys.prefix itself: on
# some systems that is /usr or even /, which holds everything.
def _library_dirs() -> tuple[str, ...]:
    import site

    dirs = [sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    try:
        dirs += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:  # an old virtualenv's site module
        pass
    dirs.append(str(Path(__file__).resolve().parent))
    return tuple(sorted({str(Path(d).resolve()) + os.sep for d in dirs if d}))


_LIBRARY_DIRS = _library_dirs()


def _is_library_file(filename: str | None) -> bool:
    if not filename or filename.startswith("<"):
        return False
    try:
        path = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return path.startswith(_LIBRARY_DIRS)


def _is_own_function(obj: Any) -> bool:
    """A plain Python function written by the learner (in the notebook or a file of their own)."""
    if not inspect.isfunction(obj):
        return False
    return not _is_library_file(obj.__code__.co_filename)


def _is_own_class(obj: Any) -> bool:
    if not isinstance(obj, type):
        return False
    name = getattr(obj, "__module__", None)
    if name == "__main__":
        return True
    module = sys.modules.get(name or "")
    filename = getattr(module, "__file__", None)
    if filename is not None:
        return not _is_library_file(filename)
    # a module that is not registered (made by hand): judge the class by its methods' code
    return module is None and any(_is_own_function(v) for v in vars(obj).values())


def _qualname(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "")
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if name is None:
        return f"a {type(obj).__module__}.{type(obj).__qualname__} object"
    if isinstance(module, str) and module and module != "builtins":
        return f"{module}.{name}"
    return str(name)


class _Rules:
    """What one part forbids, resolved against the modules imported so far."""

    def __init__(self, forbid: Iterable[str], allow_exec: bool):
        self.names: list[str] = []         # every rule by its dotted name (modules match by prefix)
        self.objects: dict[int, str] = {}  # id -> the rule, for objects of imported modules
        self.methods: dict[str, str] = {}  # method name -> the rule (``"torch.Tensor.softmax"``)
        self.exec_rules: set[str] = set()
        self._keep: list[Any] = []         # the objects stay alive while their ids are used
        for spec in forbid:
            self._add(spec)
        if not allow_exec:
            for spec in NO_EXEC:
                self._add(spec)
                self.exec_rules.add(spec)

    def _add(self, spec: str) -> None:
        self.names.append(spec)
        parts = spec.split(".")
        if len(parts) >= 2 and parts[-2][:1].isupper():
            self.methods.setdefault(parts[-1], spec)
        # an object inside a module: resolved only if that module is imported. An object of a
        # module nobody imported cannot be used without an import, and imports match by name.
        for cut in range(len(parts), 0, -1):
            module = sys.modules.get(".".join(parts[:cut]))
            if module is None:
                continue
            obj: Any = module
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                return
            if not isinstance(obj, types.ModuleType):
                self.objects[id(obj)] = spec
                self._keep.append(obj)
            return

    def name_forbidden(self, name: str, *, contents: bool = False) -> str | None:
        """The rule that forbids the module or object called ``name`` (with ``contents``: an
        object defined in the module called ``name``)."""
        for rule in self.names:
            if contents and rule in _MODULE_ONLY:
                continue
            if name == rule or name.startswith(rule + "."):
                return rule
        return None

    def why(self, obj: Any) -> str | None:
        """The rule ``obj`` breaks, or None."""
        if id(obj) in self.objects:
            return self.objects[id(obj)]
        if isinstance(obj, types.ModuleType):
            return self.name_forbidden(obj.__name__)
        if isinstance(obj, (int, float, complex, str, bytes, bool, type(None))):
            return None
        self_ = getattr(obj, "__self__", None)
        if self_ is not None and self_ is not obj and not isinstance(self_, types.ModuleType):
            rule = self.why(self_)
            if rule:
                return rule
        module = getattr(obj, "__module__", None) if (callable(obj) or isinstance(obj, type)) \
            else None
        if not isinstance(module, str):
            module = getattr(type(obj), "__module__", None)
        return self.name_forbidden(module, contents=True) if isinstance(module, str) else None

    def is_exec(self, rule: str) -> bool:
        return rule in self.exec_rules or rule in _EXEC_ONLY


class _Use:
    """One forbidden use: in which function, what, and by which rule."""

    def __init__(self, function: str, what: str, rule: str, line: int | None, exec_rule: bool):
        self.function, self.what, self.rule, self.line, self.exec_rule = (
            function, what, rule, line, exec_rule)


def _bound_names(tree: ast.AST) -> set[str]:
    """Names the code binds itself (arguments, assignments, loop variables, nested defs ...)."""
    names: set[str] = set()
    declared_global: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared_global.update(node.names)
        elif isinstance(node, ast.MatchAs) and node.name:
            names.add(node.name)
    return names - declared_global


class _Checker:
    def __init__(self, rules: _Rules):
        self.rules = rules
        self.uses: list[_Use] = []
        self.seen: set[int] = set()
        self.queue: list[tuple[Callable, str]] = []
        self.cells: set[str] = set()
        self.cell_functions: list[tuple[Callable, str]] = []

    # -- objects ---------------------------------------------------------------------------

    def check_object(self, obj: Any, where: str, line: int | None, label: str, depth: int = 0):
        if depth > 3:
            return
        rule = self.rules.why(obj)
        if rule:
            what = _qualname(obj)
            if label and label.split(".")[-1] != what.split(".")[-1]:
                what = f"{label} (that is {what})"
            elif label:
                what = label
            self.uses.append(_Use(where, what, rule, line, self.rules.is_exec(rule)))
            return
        if _is_own_function(obj):
            self.queue.append((obj, label))
            return
        if isinstance(obj, (staticmethod, classmethod)):
            self.check_object(obj.__func__, where, line, label, depth + 1)
        elif isinstance(obj, property):
            for f in (obj.fget, obj.fset, obj.fdel):
                if f is not None:
                    self.check_object(f, where, line, label, depth + 1)
        elif isinstance(obj, functools.partial):
            for x in (obj.func, *obj.args, *obj.keywords.values()):
                self.check_object(x, where, line, label, depth + 1)
        elif isinstance(obj, types.MethodType):
            self.check_object(obj.__func__, where, line, label, depth + 1)
            self.check_object(obj.__self__, where, line, label, depth + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for x in list(obj)[:1000]:
                self.check_object(x, where, line, label, depth + 1)
        elif isinstance(obj, dict):
            for x in list(obj.values())[:1000]:
                self.check_object(x, where, line, label, depth + 1)
        elif _is_own_class(obj):
            if id(obj) in self.seen:
                return
            self.seen.add(id(obj))
            for klass in obj.__mro__:
                if klass is object or not _is_own_class(klass):
                    rule = self.rules.why(klass)
                    if rule:
                        self.uses.append(_Use(where, _qualname(klass), rule, line,
                                              self.rules.is_exec(rule)))
                    continue
                for value in list(vars(klass).values()):
                    self.check_object(value, where, line, f"{label}.{getattr(value, '__name__', '')}",
                                      depth + 1)
        elif _is_own_class(type(obj)) and not isinstance(obj, type):
            self.check_object(type(obj), where, line, label, depth + 1)
            for value in list(getattr(obj, "__dict__", {}).values())[:100]:
                self.check_object(value, where, line, label, depth + 1)

    # -- functions -------------------------------------------------------------------------

    def check_function(self, func: Callable, label: str) -> None:
        if id(func) in self.seen:
            return
        self.seen.add(id(func))
        where = func.__name__ if func.__name__ != "<lambda>" else (label or "a lambda")
        try:
            source = textwrap.dedent(inspect.getsource(func))
            tree = ast.parse(source)
        except (OSError, TypeError, SyntaxError, IndentationError):
            self._check_bytecode(func, where)
        else:
            node = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef,
                         ast.AsyncFunctionDef)) and n.name == func.__name__), tree)
            offset = func.__code__.co_firstlineno - 1
            _Visitor(self, func, where, node, offset).visit(node)
            self.cell_functions.append((func, where))
        for value in (func.__defaults__ or ()) + tuple((func.__kwdefaults__ or {}).values()):
            self.check_object(value, where, None, "a default argument")
        for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
            try:
                self.check_object(cell.cell_contents, where, None, name)
            except ValueError:  # an empty cell
                pass

    def _check_cell(self, func: Callable, where: str) -> None:
        """The values the cell (or file) that defines ``func`` computes at its top level: a table
        of answers made there with the forbidden function is a use of it too."""
        filename = func.__code__.co_filename
        if filename in self.cells:
            return
        self.cells.add(filename)
        try:
            tree = ast.parse("".join(linecache.getlines(filename)))
        except (SyntaxError, ValueError):
            return
        for statement in tree.body:
            if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and statement.value:
                visitor = _Visitor(self, func, _CELL, statement, 0)
                visitor.bound = set()
                visitor.visit(statement.value)

    def _check_bytecode(self, func: Callable, where: str) -> None:
        """No source (a function made by exec, say): the names its bytecode loads."""
        codes = [func.__code__]
        while codes:
            code = codes.pop()
            codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
            obj, label = None, ""
            for ins in dis.get_instructions(code):
                if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                    self._finish(obj, label, where)
                    name = ins.argval
                    if name in func.__globals__:
                        obj, label = func.__globals__[name], name
                    elif hasattr(builtins, name):
                        obj, label = getattr(builtins, name), name
                    else:
                        obj, label = None, ""
                elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                    if ins.argval in _DUNDER_ESCAPES and self.rules.exec_rules:
                        self.uses.append(_Use(where, f".{ins.argval}", ins.argval, None, True))
                    if obj is not None:
                        try:
                            obj, label = getattr(obj, ins.argval), f"{label}.{ins.argval}"
                        except Exception:
                            obj = None
                    elif ins.argval in self.rules.methods:
                        self.uses.append(_Use(where, f".{ins.argval}(...)",
                                              self.rules.methods[ins.argval], None, False))
                else:
                    self._finish(obj, label, where)
                    obj, label = None, ""
            self._finish(obj, label, where)

    def _finish(self, obj, label, where):
        if obj is not None:
            self.check_object(obj, where, None, label)

    def run(self, func: Callable, label: str) -> list[_Use]:
        self.queue.append((func, label))
        while self.queue or self.cell_functions:
            while self.queue:
                f, lab = self.queue.pop(0)
                self.check_function(f, lab)
            # after the functions, so that their uses come first
            f, where = self.cell_functions.pop(0)
            self._check_cell(f, where)
        return self.uses


_MISSING = object()
_CELL = "<the cell>"


class _Visitor(ast.NodeVisitor):
    def __init__(self, checker: _Checker, func: Callable, where: str, root: ast.AST, offset: int):
        self.c, self.func, self.where, self.offset = checker, func, where, offset
        self.bound = _bound_names(root)
        if isinstance(root, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.bound.discard(root.name)
        self.imports: dict[str, Any] = {}
        self.freevars = dict(zip(func.__code__.co_freevars, func.__closure__ or ()))

    def _line(self, node) -> int | None:
        return getattr(node, "lineno", 0) + self.offset or None

    def _use(self, node, what: str, rule: str, exec_rule: bool):
        self.c.uses.append(_Use(self.where, what, rule, self._line(node), exec_rule))

    def resolve_name(self, name: str) -> Any:
        if name in self.imports:
            return self.imports[name]
        if name in self.bound:
            return _MISSING
        if name in self.freevars:
            try:
                return self.freevars[name].cell_contents
            except ValueError:
                return _MISSING
        g = self.func.__globals__
        if name in g:
            return g[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        return _MISSING

    # imports inside the function
    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            rule = self.c.rules.name_forbidden(alias.name)
            if rule:
                self._use(node, f"import {alias.name}", rule, self.c.rules.is_exec(rule))
                continue
            try:
                module = importlib.import_module(alias.name)
            except Exception:
                continue
            if alias.asname:
                self.imports[alias.asname] = module
            else:
                top = alias.name.split(".")[0]
                self.imports[top] = sys.modules.get(top, module)

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if node.level or not node.module:
            return
        rule = self.c.rules.name_forbidden(node.module)
        if rule:
            self._use(node, f"from {node.module} import ...", rule,
                      self.c.rules.is_exec(rule))
            return
        try:
            module = importlib.import_module(node.module)
        except Exception:
            return
        for alias in node.names:
            rule = self.c.rules.name_forbidden(f"{node.module}.{alias.name}")
            if rule:
                self._use(node, f"from {node.module} import {alias.name}", rule,
                          self.c.rules.is_exec(rule))
                continue
            if alias.name == "*":
                self._use(node, f"from {node.module} import *", "import *", True)
                continue
            obj = getattr(module, alias.name, _MISSING)
            if obj is _MISSING:
                try:
                    obj = importlib.import_module(f"{node.module}.{alias.name}")
                except Exception:
                    continue
            self.imports[alias.asname or alias.name] = obj
            self.c.check_object(obj, self.where, self._line(node),
                                f"{node.module}.{alias.name}")

    def visit_Name(self, node: ast.Name):
        if not isinstance(node.ctx, ast.Load):
            return
        obj = self.resolve_name(node.id)
        if obj is not _MISSING:
            self.c.check_object(obj, self.where, self._line(node), node.id)

    def visit_Attribute(self, node: ast.Attribute):
        chain: list[str] = []
        base = node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        chain.reverse()
        rules = self.c.rules
        for attr in chain:
            if attr in _DUNDER_ESCAPES and rules.exec_rules:
                self._use(node, f".{attr}", attr, True)
                return
        obj: Any = _MISSING
        if isinstance(base, ast.Name) and isinstance(base.ctx, ast.Load):
            obj = self.resolve_name(base.id)
        label = base.id if isinstance(base, ast.Name) else ""
        if obj is _MISSING:
            if not isinstance(base, ast.Name):
                self.visit(base)
            for attr in chain:
                if attr in rules.methods:
                    self._use(node, f".{attr}(...)", rules.methods[attr], False)
                    return
            return
        for i, attr in enumerate(chain):
            if (isinstance(obj, types.ModuleType) and attr.startswith("_") and not
                    attr.startswith("__") and _is_library_file(getattr(obj, "__file__", None))
                    and rules.exec_rules):
                self._use(node, f"{label}.{attr}", f"{obj.__name__}.{attr}", "private")
                return
            try:
                if isinstance(obj, (types.ModuleType, type)):
                    nxt = getattr(obj, attr)
                else:
                    nxt = inspect.getattr_static(obj, attr)
            except Exception:
                # not resolvable (an attribute made at run time): judge what we have
                self.c.check_object(obj, self.where, self._line(node), label)
                for later in chain[i:]:
                    if later in rules.methods:
                        self._use(node, f"{label}.{later}(...)", rules.methods[later], False)
                return
            obj, label = nxt, f"{label}.{attr}"
        self.c.check_object(obj, self.where, self._line(node), label)

    def visit_Call(self, node: ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "getattr" and self.resolve_name(
                "getattr") is builtins.getattr and len(node.args) >= 2:
            target = node.args[0]
            name = node.args[1]
            obj = (self.resolve_name(target.id) if isinstance(target, ast.Name) else _MISSING)
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                if obj is not _MISSING:
                    try:
                        self.c.check_object(getattr(obj, name.value), self.where,
                                            self._line(node), f"{target.id}.{name.value}")
                    except Exception:
                        pass
                if name.value in _DUNDER_ESCAPES and self.c.rules.exec_rules:
                    self._use(node, f"getattr(..., {name.value!r})", name.value, True)
                if name.value in self.c.rules.methods:
                    self._use(node, f"getattr(..., {name.value!r})",
                              self.c.rules.methods[name.value], False)
            elif isinstance(obj, (types.ModuleType, type)) and self.c.rules.exec_rules:
                self._use(node, f"getattr({target.id}, <a computed name>)", "getattr", True)
        self.generic_visit(node)


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
