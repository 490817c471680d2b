"""Alt texts: what a figure shows, in words, for readers of the website who cannot see it.

:func:`figure_alt_text` describes a matplotlib figure from what it holds: its titles, the axis
labels, text tick labels, the legend, a colour bar's label, and how many lines, bars, points or
images it draws. A figure with an explicit ``fig.alt_text`` keeps that. :func:`install_alt_text_hook`
(called by :func:`llmcourse.style.use_course_style` in a notebook) puts the text into the
metadata of every figure output, and the book's Sphinx extension writes it into ``<img alt>``.
"""

from __future__ import annotations

#: The longest alt text :func:`figure_alt_text` writes (screen readers read it all at once).
ALT_TEXT_LIMIT = 600
_FIGURE_MIMES = ("image/png", "image/svg+xml", "image/jpeg")
_HOOKED = "_llmcourse_alt_text_hook"
_LABELLED = ("x axis:", "y axis:", "legend:", "shows ")


def _clean(text) -> str:
    """Matplotlib text as a reader hears it: mathtext's $ and backslashes dropped, one line."""
    import re

    text = str(text or "").replace("$", "").replace("\\mathdefault", "")
    text = re.sub(r"\\([A-Za-z]+)", r"\1", text)
    text = text.replace("\\", "").replace("{", "").replace("}", "")
    return " ".join(text.split())


def _is_number(text: str) -> bool:
    """A tick label that is only a number: 0.5, -1, 1e-3, 10^-2, 2×10^3, 50%."""
    import re

    text = text.replace(" ", "")
    return any(c.isdigit() for c in text) and re.fullmatch(
        r"[-+−]?([\d.,]+(e[-+−]?\d+)?)?([×x]?10\^[-+−]?\d+)?%?", text) is not None


def _axes_parts(ax) -> list[str]:
    """What one panel shows: title, axis labels, categorical ticks, legend entries, marks."""
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer

    parts = []
    title = "; ".join(t for t in (_clean(ax.get_title(loc)) for loc in ("left", "center", "right"))
                      if t)
    if title:
        parts.append(title)
    for name, label, ticks in (("x axis", ax.get_xlabel(), ax.get_xticklabels()),
                               ("y axis", ax.get_ylabel(), ax.get_yticklabels())):
        label = _clean(label)
        words = [w for w in (_clean(t.get_text()) for t in ticks) if w]
        if words and not all(_is_number(w) for w in words):
            shown = ", ".join(words[:8]) + (f" and {len(words) - 8} more" if len(words) > 8 else "")
            label = f"{label} ({shown})" if label else shown
        if label:
            parts.append(f"{name}: {label}")
    legend = ax.get_legend()
    entries = [_clean(t.get_text()) for t in legend.get_texts()] if legend is not None else []
    entries = [e for e in entries if e]
    if entries:
        parts.append("legend: " + ", ".join(entries))
    marks = []
    # lines drawn in data coordinates: not axhline/axvline rules, which span the axes
    lines = [ln for ln in ax.get_lines()
             if ln.get_visible() and ln.get_transform() is ax.transData]
    bars = sum(len(c) for c in ax.containers if isinstance(c, BarContainer))
    points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    for count, one, many in ((len(lines), "line", "lines"), (bars, "bar", "bars"),
                             (points, "point", "points"), (len(ax.get_images()), "image", "images")):
        if count:
            marks.append(f"{count} {one if count == 1 else many}")
    if marks:
        parts.append("shows " + ", ".join(marks))
    return parts


