"""The exercise pipeline end to end: real kernels, real nbgrader.

* every exercise source gets full marks from `llmcourse grade`, every learner version zero;
* broken submissions (made here from exercise 0) are graded correctly and helpfully: a missing
  return, an exception, an infinite loop, output to stderr, a syntax error, an edited test cell,
  a deleted test cell; the learner's file and folder are untouched;
* notebooks that cannot be graded exit with status 2 and a one-line reason;
* nbgrader's own generate_assignment + autograde with a sqlite gradebook give full marks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from conftest import BIN, CHAPTERS, EXERCISE_SOURCES, LEARNER_VERSIONS, ROOT

pytestmark = pytest.mark.slow


def grade(path, *extra, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "llmcourse.grade", str(path), "--json", *extra],
                          capture_output=True, text=True, cwd=cwd or ROOT)
    report = json.loads(proc.stdout) if proc.returncode == 0 else None
    return proc, report


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


@pytest.mark.parametrize("source", EXERCISE_SOURCES, ids=lambda p: p.stem)
def test_source_gets_full_marks(source):
    proc, report = grade(source)
    assert proc.returncode == 0, proc.stderr
    failed = [t for t in report["tests"] if not t["passed"]]
    assert not failed, failed
    assert report["score"] == report["max_score"] > 0
    assert report["problems"] == []
    assert len(report["tests"]) >= 4


@pytest.mark.parametrize("learner", LEARNER_VERSIONS, ids=lambda p: p.stem)
def test_learner_version_gets_zero_and_a_clean_report(learner):
    before = learner.read_bytes()
    proc, report = grade(learner)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert report["score"] == 0 and report["max_score"] > 0
    assert all("not done yet" in t["message"] or "not defined" in t["message"]
               for t in report["tests"]), report["tests"]
    assert learner.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# Broken submissions, made from exercise 0's learner version filled with the source's solutions


def _solved(source_path):
    """The learner version with every solution filled in, and the solution cells' order."""
    learner = nbformat.read(ROOT / "exercises" / source_path.name, as_version=4)
    source = nbformat.read(source_path, as_version=4)
    solutions = {_meta(c)["grade_id"]: c.source for c in source.cells if _meta(c).get("solution")}
    order = []
    for cell in learner.cells:
        gid = _meta(cell).get("grade_id")
        if gid in solutions:
            cell.source = solutions[gid]
            order.append(gid)
    return learner, order


def _replace_body(cell_source: str, new_body: str) -> str:
    """Replace the solution region (markers included) by new_body, at the marker's indentation."""
    lines = cell_source.splitlines()
    begin = next(i for i, l in enumerate(lines) if "### BEGIN SOLUTION" in l)
    end = next(i for i, l in enumerate(lines) if "### END SOLUTION" in l)
    indent = re.match(r"\s*", lines[begin]).group(0)
    body = [indent + l if l else l for l in new_body.splitlines()]
    return "\n".join(lines[:begin] + body + lines[end + 1:])


def _keep_body(cell_source: str, prefix: str) -> str:
    lines = cell_source.splitlines()
    begin = next(i for i, l in enumerate(lines) if "### BEGIN SOLUTION" in l)
    indent = re.match(r"\s*", lines[begin]).group(0)
    return "\n".join(lines[:begin + 1] + [indent + l for l in prefix.splitlines()] + lines[begin + 1:])


def _cell(nb, gid):
    return next(c for c in nb.cells if _meta(c).get("grade_id") == gid)


def _test_of(nb, solution_gid):
    """The first test cell after a solution cell."""
    idx = nb.cells.index(_cell(nb, solution_gid))
    return next(c for c in nb.cells[idx + 1:] if _meta(c).get("grade") and not _meta(c).get("solution"))


@pytest.fixture(scope="module")
def exercise0():
    source = next(p for p in EXERCISE_SOURCES if p.stem.startswith("00_"))
    return source


@pytest.fixture
def submit(tmp_path):
    """Write a submission into a folder of its own; check afterwards that grading left it alone."""
    written = []

    def write(nb, name):
        folder = tmp_path / name
        folder.mkdir()
        path = folder / "00_language_models.ipynb"
        nbformat.write(nb, path)
        written.append((folder, path, hashlib.sha256(path.read_bytes()).hexdigest()))
        return path

    yield write
    for folder, path, digest in written:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "grading changed the file"
        assert [p.name for p in folder.iterdir()] == [path.name], "grading wrote to the folder"


def test_runtime_mistakes_are_reported_per_part(exercise0, submit):
    nb, order = _solved(exercise0)
    assert len(order) >= 4
    tests = {gid: _meta(_test_of(nb, gid))["grade_id"] for gid in order}
    c = _cell(nb, order[0])
    c.source = _replace_body(c.source, "result = None  # forgot to return")
    c = _cell(nb, order[1])
    c.source = _replace_body(c.source, "raise ValueError('my own bug')")
    c = _cell(nb, order[2])
    c.source = _replace_body(c.source, "while True:\n    pass")
    c = _cell(nb, order[3])
    c.source = _keep_body(c.source, "import sys\nprint('debugging', file=sys.stderr)")
    path = submit(nb, "runtime")

    proc, report = grade(path, "--source", str(exercise0), "--timeout", "5")
    assert proc.returncode == 0, proc.stderr
    by_id = {t["id"]: t for t in report["tests"]}
    first = by_id[tests[order[0]]]
    assert not first["passed"] and first["points"] == 0
    assert "None" in first["message"] or "return" in first["message"], first
    second = by_id[tests[order[1]]]
    assert second["message"].startswith("ValueError: my own bug"), second
    third = by_id[tests[order[2]]]
    assert "stopped after 5 s" in third["message"] and "infinite loop" in third["message"], third
    fourth = by_id[tests[order[3]]]
    assert "stderr" in fourth["message"] and "debugging" in fourth["message"], fourth
    # parts after the broken ones were still graded, and pass
    for gid in order[4:]:
        assert by_id[tests[gid]]["passed"], by_id[tests[gid]]
    assert report["score"] == sum(t["max_points"] for t in report["tests"]
                                  if t["id"] not in {tests[g] for g in order[:4]})


