"""The score cell in a real JupyterLab, as learners get it from `make lab` and Binder.

A JupyterLab server runs with the learners' configuration (``binder/learner``, which `make lab` and
Binder's ``binder/start`` use) on a copy of exercise 0 with one part right, one wrong and the rest
unfinished. Headless Chromium opens the notebook; the test then changes one more answer in the page
**without saving** and runs the last cell, as a learner would. The cell must save the notebook
itself, grade a copy and print the same table as ``llmcourse grade`` on the saved file, with the
unsaved answer counted. The learner's JupyterLab must not show nbgrader's instructor panels.

Skips without Chromium (see test_site.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from conftest import BIN, ROOT
from test_score import EXERCISE, cli_report, learner_notebook, table

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = ROOT / "_build" / "screenshots"
NBGRADER_PLUGINS = ["formgrader", "create-assignment", "assignment-list", "course-list",
                    "validate-assignment", "menu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server with the learners' configuration, serving a folder with exercise 0."""
    root = tmp_path_factory.mktemp("lab")
    (root / "exercises").mkdir()
    nbformat.write(learner_notebook(), root / "exercises" / f"{EXERCISE}.ipynb")
    port = _free_port()
    env = {**os.environ,
           "JUPYTER_CONFIG_PATH": str(ROOT / "binder" / "learner"),  # what make lab / Binder use
           "JUPYTER_CONFIG_DIR": str(root / ".jupyter-user"),
           "JUPYTER_RUNTIME_DIR": str(root / ".jupyter-runtime"),
           "PYTHONPATH": str(ROOT),
           # on a loaded test machine the page may take longer than a learner's to save
           "LLMCOURSE_SAVE_TIMEOUT": "120"}
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900  # a busy machine starts JupyterLab slowly
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=5)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + (root / "server.log").read_text())
            time.sleep(1)
    yield {"url": url, "root": root}
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium is not installed: run `apt-get install chromium chromium-driver`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-lab')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    config = getattr(driver.command_executor, "_client_config", None)
    if config is not None:  # JupyterLab loads slowly on a busy machine: wait for it
        config.timeout = 600
    driver.set_page_load_timeout(300)
    driver.set_script_timeout(300)
    yield driver
    driver.quit()


def _wait_for(driver, script: str, what: str, timeout: float = 300, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


UNSAVED = "# typed in the page, not saved yet"
PANEL = "const w = window.jupyterapp && jupyterapp.shell.currentWidget;"


def test_last_cell_grades_the_open_notebook_in_jupyterlab(lab, chromium):
    driver = chromium
    path = lab["root"] / "exercises" / f"{EXERCISE}.ipynb"
    driver.get(f"{lab['url']}/lab/tree/exercises/{EXERCISE}.ipynb")
    _wait_for(driver, PANEL + "return w && w.content && w.content.widgets && "
              "w.content.widgets.length > 10 && w.sessionContext && w.sessionContext.session && "
              "w.sessionContext.session.kernel && "
              "w.sessionContext.session.kernel.status === 'idle';",
              "the notebook and its kernel")

    # nbgrader's panels are not there for learners
    loaded = driver.execute_script(
        "return arguments[0].map(p => jupyterapp.hasPlugin('@jupyter/nbgrader:' + p));",
        NBGRADER_PLUGINS)
    assert loaded == [False] * len(NBGRADER_PLUGINS), dict(zip(NBGRADER_PLUGINS, loaded))
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{lab['url']}/formgrader", timeout=30)

    # an answer typed in the page but not saved: part 3, right
    source = nbformat.read(ROOT / "exercises" / "source" / EXERCISE / f"{EXERCISE}.ipynb", 4)
    part3 = next(c for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("grade_id") == "most_likely_next")
    changed = driver.execute_script(PANEL + """
        const cell = w.content.widgets.find(
            c => (c.model.getMetadata('nbgrader') || {}).grade_id === 'most_likely_next');
        cell.model.sharedModel.setSource(arguments[0]);
        return w.context.model.dirty;""", part3.source + "\n" + UNSAVED)
    assert changed, "the edit should leave the notebook unsaved"
    assert UNSAVED not in path.read_text(), "the file on disk does not have it yet"

    # run the last cell, as a learner does
    driver.execute_script(PANEL + """
        w.content.activeCellIndex = w.content.widgets.length - 1;
        jupyterapp.commands.execute('notebook:run-cell');""")
    text = _wait_for(driver, PANEL + """
        const cell = w.content.widgets[w.content.widgets.length - 1];
        const out = cell.outputArea.model.toJSON();
        const text = out.map(o => o.text ? [].concat(o.text).join('') : '').join('');
        return /total|Cannot grade/.test(text) && w.sessionContext.session.kernel.status === 'idle'
            ? text : null;""", "the score table", timeout=900, every=2)
    print(text)  # what the learner sees
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script(PANEL + "w.content.widgets[w.content.widgets.length - 1].node"
                          ".scrollIntoView();")
    driver.save_screenshot(str(SHOTS / "score-cell-jupyterlab.png"))

    html = driver.execute_script(PANEL + "return w.content.widgets[w.content.widgets.length - 1]"
                                 ".outputArea.node.innerHTML;")
    assert text.startswith(f"Saved {EXERCISE}.ipynb."), (text, html[:2000])
    assert f"Grading exercises/{EXERCISE}.ipynb (exercise {EXERCISE})" in text
    assert UNSAVED in path.read_text(), "the cell saved the notebook first"
    rows = {l.split()[0]: l for l in table(text)[1:] if l.strip()}
    assert rows["test_next_char_counts"].split()[1:4] == ["3", "/", "3"]
    assert "FAIL" in rows["test_to_probabilities"]
    assert rows["test_most_likely_next"].split()[1:4] == ["2", "/", "2"], "the unsaved answer"
    assert "not done yet" in rows["test_longest_copied"]
    assert table(text) == table(cli_report(path))
