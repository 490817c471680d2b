"""The website as readers see it: every page opened in headless Chromium.

The book is built once (the session's build), served from 127.0.0.1, and every page of the table
of contents is opened in Debian's Chromium through Selenium with the installed chromedriver (no
browser is ever downloaded). For every page: no console errors of our own, no traceback in any
output, every image loads, math renders, the table of contents links every chapter and exercise,
chapter and exercise pages have Binder, Colab and download buttons pointing at their notebook, and
widgets show their static figure without an error box. A full-page screenshot of every page, in the
light and the dark theme, goes to ``_build/screenshots/``. axe-core (pinned in package.json,
installed by the build's ``npm ci``) checks every page against the WCAG 2.1 A/AA rules in both
themes and fails on a critical or serious violation; the counts by rule are printed at the end.
Wide outputs must scroll with a drawn scrollbar, never be clipped.

Without a browser: every image has a real alt text (not empty, not a file name), the whole book is
one PDF linked from the landing page, and no internal link or anchor is broken.

Without Chromium these tests skip and say how to install it (`make test` installs it as root).
The link check and the page-weight report need no browser.
"""

from __future__ import annotations

import html.parser
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import CONFIG, ROOT, toc_docnames

pytestmark = pytest.mark.slow

REPO = CONFIG["repository"]["url"].removeprefix("https://github.com/")
BRANCH = CONFIG["repository"].get("branch", "main")
SCREENSHOTS = ROOT / "_build" / "screenshots"
REPORT: dict[str, dict] = {}


PAGES = toc_docnames()
NOTEBOOK_PAGES = [p for p in PAGES if p.startswith(("chapters/", "exercises/"))]


# ---------------------------------------------------------------------------------------------
# Driving the browser (the `site` and `browser` fixtures are in conftest.py)


def _open(driver, url: str) -> float:
    """Open a page, wait until it and its math are done; return the load time in ms."""
    driver.get(url)
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not finish loading")
        time.sleep(0.05)
    driver.set_script_timeout(30)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise) {"
        "  MathJax.startup.promise.then(() => done(true), () => done(false)); } else { done(true); }")
    return driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n ? n.loadEventEnd - n.startTime : 0;")


def _screenshot(driver, path: Path, chunk: int = 4000, limit: int = 60000) -> None:
    """A full-page screenshot, taken as a reader scrolls: viewport by viewport, stitched.

    (Chrome's own beyond-the-viewport capture leaves tall pages half painted.) Sticky headers are
    made static while capturing so they do not cover the content of every chunk.
    """
    import io

    from PIL import Image

    driver.execute_script(
        "const s = document.createElement('style'); s.id = 'shot-style';"
        "s.textContent = '.bd-header, .bd-header-article, .bd-sidebar-primary, "
        ".bd-sidebar-secondary {position: static !important; max-height: none !important}';"
        "document.head.appendChild(s);")
    width = 1280
    total = min(driver.execute_script("return document.documentElement.scrollHeight"), limit)
    view = min(total, chunk)
    driver.set_window_size(width, view)
    view = driver.execute_script("return window.innerHeight")
    page = Image.new("RGB", (width, total), "white")
    y = 0
    while y < total:
        driver.execute_script(f"window.scrollTo(0, {y})")
        time.sleep(0.15)
        top = driver.execute_script("return window.scrollY")
        shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        if shot.width != width:  # device pixel ratio other than 1
            shot = shot.resize((width, round(shot.height * width / shot.width)))
        page.paste(shot.crop((0, 0, width, min(view, total - top))), (0, top))
        y = top + view
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, optimize=True)
    driver.execute_script("document.getElementById('shot-style').remove(); window.scrollTo(0, 0)")
    driver.set_window_size(width, 900)


def _own_console_errors(driver, site: str) -> list[str]:
    errors = []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        message = entry["message"]
        urls = re.findall(r"https?://[^\s\"')]+", message)
        # errors about other hosts (a CDN the offline test machine cannot reach) are not ours
        if urls and not any(u.startswith(site) for u in urls):
            continue
        errors.append(message)
    return errors


# ---------------------------------------------------------------------------------------------
# Every page, in the browser