def test_syntax_error_and_edited_or_deleted_tests(exercise0, submit):
    nb, order = _solved(exercise0)
    tests = {gid: _meta(_test_of(nb, gid))["grade_id"] for gid in order}
    c = _cell(nb, order[0])
    c.source = c.source.replace("def ", "def (", 1)  # a syntax error
    edited = _test_of(nb, order[1])
    edited.source = "pass  # I removed the checks"
    solution = _cell(nb, order[1])
    solution.source = _replace_body(solution.source, "return None")  # and broke the answer
    nb.cells.remove(_test_of(nb, order[2]))
    path = submit(nb, "tampered")

    proc, report = grade(path, "--source", str(exercise0))
    assert proc.returncode == 0, proc.stderr
    by_id = {t["id"]: t for t in report["tests"]}
    assert set(by_id) == set(tests.values()), "every test must be graded, deleted ones too"
    problems = "\n".join(report["problems"])
    assert f"'{order[0]}') raised SyntaxError" in problems
    assert f"test cell '{tests[order[1]]}' was edited" in problems
    assert f"test cell '{tests[order[2]]}' was deleted" in problems
    assert not by_id[tests[order[0]]]["passed"] and "not defined" in by_id[tests[order[0]]]["message"]
    assert not by_id[tests[order[1]]]["passed"], "the original test must be graded, not the edit"
    assert by_id[tests[order[2]]]["passed"], ("the restored test runs against the learner's answer", report["tests"])


def test_text_report_reads_well(exercise0, submit):
    nb, order = _solved(exercise0)
    c = _cell(nb, order[0])
    c.source = _replace_body(c.source, "return None")
    path = submit(nb, "text")
    proc = subprocess.run([sys.executable, "-m", "llmcourse", "grade", str(path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"Grading {path}")
    assert any(l.strip().startswith("total") for l in lines)
    assert any("FAIL" in l for l in lines) and any(l.rstrip().endswith("ok") for l in lines)


@pytest.mark.parametrize("case", ["missing", "directory", "text", "corrupt", "json", "chapter",
                                  "chapter-named-like-an-exercise"])
def test_ungradable_input_exits_2_with_one_line(case, tmp_path):
    target = {
        "missing": tmp_path / "nope.ipynb",
        "directory": tmp_path,
        "text": tmp_path / "notes.ipynb",
        "corrupt": tmp_path / "corrupt.ipynb",
        "json": tmp_path / "list.ipynb",
        "chapter": tmp_path / "chapter.ipynb",
        "chapter-named-like-an-exercise": CHAPTERS[0],
    }[case]
    if case == "text":
        target.write_bytes(b"\xff\xfe not text")
    elif case == "corrupt":
        target.write_text('{"cells": [', encoding="utf-8")
    elif case == "json":
        target.write_text("[1, 2, 3]", encoding="utf-8")
    elif case == "chapter":
        shutil.copy(CHAPTERS[0], target)
    proc = subprocess.run([sys.executable, "-m", "llmcourse.grade", str(target)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("llmcourse grade: cannot grade:")
    assert "Traceback" not in proc.stderr


def test_nbgrader_autograde_gives_full_marks(tmp_path):
    """nbgrader's own workflow on the sources, unchanged, with a real sqlite gradebook."""
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    shutil.copytree(ROOT / "exercises" / "source", course / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'llmcourse'\n"
        "c.ExecutePreprocessor.timeout = 120\n")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter")}
    names = [p.stem for p in EXERCISE_SOURCES]
    for name in names:
        run = lambda *args: subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env,
                                           capture_output=True, text=True)
        gen = run("generate_assignment", name, "--force")
        assert gen.returncode == 0, gen.stderr
        assert (course / "release" / name / f"{name}.ipynb").is_file()
        submitted = course / "submitted" / "learner1" / name
        submitted.mkdir(parents=True)
        shutil.copy(course / "source" / name / f"{name}.ipynb", submitted)
        auto = run("autograde", name, "--force")
        assert auto.returncode == 0, auto.stderr
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for name in names:
            sub = gb.find_submission(name, "learner1")
            assert sub.max_score > 0
            assert sub.score == sub.max_score, (name, sub.score, sub.max_score)


def test_installed_wheel_grades_outside_a_checkout(tmp_path):
    """On Colab the package comes from a wheel, not a checkout: it must carry the sources."""
    wheels, site, tree = tmp_path / "wheels", tmp_path / "site", tmp_path / "tree"
    # build from a copy: setuptools leaves a build/ folder in the tree it builds
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", ".venv", "_build", "build", "*.egg-info", ".pytest_cache", ".hypothesis"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "-w", str(wheels), str(tree)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                              "--target", str(site), *map(str, wheels.glob("*.whl"))],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    learner = tmp_path / "work" / "00_language_models.ipynb"
    learner.parent.mkdir()
    shutil.copy(ROOT / "exercises" / learner.name, learner)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import llmcourse; print(llmcourse.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    proc = subprocess.run([sys.executable, "-m", "llmcourse.grade", str(learner), "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["exercise"] == "00_language_models"
    assert report["score"] == 0 and report["max_score"] > 0
