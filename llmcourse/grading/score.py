"""The score cell: the last cell of every exercise grades the notebook as it is open now.

``llmcourse grade PATH`` needs a file. A learner working in the browser has a notebook open, not a
path, so the last cell of each exercise calls :func:`score_this_notebook`, which finds the open
notebook, grades a **copy** of it in a temporary folder with the same grader as the command line
(hidden tests included) and prints the same table:

* **Colab.** The open notebook is not a file on the runtime's disk. Colab's frontend sends it to
  the kernel on request (``google.colab._message.blocking_request("get_ipynb")``, the request
  otter-grader uses). The grader needs nbgrader, which Colab lacks; it is installed **without its
  dependencies**, together with any small library nbgrader imports that is missing, so nothing of
  Colab's own Jupyter is replaced (see :data:`MAY_INSTALL`).
* **JupyterLab, Binder, Notebook 7, VS Code.** The kernel knows the notebook's file
  (``__session__``/``JPY_SESSION_NAME`` in Jupyter Server 2, ``__vsc_ipynb_file__`` in VS Code).
  In JupyterLab the cell first asks the page to save the notebook, so that unsaved edits are
  graded too; it then copies the file and grades the copy.
* **Anywhere else** it prints how to grade from a terminal, never a traceback.

The learner's notebook is never written to. When the grader itself runs the notebook (it sets
``LLMCOURSE_GRADING`` in its kernel), the cell prints one line and does nothing else, and it has no
nbgrader metadata, so it is never a graded cell.

``llmcourse exercises generate`` appends these cells (:data:`llmcourse.grading.notebooks.SCORE_CELLS`)
to every exercise source before it makes the learner versions.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from .grade import DEFAULT_TIMEOUT, GRADING_ENV, Report
from .notebooks import SCORE_CELLS  # noqa: F401  (re-exported: the cells that call this module)

__all__ = ["score_this_notebook", "SCORE_CELLS", "NBGRADER", "MAY_INSTALL", 
           "restore_grading_metadata"]

#: The nbgrader the grader is tested with (the same pin as requirements.txt).
NBGRADER = "nbgrader==0.9.6"

#: What the score cell may install on Colab, by the module the grader failed to import: nbgrader
#: and the small libraries among its requirements that nbgrader's modules import. Each is installed
#: only when it is missing and always with ``--no-deps``, so nothing already there is replaced.
#: Jupyter itself (jupyter_server, nbclient, nbconvert, notebook, ipykernel ...) is never installed:
#: Colab's runtime depends on its own versions.
MAY_INSTALL = {
    "nbgrader": NBGRADER,
    "rapidfuzz": "rapidfuzz",
    "dateutil": "python-dateutil",
    "yaml": "pyyaml",
    "jinja2": "jinja2",
    "requests": "requests",
    "sqlalchemy": "sqlalchemy",
}

_COLAB_TIMEOUT = 60  # seconds to wait for Colab's frontend to send the notebook
_SAVE_TIMEOUT = 10  # seconds to wait for JupyterLab to save (LLMCOURSE_SAVE_TIMEOUT overrides)


def _say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------------------------
# The exercise sources end with the score cells (used by `llmcourse exercises generate`)


# --------------------------------------------------------------------------------------------
# Where the open notebook is


def _in_colab() -> bool:
    if "google.colab" in sys.modules:
        return True
    try:
        import importlib.util

        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


def _colab_notebook(timeout: float = _COLAB_TIMEOUT) -> dict | str:
    """The open notebook as Colab's frontend sends it, or a message saying why there is none."""
    try:
        from google.colab import _message  # type: ignore[import-not-found]

        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=timeout)
    except Exception as e:  # the frontend answered with an error, or the API changed
        return f"Colab did not send the notebook ({type(e).__name__}: {e})."
    if reply is None:
        return f"Colab did not send the notebook within {timeout:g} s."
    nb = reply.get("ipynb") if isinstance(reply, dict) else None
    if isinstance(nb, str):
        try:
            nb = json.loads(nb)
        except json.JSONDecodeError:
            nb = None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return "Colab's answer did not contain a notebook."
    # Colab may leave out fields that files on disk always have: add them, and drop outputs
    # (the grader runs every cell again).
    nb.setdefault("nbformat", 4)
    nb.setdefault("nbformat_minor", 4)
    nb.setdefault("metadata", {})
    for cell in nb["cells"]:
        cell.setdefault("metadata", {})
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def _without_hidden_tests(source: str) -> str:
    lines, inside = [], False
    for line in source.split("\n"):
        if "### BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "### END HIDDEN TESTS" in line:
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines)


def _first_line(source: str) -> str:
    return next((l.strip() for l in source.splitlines() if l.strip()), "")


