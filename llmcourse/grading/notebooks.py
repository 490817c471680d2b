"""Where the exercises live, and how learner versions are made from their sources.

The exercises follow nbgrader's course layout::

    exercises/source/NN_topic/NN_topic.ipynb   the source: solutions and hidden tests
    exercises/NN_topic.ipynb                   the learner version, generated, never hand-edited

:func:`generate` first makes every source end with the standard score cells (``llmcourse.score``),
then runs nbgrader's own ``generate_assignment`` on each source in a temporary course directory and
copies the released notebook to ``exercises/``. ``make exercises`` calls it, and a
test calls :func:`stale` to fail when a committed learner version differs from what its source
generates.

Maintainers use this module through ``llmcourse exercises generate|check``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["repo_root", "source_dir", "source_notebooks", "find_source", "generate", "stale",
           "SCORE_CELLS", "ensure_score_cells"]


def repo_root() -> Path | None:
    """The repository holding this package when it is installed from a checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "exercises" / "source").is_dir() else None


def source_dir() -> Path | None:
    """The exercise sources: in the checkout, or the copy an installed wheel carries."""
    root = repo_root()
    if root is not None:
        return root / "exercises" / "source"
    import importlib.util

    spec = importlib.util.find_spec("llmcourse.exercise_sources")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return None


def source_notebooks(base: Path | None = None) -> list[Path]:
    """Every exercise source notebook, sorted by name."""
    base = base or source_dir()
    if base is None or not base.is_dir():
        return []
    return sorted(p for p in base.glob("*/*.ipynb")
                  if p.stem == p.parent.name and ".ipynb_checkpoints" not in p.parts)


def find_source(notebook: Path, explicit: Path | None = None) -> Path | None:
    """Find the source of a learner notebook.

    Looks, in order, at ``explicit``; at ``exercises/source/<stem>/<stem>.ipynb`` in the notebook's
    folder and each folder above it; at the sources in the checkout this package is installed
    from. Returns None when none is found (the caller may then match by grade ids).
    """
    if explicit is not None:
        return explicit
    stem = notebook.stem
    for folder in [notebook.resolve().parent, *notebook.resolve().parents]:
        for candidate in (folder / "exercises" / "source" / stem / f"{stem}.ipynb",
                          folder / "source" / stem / f"{stem}.ipynb"):
            if candidate.is_file():
                return candidate
    base = source_dir()
    if base is not None and (base / stem / f"{stem}.ipynb").is_file():
        return base / stem / f"{stem}.ipynb"
    return None


def _nbgrader_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("nbgrader")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nbgrader"]


def generate_one(source: Path, out_dir: Path) -> Path:
    """Run ``nbgrader generate_assignment`` on one source; write the learner version to out_dir."""
    name = source.parent.name
    with tempfile.TemporaryDirectory(prefix="llmcourse-gen-") as tmp:
        course = Path(tmp)
        shutil.copytree(source.parent, course / "source" / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        result = subprocess.run(
            [*_nbgrader_cmd(), "generate_assignment", name, "--no-db", "--force",
             f"--CourseDirectory.root={course}", "--log-level=WARN"],
            cwd=course, capture_output=True, text=True,
            env={**os.environ, "JUPYTER_CONFIG_DIR": str(course / ".jupyter")},
        )
        released = course / "release" / name / source.name
        if result.returncode != 0 or not released.is_file():
            raise RuntimeError(f"nbgrader generate_assignment failed for {source}:\n"
                               f"{result.stdout}\n{result.stderr}")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / source.name
        # Normalise the JSON layout so the committed file diffs cleanly.
        data = json.loads(released.read_text(encoding="utf-8"))
        target.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                          encoding="utf-8")
        return target


