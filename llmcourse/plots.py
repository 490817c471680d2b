"""The course figure style and shared plotting helpers.

Figures are read on the book's light and dark themes. Rather than guess the reader's theme, every
figure is drawn on a light "card": an opaque near-white background with dark text and the
colour-blind-safe Okabe-Ito palette. On the light theme the card blends in; on the dark theme it
reads as a printed figure, and the text stays legible on both. Figures are saved as compact PNGs at
a moderate resolution to keep pages light.

Call :func:`use_course_style` once near the top of a notebook.
"""

from __future__ import annotations

import matplotlib as mpl
from cycler import cycler

#: Okabe & Ito's palette, distinguishable by readers with colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

COURSE_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "#fcfcfc",
    "axes.facecolor": "#fcfcfc",
    "savefig.facecolor": "#fcfcfc",
    "figure.edgecolor": "#fcfcfc",
    "axes.edgecolor": "#444444",
    "axes.labelcolor": "#222222",
    "axes.titlecolor": "#222222",
    "text.color": "#222222",
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "font.size": 10,
    "legend.frameon": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "image.cmap": "viridis",
    "figure.constrained_layout.use": True,
}


def use_course_style() -> None:
    """Apply the course's matplotlib style (and, in a notebook, PNG output with alt texts).

    In IPython, every figure the inline backend shows (and every ``display(fig)``) also carries an
    alt text in its output metadata (``{"image/png": {"alt": ...}}``), which the book's Sphinx
    extension puts into the page's ``<img alt=...>``: ``fig.alt_text`` when the figure has one,
    else :func:`figure_alt_text`, built from the figure's titles, axis labels and legend.
    Outside IPython only the style is applied.
    """
    mpl.rcParams.update(COURSE_STYLE)
    try:  # in a notebook: inline PNGs, which are smaller than retina images
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None and hasattr(ip, "run_line_magic"):
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("png")
            install_alt_text_hook(ip)
    except ImportError:  # plain Python: nothing to configure
        pass


# --- Alt texts: what a figure shows, for readers of the website who cannot see it --------------

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


# --- Chapter 1: the 3x3 pixel display and its network --------------------------------------------

