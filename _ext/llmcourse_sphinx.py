"""Sphinx extension for the llmcourse book.

* Adds the measured time to run to each chapter's "What you will learn" box. The time is the
  execution time of that notebook in the build that produced the page (the book executes every
  chapter on every build), so it is never typed by hand and never stale.
* Serves MathJax from the site itself (from the ``django-static-mathjax`` package, which is only
  MathJax 3's files, with no dependencies) rather than a CDN, so math renders offline too: for a
  reader of a local build, and in the browser tests. Without that package it keeps the CDN.
* Drops repeated inline scripts: sphinx-thebe and sphinx-togglebutton register theirs on each
  read, and Sphinx can only de-duplicate scripts with a file name, so a page got two copies of
  ``const THEBE_JS_URL = ...``, a console error ("already been declared") on every page.
* Puts the Playground's files into ``_static/playground/``: the shipped model exported to ONNX
  (``llmcourse.export_onnx``, redone only when the checkpoint or the exporter changed) and the
  few files of onnxruntime-web the page loads (from ``node_modules``, installed by ``npm ci``
  from the committed ``package.json`` and lockfile when missing; the same ``npm ci`` installs
  axe-core for the site tests). If npm or the exporter is not
  available, the book still builds; the page then says the model could not be loaded.
* Gives every notebook figure its alt text: ``llmcourse.plots.use_course_style`` stores one in
  each figure output's metadata (``{"image/png": {"alt": ...}}``), but myst-nb reads only width
  and height from there, so without this the page's ``<img alt=...>`` is the image's file name.
  An alt text set in the cell's own ``mystnb: image: alt`` metadata is kept.
* Accessibility fixes for the theme and myst-nb, checked by axe-core in the site tests: the
  templates in ``_ext/templates`` (the search field and the light/dark switch, whose accessible
  names differed from the text they show) come before the theme's own, and the "Show code cell
  source" toggle of hidden cells is named by its visible text, not "Toggle hidden content".
* Prints the whole book into one PDF for offline reading, ``llmcourse-book.pdf`` beside
  ``index.html``: every page's article, in the order of the table of contents, each from a new
  page, printed by the system's Chromium (``--print-to-pdf``; no tool that fetches a browser of
  its own). The landing page's "Working offline" section links it. Without Chromium there is no
  PDF and no link.
* Writes ``execution_times.json`` next to ``index.html``: per page, the runtime in seconds and
  whether it succeeded. The test suite reads it back and prints it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from docutils import nodes

BOX_TITLE = "What you will learn"


def _exec_data(env, docname):
    return getattr(env, "nb_metadata", {}).get(docname, {}).get("exec_data")


def _machine() -> str:
    return f"{os.cpu_count()} CPU cores, no GPU, Python {platform.python_version()}"


def add_runtime(app, doctree, docname):
    data = _exec_data(app.env, docname)
    if not data or data.get("runtime") is None:
        return
    for admonition in doctree.findall(nodes.admonition):
        titles = [t for t in admonition.children if isinstance(t, nodes.title)]
        if titles and titles[0].astext().strip() == BOX_TITLE:
            para = nodes.paragraph()
            para += nodes.strong(text="Time to run: ")
            para += nodes.Text(f"{data['runtime']:.0f} s, measured when this page was last built "
                               f"({_machine()}).")
            para["classes"].append("llmcourse-runtime")
            admonition += para
            return


def write_times(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    env = app.env
    times = {}
    for docname, meta in sorted(getattr(env, "nb_metadata", {}).items()):
        data = meta.get("exec_data")
        if data:
            times[docname] = {
                "runtime": data.get("runtime"),
                "succeeded": data.get("succeeded"),
                "method": data.get("method"),
                "error": data.get("error"),
            }
    Path(app.outdir, "execution_times.json").write_text(
        json.dumps({"machine": _machine(), "pages": times}, indent=2) + "\n", encoding="utf-8")


# The parts of MathJax's es5 build that a page uses: the combined component, its lazily loaded
# TeX extensions, fonts, menu and accessibility parts (the 4 MB speech engine is left out).
MATHJAX_PARTS = ["tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "adaptors"]


def _mathjax_dir() -> Path | None:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    return es5 if (es5 / "tex-mml-chtml.js").is_file() else None


def use_local_mathjax(app, config):
    if _mathjax_dir() is not None:
        config.mathjax_path = "mathjax/tex-mml-chtml.js"  # relative to _static


def copy_mathjax(app, exception):
    source = _mathjax_dir()
    if exception is not None or app.builder.format != "html" or source is None:
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src, dst = source / part, target / part
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", str(js)) or "",  # inline scripts: None or ""
               tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


# onnxruntime-web's WebAssembly build: the script, the module it imports and the binary it loads
ORT_FILES = ["ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]
ROOT = Path(__file__).resolve().parents[1]


# axe-core, the accessibility checker that the site tests (tests/test_site.py) run in Chromium
AXE_FILE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def _npm_files(log) -> Path | None:
    dist = ROOT / "node_modules" / "onnxruntime-web" / "dist"
    if not (all((dist / f).is_file() for f in ORT_FILES) and AXE_FILE.is_file()):
        npm = shutil.which("npm")
        if npm is None:
            log.info("[playground] npm is not installed: the Playground page will say the model "
                     "cannot be loaded (make book installs nodejs and npm)")
            return None
        proc = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                              cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            log.info(f"[playground] npm ci failed: {proc.stderr[-500:]}")
            return None
    return dist if all((dist / f).is_file() for f in ORT_FILES) else None


def _exported_model(log) -> Path | None:
    """The ONNX export, cached in _build/onnx and redone when its inputs change."""
    from hashlib import sha256

    cache = ROOT / "_build" / "onnx"
    key_parts = [ROOT / "llmcourse" / "export_onnx.py", ROOT / "llmcourse" / "gpt.py",
                 ROOT / "llmcourse" / "checkpoint.py",
                 ROOT / "llmcourse" / "attention.py",
                 ROOT / "llmcourse" / "checkpoints" / "shakespeare_char.safetensors"]
    key = sha256(b"".join(p.read_bytes() for p in key_parts if p.is_file())).hexdigest()
    stamp = cache / "key.txt"
    if stamp.is_file() and stamp.read_text() == key and (cache / "model.onnx").is_file():
        return cache
    proc = subprocess.run([sys.executable, "-m", "llmcourse.export_onnx", str(cache)], cwd=ROOT,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep
                               + os.environ.get("PYTHONPATH", "")})
    if proc.returncode != 0:
        log.info(f"[playground] the ONNX export failed: {proc.stderr[-800:]}")
        return None
    stamp.write_text(key)
    return cache


def copy_playground(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    target = Path(app.outdir) / "_static" / "playground"
    target.mkdir(parents=True, exist_ok=True)
    dist = _npm_files(log)
    model = _exported_model(log)
    if dist is None or model is None:
        return
    for f in ORT_FILES:
        shutil.copy2(dist / f, target / f)
    for f in ["model.onnx", "vocab.json", "meta.json"]:
        shutil.copy2(model / f, target / f)
    log.info(f"[playground] model and onnxruntime-web copied to {target}")


def _render_image_with_alt(render_image):
    def render(self, data):
        image_nodes = render_image(self, data)
        alt = data.output_metadata.get(data.mime_type, {}).get("alt")
        if isinstance(alt, str) and alt.strip():
            for node in image_nodes:
                if isinstance(node, nodes.image) and not node.get("alt"):
                    node["alt"] = " ".join(alt.split())
        return image_nodes

    render._llmcourse_alt = True
    return render


def use_output_alt_texts(app, config):
    from myst_nb.core.render import NbElementRenderer

    if not getattr(NbElementRenderer.render_image, "_llmcourse_alt", False):
        NbElementRenderer.render_image = _render_image_with_alt(NbElementRenderer.render_image)


TEMPLATES = Path(__file__).resolve().parent / "templates"


def use_own_templates(app, config):
    config.templates_path.insert(0, str(TEMPLATES))


def visit_hidden_cell(self, node):
    """myst-nb's visitor for a hidden cell, less the <summary>'s aria-label: its name is the
    prompt it shows ("Show code cell source"), as WCAG 2.5.3 (label in name) asks."""
    from html import escape

    classes = " ".join(node["classes"])
    self.body.append(f'<details class="admonition hide {classes}">\n<summary>\n')
    self.body.append(f'<p class="collapsed admonition-title">{escape(node["prompt_show"])}</p>\n')
    self.body.append(f'<p class="expanded admonition-title">{escape(node["prompt_hide"])}</p>\n')
    self.body.append("</summary>\n")


PDF_NAME = "llmcourse-book.pdf"
PDF_SECTION = "Working offline"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
                  "--virtual-time-budget=120000"]  # virtual time for MathJax to typeset first


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def add_pdf_link(app, doctree, docname):
    if docname != app.config.root_doc or app.builder.format != "html" or _chromium() is None:
        return
    para = nodes.paragraph()
    para += nodes.Text("To read the course without a computer to run it on, the whole book is also "
                       "one PDF: ")
    link = nodes.reference("", "", refuri=PDF_NAME, internal=False)
    link += nodes.Text(PDF_NAME)
    para += link
    para += nodes.Text(" (every chapter, exercise and page of this site, with its outputs, "
                       "as they were when the site was built).")
    para["classes"].append("llmcourse-pdf-link")
    for section in doctree.findall(nodes.section):
        titles = [t for t in section.children if isinstance(t, nodes.title)]
        if titles and titles[0].astext().strip() == PDF_SECTION:
            section += para
            return
    doctree += para


def _page_order(env) -> list[str]:
    """Every document in the order of the table of contents, the root first."""
    order, seen = [], set()

    def walk(doc):
        if doc in seen:
            return
        seen.add(doc)
        order.append(doc)
        for child in env.toctree_includes.get(doc, []):
            walk(child)

    walk(env.config.root_doc)
    return order


_ARTICLE = re.compile(r"<article class=\"bd-article\"[^>]*>(.*?)</article>", re.S)
_URL_ATTR = re.compile(r"""\b(src|href)=(["'])([^"']*)\2""")


def _relink(html: str, docname: str) -> str:
    """Make a page's relative links relative to the site's root, where the print file lies."""
    import posixpath

    folder = posixpath.dirname(docname)

    def fix(match):
        attr, quote, url = match.groups()
        if not url or url.startswith(("#", "/", "http:", "https:", "data:", "mailto:",
                                      "javascript:")):
            return match.group(0)
        return f"{attr}={quote}{posixpath.normpath(posixpath.join(folder, url))}{quote}"

    return _URL_ATTR.sub(fix, html)


def write_book_pdf(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    import tempfile
    from html import escape

    from sphinx.util import logging

    log = logging.getLogger(__name__)
    chromium = _chromium()
    if chromium is None:
        log.info("[pdf] Chromium is not installed: no PDF of the book (apt-get install chromium)")
        return
    out = Path(app.outdir)
    root = (out / f"{app.config.root_doc}.html").read_text(encoding="utf-8")
    title = escape(app.config.html_title or app.config.project)
    head = re.sub(r"<title>.*?</title>", f"<title>{title}</title>", root[: root.index("<body")],
                  count=1, flags=re.S)
    parts = []
    for docname in _page_order(app.env):
        page = out / f"{docname}.html"
        match = _ARTICLE.search(page.read_text(encoding="utf-8")) if page.is_file() else None
        if match:
            body = _relink(match.group(1), docname)
            parts.append(f'<div class="llmcourse-print-page">{body}</div>')
    # each page from a new sheet, its title shown (the theme hides a page's first h1 in print,
    # printing it apart), and code and outputs wrapped: a printed page cannot scroll
    style = ("<style>@page { size: A4; margin: 16mm 14mm; }"
             " .llmcourse-print-page + .llmcourse-print-page { break-before: page; }"
             " .bd-main .bd-content .bd-article h1:first-of-type { display: block !important; }"
             " .bd-article-container { max-width: none; }"
             " pre { white-space: pre-wrap !important; overflow-wrap: anywhere;"
             " overflow: visible !important; }</style>")
    printable = out / "_print_book.html"
    printable.write_text(head.replace("</head>", style + "</head>") + '<body data-theme="light">'
                         '<div class="bd-container"><main class="bd-main"><div class="bd-content">'
                         '<div class="bd-article-container"><article class="bd-article">'
                         + "\n".join(parts) + "</article></div></div></main></div></body></html>",
                         encoding="utf-8")
    pdf = out / PDF_NAME
    try:
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                   f"--print-to-pdf={pdf}", printable.as_uri()],
                                  capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        proc = None
    finally:
        printable.unlink()
    if proc is None or proc.returncode != 0 or not pdf.is_file():
        log.warning(f"[pdf] Chromium could not print the book to {pdf}: "
                    f"{'timed out' if proc is None else proc.stderr[-500:]}")
        return
    log.info(f"[pdf] the book ({len(parts)} pages of the site) printed to {pdf}, "
             f"{pdf.stat().st_size // 1000} KB")


def setup(app):
    app.setup_extension("myst_nb")
    from myst_nb.sphinx_ import HideCodeCellNode, depart_HideCellInput

    app.add_node(HideCodeCellNode, override=True, html=(visit_hidden_cell, depart_HideCellInput))
    app.connect("config-inited", use_own_templates)
    app.connect("config-inited", use_output_alt_texts)
    app.connect("build-finished", copy_playground)
    app.connect("html-page-context", dedupe_scripts)
    app.connect("config-inited", use_local_mathjax)
    app.connect("build-finished", copy_mathjax)
    app.connect("doctree-resolved", add_runtime)
    app.connect("doctree-resolved", add_pdf_link)
    app.connect("build-finished", write_book_pdf, priority=900)  # after MathJax is copied
    app.connect("build-finished", write_times)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