def generate(out_dir: Path | None = None, sources: list[Path] | None = None, *,
             add_score_cells: bool | None = None) -> list[Path]:
    """Generate every learner version (into ``exercises/`` by default).

    With ``add_score_cells`` (the default when writing into the checkout's ``exercises/``), each
    source is first made to end with the standard score cells (:func:`llmcourse.score.
    ensure_score_cells`: added when missing, replaced when outdated, the file left alone when they
    are already there), so every learner version ends with them too.
    """
    root = repo_root()
    if out_dir is None:
        if root is None:
            raise RuntimeError("no exercises/source folder next to the llmcourse package; run this "
                               "from a checkout of the course repository")
        out_dir = root / "exercises"
        add_score_cells = True if add_score_cells is None else add_score_cells
    sources = sources or source_notebooks()
    if add_score_cells:
        for source in sources:
            ensure_score_cells(source)
    return [generate_one(s, out_dir) for s in sources]


def stale(exercises_dir: Path | None = None) -> list[str]:
    """Names of learner versions that are missing or differ from what their source generates."""
    exercises_dir = exercises_dir or (repo_root() / "exercises")  # type: ignore[operator]
    sources = source_notebooks(exercises_dir / "source")
    problems = []
    with tempfile.TemporaryDirectory(prefix="llmcourse-check-") as tmp:
        for fresh in generate(Path(tmp), sources):
            committed = exercises_dir / fresh.name
            if not committed.is_file():
                problems.append(f"{committed} is missing (run `make exercises`)")
            elif json.loads(committed.read_text(encoding="utf-8")) != json.loads(
                    fresh.read_text(encoding="utf-8")):
                problems.append(f"{committed} differs from what its source generates "
                                f"(run `make exercises`; never edit it by hand)")
    return problems


# --------------------------------------------------------------------------------------------
# The score cells every exercise ends with
# --------------------------------------------------------------------------------------------

SCORE_INTRO = """\
## Your score

Run the cell below when you want your score. It grades a copy of this notebook as it is now,
with the hidden tests, in a fresh kernel, and prints the points of each part; your notebook is not
changed. It works in Colab (the first time, it installs the grader, without touching Colab's own
packages), in JupyterLab and on Binder. In a terminal, `llmcourse grade NOTEBOOK.ipynb` gives the
same table."""

SCORE_CODE = """\
# Grades a copy of this notebook (hidden tests included) and prints your score per part.
from llmcourse.score import score_this_notebook

score_this_notebook()"""

#: The two cells every exercise ends with: (cell id, cell type, source). No nbgrader metadata, so
#: they are neither graded nor locked.
SCORE_CELLS = (
    ("your-score", "markdown", SCORE_INTRO),
    ("score-this-notebook", "code", SCORE_CODE),
)


def _is_score_cell(cell: dict) -> bool:
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    if cell.get("id") in {cid for cid, _, _ in SCORE_CELLS}:
        return True
    if cell.get("cell_type") == "code":
        return "llmcourse.score" in source
    return source.lstrip().startswith("## Your score")


def ensure_score_cells(path: str | Path) -> bool:
    """Make the notebook at ``path`` end with :data:`SCORE_CELLS`, exactly once.

    Removes any older score cells (by id, by their heading, or by ``llmcourse.score`` in a code
    cell) and appends the current ones. Writes the file only when that changes it; returns whether
    it did.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    wanted = []
    for cell_id, cell_type, source in SCORE_CELLS:
        make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
        cell = make(source)
        if nb.nbformat_minor >= 5:
            cell.id = cell_id
        else:  # cell ids came with nbformat 4.5
            del cell["id"]
        wanted.append(cell)
    kept = [c for c in nb.cells if not _is_score_cell(c)]
    if len(nb.cells) >= len(wanted) and len(kept) == len(nb.cells) - len(wanted) and all(
            _same_cell(a, b) for a, b in zip(nb.cells[-len(wanted):], wanted)):
        return False
    nb.cells = kept + wanted
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return True


def _same_cell(a, b) -> bool:
    return (a.cell_type == b.cell_type and a.source == b.source and a.get("id") == b.get("id")
            and dict(a.metadata) == dict(b.metadata)
            and (a.cell_type != "code" or (a.outputs == [] and a.execution_count is None)))