def draw_display(ax, display, title: str | None = None) -> None:
    """Draw one 3x3 display on ``ax``: -1 black, +1 white, values in between grey.

    A thin grey grid marks the pixels, so white pixels stay visible on the light figure card.
    """
    from .pixels import as_displays

    x = as_displays(display)[0][0].reshape(3, 3)
    ax.imshow(x, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    for k in range(4):
        ax.axhline(k - 0.5, color="#888888", lw=1)
        ax.axvline(k - 0.5, color="#888888", lw=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.set_xlim(-0.5, 2.5)
    ax.set_ylim(2.5, -0.5)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title is not None:
        ax.set_title(title, fontsize=10)


def plot_displays(displays, titles=None, ncols: int | None = None, size: float = 1.5):
    """A row (or grid) of 3x3 displays with optional titles. Returns the figure."""
    import matplotlib.pyplot as plt

    from .pixels import as_displays

    x = as_displays(displays)[0]
    n = len(x)
    ncols = ncols or n
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            draw_display(ax, x[i], None if titles is None else titles[i])
        else:
            ax.set_visible(False)
    return fig


def plot_network(net, ax=None, input_labels=None, output_labels=None, title: str | None = None):
    """A diagram of a fully connected network's neurons and weights.

    ``net`` has ``params`` ``W1, W2, ...`` of shape (inputs, outputs), like
    :class:`llmcourse.pixels.PixelNet`. Each line is one weight: its width grows with the size of
    the weight, blue for positive and vermilion for negative. Returns the figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    weights = [np.asarray(net.params[f"W{i}"]) for i in range(1, 10) if f"W{i}" in net.params]
    sizes = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.8, 4.3))
    else:
        fig = ax.figure
    tallest = max(sizes)

    def ys(n):  # a layer's neurons, one unit apart, centred on the tallest layer
        return (tallest - 1) / 2 + (n - 1) / 2 - np.arange(n)

    xs = np.arange(len(sizes)) * 3.0
    pos = [ys(n) for n in sizes]
    biggest = max(float(np.abs(W).max()) for W in weights) or 1.0
    background = np.array(mpl.colors.to_rgb(mpl.rcParams["axes.facecolor"]))
    lines = []
    for layer, W in enumerate(weights):
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                w = W[i, j] / biggest
                # opaque colours, paler for small weights (no transparency keeps the PNG small)
                strength = 0.3 + 0.7 * abs(w)
                rgb = np.array(mpl.colors.to_rgb(PALETTE[0] if w > 0 else PALETTE[3]))
                lines.append((abs(w), [xs[layer], xs[layer + 1]],
                              [pos[layer][i], pos[layer + 1][j]],
                              strength * rgb + (1 - strength) * background, 0.3 + 2.7 * abs(w)))
    for _, x_pair, y_pair, colour, width in sorted(lines, key=lambda t: t[0]):  # big on top
        ax.plot(x_pair, y_pair, color=colour, lw=width, zorder=1, solid_capstyle="round")
    names = ["input\n(pixels)"] + [f"hidden {k}\n(tanh)" for k in range(1, len(sizes) - 1)] + [
        "output\n(softmax)"]
    for layer, (x, y) in enumerate(zip(xs, pos)):
        ax.scatter(np.full(len(y), x), y, s=260, color="#ffffff", edgecolor="#333333",
                   linewidth=1.2, zorder=3)
        ax.text(x, tallest - 0.2, names[layer], ha="center", va="bottom", fontsize=10)
    input_labels = input_labels or [f"pixel {i + 1}" for i in range(sizes[0])]
    for y, lab in zip(pos[0], input_labels):
        ax.text(xs[0] - 0.35, y, lab, ha="right", va="center", fontsize=9)
    if output_labels is not None:
        for y, lab in zip(pos[-1], output_labels):
            ax.text(xs[-1] + 0.35, y, lab, ha="left", va="center", fontsize=9)
    ax.plot([], [], color=PALETTE[0], lw=2.5, label="positive weight")
    ax.plot([], [], color=PALETTE[3], lw=2.5, label="negative weight")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=9)
    ax.set_xlim(xs[0] - 1.6, xs[-1] + 1.9)
    ax.set_ylim(-0.9, tallest + 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return fig


def plot_confusion_matrix(counts, names, ax=None, title: str = "Confusion matrix"):
    """Counts ``counts[i, j]`` of examples of class ``i`` predicted as ``j``, as a labelled grid."""
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(counts)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.8, 4.0))
    else:
        fig = ax.figure
    ax.imshow(counts, cmap="Blues")
    ax.grid(False)
    top = counts.max() if counts.size else 1
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                    color="white" if counts[i, j] > 0.6 * top else "#222222")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("the network says")
    ax.set_ylabel("the display shows")
    ax.set_title(title)
    return fig


def plot_display_probabilities(displays, probs, names, titles=None):
    """Each display above a bar chart of the probabilities a network gives it."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .pixels import as_displays

    x = as_displays(displays)[0]
    probs = np.asarray(probs, dtype=float).reshape(len(x), -1)
    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(1.75 * n + 0.6, 4.0),
                             gridspec_kw={"height_ratios": [1, 1.3]}, squeeze=False)
    for k in range(n):
        draw_display(axes[0, k], x[k], None if titles is None else titles[k])
        ax = axes[1, k]
        best = int(np.argmax(probs[k]))
        colors = [PALETTE[2] if i == best else PALETTE[5] for i in range(len(names))]
        ax.barh(range(len(names)), probs[k], color=colors)
        ax.set_xlim(0, 1)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_yticks(range(len(names)), names if k == 0 else [""] * len(names))
        ax.set_xticks([0, 0.5, 1])
        ax.set_xlabel("probability")
        ax.grid(axis="y", visible=False)
    return fig


def plot_computation_graph(nodes, edges, ax=None, title: str | None = None):
    """Draw a small computation graph: one box per value, an arrow from each input to its use.

    ``nodes`` maps a name to ``(x, y, formula, value, grad)``: where to put the box, how the value
    is computed (``"z = a1 + a2 + b"``, or just the name for an input), its value from the forward
    pass and its gradient ``dL/d(name)`` from the backward pass (``None`` to leave it out).
    ``edges`` lists ``(input, output)`` name pairs. Values are written in dark grey and gradients in
    the palette's vermilion, so the forward pass reads left to right and the backward pass right
    to left. Chapter 1 draws one neuron with it.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    for name, node in nodes.items():
        if len(node) != 5:
            raise ValueError(f"node {name!r} must be (x, y, formula, value, grad), got {node!r}")
    for a, b in edges:
        if a not in nodes or b not in nodes:
            missing = a if a not in nodes else b
            raise ValueError(f"edge ({a!r}, {b!r}) names a node that is not in nodes: {missing!r}")
    if ax is None:
        xs = [n[0] for n in nodes.values()]
        ys = [n[1] for n in nodes.values()]
        fig, ax = plt.subplots(figsize=(1.3 * (max(xs) - min(xs) + 1.4),
                                        1.0 * (max(ys) - min(ys) + 1.2)))
    else:
        fig = ax.figure
    width, height = 1.2, 0.62
    for a, b in edges:
        (xa, ya), (xb, yb) = nodes[a][:2], nodes[b][:2]
        ax.add_patch(FancyArrowPatch((xa + width / 2, ya), (xb - width / 2, yb),
                                     arrowstyle="-|>", mutation_scale=11, color="#777777",
                                     shrinkA=1, shrinkB=1, zorder=1))
    for name, (x, y, formula, value, grad) in nodes.items():
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor="#ffffff", edgecolor=PALETTE[0], linewidth=1.2,
                                    zorder=2))
        lines = [(formula, "#222222", "bold"), (f"value {value:.3f}", "#444444", "normal")]
        if grad is not None:
            lines.append((f"grad {grad:.3f}", PALETTE[3], "normal"))
        top = y + 0.17 * (len(lines) - 1) / 2
        for k, (text, colour, weight) in enumerate(lines):
            ax.text(x, top - 0.17 * k, text, ha="center", va="center", fontsize=8.5,
                    color=colour, fontweight=weight, zorder=3)
    xs = [n[0] for n in nodes.values()]
    ys = [n[1] for n in nodes.values()]
    ax.set(xlim=(min(xs) - 0.7, max(xs) + 0.7), ylim=(min(ys) - 0.5, max(ys) + 0.5))
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return fig


def show_compact(fig=None) -> None:
    """Show a figure in a notebook as PNG or SVG, whichever file is smaller.

    Line-heavy diagrams (such as :func:`plot_network`'s 168 connections) are several times
    smaller as SVG, while images and heatmaps are smaller as PNG. This keeps the website's pages
    light without choosing by hand. The figure is closed afterwards. Like every figure the
    course shows, it carries its alt text (:func:`figure_alt_text`) in the output's metadata.
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import SVG, Image, display

    fig = fig if fig is not None else plt.gcf()
    alt = figure_alt_text(fig)
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png")
    fig.savefig(svg, format="svg")
    plt.close(fig)
    if len(svg.getvalue()) < len(png.getvalue()):
        display(SVG(svg.getvalue()), metadata={"image/svg+xml": {"alt": alt}})
    else:
        display(Image(png.getvalue()), metadata={"image/png": {"alt": alt}})


# --- Chapter 4: labels on a map of words ---------------------------------------------------------

def label_points(ax, points, labels, colors=None, fontsize: int = 9):
    """Write ``labels`` beside ``points`` (``(n, 2)`` data coordinates) so that no two overlap.

    Each label tries a few places around its point (right above, right below, left above, ...)
    and takes the first whose box meets no label placed before it; when none is free it keeps
    the first. Returns the text objects, in the order of ``labels``.
    """
    import numpy as np

    xy = np.asarray(points, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(labels):
        raise ValueError(f"points must have shape (len(labels), 2) = ({len(labels)}, 2), got "
                         f"{xy.shape}")
    colors = [None] * len(labels) if colors is None else list(colors)
    renderer = ax.figure.canvas.get_renderer()
    places = [(3, 3), (3, -11), (-3, 3), (-3, -11), (3, 13), (-3, 13), (3, -21), (-3, -21)]
    placed, texts = [], []
    for (x, y), label, color in zip(xy, labels, colors):
        for dx, dy in places:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points",
                               ha="left" if dx > 0 else "right", fontsize=fontsize,
                               color=color, fontweight="bold")
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            text.remove()
        else:
            dx, dy = places[0]
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points",
                               ha="left", fontsize=fontsize, color=color, fontweight="bold")
            box = text.get_window_extent(renderer)
        placed.append(box)
        texts.append(text)
    return texts


# --- Chapter 5: attention weights -----------------------------------------------------------------

def plot_attention(weights, queries, keys=None, ax=None, title: str | None = None,
                   colorbar: bool = False, annotate: bool = False, mask=None):
    """One attention map: row ``i`` holds the weights query ``i`` gives to each key.

    ``weights`` is ``(T_q, T_k)`` (a tensor or an array); ``queries`` and ``keys`` label the rows
    and columns (``keys`` defaults to ``queries``). Darker is more weight. ``mask`` (optional,
    boolean ``(T_q, T_k)``, True where a query may look, as :func:`llmcourse.attention.causal_mask`
    gives) draws the pairs it hides in hatched grey, so that a masked pair is told apart from a
    pair that may be looked at but gets weight 0 (white). ``annotate=True`` writes each weight in
    its cell (for small maps; masked cells stay blank). Returns the figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float)
    keys = queries if keys is None else keys
    if w.ndim != 2 or w.shape != (len(queries), len(keys)):
        raise ValueError(f"weights must have shape (len(queries), len(keys)) = "
                         f"({len(queries)}, {len(keys)}), got {w.shape}")
    if ax is None:
        side = 0.32 * max(len(queries), len(keys)) + 1.6
        fig, ax = plt.subplots(figsize=(side + (0.8 if colorbar else 0), side))
    else:
        fig = ax.figure
    hidden = np.zeros(w.shape, dtype=bool)
    if mask is not None:
        allowed = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask)
        if allowed.shape != w.shape or allowed.dtype != bool:
            raise ValueError(f"mask must be a boolean array of shape {w.shape} (True where a "
                             f"query may look), got {allowed.dtype} of shape {allowed.shape}")
        hidden = ~allowed
    image = ax.imshow(np.ma.masked_where(hidden, w), cmap="Blues", vmin=0, vmax=1,
                      interpolation="nearest")
    for i, j in zip(*np.nonzero(hidden)):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#c8c8c8",
                                   edgecolor="#9a9a9a", hatch="///", linewidth=0))
    ax.grid(False)
    ax.set_xticks(range(len(keys)), [str(k) for k in keys],
                  rotation=0 if max(len(str(k)) for k in keys) <= 2 else 60,
                  ha="center" if max(len(str(k)) for k in keys) <= 2 else "right")
    ax.set_yticks(range(len(queries)), [str(q) for q in queries])
    ax.tick_params(length=0)
    ax.set_xlabel("key (looked at)")
    ax.set_ylabel("query (looking)")
    if annotate:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                if hidden[i, j]:
                    continue
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if w[i, j] > 0.6 else "#222222")
    if colorbar:
        fig.colorbar(image, ax=ax, label="weight", shrink=0.8)
    if title:
        ax.set_title(title)
    return fig


def plot_attention_heads(maps, tokens, titles=None, suptitle: str | None = None,
                         annotate: bool = False, mask=None):
    """One attention map per head, side by side: ``maps`` is ``(n_heads, T, T)``; ``mask`` as in
    :func:`plot_attention`, shared by every head."""
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=float)
    if m.ndim != 3:
        raise ValueError(f"maps must have shape (n_heads, T, T), got {m.shape}")
    n = m.shape[0]
    side = 0.22 * len(tokens) + 1.6
    fig, axes = plt.subplots(1, n, figsize=(side * n + 0.2, side + 0.3), squeeze=False)
    for h, ax in enumerate(axes[0]):
        plot_attention(m[h], tokens, ax=ax, annotate=annotate, mask=mask,
                       title=titles[h] if titles is not None else f"head {h + 1}")
        if h > 0:
            ax.set_ylabel("")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# --- Chapter 7: the next-token distribution ------------------------------------------------------

def token_label(text: str) -> str:
    """A token's text made visible in a figure: a space as ``·``, a newline as ``↵``."""
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "→")


