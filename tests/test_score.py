"""The score cell (``llmcourse.score``) where learners run it: Colab (simulated) and a real kernel.

Colab is simulated by a Python environment shaped like Colab's runtime: a fresh venv that has
Jupyter (ipykernel, nbclient, nbformat, jupyter_server ...) but neither nbgrader nor rapidfuzz, one
of nbgrader's own imports, and a stand-in ``google.colab`` package on the kernel's path whose
``_message.blocking_request("get_ipynb")`` answers like Colab's frontend, with a learner's notebook
(one part right, one wrong, the others unfinished). The score cell must install exactly what the
grader lacks, with ``--no-deps`` (from local wheels: the test downloads them once into pytest's
cache and then runs offline), print the same table as ``llmcourse grade`` on the same notebook, and
leave the learner's file and folder untouched.

The JupyterLab case, with a real server and browser, is in ``test_score_jupyterlab.py``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from conftest import EXERCISE_SOURCES, ROOT

pytestmark = pytest.mark.slow

EXERCISE = "00_language_models"


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def learner_notebook() -> nbformat.NotebookNode:
    """Exercise 0's learner version with part 1 solved, part 2 wrong and the rest unfinished."""
    from llmcourse.score import SCORE_CELLS  # noqa: F401  (the notebook already ends with them)

    learner = nbformat.read(ROOT / "exercises" / f"{EXERCISE}.ipynb", as_version=4)
    source = nbformat.read(ROOT / "exercises" / "source" / EXERCISE / f"{EXERCISE}.ipynb",
                           as_version=4)
    solutions = {_meta(c)["grade_id"]: c.source for c in source.cells if _meta(c).get("solution")}
    parts = [c for c in learner.cells if _meta(c).get("solution")]
    right, wrong = parts[0], parts[1]
    right.source = solutions[_meta(right)["grade_id"]]
    lines = solutions[_meta(wrong)["grade_id"]].splitlines()
    begin = next(i for i, l in enumerate(lines) if "### BEGIN SOLUTION" in l)
    end = next(i for i, l in enumerate(lines) if "### END SOLUTION" in l)
    wrong.source = "\n".join(lines[:begin] + ["    return dict(counts)  # forgot to divide"]
                             + lines[end + 1:])
    return learner


def cli_report(path: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "llmcourse", "grade", str(path)],
                          capture_output=True, text=True, cwd=path.parent)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def table(text: str) -> list[str]:
    """The report from its column header on (the first line names the notebook, which differs)."""
    lines = text.rstrip("\n").splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip().startswith("part ") and "points" in l)
    return lines[start:]


def outputs_text(cell) -> str:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert not errors, "\n".join(errors[0].traceback)
    stderr = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, stderr
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def run_score_cell(kernel_name: str, cwd: Path, env: dict[str, str]) -> str:
    """Run the exercises' own last cell in a new kernel, as a learner does; return what it printed."""
    from nbclient import NotebookClient

    from llmcourse.score import SCORE_CELLS

    code = SCORE_CELLS[-1][2]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = NotebookClient(nb, timeout=900, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env, cwd=str(cwd))
    return outputs_text(nb.cells[0])


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# A Colab-shaped environment


HIDDEN = ("nbgrader", "rapidfuzz")  # what Colab's runtime does not have


@pytest.fixture(scope="session")
def wheels(request) -> Path:
    """nbgrader and rapidfuzz wheels in pytest's cache (downloaded once; offline afterwards)."""
    from llmcourse.score import NBGRADER

    folder = Path(request.config.cache.mkdir("score-cell-wheels"))
    wanted = [NBGRADER, f"rapidfuzz=={importlib.metadata.version('rapidfuzz')}"]
    have = {p.name.split("-")[0].lower() for p in folder.glob("*.whl")}
    if not {"nbgrader", "rapidfuzz"} <= have:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--only-binary=:all:", "-d", str(folder), *wanted],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot download {wanted} for the Colab simulation (offline?): "
                        f"{proc.stderr.strip().splitlines()[-1:]}")
    return folder


