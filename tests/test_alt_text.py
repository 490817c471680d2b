"""Alt texts for the book's figures (llmcourse.plots): built from the figure, or set by hand.

The site test (test_site.py) checks the other end: every <img> of the built pages has one.
"""

from __future__ import annotations

import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from llmcourse import plots  # noqa: E402
from llmcourse.plots import figure_alt_text, install_alt_text_hook  # noqa: E402


@pytest.fixture
def loss_figure():
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [3.0, 2.0, 1.5], label="train")
    ax.plot([0, 1, 2], [3.1, 2.4, 2.2], label=r"$\alpha$ held-out")
    ax.set_title("Loss while training")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.legend()
    yield fig
    plt.close(fig)


def test_alt_text_names_title_axes_legend_and_marks(loss_figure):
    assert figure_alt_text(loss_figure) == (
        "Figure: Loss while training. x axis: step; y axis: loss (nats); "
        "legend: train, alpha held-out; shows 2 lines.")


def test_an_explicit_alt_text_wins(loss_figure):
    loss_figure.alt_text = "  Held-out loss falls more slowly than training loss.  "
    assert figure_alt_text(loss_figure) == "Held-out loss falls more slowly than training loss."


def test_an_empty_explicit_alt_text_is_an_error(loss_figure):
    loss_figure.alt_text = " "
    with pytest.raises(ValueError, match="fig.alt_text must be a non-empty string, got ' '"):
        figure_alt_text(loss_figure)


def test_panels_text_ticks_colour_bars_and_suptitle():
    fig, (left, right) = plt.subplots(1, 2)
    image = left.imshow([[0, 1], [2, 3]])
    fig.colorbar(image, ax=left, label="count")
    right.bar(["the", "cat"], [2, 1])
    right.set_ylabel("frequency")
    fig.suptitle("Counts")
    assert figure_alt_text(fig) == (
        "Figure: Counts. Panel 1: shows 1 image. Panel 2: x axis: the, cat; y axis: frequency; "
        "shows 2 bars. colour scale: count.")
    plt.close(fig)


def test_many_titled_panels_are_listed_by_title_with_what_they_share():
    fig, axes = plt.subplots(1, 5)
    for k, ax in enumerate(axes):
        ax.imshow([[k]])
        ax.set_title(f"digit {k}")
    assert figure_alt_text(fig) == (
        "Figure. 5 panels: digit 0, digit 1, digit 2, digit 3, digit 4; each shows 1 image.")
    plt.close(fig)


def test_a_bare_figure_still_gets_a_sentence_not_a_file_name():
    fig = plt.figure()
    assert figure_alt_text(fig) == "Figure without a title or axis labels."
    plt.close(fig)


def test_long_alt_texts_are_cut_with_an_ellipsis():
    fig, ax = plt.subplots()
    ax.set_title("word " * 300)
    text = figure_alt_text(fig)
    assert len(text) == plots.ALT_TEXT_LIMIT and text.endswith("\u2026")
    plt.close(fig)


def test_outside_ipython_the_style_is_applied_and_nothing_is_hooked():
    from matplotlib_inline import backend_inline

    before = backend_inline._fetch_figure_metadata
    plots.use_course_style()
    assert matplotlib.rcParams["figure.facecolor"] == "#fcfcfc"
    assert backend_inline._fetch_figure_metadata is before
    assert install_alt_text_hook() is False


def test_the_hook_puts_the_alt_text_in_the_output_metadata(monkeypatch, loss_figure):
    """Both display paths: IPython's formatter (display(fig)) and the inline backend's show."""
    from IPython.core.formatters import DisplayFormatter
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure
    from matplotlib_inline import backend_inline

    monkeypatch.setattr(backend_inline, "_fetch_figure_metadata",
                        backend_inline._fetch_figure_metadata)  # undone after the test
    formatter = DisplayFormatter()
    formatter.formatters["image/png"].for_type(Figure, lambda fig: print_figure(fig, "png"))
    shell = types.SimpleNamespace(display_formatter=formatter)
    assert install_alt_text_hook(shell) is True
    assert install_alt_text_hook(shell) is True  # a second call wraps nothing twice

    data, metadata = formatter.format(loss_figure)
    assert data["image/png"][:4] == b"\x89PNG"
    expected = figure_alt_text(loss_figure)
    assert metadata == {"image/png": {"alt": expected}}

    shown = backend_inline._fetch_figure_metadata(loss_figure)
    assert shown["image/png"] == {"alt": expected}
    loss_figure.alt_text = "By hand."
    assert backend_inline._fetch_figure_metadata(loss_figure)["image/png"] == {"alt": "By hand."}
    assert formatter.format(loss_figure)[1]["image/png"] == {"alt": "By hand."}


def test_rules_and_numeric_ticks_are_left_out_and_alike_panels_named_once():
    fig, axes = plt.subplots(1, 4)
    axes[0].semilogy([1, 10, 100], label="loss")
    axes[0].axhline(10, color="grey")  # a rule, not data
    fig.canvas.draw()  # log ticks become 10^k labels
    for ax in axes[1:]:
        ax.barh(["a", "b"], [1, 2])
        ax.set_xlabel("probability")
    assert figure_alt_text(fig) == (
        "Figure. Panel 1: shows 1 line. Panels 2 to 4: x axis: probability; y axis: a, b; "
        "shows 2 bars.")
    plt.close(fig)


def test_show_compact_passes_the_alt_text_along(monkeypatch, loss_figure):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, metadata=None: shown.append(
        (type(obj).__name__, metadata)))
    expected = figure_alt_text(loss_figure)
    plots.show_compact(loss_figure)
    kind, metadata = shown[0]
    mime = "image/svg+xml" if kind == "SVG" else "image/png"
    assert metadata == {mime: {"alt": expected}}
