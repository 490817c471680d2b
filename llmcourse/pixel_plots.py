"""Figures of Chapter 1: the 3x3 pixel display, its network, and what the network learned."""

from __future__ import annotations

import matplotlib as mpl

from llmcourse.style import PALETTE


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
