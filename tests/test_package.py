"""The package reads like the chapters: small modules, a model file that is only the model, and
no import circles (one module per idea, each importing only the ideas before it)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "llmcourse"
MAX_LINES = 400
# Modules still over the limit, to be split (issue 20); a module may leave this list, never join.
STILL_TOO_LONG = {"bpe", "widgets", "score", "grade", "sampling", "plots"}


def _lines(name: str) -> int:
    return len((PACKAGE / f"{name}.py").read_text(encoding="utf-8").splitlines())


def test_no_module_is_longer_than_the_limit():
    too_long = {p.stem: _lines(p.stem) for p in PACKAGE.glob("*.py") if _lines(p.stem) > MAX_LINES}
    assert set(too_long) <= STILL_TOO_LONG, f"modules over {MAX_LINES} lines: {too_long}"
    shrunk = STILL_TOO_LONG - set(too_long)
    assert not shrunk, f"{sorted(shrunk)} now fit: remove them from STILL_TOO_LONG"


def test_the_model_file_is_only_the_model():
    assert _lines("gpt") <= 250
    tree = ast.parse((PACKAGE / "gpt.py").read_text(encoding="utf-8"))
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes == {"GPTConfig", "MLP", "Block", "KVCache", "GPT"}
    block = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Block")
    forward = next(f for f in block.body if isinstance(f, ast.FunctionDef) and f.name == "forward")
    assert [ast.unparse(s) for s in forward.body] == [
        "x = x + self.attn(self.ln1(x), cache)", "x = x + self.mlp(self.ln2(x))", "return x"]


def _imports() -> dict[str, set[str]]:
    """Which llmcourse modules each module imports (at the top or inside a function)."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        name = "llmcourse" if path.stem == "__init__" else f"llmcourse.{path.stem}"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = ("llmcourse" + (f".{node.module}" if node.module else "")
                          if node.level else node.module or "")
                if module == "llmcourse":
                    deps |= {f"llmcourse.{a.name}" for a in node.names}
                elif module.startswith("llmcourse."):
                    deps.add(module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("llmcourse.")}
        graph[name] = deps - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    found = set()

    def walk(node, path):
        for dep in graph.get(node, ()):
            if dep in path:
                found.add(frozenset(path[path.index(dep):]))
            elif len(path) < len(graph):
                walk(dep, path + [dep])

    for start in graph:
        walk(start, [start])
    return found


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
    assert _cycles({"a": {"b"}, "b": set()}) == set()


def test_no_import_circle_inside_the_package():
    # The grading modules still import each other (exercises -> score -> grade -> exercises);
    # they become one subpackage (issue 20). No other circle is allowed.
    grading = {"llmcourse.exercises", "llmcourse.score", "llmcourse.grade"}
    circles = {c for c in _cycles(_imports()) if not c <= grading}
    assert not circles, f"import circles: {[sorted(c) for c in circles]}"
