"""Shared fixtures: paths, notebooks, and one build of the book per test session.

The book build is also the chapters' test run: it executes every chapter in a fresh kernel (the
book never caches execution), fails on any error or warning, and records each chapter's run time,
which the summary at the end of the test run prints. So each chapter runs once per `make test`.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
EXERCISE_SOURCES = sorted(p for p in (ROOT / "exercises" / "source").glob("*/*.ipynb")
                          if p.stem == p.parent.name)
LEARNER_VERSIONS = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_docnames() -> list[str]:
    """Every page of _toc.yml, the root first, in the order of the book."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", []))
    return names

# Like the Makefile: read the course data from ../shared/data when it is beside the checkout and
# nothing else was chosen, so running pytest directly works offline too.
if not os.environ.get("LLMCOURSE_DATA_DIR") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["LLMCOURSE_DATA_DIR"] = str(ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shakespeare() -> str:
    """Tiny Shakespeare: from the data folder when it is there, else through llmcourse.data."""
    path = Path(os.environ.get("LLMCOURSE_DATA_DIR", ROOT.parent / "shared" / "data"))
    path = path / "tinyshakespeare.txt"
    if not path.exists():
        from llmcourse.data import load_text

        return load_text("tinyshakespeare", progress=False)
    return path.read_text(encoding="utf-8")


@dataclass
class BookBuild:
    returncode: int
    log: str
    seconds: float
    html: Path
    times: dict

    def page(self, docname: str) -> str:
        return (self.html / f"{docname}.html").read_text(encoding="utf-8")


_BUILD: BookBuild | None = None


def build_book() -> BookBuild:
    """Build the book once per session with warnings as errors (like `make book`)."""
    global _BUILD
    prebuilt = os.environ.get("LLMCOURSE_PREBUILT_BOOK")
    if _BUILD is None and prebuilt:
        # A build made elsewhere (its _build folder), e.g. to rerun the site tests on it without
        # executing every chapter again; unset, the book is built here as `make book` does.
        out = Path(prebuilt)
        if not (out / "html" / "index.html").is_file():
            raise FileNotFoundError(f"LLMCOURSE_PREBUILT_BOOK={prebuilt} should be a book's _build "
                                    f"folder with html/index.html in it; there is none")
        log_file, times_file = out / "build.log", out / "html" / "execution_times.json"
        _BUILD = BookBuild(0, log_file.read_text() if log_file.exists() else "", 0.0,
                           out / "html",
                           json.loads(times_file.read_text()) if times_file.exists() else {})
    if _BUILD is None:
        out = ROOT / "_build"
        out.mkdir(exist_ok=True)
        start = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "jupyter-book"), "build", str(ROOT), "--all", "-W", "-n", "--keep-going"],
            cwd=ROOT, capture_output=True, text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"},
        )
        log = proc.stdout + proc.stderr
        (out / "build.log").write_text(log, encoding="utf-8")
        times_file = out / "html" / "execution_times.json"
        times = json.loads(times_file.read_text()) if times_file.exists() else {}
        _BUILD = BookBuild(proc.returncode, log, time.monotonic() - start, out / "html", times)
    return _BUILD


@pytest.fixture(scope="session")
def book() -> BookBuild:
    return build_book()


def pytest_terminal_summary(terminalreporter):
    _site_summary(terminalreporter)
    if _BUILD is None:
        return
    tr = terminalreporter
    tr.section("book build and chapter execution times")
    tr.write_line(f"book build: {_BUILD.seconds:.0f} s, exit status {_BUILD.returncode} "
                  f"(log: _build/build.log)")
    pages = _BUILD.times.get("pages", {})
    for docname, info in pages.items():
        ok = "ok" if info.get("succeeded") else f"FAILED ({info.get('error')})"
        tr.write_line(f"  {docname:<34} {info.get('runtime') or 0:6.1f} s  {ok}")
    if pages:
        tr.write_line(f"  machine: {_BUILD.times.get('machine')}")


def _site_summary(tr):
    module = sys.modules.get("test_site")
    report = module.write_report() if module else None  # also writes the JSON
    if not report:
        return
    pages = {k: v for k, v in report.items() if not k.startswith("_")}
    if not pages and not {"_playground", "_axe", "_alt_texts", "_pdf"} & set(report):
        return
    tr.section("website: load time and weight per page")
    for name, info in sorted(pages.items()):
        tr.write_line(f"  {name:<34} {info.get('load_ms', '-'):>6} ms  {info.get('weight_kb', '-'):>6} KB")
    timed = [(v["load_ms"], k) for k, v in pages.items() if "load_ms" in v]
    weighed = [(v["weight_kb"], k) for k, v in pages.items() if "weight_kb" in v]
    if timed:
        tr.write_line(f"  slowest page to load: {max(timed)[1]} ({max(timed)[0]} ms)")
    if weighed:
        tr.write_line(f"  heaviest page: {max(weighed)[1]} ({max(weighed)[0]} KB)")
    play = report.get("_playground", {})
    if "first_token_ms" in play:
        tr.write_line(f"  playground (model in the browser): {play.get('weight_kb')} KB with the "
                      f"model, model loaded in {play.get('model_load_ms')} ms, first token after "
                      f"{play['first_token_ms']} ms, "
                      f"{play['tokens_per_s']} tokens/s (uncached, whole window per token)")
    tr.write_line(f"  screenshots: {ROOT / '_build' / 'screenshots'}")
    for theme, rules in report.get("_axe", {}).items():
        counts = ", ".join(f"{rule} ({info['impact']}) {info['nodes']} on {info['pages']} pages"
                           for rule, info in sorted(rules.items())) or "no violations"
        tr.write_line(f"  axe-core, {theme} theme: {counts}")
    if "_pdf" in report:
        tr.write_line(f"  the book as one PDF: {report['_pdf']['pages']} pages, "
                      f"{report['_pdf']['kb']} KB")
    alts = report.get("_alt_texts")
    if alts:
        tr.write_line(f"  images: {alts['images']}, without a real alt text: "
                      f"{alts['without_real_alt']}, with only a generic one: {len(alts['generic'])}")


# ---------------------------------------------------------------------------------------------
# The built site served on 127.0.0.1, and headless Chromium (test_site.py, test_playground.py)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="session")
def site(book):
    assert book.returncode == 0, "the book did not build; see test_book.py"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium is not installed: run `apt-get install chromium chromium-driver` "
                    "(make test does this when run as root) to run the browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 "--hide-scrollbars", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
