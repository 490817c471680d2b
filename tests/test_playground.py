"""The Playground page in headless Chromium: the shipped model running in the browser.

The page runs ``model.onnx`` (exported by the book build with ``llmcourse.export_onnx``) with
onnxruntime-web from the site itself. Checked here: the page loads with no console errors and the
model loads; its logits for a fixed prompt equal PyTorch's to 1e-4; greedy generation in the page
writes the same 200 characters as ``llmcourse.sampling``'s greedy; its seeded sampling writes
text, the same text for the same seed; its sampling rules agree with ``llmcourse.sampling`` on
the probabilities. Time to the first token, tokens per second and the page weight go into the
site report (``_build/site_report.json``, printed in the test summary). Screenshots in the light
and dark theme go to ``_build/screenshots/playground-*.png``.

By default the session's book build is served. ``LLMCOURSE_SITE_DIR=path/to/html`` serves an
already built site instead (to check the page without executing every chapter).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
import time
from pathlib import Path

import pytest

import test_site
from test_site import REPORT, SCREENSHOTS, _own_console_errors, _screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PROMPT = "ROMEO:\nBut soft, what light"


@pytest.fixture(scope="module")
def pg_site(request):
    prebuilt = os.environ.get("LLMCOURSE_SITE_DIR")
    if not prebuilt:
        yield request.getfixturevalue("site"), Path(request.getfixturevalue("book").html)
        return

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=prebuilt))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Path(prebuilt)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page(browser, pg_site):  # noqa: F811
    url, html = pg_site
    browser.get_log("browser")
    browser.get(f"{url}/playground.html")
    browser.set_script_timeout(120)
    loaded = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const t = setInterval(() => { if (window.llmPlayground) { clearInterval(t);"
        "  window.llmPlayground.ready.then(done); } }, 50);")
    error = browser.execute_script("return window.llmPlayground.state.error")
    assert loaded, f"the model did not load in the page: {error}"
    weight = sum(f.stat().st_size for f in (html / "_static" / "playground").iterdir())
    weight += (html / "playground.html").stat().st_size + (html / "_static" / "playground.js").stat().st_size
    REPORT.setdefault("_playground", {})["weight_kb"] = round(weight / 1000)
    return browser, url


def _run(driver, js, *args):
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"Promise.resolve(({js})(...Array.from(arguments).slice(0, -1)))"
        ".then(done, e => done({error: String(e)}));", *args)


def test_page_loads_without_console_errors(page):
    driver, url = page
    assert _own_console_errors(driver, url) == []
    assert "could not be loaded" not in driver.find_element("id", "pg-status").text
    assert driver.find_element("id", "pg-generate").is_enabled()


def test_logits_in_the_page_equal_pytorch(page):
    import torch

    from llmcourse.checkpoint import load_pretrained

    driver, _ = page
    model, tok = load_pretrained()
    with torch.no_grad():
        expected = model(torch.tensor([tok.encode(PROMPT)]))[0, -1].tolist()
    got = _run(driver, "t => window.llmPlayground.logits(t)", PROMPT)
    assert not isinstance(got, dict), got
    assert len(got) == len(expected)
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-4


def test_greedy_200_characters_equal_llmcourse_sampling(page):
    from llmcourse.checkpoint import load_pretrained
    from llmcourse.sampling import generate

    driver, _ = page
    model, tok = load_pretrained()
    expected = tok.decode(generate(model, tok.encode(PROMPT), 200, greedy=True))
    got = _run(driver, "p => window.llmPlayground.generate({prompt: p, maxNewTokens: 200, "
                       "greedy: true})", PROMPT)
    assert got == expected
    stats = driver.execute_script("return window.llmPlayground.state.stats")
    REPORT["_playground"].update(model_load_ms=round(stats["load_ms"]),
                                 first_token_ms=round(stats["first_token_ms"]),
                                 tokens_per_s=round(stats["tokens_per_s"], 1))


def test_the_page_filters_like_llmcourse_sampling(page):
    import torch

    from llmcourse.sampling import next_token_probs

    driver, _ = page
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(65, generator=g) * 3).round(decimals=1)   # rounding makes ties
    for temperature, k, p in [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.6),
                              (0.9, 10, 0.8), (1.0, 1, None), (2.0, 65, 0.05)]:
        expected = next_token_probs(logits, temperature, k, p).tolist()
        got = _run(driver, "(l, t, k, p) => window.llmPlayground.nextTokenProbs(l, t, k, p)",
                   logits.tolist(), temperature, k, p)
        assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-12, (temperature, k, p)


def test_seeded_sampling_writes_text_and_repeats(page):
    driver, _ = page
    js = ("p => window.llmPlayground.generate({prompt: p, maxNewTokens: 60, temperature: 0.9, "
          "topK: 20, topP: 0.95, seed: 7})")
    first = _run(driver, js, PROMPT)
    again = _run(driver, js, PROMPT)
    assert isinstance(first, str) and len(first) == 60
    assert first == again


def test_generate_button_and_screenshots(page):
    driver, _ = page
    driver.find_element("id", "pg-length").clear()
    driver.find_element("id", "pg-length").send_keys("80")
    driver.find_element("id", "pg-generate").click()
    deadline = time.monotonic() + 120
    while not driver.find_element("id", "pg-status").text.startswith("Done"):
        assert time.monotonic() < deadline, driver.find_element("id", "pg-status").text
        time.sleep(0.2)
    new = driver.execute_script("return document.querySelector('#pg-output .pg-new').textContent")
    assert len(new) == 80
    assert len(driver.find_elements("css selector", "#pg-bars .pg-bar-row")) == 10
    _screenshot(driver, SCREENSHOTS / "playground-light.png")
    driver.execute_script("document.documentElement.dataset.theme = 'dark';"
                          "document.documentElement.dataset.mode = 'dark';")
    time.sleep(0.2)
    _screenshot(driver, SCREENSHOTS / "playground-dark.png")
    driver.execute_script("document.documentElement.dataset.theme = 'light';"
                          "document.documentElement.dataset.mode = 'light';")
    assert test_site.write_report()["_playground"]["weight_kb"] > 0


def test_without_the_model_the_page_says_so_and_shows_a_sample(browser, pg_site, tmp_path):  # noqa: F811
    """A site built without npm (no onnxruntime-web, no model): words and a static sample."""
    import shutil

    _, html = pg_site
    site = tmp_path / "html"
    site.mkdir()
    shutil.copy2(html / "playground.html", site / "playground.html")
    shutil.copytree(html / "_static", site / "_static",
                    ignore=lambda d, names: [n for n in names if n in ("playground", "mathjax")])

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/playground.html")
        browser.set_script_timeout(60)
        loaded = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const t = setInterval(() => { if (window.llmPlayground) { clearInterval(t);"
            "  window.llmPlayground.ready.then(done); } }, 50);")
        assert loaded is False
        status = browser.find_element("id", "pg-status").text
        assert "could not be loaded" in status
        sample = browser.find_element("id", "pg-static")
        assert sample.is_displayed() and "ROMEO:" in sample.text
        assert not browser.find_element("id", "pg-generate").is_enabled()
    finally:
        server.shutdown()
        server.server_close()
