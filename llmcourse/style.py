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

__all__ = ["PALETTE", "COURSE_STYLE", "use_course_style"]

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
    else :func:`llmcourse.alt_text.figure_alt_text`, built from the figure's titles, axis labels and legend.
    Outside IPython only the style is applied.
    """
    mpl.rcParams.update(COURSE_STYLE)
    try:  # in a notebook: inline PNGs, which are smaller than retina images
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None and hasattr(ip, "run_line_magic"):
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("png")
            from llmcourse.alt_text import install_alt_text_hook

            install_alt_text_hook(ip)
    except ImportError:  # plain Python: nothing to configure
        pass
