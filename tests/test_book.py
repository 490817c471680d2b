"""The book builds with warnings as errors, and every chapter executes in it (once per session)."""

from __future__ import annotations

import re

import pytest

from conftest import CHAPTERS, ROOT

pytestmark = pytest.mark.slow


def _warnings(log: str) -> str:
    lines = [l for l in log.splitlines() if re.search(r"WARNING|ERROR|Traceback|Error:", l)]
    return "\n".join(lines[:40]) or log[-3000:]


def test_book_builds_with_warnings_as_errors(book):
    assert book.returncode == 0, f"jupyter-book build failed:\n{_warnings(book.log)}"
    assert (book.html / "index.html").is_file()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_executed_in_the_build(book, chapter):
    docname = f"chapters/{chapter.stem}"
    info = book.times.get("pages", {}).get(docname)
    assert info is not None, f"{docname} was not executed by the build"
    assert info["succeeded"], f"{docname} failed: {info.get('error')}"
    assert info["method"] == "force"  # executed in this build, never read from a cache
    html = book.page(docname)
    assert "Traceback (most recent call last)" not in html
    assert 'class="output traceback' not in html


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_shows_outputs_figures_and_run_time(book, chapter):
    html = book.page(f"chapters/{chapter.stem}")
    assert html.count('class="cell_output') >= 3, "expected executed outputs on the page"
    assert re.search(r'<img[^>]+src="[^"]*_images/[^"]+\.(png|svg)"', html), "expected a figure"
    assert "Time to run:" in html, "the 'What you will learn' box should show the measured time"


def test_exercise_pages_are_learner_versions_not_executed(book):
    for page in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")):
        html = book.page(f"exercises/{page.stem}")
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))  # code is split by highlighting
        assert "raise NotImplementedError" in text
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert 'class="cell_output' not in html, "exercise pages are shown unexecuted"
