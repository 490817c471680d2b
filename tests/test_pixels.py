"""Tests for llmcourse.pixels (Chapter 1), its widget and its figures.

The hand-written backward pass is checked against PyTorch's autograd and against finite
differences; the widget is driven in code, as a reader's clicks would drive it.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from llmcourse import pixels
from llmcourse.pixels import SYMBOL_NAMES, SYMBOLS, PixelNet


# --- symbols and displays ------------------------------------------------------------------------

def test_symbols_are_four_distinct_pm1_displays():
    assert SYMBOLS.shape == (4, 9)
    assert set(np.unique(SYMBOLS)) == {-1.0, 1.0}
    assert len(SYMBOL_NAMES) == 4
    differ = (SYMBOLS[:, None, :] != SYMBOLS[None, :, :]).sum(-1)
    off_diagonal = differ[~np.eye(4, dtype=bool)]
    assert off_diagonal.min() >= 4      # any two symbols differ in at least 4 pixels


def test_parse_display_reads_rows_top_left_first():
    x = pixels.parse_display(["#..", "...", "..#"])
    assert x.tolist() == [1, -1, -1, -1, -1, -1, -1, -1, 1]
    assert np.array_equal(pixels.parse_display(".#.\n.#.\n.#."), SYMBOLS[0])
    assert np.array_equal(pixels.parse_display("### #.# ###"), SYMBOLS[3])


@pytest.mark.parametrize("bad, message", [
    (["#..", "..."], "3 rows of 3"),
    (["#...", "...", "..."], "3 rows of 3"),
    (["#x.", "...", "..."], "only '#'"),
])
def test_parse_display_rejects_bad_drawings(bad, message):
    with pytest.raises(ValueError, match=message):
        pixels.parse_display(bad)


def test_parse_display_rejects_wrong_type():
    with pytest.raises(TypeError, match="string or a list of 3 strings"):
        pixels.parse_display(123)


@pytest.mark.parametrize("shape_in, n", [((9,), 1), ((3, 3), 1), ((5, 9), 5), ((5, 3, 3), 5)])
def test_as_displays_accepts_single_and_batches(shape_in, n):
    x = np.ones(shape_in)
    arr, single = pixels.as_displays(x)
    assert arr.shape == (n, 9)
    assert single == (len(shape_in) == 1 or shape_in == (3, 3))


def test_as_displays_accepts_tensors_and_lists():
    arr, _ = pixels.as_displays(torch.tensor(SYMBOLS))
    assert np.array_equal(arr, SYMBOLS)
    arr, single = pixels.as_displays(SYMBOLS[1].tolist())
    assert single and np.array_equal(arr[0], SYMBOLS[1])


@pytest.mark.parametrize("bad, message", [
    (np.ones(8), "must have 9 values, got 8"),
    (np.ones(10), "must have 9 values, got 10"),
    (np.ones((4, 8)), r"shape \(n, 9\), got shape \(4, 8\)"),
    (np.ones((2, 2, 9)), r"got shape \(2, 2, 9\)"),
    (np.full(9, 2.0), r"in \[-1, 1\].*from 2 to 2"),
    (np.r_[np.ones(8), -1.5], r"from -1.5 to 1"),
    (np.r_[np.ones(8), np.nan], "nan or inf"),
])
def test_bad_displays_get_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        pixels.as_displays(bad)
    with pytest.raises(ValueError, match=message):
        PixelNet().forward(bad)


def test_non_numeric_display_is_a_type_error():
    with pytest.raises(TypeError, match="numbers in"):
        pixels.as_displays(["a"] * 9)


def test_bad_labels_get_clear_errors():
    net = PixelNet()
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        net.loss(SYMBOLS, [0, 1, 2])
    with pytest.raises(ValueError, match="integers 0..3"):
        net.loss(SYMBOLS, [0, 1, 2, 4])
    with pytest.raises(TypeError, match="integers 0..3"):
        net.loss(SYMBOLS, np.array([0.0, 1.0, 2.0, 3.0]))


# --- the noisy data set ----------------------------------------------------------------------

def test_noisy_dataset_flips_about_the_right_fraction_and_is_reproducible():
    X, y = pixels.noisy_dataset(4000, flip_prob=0.1, seed=3)
    assert X.shape == (4000, 9) and y.shape == (4000,)
    assert set(np.unique(X)) == {-1.0, 1.0}
    flipped = np.mean(X != SYMBOLS[y])
    assert 0.09 < flipped < 0.11
    X2, y2 = pixels.noisy_dataset(4000, flip_prob=0.1, seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)


def test_noisy_dataset_without_noise_is_clean():
    X, y = pixels.noisy_dataset(50, flip_prob=0.0, seed=0)
    assert np.array_equal(X, SYMBOLS[y])


def test_train_val_split_is_a_partition():
    X, y = pixels.noisy_dataset(100, seed=0)
    Xt, yt, Xv, yv = pixels.train_val_split(X, y, val_fraction=0.2, seed=0)
    assert len(Xt) == 80 and len(Xv) == 20
    together = np.concatenate([np.c_[Xt, yt], np.c_[Xv, yv]])
    assert sorted(map(tuple, together)) == sorted(map(tuple, np.c_[X, y]))


def test_best_possible_accuracy_limits():
    assert pixels.best_possible_accuracy(0.0) == pytest.approx(1.0)
    assert pixels.best_possible_accuracy(0.5) == pytest.approx(0.25)   # pure noise: a guess
    assert 0.95 < pixels.best_possible_accuracy(0.1) < 0.99


def test_nearest_symbol():
    assert pixels.nearest_symbol(SYMBOLS).tolist() == [0, 1, 2, 3]
    x = SYMBOLS[2].copy()
    x[0] = -x[0]                                       # one flip stays closest to the cross
    assert pixels.nearest_symbol(x) == 2


# --- softmax and cross-entropy ----------------------------------------------------------------

def test_softmax_values_and_stability():
    p = pixels.softmax(np.array([[0.0, 0.0, 0.0, 0.0], [1000.0, 0.0, 0.0, 0.0]]))
    assert np.allclose(p[0], 0.25)
    assert np.allclose(p[1], [1, 0, 0, 0])
    assert np.allclose(pixels.softmax(np.log([1.0, 2.0, 3.0, 4.0])), [0.1, 0.2, 0.3, 0.4])


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (3, 4), elements=st.floats(-1e3, 1e3)),
       st.floats(-1e3, 1e3))
def test_softmax_rows_sum_to_one_and_ignore_shifts(scores, shift):
    p = pixels.softmax(scores)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(pixels.softmax(scores + shift), p, atol=1e-9)


def test_cross_entropy_values():
    assert pixels.cross_entropy(np.full((3, 4), 0.25), [0, 1, 2]) == pytest.approx(np.log(4))
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1]])
    assert pixels.cross_entropy(probs, [0, 1]) == pytest.approx(-(np.log(0.7) + np.log(0.5)) / 2)


# --- the network: forward and backward --------------------------------------------------------

def _independent_forward(params, x):
    """A second, independent forward pass: one neuron at a time, with explicit loops."""
    a = list(x)
    for layer in (1, 2, 3):
        W, b = params[f"W{layer}"], params[f"b{layer}"]
        sums = [sum(a[i] * W[i, j] for i in range(W.shape[0])) + b[j] for j in range(W.shape[1])]
        a = [np.tanh(s) for s in sums] if layer < 3 else sums
    e = [np.exp(s - max(a)) for s in a]
    return np.array(e) / sum(e)


def test_forward_matches_an_independent_implementation_and_torch():
    net = PixelNet(hidden=(5, 7), seed=4)
    X, _ = pixels.noisy_dataset(6, seed=1)
    probs = net.forward(X)
    assert probs.shape == (6, 4)
    for row, x in zip(probs, X):
        assert np.allclose(row, _independent_forward(net.params, x), atol=1e-12)
    with torch.no_grad():
        t = torch.softmax(pixels.to_torch(net)(torch.tensor(X)), dim=1).numpy()
    assert np.allclose(probs, t, atol=1e-12)


def test_single_display_gives_four_probabilities():
    net = PixelNet()
    p = net.forward(SYMBOLS[0])
    assert p.shape == (4,)
    assert p.sum() == pytest.approx(1.0)
    assert np.allclose(p, net.forward(SYMBOLS[0].reshape(3, 3)))
    assert isinstance(net.predict(SYMBOLS[0]), int)


def _torch_grads(net, X, y):
    params = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    Xt = torch.tensor(X)
    h1 = torch.tanh(Xt @ params["W1"] + params["b1"])
    h2 = torch.tanh(h1 @ params["W2"] + params["b2"])
    loss = torch.nn.functional.cross_entropy(h2 @ params["W3"] + params["b3"], torch.tensor(y))
    loss.backward()
    return loss.item(), {k: p.grad.numpy() for k, p in params.items()}


@pytest.mark.parametrize("hidden, n, seed", [((8, 8), 32, 0), ((3, 5), 7, 1), ((16, 4), 1, 2)])
def test_backward_matches_torch_autograd(hidden, n, seed):
    net = PixelNet(hidden=hidden, seed=seed)
    X, y = pixels.noisy_dataset(n, flip_prob=0.2, seed=seed)
    X = X * np.random.default_rng(seed).uniform(0.2, 1.0, size=X.shape)  # dim pixels too
    net.forward(X)
    grads = net.backward(y)
    loss, expected = _torch_grads(net, X, y)
    assert net.loss(X, y) == pytest.approx(loss, abs=1e-12)
    assert set(grads) == set(expected)
    for k in expected:
        assert grads[k].shape == expected[k].shape
        assert np.abs(grads[k] - expected[k]).max() < 1e-12, k


def test_backward_matches_finite_differences():
    net = PixelNet(hidden=(4, 3), seed=5)
    X, y = pixels.noisy_dataset(10, seed=5)
    net.forward(X)
    grads = net.backward(y)
    eps = 1e-6
    for k, value in net.params.items():
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + eps
            up = net.loss(X, y)
            value[idx] = old - eps
            down = net.loss(X, y)
            value[idx] = old
            assert (up - down) / (2 * eps) == pytest.approx(grads[k][idx], abs=1e-7), (k, idx)


def test_backward_needs_a_forward_pass_first():
    with pytest.raises(RuntimeError, match="call forward"):
        PixelNet().backward([0])


def test_a_small_step_lowers_the_loss():
    net = PixelNet(seed=1)
    X, y = pixels.noisy_dataset(64, seed=1)
    before = net.loss(X, y)
    net.forward(X)
    net.step(net.backward(y), lr=0.05)
    assert net.loss(X, y) < before


def test_copy_is_independent():
    net = PixelNet(seed=0)
    twin = net.copy()
    twin.params["W1"][0, 0] += 1.0
    assert net.params["W1"][0, 0] != twin.params["W1"][0, 0]


@pytest.mark.parametrize("hidden", [(8,), (0, 3), (2, 3, 4)])
def test_bad_hidden_sizes(hidden):
    with pytest.raises(ValueError, match="two positive layer sizes"):
        PixelNet(hidden=hidden)


# --- training -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    X, y = pixels.noisy_dataset(2500, flip_prob=0.1, seed=0)
    Xt, yt, Xv, yv = pixels.train_val_split(X, y, val_fraction=0.2, seed=1)
    net = PixelNet(hidden=(8, 8), seed=0)
    history = pixels.train(net, Xt, yt, lr=0.1, epochs=30, X_val=Xv, y_val=yv, seed=0)
    return net, history, Xv, yv


def test_training_reaches_high_accuracy_on_held_out_noisy_displays(trained):
    net, history, Xv, yv = trained
    assert len(history.train_loss) == len(history.val_loss) == len(history.val_accuracy) == 30
    assert history.train_loss[-1] < 0.3 * history.train_loss[0]
    assert history.val_accuracy[-1] == pytest.approx(pixels.accuracy(net, Xv, yv))
    assert pixels.accuracy(net, Xv, yv) >= 0.95
    assert pixels.accuracy(net, SYMBOLS, np.arange(4)) == 1.0


def test_confusion_matrix_counts(trained):
    net, _, Xv, yv = trained
    counts = pixels.confusion_matrix(yv, net.predict(Xv))
    assert counts.shape == (4, 4) and counts.sum() == len(yv)
    assert np.trace(counts) == int(round(pixels.accuracy(net, Xv, yv) * len(yv)))
    assert np.array_equal(counts.sum(axis=1), np.bincount(yv, minlength=4))
    assert pixels.confusion_matrix([0, 0, 1], [0, 2, 1]).tolist() == [
        [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_train_rejects_bad_arguments():
    X, y = pixels.noisy_dataset(10, seed=0)
    with pytest.raises(ValueError, match="need lr > 0.*got lr=0,"):
        pixels.train(PixelNet(), X, y, lr=0)
    with pytest.raises(ValueError, match="batch_size=0"):
        pixels.train(PixelNet(), X, y, batch_size=0)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        pixels.train(PixelNet(), X, y[:5])


# --- the widget -----------------------------------------------------------------------------

def test_widget_clicks_change_the_probabilities(trained):
    from llmcourse.widgets import pixel_grid_widget

    net = trained[0]
    grid = pixel_grid_widget(net)
    assert len(grid.toggles) == 9 and len(grid.bars) == 4
    assert np.array_equal(grid.display, np.full(9, -1.0))        # starts all black

    grid.set_display(SYMBOLS[0])
    assert np.allclose(grid.probabilities, net.predict_proba(SYMBOLS[0]))
    assert int(np.argmax(grid.probabilities)) == 0
    assert [b.value for b in grid.bars] == pytest.approx(list(grid.probabilities))

    before = grid.probabilities
    grid.toggles[3].value = True       # a click on the middle-left pixel
    grid.toggles[5].value = True       # and on the middle-right one: now a plus sign
    expected = SYMBOLS[0].copy()
    expected[[3, 5]] = 1.0
    assert np.array_equal(grid.display, expected)
    assert not np.allclose(grid.probabilities, before)
    assert np.allclose(grid.probabilities, net.predict_proba(expected))
    assert grid.toggles[3].style.button_color != grid.toggles[0].style.button_color

    grid.toggle(3)
    assert grid.display[3] == -1.0
    assert np.allclose(grid.probabilities, net.predict_proba(grid.display))
    assert grid.probabilities.sum() == pytest.approx(1.0)
    assert grid.value_labels[0].value.strip().endswith("%")


def test_widget_presets_and_starting_display(trained):
    from llmcourse.widgets import pixel_grid_widget

    net = trained[0]
    grid = pixel_grid_widget(net, display=SYMBOLS[3])
    assert np.array_equal(grid.display, SYMBOLS[3])
    assert int(np.argmax(grid.probabilities)) == 3
    grid.presets["diagonal cross"].click()
    assert np.array_equal(grid.display, SYMBOLS[2])
    assert int(np.argmax(grid.probabilities)) == 2
    grid.presets["clear"].click()
    assert np.array_equal(grid.display, np.full(9, -1.0))
    assert np.allclose(grid.probabilities, net.predict_proba(np.full(9, -1.0)))


def test_widget_rejects_bad_input(trained):
    from llmcourse.widgets import pixel_grid_widget

    grid = pixel_grid_widget(trained[0])
    with pytest.raises(ValueError, match="must have 9 values, got 4"):
        grid.set_display([1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"expected values \+1 or -1"):
        grid.set_display(np.full(9, 0.5))
    with pytest.raises(ValueError, match="0..8"):
        grid.toggle(9)
    with pytest.raises(TypeError, match="predict_proba"):
        pixel_grid_widget(object())


# --- figures ------------------------------------------------------------------------------------

def test_figures_draw_what_they_should(trained):
    import matplotlib.pyplot as plt

    from llmcourse.plots import (plot_confusion_matrix, plot_display_probabilities,
                                 plot_displays, plot_network)

    net = trained[0]
    fig = plot_displays(SYMBOLS, titles=list(SYMBOL_NAMES))
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 4 and shown[2].get_title() == "diagonal cross"
    assert np.array_equal(shown[0].images[0].get_array(), SYMBOLS[0].reshape(3, 3))

    fig = plot_network(net, output_labels=list(SYMBOL_NAMES))
    n_weights = 9 * 8 + 8 * 8 + 8 * 4
    assert len(fig.axes[0].lines) == n_weights + 2           # one line per weight, + legend keys
    assert len(fig.axes[0].collections) == 4                 # one group of neurons per layer

    fig = plot_confusion_matrix(np.arange(16).reshape(4, 4), SYMBOL_NAMES)
    assert [t.get_text() for t in fig.axes[0].texts][:3] == ["0", "1", "2"]

    probs = net.predict_proba(SYMBOLS)
    fig = plot_display_probabilities(SYMBOLS, probs, SYMBOL_NAMES)
    assert len(fig.axes) == 8
    bars = [p.get_width() for p in fig.axes[4 + 1].patches]   # bar axes come after displays
    assert bars == pytest.approx(list(probs[1]))
    plt.close("all")


def test_computation_graph_figure_shows_values_gradients_and_edges():
    import matplotlib.pyplot as plt

    from llmcourse.plots import plot_computation_graph

    nodes = {"w": (0, 0, "w", 0.5, -2.0), "x": (0, 1, "x", 2.0, None),
             "a": (1.5, 0.5, "a = w·x", 1.0, 1.0)}
    fig = plot_computation_graph(nodes, [("w", "a"), ("x", "a")], title="tiny")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "a = w·x" in texts and "value 0.500" in texts and "grad -2.000" in texts
    assert sum(t.startswith("grad") for t in texts) == 2       # x has no gradient shown
    assert len(fig.axes[0].patches) == 3 + 2                    # three boxes, two arrows
    with pytest.raises(ValueError, match="not in nodes: 'y'"):
        plot_computation_graph(nodes, [("y", "a")])
    with pytest.raises(ValueError, match=r"\(x, y, formula, value, grad\)"):
        plot_computation_graph({"w": (0, 0, "w", 0.5)}, [])
    plt.close("all")