@pytest.mark.browser
@pytest.mark.parametrize("docname", PAGES)
def test_page_in_the_browser(browser, site, book, docname):
    url = f"{site}/{docname}.html"
    browser.get_log("browser")  # drop what earlier pages logged
    load_ms = _open(browser, url)
    REPORT.setdefault(docname, {})["load_ms"] = round(load_ms)

    assert browser.title and "404" not in browser.title
    assert _own_console_errors(browser, site) == []

    outputs = browser.execute_script(
        "return Array.from(document.querySelectorAll('.cell_output')).map(e => e.innerText)")
    for text in outputs:
        assert "Traceback (most recent call last)" not in text
        assert not re.search(r"^\w+Error: ", text, re.M), text[:300]
    assert browser.execute_script(
        "return document.querySelectorAll('.cell_output .traceback, .output.traceback').length") == 0
    page_text = browser.execute_script("return document.body.innerText")
    assert "Error displaying widget" not in page_text

    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src)")
    assert broken == [], f"images that did not load: {broken}"

    # math renders: every math element became MathJax output, with no TeX errors
    maths = browser.execute_script("return document.querySelectorAll('.math').length")
    if maths:
        rendered = browser.execute_script("return document.querySelectorAll('mjx-container').length")
        assert rendered >= maths, f"{maths} math elements, {rendered} rendered by MathJax"
        assert browser.execute_script("return document.querySelectorAll('mjx-merror').length") == 0

    # the table of contents links every chapter and exercise
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a')).map(a => a.href)")
    linked = {urllib.parse.urlparse(h).path.lstrip("/").removesuffix(".html") for h in links}
    for entry in NOTEBOOK_PAGES:
        assert entry in linked, f"the sidebar does not link {entry}"

    slug = docname.replace("/", "__")
    _screenshot(browser, SCREENSHOTS / f"{slug}-light.png")
    browser.execute_script("document.documentElement.dataset.theme = 'dark';"
                           "document.documentElement.dataset.mode = 'dark';")
    time.sleep(0.2)
    _screenshot(browser, SCREENSHOTS / f"{slug}-dark.png")
    browser.execute_script("document.documentElement.dataset.theme = 'light';"
                           "document.documentElement.dataset.mode = 'light';")


@pytest.mark.browser
@pytest.mark.parametrize("docname", NOTEBOOK_PAGES)
def test_launch_and_download_buttons_point_at_the_notebook(browser, site, docname):
    _open(browser, f"{site}/{docname}.html")
    hrefs = browser.execute_script(
        "return Array.from(document.querySelectorAll('.article-header-buttons a, "
        ".header-article-items a, .dropdown-launch-buttons a, .dropdown-download-buttons a'))"
        ".map(a => a.href)")
    path = f"{docname}.ipynb"
    binder = [h for h in hrefs if "mybinder.org" in h]
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    assert binder, f"no Binder button on {docname}"
    assert colab, f"no Colab button on {docname}"
    assert binder[0].startswith(f"https://mybinder.org/v2/gh/{REPO}/{BRANCH}?")
    assert urllib.parse.quote(path, safe="") in binder[0] or path in urllib.parse.unquote(binder[0])
    assert colab[0] == f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/{path}"
    downloads = [h for h in hrefs if h.endswith(f"_sources/{path}")]
    assert downloads, f"no .ipynb download button on {docname}: {hrefs}"
    # the download really serves the notebook


    with urllib.request.urlopen(downloads[0]) as response:
        nb = json.loads(response.read())
    assert nb["nbformat"] == 4 and nb["cells"]


@pytest.mark.browser
def test_widget_pages_show_a_static_figure_and_how_to_make_it_live(browser, site, book):
    widget_pages = []
    for docname in NOTEBOOK_PAGES:
        html = book.page(docname)
        if "application/vnd.jupyter.widget-view+json" in html:
            widget_pages.append(docname)
    for docname in widget_pages:
        _open(browser, f"{site}/{docname}.html")
        text = browser.execute_script("return document.body.innerText")
        assert "Error displaying widget" not in text
        assert re.search(r"Binder|Colab|JupyterLab", text)
        assert re.search(r"live", text, re.I), f"{docname} should say how to make the widget live"
        assert browser.execute_script("return document.images.length") > 0
    REPORT.setdefault("_widgets", {})["pages"] = widget_pages


# ---------------------------------------------------------------------------------------------
# Accessibility: axe-core (from npm, installed by the book build's `npm ci`) on every page

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
THEMES = ["light", "dark"]


def _set_theme(driver, theme: str) -> None:
    """Switch the theme as the theme's own button does: data-theme and data-mode on <html>."""
    driver.execute_script(
        f"document.documentElement.dataset.theme = '{theme}';"
        f"document.documentElement.dataset.mode = '{theme}';")
    time.sleep(0.3)  # let colour transitions finish before anything measures contrast