def plot_token_probs(ax, probs, labels, top: int = 12, before=None, title: str | None = None):
    """Bars of the ``top`` most likely tokens of ``probs`` (a vector over the vocabulary).

    ``before`` (optional, same shape) is the distribution before a filter: drawn as pale bars
    behind, so the reader sees which tokens a filter removed (their dark bar is gone) and how
    the kept ones grew. Bars are ordered by ``before`` when it is given, else by ``probs``.
    """
    import numpy as np

    p = np.asarray(probs, dtype=float).reshape(-1)
    ref = p if before is None else np.asarray(before, dtype=float).reshape(-1)
    order = np.argsort(-ref, kind="stable")[:top]
    x = np.arange(len(order))
    if before is not None:
        ax.bar(x, ref[order], color="#d9d9d9", width=0.8, label="before the filter")
    ax.bar(x, p[order], color=PALETTE[0], width=0.55 if before is not None else 0.8,
           label="sampled from")
    ax.set_xticks(x, [token_label(labels[i]) for i in order])
    ax.set_ylim(0, max(1e-9, float(max(ref[order].max(), p[order].max()))) * 1.12)
    ax.set_ylabel("probability")
    ax.grid(axis="x", visible=False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_sampling_grid(logits, labels, temperatures=(0.5, 1.0, 1.5),
                       filters=(("no filter", None, None), ("top-k = 5", 5, None),
                                ("top-p = 0.8", None, 0.8)), top: int = 10):
    """A grid of next-token distributions: one row per temperature, one column per filter.

    ``filters`` holds ``(title, top_k, top_p)`` triples. Each panel shows, in pale grey, the
    distribution at that temperature before filtering, and in blue what is sampled from (computed
    by :func:`llmcourse.sampling.next_token_probs`). Returns the figure.
    """
    import matplotlib.pyplot as plt

    from .sampling import next_token_probs

    fig, axes = plt.subplots(len(temperatures), len(filters), squeeze=False, sharey=True,
                             figsize=(3.0 * len(filters) + 0.6, 2.1 * len(temperatures) + 0.4))
    for r, t in enumerate(temperatures):
        before = next_token_probs(logits, temperature=t).numpy()
        for c, (name, k, p) in enumerate(filters):
            after = next_token_probs(logits, temperature=t, top_k=k, top_p=p).numpy()
            ax = axes[r, c]
            plot_token_probs(ax, after, labels, top=top, before=before,
                             title=f"T = {t:g}, {name}: {int((after > 0).sum())} tokens left")
            ax.set_ylim(0, 1)
            if c:
                ax.set_ylabel("")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    return fig
