"""What an exercise part forbids, and which objects count as the learner's own (for
:mod:`llmcourse.grading.rules`).

A rule is a dotted name: a module (everything defined in it is forbidden), one object, or a method
name (``torch.Tensor.softmax`` forbids ``.softmax(...)`` on any value). :data:`NO_EXEC` lists what
every checked part forbids unless it allows running code from text. The learner's own functions
and classes are those defined in the notebook, not in a library file.
"""

from __future__ import annotations

import inspect
import os
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any, Iterable

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
    dirs.append(str(Path(__file__).resolve().parents[1]))    # the llmcourse package
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