def _axe(driver) -> list[dict]:
    """Run axe-core's WCAG 2.1 A/AA rules on the open page; its violations, one dict per rule."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    driver.set_script_timeout(180)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(AXE_TAGS)}}}, "
        "resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({"
        "  id: v.id, impact: v.impact, help: v.help,"
        "  nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))"
        "}))), e => done({error: String(e)}));")
    if isinstance(result, dict):
        raise RuntimeError(f"axe-core did not run: {result['error']}")
    return result


@pytest.mark.browser
@pytest.mark.parametrize("docname", PAGES)
def test_accessibility_axe_core_in_light_and_dark(browser, site, docname):
    """0 critical and 0 serious WCAG 2.1 A/AA violations, in both themes; counts by rule."""
    if not AXE.is_file():
        pytest.skip(f"axe-core is not installed ({AXE} is missing): the book build installs it "
                    "with `npm ci` when npm is there (apt-get install nodejs npm)")
    _open(browser, f"{site}/{docname}.html")
    bad = []
    for theme in THEMES:
        _set_theme(browser, theme)
        violations = _axe(browser)
        counts = REPORT.setdefault("_axe", {}).setdefault(theme, {})
        for v in violations:
            entry = counts.setdefault(v["id"], {"impact": v["impact"], "nodes": 0, "pages": 0})
            entry["nodes"] += len(v["nodes"])
            entry["pages"] += 1
            if v["impact"] in ("critical", "serious"):
                first = v["nodes"][0]
                bad.append(f"{theme}: {v['id']} ({v['impact']}, {len(v['nodes'])} elements): "
                           f"{v['help']}; first: {first['target']}: {first['summary']}")
        print(f"axe-core {docname} {theme}: "
              + (", ".join(f"{v['id']} ({v['impact']}) {len(v['nodes'])}" for v in violations)
                 or "no violations"))
    _set_theme(browser, "light")
    assert bad == [], "\n".join(bad)


# ---------------------------------------------------------------------------------------------
# Nothing clipped: wide outputs scroll, with a scrollbar that is drawn

OUTPUT_WIDTH = 88  # characters of monospace output that fit the column


def _wide_output_lines(notebook: Path) -> list[str]:
    """Lines of text output (streams, plain-text results) longer than the column."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    wide = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                text = out["text"]
            elif "data" in out and set(out["data"]) == {"text/plain"}:
                text = out["data"]["text/plain"]
            else:
                continue
            text = "".join(text) if isinstance(text, list) else text
            wide += [line for line in text.splitlines() if len(line) > OUTPUT_WIDTH]
    return wide


@pytest.mark.browser
@pytest.mark.parametrize("docname", [p for p in NOTEBOOK_PAGES if p.startswith("chapters/")])
def test_wide_outputs_scroll_visibly_and_nothing_is_clipped(browser, site, book, docname):
    """Every output line longer than ~88 characters (read from the executed notebook) sits in
    an output that scrolls sideways and draws its scrollbar; no output box clips its content."""
    executed = book.html.parent / "jupyter_execute" / f"{docname}.ipynb"
    if not executed.is_file():
        pytest.skip(f"{executed} is not there: this build did not execute {docname}")
    wide = _wide_output_lines(executed)
    REPORT.setdefault("_wide_outputs", {})[docname] = len(wide)
    _open(browser, f"{site}/{docname}.html")
    boxes = browser.execute_script("""
        return Array.from(document.querySelectorAll('.cell_output *'))
          .filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0)
          .map(e => ({tag: e.tagName, text: e.innerText.slice(0, 80),
                      overflow: getComputedStyle(e).overflowX,
                      bar: getComputedStyle(e, '::-webkit-scrollbar').height}));""")
    clipped = [b for b in boxes if b["overflow"] in ("hidden", "clip")]
    assert clipped == [], f"outputs cut off at the column edge: {clipped[:5]}"
    scrolling = [b for b in boxes if b["overflow"] in ("auto", "scroll")]
    hidden_bar = [b for b in scrolling if b["bar"] in ("0px", "auto", "")]
    assert hidden_bar == [], f"outputs that scroll without a drawn scrollbar: {hidden_bar[:5]}"
    if wide:
        assert any(b["tag"] == "PRE" for b in scrolling), (
            f"{len(wide)} output lines are wider than {OUTPUT_WIDTH} characters, e.g. "
            f"{wide[0][:120]!r}, but no output of the page scrolls")


# ---------------------------------------------------------------------------------------------
# Alt texts (no browser needed)

_FILE_NAME = re.compile(r"^[\w./-]*\.(png|jpe?g|gif|svg|webp)$|^[0-9a-f]{16,}", re.I)


class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))