@pytest.fixture(scope="session")
def colab_runtime(tmp_path_factory, wheels):
    """A venv shaped like Colab's runtime, a kernel for it and a stand-in ``google.colab``."""
    base = tmp_path_factory.mktemp("colab")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(importlib.metadata.distribution("nbformat").locate_file(""))
    for entry in ours.iterdir():
        name = entry.name.lower()
        if (name.startswith(HIDDEN) or "llmcourse" in name or name.startswith("__editable__")
                or (site / entry.name).exists()):
            continue
        (site / entry.name).symlink_to(entry)
    for module in HIDDEN:
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, f"the Colab-shaped venv must not have {module}"

    stand_in = base / "stand_in"
    (stand_in / "google" / "colab").mkdir(parents=True)  # `google` stays a namespace package
    (stand_in / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab."""\n')
    (stand_in / "google" / "colab" / "_message.py").write_text(textwrap.dedent('''\
        """Stand-in for google.colab._message: answers like Colab's frontend.

        The reply to "get_ipynb" is {"ipynb": notebook} with each source as a list of lines, as
        Colab sends it. Every request is logged to $COLAB_STAND_IN_LOG.
        """
        import json
        import os


        def blocking_request(request_type, request="", timeout_sec=5, parent=None):
            with open(os.environ["COLAB_STAND_IN_LOG"], "a") as log:
                log.write(json.dumps([request_type, request, timeout_sec]) + "\\n")
            if request_type != "get_ipynb":
                return None
            with open(os.environ["COLAB_STAND_IN_NOTEBOOK"], encoding="utf-8") as f:
                nb = json.load(f)
            for cell in nb["cells"]:
                if isinstance(cell["source"], str):
                    cell["source"] = cell["source"].splitlines(keepends=True)
                cell["metadata"]["id"] = cell.pop("id", "x")
                if os.environ.get("COLAB_STAND_IN_DROP_METADATA"):
                    cell["metadata"].pop("nbgrader", None)
            nb["metadata"]["colab"] = {"provenance": []}
            nb["nbformat_minor"] = 0  # Colab's notebooks are 4.0: ids live in cell metadata
            return {"ipynb": nb}
        '''))

    kernels = base / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (Colab-shaped)", "language": "python"}))
    return {"python": python, "site": site, "stand_in": stand_in, "jupyter": base / "jupyter",
            "wheels": wheels}


def test_score_cell_in_colab_installs_only_what_is_missing_and_prints_the_cli_table(
        colab_runtime, tmp_path, monkeypatch):
    content = tmp_path / "content"  # Colab's working folder
    content.mkdir()
    (content / "sample_data").mkdir()
    (content / "sample_data" / "README.md").write_text("Colab's sample data\n")
    learner_file = tmp_path / "drive" / f"{EXERCISE}.ipynb"  # what the frontend holds
    learner_file.parent.mkdir()
    nbformat.write(learner_notebook(), learner_file)
    log = tmp_path / "requests.log"
    before = {"content": snapshot(content), "learner": snapshot(learner_file.parent)}
    site_before = set(os.listdir(colab_runtime["site"]))

    monkeypatch.setenv("JUPYTER_PATH", str(colab_runtime["jupyter"]))
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(colab_runtime["stand_in"]), str(ROOT)]),
        "LLMCOURSE_DATA_DIR": os.environ.get("LLMCOURSE_DATA_DIR", ""),
        "COLAB_STAND_IN_NOTEBOOK": str(learner_file), "COLAB_STAND_IN_LOG": str(log),
        # pip works offline, from the wheels in pytest's cache
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(colab_runtime["wheels"]),
    }
    printed = run_score_cell("colab", content, env)
    print(printed)  # what the learner sees (pytest -s shows it)

    requests = [json.loads(l) for l in log.read_text().splitlines()]
    assert requests and requests[0][0] == "get_ipynb"
    from llmcourse.score import NBGRADER

    assert f"installed {NBGRADER}" in printed and "installed rapidfuzz" in printed
    added = set(os.listdir(colab_runtime["site"])) - site_before
    assert {a.split("-")[0].lower() for a in added} == {"nbgrader", "rapidfuzz"}, added
    assert set(os.listdir(colab_runtime["site"])) >= site_before, "nothing may be removed"

    assert "Grading this notebook, as open in Colab (exercise 00_language_models)" in printed
    assert table(printed) == table(cli_report(learner_file))
    rows = {l.split()[0]: l for l in table(printed)[1:-1] if l.strip()}
    assert rows["test_next_char_counts"].split()[1:4] == ["3", "/", "3"]
    assert "FAIL" in rows["test_to_probabilities"]
    assert "not done yet" in rows["test_longest_copied"]

    assert snapshot(content) == before["content"], "the score cell wrote into the working folder"
    assert snapshot(learner_file.parent) == before["learner"], "the learner's notebook changed"

    # A second run finds the grader installed and installs nothing; and should Colab drop the
    # cells' nbgrader metadata, the score is the same.
    again = run_score_cell("colab", content, {**env, "COLAB_STAND_IN_DROP_METADATA": "1"})
    print(again)
    assert "installed" not in again and "metadata; it was matched back" in again
    assert table(again) == table(printed)
    assert snapshot(learner_file.parent) == before["learner"]


def test_dropped_nbgrader_metadata_is_matched_back_from_the_source():
    from llmcourse.score import restore_grading_metadata

    for learner in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(learner.read_text(encoding="utf-8"))
        original = [c["metadata"].pop("nbgrader", None) for c in nb["cells"]]
        assert restore_grading_metadata(nb) is True
        for cell, meta in zip(nb["cells"], original):
            got = cell["metadata"].get("nbgrader")
            assert got == ({k: v for k, v in meta.items() if k not in ("checksum", "cell_type")}
                           if meta else None)
        assert restore_grading_metadata(nb) is False, "metadata present: nothing to do"
    chapter = json.loads(next((ROOT / "chapters").glob("00_*.ipynb")).read_text())
    assert restore_grading_metadata(chapter) is False


def test_score_cell_in_colab_says_what_happened_when_colab_sends_nothing(
        colab_runtime, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(colab_runtime["jupyter"]))
    stand_in = tmp_path / "silent"
    shutil.copytree(colab_runtime["stand_in"], stand_in)
    (stand_in / "google" / "colab" / "_message.py").write_text(
        "def blocking_request(request_type, request='', timeout_sec=5, parent=None):\n"
        "    return None  # the frontend did not answer in time\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(stand_in), str(ROOT)])}
    printed = run_score_cell("colab", tmp_path, env)
    assert printed.startswith("Cannot grade this notebook here. Colab did not send the notebook")
    assert "Traceback" not in printed


# ---------------------------------------------------------------------------------------------
# Outside Colab, in an ordinary kernel


def test_score_cell_is_silent_when_the_grader_runs_the_notebook(tmp_path):
    printed = run_score_cell("python3", tmp_path, {**os.environ, "LLMCOURSE_GRADING": "1",
                                                   "PYTHONPATH": str(ROOT)})
    assert printed.strip() == "(The grader is running this notebook: this cell does nothing here.)"


def test_score_cell_without_a_notebook_file_says_how_to_use_the_cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    printed = run_score_cell("python3", tmp_path, {**env, "PYTHONPATH": str(ROOT)})
    assert printed.startswith("Cannot grade this notebook here.")
    assert "llmcourse grade" in printed and "Traceback" not in printed


def test_score_cell_grades_the_file_its_kernel_belongs_to(tmp_path):
    """Jupyter Server tells the kernel its notebook (JPY_SESSION_NAME, __session__)."""
    folder = tmp_path / "exercises"
    folder.mkdir()
    path = folder / f"{EXERCISE}.ipynb"
    nbformat.write(learner_notebook(), path)
    before = snapshot(folder)
    printed = run_score_cell("python3", folder, {**os.environ, "PYTHONPATH": str(ROOT),
                                                 "JPY_SESSION_NAME": str(path)})
    print(printed)
    assert f"Grading exercises/{EXERCISE}.ipynb (exercise {EXERCISE})" in printed
    assert table(printed) == table(cli_report(path))
    assert snapshot(folder) == before


def test_the_graded_learner_versions_get_zero_with_the_score_cell_in_them():
    """The grader runs the score cell too (it is the last cell): one line, no problem reported."""
    path = ROOT / "exercises" / f"{EXERCISE}.ipynb"
    proc = subprocess.run([sys.executable, "-m", "llmcourse.grade", str(path), "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    report = json.loads(proc.stdout)
    assert report["score"] == 0 and report["problems"] == []
    assert all(not t["id"].startswith("score") for t in report["tests"])


def test_nbgrader_pin_matches_requirements():
    from llmcourse.score import NBGRADER

    assert NBGRADER in (ROOT / "requirements.txt").read_text().splitlines()
    assert all(src.stem == src.parent.name for src in EXERCISE_SOURCES)