def restore_grading_metadata(nb: dict) -> bool:
    """Put back nbgrader's cell metadata if the frontend dropped it (all of it, in every cell).

    Each cell is matched with the exercise's source: a test cell by its text as released (hidden
    tests removed), a solution cell by its first line (the function's signature). The source with
    the most matches wins; at least half of its graded cells must match. Returns whether it
    restored anything. The checksums are not restored: the grader then compares each test cell with
    the original instead.
    """
    import nbformat

    from .notebooks import source_notebooks

    cells = nb.get("cells", [])
    if any((c.get("metadata") or {}).get("nbgrader") for c in cells):
        return False
    best: tuple[int, dict[int, dict]] = (0, {})
    for path in source_notebooks():
        source = nbformat.read(path, as_version=4)
        graded = [c for c in source.cells if c.metadata.get("nbgrader")]
        tests = {_without_hidden_tests(c.source).strip(): c.metadata["nbgrader"]
                 for c in graded if c.metadata["nbgrader"].get("grade")}
        solutions = {_first_line(c.source): c.metadata["nbgrader"]
                     for c in graded if c.metadata["nbgrader"].get("solution")}
        found: dict[int, dict] = {}
        for index, cell in enumerate(cells):
            text = _text(cell.get("source"))
            meta = tests.get(text.strip()) or (
                solutions.get(_first_line(text)) if cell.get("cell_type") == "code" else None)
            if meta is not None and meta not in found.values():
                found[index] = meta
        if len(found) > best[0] and 2 * len(found) >= len(graded):
            best = (len(found), found)
    for index, meta in best[1].items():
        restored = {k: v for k, v in meta.items() if k != "checksum"}
        cells[index].setdefault("metadata", {})["nbgrader"] = restored
    return bool(best[1])


def _notebook_file() -> tuple[Path | None, str]:
    """The open notebook's file as the kernel knows it, and a note when it is not usable."""
    names = []
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            names += [shell.user_ns.get("__session__"), shell.user_ns.get("__vsc_ipynb_file__")]
    except ImportError:
        pass
    names.append(os.environ.get("JPY_SESSION_NAME"))
    names = [n for n in names if isinstance(n, str) and n.endswith(".ipynb")]
    for name in names:
        p = Path(name)
        for candidate in ([p] if p.is_absolute() else [Path.cwd() / p, Path.cwd() / p.name]):
            if candidate.is_file():
                return candidate, ""
    if names:
        return None, (f"This notebook's file is not at {names[0]} any more (was it renamed or "
                      f"moved after its kernel started? then restart the kernel).")
    return None, "This kernel does not know which notebook file it belongs to."


def _save_in_jupyterlab(path: Path) -> bool:
    """Ask the page (JupyterLab, Notebook 7, classic Notebook) to save this notebook; wait for it.

    The request is a JavaScript output that presses this notebook's own Save button (JupyterLab
    renders JavaScript outputs of the running session). Returns whether the file changed on disk
    within a few seconds.
    """
    try:
        from IPython.display import Javascript, display
    except ImportError:
        return False
    before = path.stat().st_mtime_ns
    display(Javascript(
        # run once the output is in the page, so that it finds its own notebook's toolbar
        "var node = (typeof element !== 'undefined') ? element : null;"
        "setTimeout(function () {"
        " if (typeof Jupyter !== 'undefined' && Jupyter.notebook) {"
        "  Jupyter.notebook.save_checkpoint(); return; }"
        " var panel = (node && node.closest) ? node.closest('.jp-NotebookPanel') : null;"
        " var root = panel || document;"
        " var button = root.querySelector('[data-command=\"docmanager:save\"]');"
        # JupyterLab's toolbar buttons act on mousedown (or on click, when they take focus)
        " if (button) { button.dispatchEvent(new MouseEvent('mousedown',"
        "  {bubbles: true, cancelable: true, button: 0})); button.click(); }"
        "}, 100);"))
    deadline = time.monotonic() + float(os.environ.get("LLMCOURSE_SAVE_TIMEOUT", _SAVE_TIMEOUT))
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            if path.stat().st_mtime_ns != before:
                time.sleep(0.3)  # let the write finish
                return True
        except FileNotFoundError:
            pass
    return False


# --------------------------------------------------------------------------------------------
# The grader's own imports


def _pip_install(requirements: list[str]) -> str | None:
    """``pip install --no-deps``; None on success, else pip's last line."""
    _say("Installing the grader: " + ", ".join(requirements) + " (without dependencies: nothing "
         "this runtime already has is replaced) ...")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", "--no-deps", *requirements],
                          capture_output=True, text=True)
    importlib.invalidate_caches()
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"pip could not install {', '.join(requirements)}: {lines[-1] if lines else '?'}"
    for requirement in requirements:
        _say(f"  installed {requirement}")
    return None