def test_every_figure_has_an_alt_text_that_says_what_it_shows(book):
    """No <img> on a page has an empty alt text or one that is a file name (Sphinx's default)."""
    bad, count, generic = [], 0, []
    for docname in PAGES:
        parser = _Images()
        parser.feed(book.page(docname))
        for img in parser.images:
            if img.get("role") == "presentation" or img.get("aria-hidden") == "true":
                continue  # decorative, and marked so
            count += 1
            alt = (img.get("alt") or "").strip()
            if not alt or _FILE_NAME.search(alt) or alt == img.get("src", "").rsplit("/", 1)[-1]:
                bad.append(f"{docname}: {img.get('src')} has alt {img.get('alt')!r}")
            elif alt.startswith("Figure without a title"):
                generic.append(f"{docname}: {img.get('src')}")
    REPORT.setdefault("_alt_texts", {}).update(
        {"images": count, "without_real_alt": len(bad), "generic": generic})
    assert bad == [], f"{len(bad)} of {count} images have no real alt text:\n" + "\n".join(bad[:40])


# ---------------------------------------------------------------------------------------------
# The whole book as one PDF (printed by Chromium in the build; no browser needed here)


def _pdf_pages(path: Path) -> int:
    try:
        from pypdf import PdfReader
    except ImportError:  # count the page objects in the file itself
        return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", path.read_bytes()))
    return len(PdfReader(path).pages)


def test_the_whole_book_is_one_pdf_linked_from_the_landing_page(book):
    from conftest import CHROMIUM

    pdf = book.html / "llmcourse-book.pdf"
    if CHROMIUM is None and not pdf.exists():
        pytest.skip("Chromium is not installed, so the build printed no PDF of the book")
    assert pdf.is_file(), f"the build did not print the book to {pdf} (see _build/build.log)"
    head = pdf.read_bytes()[:8]
    assert head.startswith(b"%PDF-"), f"{pdf} is not a PDF: it starts with {head!r}"
    pages = _pdf_pages(pdf)
    REPORT.setdefault("_pdf", {}).update({"pages": pages, "kb": pdf.stat().st_size // 1000})
    # every page of the site starts a new sheet, and the chapters take many more
    assert pages >= 2 * len(PAGES), f"{pages} PDF pages for {len(PAGES)} pages of the site"
    landing = book.page(toc_docnames()[0])
    assert 'href="llmcourse-book.pdf"' in landing, "the landing page does not link the PDF"


# ---------------------------------------------------------------------------------------------
# Links and page weight (no browser needed)


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") == "preload"):
                self.refs.append((tag, attrs[key]))


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_no_broken_internal_links_or_anchors(book):
    html_root = book.html
    pages = sorted(p for p in html_root.rglob("*.html") if "_static" not in p.parts)
    parsed = {p: _parse(p) for p in pages}
    broken, external = [], set()
    for page, links in parsed.items():
        for tag, ref in links.refs:
            url = urllib.parse.urlparse(ref)
            if url.scheme in ("http", "https", "mailto") or ref.startswith("//"):
                external.add(ref)
                continue
            if url.scheme in ("data", "javascript") or ref.startswith("#") and not url.fragment:
                continue
            target = page if not url.path else (page.parent / urllib.parse.unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(html_root)}: {ref} (no such file)")
                continue
            if url.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if url.fragment not in ids:
                    broken.append(f"{page.relative_to(html_root)}: {ref} (no anchor #{url.fragment})")
    (ROOT / "_build" / "external_links.txt").write_text("\n".join(sorted(external)) + "\n")
    assert broken == [], "\n".join(broken[:30])


def test_page_weight_is_reported_and_figures_are_compact(book):
    """Each page's HTML plus its own images (shared theme files excluded)."""
    weights = {}
    for docname in PAGES:
        page = book.html / f"{docname}.html"
        total = page.stat().st_size
        images = []
        for tag, ref in _parse(page).refs:
            if tag == "img" and not ref.startswith(("http", "data:")):
                img = (page.parent / urllib.parse.unquote(ref.split("#")[0])).resolve()
                if img.is_file() and "_static" not in img.parts:
                    images.append(img)
        for img in set(images):
            total += img.stat().st_size
            assert img.stat().st_size < 400_000, f"{img.name} is {img.stat().st_size // 1000} KB"
        weights[docname] = round(total / 1000)
        REPORT.setdefault(docname, {})["weight_kb"] = weights[docname]
    assert max(weights.values()) < 3000, weights  # 3 MB per page at most


def write_report():
    """Write what the browser suite measured for people to read (called from conftest)."""
    if not REPORT:
        return None
    out = ROOT / "_build" / "site_report.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(REPORT, indent=2, sort_keys=True) + "\n")
    return REPORT
