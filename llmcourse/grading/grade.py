"""The autograder: ``llmcourse grade PATH [--json]``.

It grades a learner's exercise notebook the way nbgrader's ``autograde`` does, but needs no course
directory or database, so a learner can run it on their own work and an instructor on anyone's:

1. It reads the notebook and finds the exercise's source (with solutions and hidden tests).
2. It builds a copy in memory: the learner's answers, with every graded test cell replaced by the
   source's original, hidden tests included. nbgrader's checksums show a test cell that was edited
   (or one that was deleted); that is reported, and the original is graded.
3. It runs the copy in a fresh Jupyter kernel, in a temporary folder, cell by cell, with a time
   limit per cell. A cell that runs too long (an infinite loop) is interrupted and reported, and
   grading goes on with the next cell.
4. It scores each test cell with nbgrader's own rule (an error or output on stderr: no points) and
   reports each part with the first line of its failure message, then the total.

The learner's file is only read, never written, and nothing is written to its folder.

Exit status: 0 whenever the notebook was graded, whatever the score; 2, with a one-line reason,
when it cannot be graded (missing file, not a notebook, corrupt JSON, not a course exercise).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .notebooks import find_source, source_notebooks

__all__ = ["GradeError", "TestResult", "Report", "grade_notebook", "missing_module", "main",
           "GRADING_ENV"]

DEFAULT_TIMEOUT = 30

#: Set in the environment of the kernel that runs a notebook for grading, so that the notebook's
#: own score cell (``llmcourse.score``) knows it is being graded and does not grade again.
GRADING_ENV = "LLMCOURSE_GRADING"

#: What the grader imports besides the standard library and this package.
GRADER_IMPORTS = ("nbformat", "nbclient", "jupyter_client", "ipykernel", "nbgrader.utils",
                  "nbgrader.preprocessors")


class GradeError(Exception):
    """The notebook cannot be graded; the message is one line that says why."""


@dataclass
class TestResult:
    id: str
    points: float
    max_points: float
    passed: bool
    message: str


@dataclass
class Report:
    notebook: str
    exercise: str
    score: float
    max_score: float
    tests: list[TestResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "exercise": self.exercise,
            "score": self.score,
            "max_score": self.max_score,
            "tests": [asdict(t) for t in self.tests],
            "problems": list(self.problems),
            "seconds": round(self.seconds, 2),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Report":
        """The report back from :meth:`to_json` (e.g. from ``llmcourse grade --json``)."""
        return cls(notebook=data["notebook"], exercise=data["exercise"], score=data["score"],
                   max_score=data["max_score"], tests=[TestResult(**t) for t in data["tests"]],
                   problems=list(data["problems"]), seconds=data.get("seconds", 0.0))

    def to_text(self) -> str:
        width = max([len("part")] + [len(t.id) for t in self.tests])
        lines = [f"Grading {self.notebook} (exercise {self.exercise})", ""]
        lines.append(f"  {'part':<{width}}  {'points':>9}  result")
        for t in self.tests:
            pts = f"{_fmt(t.points)} / {_fmt(t.max_points)}"
            result = "ok" if t.passed else f"FAIL  {t.message}"
            lines.append(f"  {t.id:<{width}}  {pts:>9}  {result}")
        lines.append(f"  {'total':<{width}}  {_fmt(self.score) + ' / ' + _fmt(self.max_score):>9}")
        if self.problems:
            lines += ["", "Problems:"] + [f"  - {p}" for p in self.problems]
        if self.score < self.max_score:
            lines += ["", "Run the test cell of each failed part in the notebook to see the whole "
                          "message and its hint."]
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


# --------------------------------------------------------------------------------------------
# Reading and matching notebooks


def _nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_test_cell(cell) -> bool:
    meta = _nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.get("cell_type") == "code"


def _read_notebook(path: Path):
    import nbformat

    if not path.exists():
        raise GradeError(f"no such file: {path}")
    if not path.is_file():
        raise GradeError(f"not a file: {path} (expected an .ipynb notebook)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GradeError(f"{path} is not a notebook: it is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise GradeError(f"{path} is not a valid notebook: its JSON is corrupt at line {e.lineno}, "
                         f"column {e.colno} ({e.msg})") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise GradeError(f"{path} is JSON but not a Jupyter notebook (no 'cells'/'nbformat')")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as e:  # nbformat raises several kinds for malformed notebooks
        raise GradeError(f"{path} is not a valid notebook: {str(e).splitlines()[0]}") from None
    return nb


def _test_ids(nb) -> set[str]:
    return {_nbgrader_meta(c).get("grade_id") for c in nb.cells if _is_test_cell(c)}


def _match_source(path: Path, nb, explicit: Path | None):
    if not any(_nbgrader_meta(c) for c in nb.cells):
        raise GradeError(f"{path} is not one of the course's exercises: it has no graded cells "
                         f"(nbgrader metadata); grade the notebook from exercises/, not a chapter "
                         f"or a copy pasted into a new notebook")
    source_path = find_source(path, explicit)
    if source_path is None:  # renamed file: match by the ids of its graded cells
        ids = {_nbgrader_meta(c).get("grade_id") for c in nb.cells if _nbgrader_meta(c)}
        best, overlap = None, 0
        for candidate in source_notebooks():
            n = len(ids & _test_ids(_read_notebook(candidate)))
            if n > overlap:
                best, overlap = candidate, n
        source_path = best
    if source_path is None:
        raise GradeError(f"{path} is not one of the course's exercises (no exercise source "
                         f"matches its name or its graded cells; pass --source to name one)")
    return source_path, _read_notebook(source_path)


def _released_source(cell) -> str:
    """The source of a test cell as nbgrader releases it: hidden tests removed."""
    from nbgrader.preprocessors import ClearHiddenTests

    released = copy.deepcopy(cell)
    ClearHiddenTests()._remove_hidden_test_region(released)
    return released.source


def _assemble(learner, source) -> tuple[Any, list[str]]:
    """The notebook to run: the learner's cells with the source's original test cells."""
    from nbgrader.utils import compute_checksum

    problems: list[str] = []
    originals = {_nbgrader_meta(c)["grade_id"]: c for c in source.cells if _is_test_cell(c)}
    order = [_nbgrader_meta(c)["grade_id"] for c in source.cells if _is_test_cell(c)]
    nb = copy.deepcopy(learner)
    seen: set[str] = set()
    cells = []
    for cell in nb.cells:
        meta = _nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if gid in originals and gid not in seen:
            seen.add(gid)
            checksum = meta.get("checksum")
            if checksum:  # a generated learner version: nbgrader's checksum tells
                edited = cell.get("cell_type") != "code" or checksum != compute_checksum(cell)
            else:  # no checksum (e.g. the source itself): compare with the original test
                edited = cell.source.strip() not in (originals[gid].source.strip(),
                                                     _released_source(originals[gid]).strip())
            if edited:
                problems.append(f"test cell '{gid}' was edited; the original test was graded "
                                f"instead (tests are read-only: undo the edit)")
            cells.append(copy.deepcopy(originals[gid]))
        elif gid in originals:  # a duplicated test cell: drop the copy
            problems.append(f"test cell '{gid}' appears twice; only the first was graded")
        else:
            cells.append(cell)
    # restore a deleted test cell right after the nearest cell that preceded it in the source
    # and is still there (usually the solution cell it tests)
    for gid in order:
        if gid in seen:
            continue
        problems.append(f"test cell '{gid}' was deleted; the original test was graded instead")
        src_idx = source.cells.index(originals[gid])
        position = 0
        for earlier in reversed(source.cells[:src_idx]):
            earlier_id = _nbgrader_meta(earlier).get("grade_id")
            idx = next((k for k, c in enumerate(cells)
                        if earlier_id and _nbgrader_meta(c).get("grade_id") == earlier_id), None)
            if idx is not None:
                position = idx + 1
                break
        cells.insert(position, copy.deepcopy(originals[gid]))
        seen.add(gid)
    nb.cells = cells
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb, problems


# --------------------------------------------------------------------------------------------
# Running


def _first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _error_message(output) -> str:
    ename, evalue = output.get("ename", "Error"), output.get("evalue", "")
    if ename == "NotImplementedError":
        return "not done yet: the code still raises NotImplementedError"
    if ename in ("AssertionError", "CheckFailed") and evalue:
        return _first_line(evalue)
    if ename == "AssertionError":
        return "AssertionError (a check failed without a message)"
    if ename == "NameError":
        return (f"NameError: {_first_line(evalue)} (did the cell that defines it run without "
                f"errors? see Problems below)")
    return f"{ename}: {_first_line(evalue)}" if evalue else ename


def _hidden_lines(source: str) -> set[int]:
    """1-based line numbers of a test cell's hidden-test region."""
    lines, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if "### BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "### END HIDDEN TESTS" in line:
            inside = False
        elif inside:
            lines.add(number)
    return lines