def _absent(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _needs(message: str) -> str | None:
    """The module named by the grader's "needs X, which is not installed" message."""
    match = re.search(r"the grader needs (\w+), which is not installed", message)
    return match.group(1) if match else None


# --------------------------------------------------------------------------------------------
# Grading


def _grade_copy(notebook: Path, shown_as: str, *, source: Path | None,
                timeout: int) -> Report | str:
    """Run ``llmcourse grade --json`` on a copy of the notebook; the report, or the reason it
    could not grade."""
    cmd = [sys.executable, "-m", "llmcourse.grade", str(notebook), "--json",
           "--timeout", str(timeout)]
    if source is not None:
        cmd += ["--source", str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=notebook.parent)
    if proc.returncode == 2:
        return proc.stderr.strip().removeprefix("llmcourse grade: ") or "it cannot be graded"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return f"the grader failed: {lines[-1] if lines else 'no message'}"
    report = Report.from_json(json.loads(proc.stdout))
    report.notebook = shown_as
    return report


def _cli_hint(path: Path | None = None) -> str:
    name = str(path) if path else "exercises/NN_topic.ipynb"
    return (f"To grade from a terminal instead: save the notebook, then run\n"
            f"    llmcourse grade {name}\n"
            f"(in a notebook cell: !llmcourse grade {name}).")


def _score(timeout: int) -> Report | str:
    if _in_colab():
        nb = _colab_notebook()
        if isinstance(nb, str):
            return (f"{nb}\nRun this cell again; if that does not help, download the notebook "
                    f"(File > Download > Download .ipynb) and grade it with "
                    f"`llmcourse grade` on your own machine.")
        if restore_grading_metadata(nb):
            _say("(Colab had dropped the exercise's cell metadata; it was matched back from the "
                 "exercise's source.)")
        # What the grader imports and Colab lacks, installed without dependencies: first what
        # is visibly missing, then anything the grader still reports missing.
        missing = [MAY_INSTALL[m] for m in MAY_INSTALL if _absent(m)]
        if missing and (problem := _pip_install(missing)):
            return problem
        _say("Grading a copy of this notebook in a fresh kernel, with the hidden tests ...")
        with tempfile.TemporaryDirectory(prefix="llmcourse-score-") as tmp:
            copy = Path(tmp) / "notebook.ipynb"
            copy.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
            for _ in range(len(MAY_INSTALL)):
                result = _grade_copy(copy, "this notebook, as open in Colab", source=None,
                                     timeout=timeout)
                module = _needs(result) if isinstance(result, str) else None
                if module is None or MAY_INSTALL.get(module) in (None, *missing):
                    break
                missing.append(MAY_INSTALL[module])
                if problem := _pip_install([MAY_INSTALL[module]]):
                    return problem
            if isinstance(result, str) and _needs(result):
                result += (" The score cell does not install it: it would replace part of this "
                           "runtime's own Jupyter.")
            return result

    path, note = _notebook_file()
    if path is None:
        return f"{note}\n{_cli_hint()}"
    saved = _save_in_jupyterlab(path) if (os.environ.get("JPY_SESSION_NAME")) else False
    mtime = time.strftime("%H:%M:%S", time.localtime(path.stat().st_mtime))
    if saved:
        _say(f"Saved {path.name}. Grading a copy of it in a fresh kernel, with the hidden tests ...")
    else:
        _say(f"Grading a copy of {path.name} as last saved (at {mtime}; save the notebook first "
             f"to include later changes) in a fresh kernel, with the hidden tests ...")
    from .notebooks import find_source

    source = find_source(path)
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve().parent))
    except ValueError:
        shown = path.name
    with tempfile.TemporaryDirectory(prefix="llmcourse-score-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        return _grade_copy(copy, shown, source=source, timeout=timeout)


def score_this_notebook(timeout: int = DEFAULT_TIMEOUT) -> None:
    """Grade the notebook this kernel runs, as it is open now, and print the score per part.

    ``timeout`` is the time each cell may run, in seconds. Nothing is returned and nothing raised:
    whatever happens, the learner reads a message, not a traceback.
    """
    if os.environ.get(GRADING_ENV):
        _say("(The grader is running this notebook: this cell does nothing here.)")
        return
    try:
        result = _score(timeout)
    except KeyboardInterrupt:
        _say("Grading was interrupted.")
        return
    except Exception as e:  # anything unforeseen: a message, with the way that always works
        result = f"The score cell failed ({type(e).__name__}: {e}).\n{_cli_hint()}"
    if isinstance(result, Report):
        _say("")
        _say(result.to_text())
    else:
        _say(f"Cannot grade this notebook here. {result}")

