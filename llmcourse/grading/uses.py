"""Reading a learner's function with :mod:`ast` to find what it uses (for
:mod:`llmcourse.grading.rules`).

:class:`_Checker` follows a function, and every function or class of the notebook that it calls,
through their source code; :class:`_Visitor` resolves each name in that code the way Python would
when it runs (the function's own imports, its closure, the notebook's globals, the builtins) and
records each use that a rule forbids.
"""

from __future__ import annotations

import ast
import builtins
import dis
import functools
import importlib
import inspect
import linecache
import sys
import textwrap
import types
from typing import Any, Callable

from .rule_set import (_DUNDER_ESCAPES, _Rules, _Use, _is_library_file, _is_own_class,
                       _is_own_function, _qualname)


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

