"""The package reads like the chapters: small modules, a model file that is only the model, and
no import circles (one module per idea, each importing only the ideas before it)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "llmcourse"
MAX_LINES = 400
# Modules still over the limit, to be split (issue 20); a module may leave this list, never join.
STILL_TOO_LONG = {"bpe", "widgets", "grade", "sampling"}


def _lines(name: str) -> int:
    return len((PACKAGE / f"{name}.py").read_text(encoding="utf-8").splitlines())


def test_no_module_is_longer_than_the_limit():
    too_long = {p.stem: n for p in PACKAGE.rglob("*.py")
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
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
    for path in PACKAGE.rglob("*.py"):
        parts = ["llmcourse", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        package = name if is_package else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    module = base + (f".{node.module}" if node.module else "")
                else:
                    module = node.module or ""
                if not module.startswith("llmcourse"):
                    continue
                deps.add(module)
                deps |= {f"{module}.{a.name}" for a in node.names}   # a submodule imported
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("llmcourse")}
        graph[name] = deps - {name}
    known = set(graph)
    return {n: {d for d in deps if d in known and d != "llmcourse"} for n, deps in graph.items()}


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
    graph = _imports()
    assert "llmcourse.grading.score" in graph["llmcourse.score"]     # the parser sees through
    assert "llmcourse.grading.notebooks" in graph["llmcourse.grading.score"]   # relative imports
    circles = _cycles(graph)
    assert not circles, f"import circles: {[sorted(c) for c in circles]}"