def _failed_line(output) -> int | None:
    """The line of the test cell where an error was raised, from IPython's traceback."""
    import re

    for frame in output.get("traceback", []):
        match = re.search(r"Cell In\[\d+\], line (\d+)", re.sub(r"\x1b\[[0-9;]*m", "", frame))
        if match:
            return int(match.group(1))
    return None


def _run(nb, timeout: int, problems: list[str], cwd: str) -> dict[int, str]:
    """Execute every code cell; return {cell index: 'timeout'|'died'|'not run'} for cells that
    did not finish."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                            kernel_name="python3", resources={"metadata": {"path": cwd}},
                            record_timing=False)
    unfinished: dict[int, str] = {}
    died = False
    # the kernel's own log (e.g. its transport warning) is not the learner's output: drop it.
    # GRADING_ENV tells the notebook's score cell that this run is the grading itself.
    env = {**os.environ, GRADING_ENV: "1"}
    with client.setup_kernel(cwd=cwd, stderr=subprocess.DEVNULL, env=env):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if died:
                unfinished[index] = "not run"
                continue
            start = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except DeadKernelError:
                unfinished[index] = "died"
                problems.append(f"the kernel died while running cell {index + 1} (out of memory, or "
                                f"the code exited Python); the cells after it were not run")
                died = True
                continue
            if time.monotonic() - start >= timeout or any(
                    o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt"
                    for o in cell.outputs):
                unfinished[index] = "timeout"
    return unfinished


def _describe_cell(cell, index: int) -> str:
    gid = _nbgrader_meta(cell).get("grade_id")
    return f"cell {index + 1}" + (f" ('{gid}')" if gid else "")


def grade_notebook(path: str | Path, *, timeout: int = DEFAULT_TIMEOUT,
                   source: str | Path | None = None) -> Report:
    """Grade the notebook at ``path``; raise :class:`GradeError` if it cannot be graded."""
    from nbgrader.utils import determine_grade

    path = Path(path)
    started = time.monotonic()
    learner = _read_notebook(path)
    source_path, source_nb = _match_source(path, learner, Path(source) if source else None)
    nb, problems = _assemble(learner, source_nb)

    with tempfile.TemporaryDirectory(prefix="llmcourse-grade-") as workdir:
        unfinished = _run(nb, timeout, problems, workdir)

    tests: list[TestResult] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        if not _is_test_cell(cell):
            if index in unfinished and unfinished[index] == "timeout":
                problems.append(f"{_describe_cell(cell, index)} was stopped after {timeout} s "
                                f"(an infinite loop?)")
            elif errors:
                e = errors[0]
                where = ""
                if e.get("ename") in ("SyntaxError", "IndentationError"):
                    where = " (the code in it never ran, so what it defines is missing)"
                problems.append(f"{_describe_cell(cell, index)} raised "
                                f"{e.get('ename')}: {_first_line(e.get('evalue', ''))}{where}")
            continue
        gid = _nbgrader_meta(cell)["grade_id"]
        earned, max_points = determine_grade(cell)
        earned = float(earned or 0)
        if index in unfinished:
            message = {
                "timeout": f"stopped after {timeout} s: the code did not finish (an infinite loop?)",
                "died": "the kernel died while running this test",
                "not run": "not run: the kernel died in an earlier cell",
            }[unfinished[index]]
            earned = 0.0
        elif errors:
            message = _error_message(errors[0])
            if _failed_line(errors[0]) in _hidden_lines(cell.source):
                message = (f"a hidden test failed: {message} (the visible checks pass, but the "
                           f"answer does not work for other inputs)")
        elif any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in cell.outputs):
            text = "".join(o.get("text", "") for o in cell.outputs
                           if o.get("output_type") == "stream" and o.get("name") == "stderr")
            message = (f"the test wrote to stderr, which counts as a failure: "
                       f"{_first_line(text)[:100]} (remove prints to sys.stderr and warnings)")
        else:
            message = ""
        tests.append(TestResult(gid, earned, float(max_points), earned >= float(max_points), message))

    return Report(
        notebook=str(path),
        exercise=source_path.stem,
        score=sum(t.points for t in tests),
        max_score=sum(t.max_points for t in tests),
        tests=tests,
        problems=problems,
        seconds=time.monotonic() - started,
    )


def missing_module() -> str | None:
    """The first module the grader needs that cannot be imported here, or None if all can.

    The name is the top-level module (``nbgrader``, or one of nbgrader's own imports such as
    ``rapidfuzz``), which is what has to be installed. A module that is there but fails to import
    (e.g. a version without a name nbgrader imports) raises its ImportError.
    """
    for name in GRADER_IMPORTS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            return (e.name or name).split(".")[0]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmcourse grade",
        description="Grade an exercise notebook in a fresh kernel and report a score per part. "
                    "The notebook is only read; nothing is written to it or its folder.")
    parser.add_argument("notebook", help="the exercise notebook to grade, e.g. "
                                         "exercises/00_language_models.ipynb")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"seconds each cell may run (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--source", help="the exercise's source notebook (found automatically "
                                         "in a checkout of the course)")
    args = parser.parse_args(argv)
    try:
        missing = missing_module()
    except ImportError as e:  # a module is there but not the version the grader expects
        print(f"llmcourse grade: cannot grade: the grader's modules do not import here: "
              f"{str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    if missing:
        print(f"llmcourse grade: cannot grade: the grader needs {missing}, which is not installed "
              f"(pip install 'llmcourse[grade]', or pip install nbgrader)", file=sys.stderr)
        return 2
    try:
        report = grade_notebook(args.notebook, timeout=args.timeout, source=args.source)
    except GradeError as e:
        print(f"llmcourse grade: cannot grade: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
