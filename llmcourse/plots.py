"""The course figure style and shared plotting helpers.

Figures are read on the book's light and dark themes. Rather than guess the reader's theme, every
figure is drawn on a light "card": an opaque near-white background with dark text and the
colour-blind-safe Okabe-Ito palette. On the light theme the card blends in; on the dark theme it
reads as a printed figure, and the text stays legible on both. Figures are saved as compact PNGs at
a moderate resolution to keep pages light.

Call :func:`use_course_style` once near the top of a notebook. The style is in
:mod:`llmcourse.style`, the alt texts of figures in :mod:`llmcourse.alt_text`, Chapter 1's figures
in :mod:`llmcourse.pixel_plots`; all are importable from here.
"""

from __future__ import annotations

from llmcourse.alt_text import ALT_TEXT_LIMIT, figure_alt_text, install_alt_text_hook  # noqa: F401
from llmcourse.pixel_plots import (draw_display, plot_computation_graph,  # noqa: F401
                                   plot_confusion_matrix, plot_display_probabilities,
                                   plot_displays, plot_network)
from llmcourse.style import COURSE_STYLE, PALETTE, use_course_style  # noqa: F401


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
    """One attention map per head, side by side: ``maps`` is ``(n_head, T, T)``; ``mask`` as in
    :func:`plot_attention`, shared by every head."""
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=float)
    if m.ndim != 3:
        raise ValueError(f"maps must have shape (n_head, T, T), got {m.shape}")
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