def figure_alt_text(fig) -> str:
    """An alt text for ``fig``: ``fig.alt_text`` when set, else one built from the figure.

    The built text names the figure's title, then each panel's title, axis labels, text ticks,
    legend entries and marks (lines, bars, points, images), and any colour bar's label, e.g.
    ``"Figure: Loss. x axis: step; y axis: loss; legend: train, test; shows 2 lines"``.
    """
    explicit = getattr(fig, "alt_text", None)
    if explicit is not None:
        if not isinstance(explicit, str) or not explicit.strip():
            raise ValueError(f"fig.alt_text must be a non-empty string, got {explicit!r}")
        return explicit.strip()
    head = _clean(fig._suptitle.get_text()) if getattr(fig, "_suptitle", None) else ""
    legends = [_clean(t.get_text()) for lg in getattr(fig, "legends", []) for t in lg.get_texts()]
    panels, scales = [], []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        if hasattr(ax, "_colorbar"):  # a colour bar: its label says what the colours mean
            label = _clean(ax.get_ylabel() or ax.get_xlabel())
            if label:
                scales.append(label)
            continue
        panels.append(_axes_parts(ax))
    if len(panels) == 1 and panels[0] and not head and not panels[0][0].startswith(_LABELLED):
        head = panels[0].pop(0)  # a single panel's title is the figure's title
    if len(panels) == 1:
        body = "; ".join(panels[0])
    elif len(panels) > 4 and all(p and not p[0].startswith(_LABELLED) for p in panels):
        # many titled panels (a grid of examples): their titles, and what they share
        shared = [part for part in panels[0][1:] if all(part in p for p in panels)]
        body = f"{len(panels)} panels: " + ", ".join(p[0] for p in panels)
        body += "".join(f"; each {part}" for part in shared)
    else:
        runs: list[list] = []  # neighbouring panels that read the same are named once
        for k, p in enumerate(panels, 1):
            if runs and runs[-1][2] == p:
                runs[-1][1] = k
            else:
                runs.append([k, k, p])
        body = " ".join(f"Panel {a}: {'; '.join(p)}." if a == b else
                        f"Panels {a} to {b}: {'; '.join(p)}." for a, b, p in runs if p)
        if len(panels) > 1 and not body:
            body = f"{len(panels)} panels"
    text = "Figure" + (f": {head}." if head else ".")
    for extra in (body, "legend: " + ", ".join(e for e in legends if e) if any(legends) else "",
                  "colour scale: " + ", ".join(scales) if scales else ""):
        if extra:
            text += " " + extra.rstrip(".") + "."
    if text == "Figure.":
        text = "Figure without a title or axis labels."
    if len(text) > ALT_TEXT_LIMIT:
        text = text[: ALT_TEXT_LIMIT - 1].rstrip() + "\u2026"
    return text


def _alt_metadata(fig, mimes=_FIGURE_MIMES) -> dict:
    try:
        alt = figure_alt_text(fig)
    except ValueError:
        raise
    except Exception:  # a figure we cannot read must never stop it from being shown
        return {}
    return {mime: {"alt": alt} for mime in mimes}


def install_alt_text_hook(ip=None) -> bool:
    """Give every figure shown in IPython an alt text in its output metadata; idempotent.

    Two places, so that no path misses it: the inline backend's ``_fetch_figure_metadata`` (used
    by ``plt.show()`` and the automatic display at the end of a cell) and IPython's PNG/SVG/JPEG
    formatters for ``Figure`` (used by ``display(fig)``). Returns False (and does nothing) outside
    IPython or without ``matplotlib_inline``.
    """
    if ip is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        ip = get_ipython()
    formatter = getattr(ip, "display_formatter", None)
    if formatter is None:
        return False
    try:
        from matplotlib_inline import backend_inline
    except ImportError:
        return False
    from matplotlib.figure import Figure

    fetch = backend_inline._fetch_figure_metadata
    if not getattr(fetch, _HOOKED, False):
        def fetch_with_alt(fig, _fetch=fetch):
            metadata = dict(_fetch(fig) or {})
            formats = getattr(backend_inline.InlineBackend.instance(), "figure_formats", ())
            mimes = [m for m in _FIGURE_MIMES if m.split("/")[1].split("+")[0] in
                     {"jpeg" if f == "jpg" else "png" if f == "retina" else f for f in formats}]
            for mime, extra in _alt_metadata(fig, mimes or ("image/png",)).items():
                metadata[mime] = {**metadata.get(mime, {}), **extra}
            return metadata or None

        setattr(fetch_with_alt, _HOOKED, True)
        backend_inline._fetch_figure_metadata = fetch_with_alt
    for mime in _FIGURE_MIMES:
        fmt = formatter.formatters.get(mime)
        if fmt is None:
            continue
        try:
            current = fmt.lookup_by_type(Figure)
        except KeyError:
            continue
        if getattr(current, _HOOKED, False):
            continue

        def format_with_alt(fig, *args, _format=current, _mime=mime, **kwargs):
            data = _format(fig, *args, **kwargs)
            if data is None or isinstance(data, tuple):
                return data
            return data, _alt_metadata(fig, (_mime,)).get(_mime)

        setattr(format_with_alt, _HOOKED, True)
        fmt.for_type(Figure, format_with_alt)
    return True
