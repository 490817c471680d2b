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
* Writes ``execution_times.json`` next to ``index.html``: per page, the runtime in seconds and
  whether it succeeded. The test suite reads it back and prints it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
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
    app.connect("build-finished", write_times)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
