"""The repository's structure: table of contents, notebooks, the bootstrap cell, learner versions."""

from __future__ import annotations

import re
import subprocess

import nbformat
import pytest

from conftest import (BIN, CHAPTERS, CONFIG, EXERCISE_SOURCES, LEARNER_VERSIONS, ROOT,
                      toc_docnames)

ALL_NOTEBOOKS = CHAPTERS + EXERCISE_SOURCES + LEARNER_VERSIONS


def _name(p):
    return str(p.relative_to(ROOT))


def test_every_toc_entry_exists_and_every_chapter_and_exercise_is_listed():
    listed = toc_docnames()
    for entry in listed:
        assert any((ROOT / (entry + ext)).is_file() for ext in ("", ".md", ".ipynb")), entry
    for nb in CHAPTERS + LEARNER_VERSIONS:
        assert str(nb.relative_to(ROOT).with_suffix("")) in listed, f"{nb} is not in _toc.yml"


def test_there_are_chapters_and_exercises_for_each():
    assert CHAPTERS, "no chapters found"
    chapter_names = {p.stem for p in CHAPTERS}
    assert {p.stem for p in EXERCISE_SOURCES} == chapter_names
    assert {p.stem for p in LEARNER_VERSIONS} == chapter_names


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_name)
def test_notebook_is_valid_and_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i + 1} has stored outputs (make strip)"
            assert cell.execution_count is None, f"{path.name}: cell {i + 1} has an execution count"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_name)
def test_first_code_cell_installs_the_package_from_the_repository(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    src = first.source
    assert "import llmcourse" in src and "except ImportError" in src, (
        f"{path.name}: the first code cell must install llmcourse when it is missing")
    urls = re.findall(r"git\+(\S+?)[\"'\s]", src)
    assert urls == [CONFIG["repository"]["url"]], (
        f"{path.name}: the bootstrap cell installs from {urls}, but _config.yml's repository is "
        f"{CONFIG['repository']['url']}")


def test_the_bootstrap_cell_runs_and_does_nothing_when_installed():
    """Where llmcourse is installed the cell must not call pip (it runs in a real kernel)."""
    from nbclient import NotebookClient

    nb = nbformat.read(CHAPTERS[0], as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import builtins\n" + first.source + "\nprint('ok', llmcourse.__version__)")])
    NotebookClient(probe, timeout=60, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for o in probe.cells[0].outputs)
    assert text.startswith("ok ") and "Successfully installed" not in text


def test_learner_versions_are_what_their_sources_generate():
    from llmcourse.exercises import stale

    assert stale(ROOT / "exercises") == []


def test_nbgrader_validate_passes_on_sources_and_fails_on_learner_versions():
    for source in EXERCISE_SOURCES:
        proc = subprocess.run([str(BIN / "nbgrader"), "validate", str(source)],
                              capture_output=True, text=True, cwd=source.parent)
        assert "Success! Your notebook passes all the tests." in proc.stdout, proc.stdout + proc.stderr
    for learner in LEARNER_VERSIONS:
        proc = subprocess.run([str(BIN / "nbgrader"), "validate", "--invert", str(learner)],
                              capture_output=True, text=True, cwd=learner.parent)
        assert "Success! The notebook does not pass any tests." in proc.stdout, (
            proc.stdout + proc.stderr)


@pytest.mark.parametrize("path", EXERCISE_SOURCES + LEARNER_VERSIONS, ids=_name)
def test_every_exercise_ends_with_the_score_cells(path):
    """The last cells are exactly llmcourse.score.SCORE_CELLS, ungraded, and appear only there."""
    from llmcourse.score import SCORE_CELLS

    nb = nbformat.read(path, as_version=4)
    tail = nb.cells[-len(SCORE_CELLS):]
    for cell, (cell_id, cell_type, source) in zip(tail, SCORE_CELLS):
        assert (cell.get("id"), cell.cell_type, cell.source) == (cell_id, cell_type, source), (
            f"{path.name} must end with the standard score cells (run `llmcourse exercises "
            f"generate`)")
        assert "nbgrader" not in cell.metadata, f"{path.name}: the score cell must not be graded"
    earlier = "".join(c.source for c in nb.cells[:-len(SCORE_CELLS)])
    assert "llmcourse.score" not in earlier and "## Your score" not in earlier


def test_adding_the_score_cells_is_idempotent_and_replaces_old_ones(tmp_path):
    from llmcourse.exercises import SCORE_CELLS, ensure_score_cells

    path = tmp_path / EXERCISE_SOURCES[0].name
    path.write_bytes(EXERCISE_SOURCES[0].read_bytes())
    assert ensure_score_cells(path) is False, "a committed source already ends with them"
    nb = nbformat.read(path, as_version=4)
    nb.cells[-1].source = "from llmcourse.score import score_this_notebook\nscore_this_notebook(5)"
    nb.cells.insert(3, nbformat.v4.new_markdown_cell("## Your score\n\nan old copy"))
    nbformat.write(nb, path)
    assert ensure_score_cells(path) is True
    assert path.read_bytes() == EXERCISE_SOURCES[0].read_bytes()
    nb.cells = nb.cells[:-len(SCORE_CELLS)]
    nbformat.write(nb, path)
    assert ensure_score_cells(path) is True
    assert ensure_score_cells(path) is False
