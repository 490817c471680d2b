"""Interactive widgets for the chapters, built so that a test can drive them.

Introduced in Chapter 1 (``chapters/01_pixel_network.ipynb``): :func:`pixel_grid_widget` shows a
3x3 grid of toggle buttons (a lit, white pixel is +1, a dark one -1) beside one bar per symbol
holding the network's probability for it. Every click runs the network again and updates the bars.

Introduced in Chapter 5 (``chapters/05_attention.ipynb``): :func:`attention_map_widget` lets the
reader pick a sentence (or type one), a layer and a head, and shows that head's attention map.

Chapter 7 (``chapters/07_generation.ipynb``) adds :func:`sampling_widget`: sliders for the
temperature, top-k and top-p redraw the model's next-token distribution for a prompt and a sample
continuation drawn with a fixed seed.

Each widget is a small object that exposes its parts (the buttons, the current probabilities) and
methods to set its state, so a test does in code what a reader does with the mouse. Display it by
leaving it as the last expression of a cell (or with ``IPython.display.display``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["PixelGridWidget", "pixel_grid_widget", "AttentionMapWidget", "attention_map_widget",
           "SamplingWidget", "sampling_widget"]

_WHITE, _BLACK = "#f4f4f4", "#1b1b1b"


class PixelGridWidget:
    """A clickable 3x3 display wired to a network's probabilities.

    Parts:

    * ``toggles`` -- 9 ``ipywidgets.ToggleButton``, row by row; ``value=True`` means white (+1);
    * ``bars`` -- one ``ipywidgets.FloatProgress`` per symbol, holding its probability;
    * ``presets`` -- buttons that load a clean symbol or clear the display;
    * ``widget`` -- the whole layout, an ``ipywidgets.HBox``.

    ``display`` (the 9 values) and ``probabilities`` (the 4 probabilities) read the current state;
    ``set_display(values)`` and ``toggle(i)`` change it as clicks would.
    """

    def __init__(self, predict_proba: Callable[[np.ndarray], np.ndarray],
                 names: tuple[str, ...], display: Any = None,
                 presets: dict[str, np.ndarray] | None = None) -> None:
        import ipywidgets as w

        from .pixels import as_displays

        self._predict = predict_proba
        self.names = tuple(names)
        start = (np.full(9, -1.0) if display is None
                 else as_displays(display)[0][0])
        if not np.all(np.isin(start, (-1.0, 1.0))):
            raise ValueError("the widget's starting display must hold only +1 (white) and -1 "
                             f"(black), got {start.tolist()}")
        self._updating = False
        self.toggles = [
            w.ToggleButton(value=bool(v > 0), description="", tooltip=f"pixel {i + 1}",
                           layout=w.Layout(width="52px", height="52px", margin="1px"))
            for i, v in enumerate(start)
        ]
        for t in self.toggles:
            t.observe(self._on_click, names="value")
        grid = w.GridBox(self.toggles, layout=w.Layout(
            grid_template_columns="repeat(3, 54px)", grid_gap="2px", width="170px"))
        self.bars = [w.FloatProgress(value=0.0, min=0.0, max=1.0, description=name,
                                     style={"description_width": "110px"},
                                     layout=w.Layout(width="340px"))
                     for name in self.names]
        self.value_labels = [w.Label(value="") for _ in self.names]
        rows = [w.HBox([b, lab]) for b, lab in zip(self.bars, self.value_labels)]
        self.presets: dict[str, Any] = {}
        for label, values in (presets or {}).items():
            button = w.Button(description=label, layout=w.Layout(width="auto"))
            button.on_click(lambda _b, v=np.asarray(values): self.set_display(v))
            self.presets[label] = button
        title = w.HTML("<b>Click the pixels</b> (white = +1, black = -1)")
        left = w.VBox([title, grid, w.HBox(list(self.presets.values()),
                                           layout=w.Layout(flex_flow="row wrap", width="200px"))])
        right = w.VBox([w.HTML("<b>The network's probabilities</b>"), *rows])
        self.widget = w.HBox([left, right], layout=w.Layout(grid_gap="24px"))
        self._probs = np.zeros(len(self.names))
        self._refresh()

    # -- state ------------------------------------------------------------------------------
    @property
    def display(self) -> np.ndarray:
        """The current display: 9 values, +1 for a white pixel and -1 for a black one."""
        return np.array([1.0 if t.value else -1.0 for t in self.toggles])

    @property
    def probabilities(self) -> np.ndarray:
        """The network's probabilities for the current display, one per symbol."""
        return self._probs.copy()

    def toggle(self, i: int) -> None:
        """Flip pixel ``i`` (0..8, row by row), as a click does."""
        if not 0 <= i < 9:
            raise ValueError(f"pixel index must be 0..8, got {i}")
        self.toggles[i].value = not self.toggles[i].value

    def set_display(self, values: Any) -> None:
        """Set all 9 pixels at once (+1 white, -1 black); the bars update once."""
        from .pixels import as_displays

        arr = as_displays(values)[0][0]
        if not np.all(np.isin(arr, (-1.0, 1.0))):
            raise ValueError(f"the grid has on/off pixels only: expected values +1 or -1, "
                             f"got {arr.tolist()}")
        self._updating = True
        try:
            for t, v in zip(self.toggles, arr):
                t.value = bool(v > 0)
        finally:
            self._updating = False
        self._refresh()

    # -- updates ----------------------------------------------------------------------------
    def _on_click(self, change: dict) -> None:
        if not self._updating:
            self._refresh()

    def _refresh(self) -> None:
        for t in self.toggles:
            t.style.button_color = _WHITE if t.value else _BLACK
        self._probs = np.asarray(self._predict(self.display), dtype=float).reshape(-1)
        best = int(np.argmax(self._probs))
        for i, (bar, lab, p) in enumerate(zip(self.bars, self.value_labels, self._probs)):
            bar.value = float(p)
            bar.bar_style = "success" if i == best else "info"
            lab.value = f"{100 * p:5.1f} %"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        probs = ", ".join(f"{n}: {p:.3f}" for n, p in zip(self.names, self._probs))
        return f"PixelGridWidget(display={self.display.astype(int).tolist()}, {probs})"


def pixel_grid_widget(net: Any, display: Any = None) -> PixelGridWidget:
    """A 3x3 grid of toggle buttons and the probabilities ``net`` gives to the four symbols.

    ``net`` is a :class:`llmcourse.pixels.PixelNet` (anything with ``predict_proba(display)``
    returning 4 probabilities works). ``display`` is the starting picture (default: all black).
    """
    from .pixels import SYMBOL_NAMES, SYMBOLS

    if not hasattr(net, "predict_proba"):
        raise TypeError(f"net must have a predict_proba(display) method (a PixelNet), got "
                        f"{type(net).__name__}")
    presets = {name: SYMBOLS[i] for i, name in enumerate(SYMBOL_NAMES)}
    presets["clear"] = np.full(9, -1.0)
    return PixelGridWidget(net.predict_proba, SYMBOL_NAMES, display=display, presets=presets)


# --- Chapter 5: attention maps --------------------------------------------------------------------

def attention_map_html(weights: np.ndarray, queries, keys=None, title: str = "",
                       mask=None) -> str:
    """An attention map as an HTML table: one row per query, one column per key, darker cells
    for more weight (each cell's tooltip gives the weight). Light enough for a web page.

    ``mask`` (optional, boolean, True where a query may look) draws the hidden pairs grey, so that
    they are told apart from a weight of 0 (white)."""
    from html import escape

    from matplotlib import colormaps

    w = np.asarray(weights, dtype=float)
    keys = list(queries) if keys is None else list(keys)
    if w.shape != (len(queries), len(keys)):
        raise ValueError(f"weights must have shape ({len(queries)}, {len(keys)}), got {w.shape}")
    hidden = np.zeros(w.shape, dtype=bool)
    if mask is not None:
        allowed = np.asarray(mask)
        if allowed.shape != w.shape or allowed.dtype != bool:
            raise ValueError(f"mask must be a boolean array of shape {w.shape}, got "
                             f"{allowed.dtype} of shape {allowed.shape}")
        hidden = ~allowed
    cmap = colormaps["Blues"]
    cell = "width:22px;height:22px;padding:0;border:1px solid #fcfcfc"
    label = "padding:0 4px;font-family:monospace;color:#222;background:#fcfcfc"
    rows = [f'<tr><td style="{label}"></td>' + "".join(
        f'<td style="{label};text-align:center;vertical-align:bottom">{escape(str(k))}</td>'
        for k in keys) + "</tr>"]
    for i, q in enumerate(queries):
        tds = []
        for j in range(len(keys)):
            if hidden[i, j]:
                tds.append(f'<td style="{cell};background:#c8c8c8" title="{escape(str(q))} -> '
                           f'{escape(str(keys[j]))}: masked"></td>')
                continue
            r, g, b, _ = cmap(float(np.clip(w[i, j], 0.0, 1.0)))
            colour = f"#{int(255 * r):02x}{int(255 * g):02x}{int(255 * b):02x}"
            tds.append(f'<td style="{cell};background:{colour}" '
                       f'title="{escape(str(q))} -> {escape(str(keys[j]))}: {w[i, j]:.3f}"></td>')
        rows.append(f'<tr><td style="{label};text-align:right">{escape(str(q))}</td>'
                    + "".join(tds) + "</tr>")
    head = f"<div style='margin:4px 0'><b>{escape(title)}</b></div>" if title else ""
    return (f"<div style='background:#fcfcfc;color:#222;padding:6px'>{head}"
            f"<table style='border-collapse:collapse'>{''.join(rows)}</table>"
            "<div style='font-size:85%;margin-top:4px'>rows: the query (looking); columns: the key "
            "(looked at); darker = more weight" + ("; grey = masked" if hidden.any() else "")
            + "</div></div>")


class AttentionMapWidget:
    """Pick a sentence, a layer and a head; see that head's attention map.

    ``attention(sentence)`` returns ``(tokens, maps)``: the sentence's tokens (strings) and the
    weights of every layer and head, shape ``(n_layer, n_head, T, T)``, of causal attention (the
    map draws the future, which the mask hides, in grey). It may raise
    ``ValueError`` for a sentence it cannot take; the widget then shows the message and keeps the
    last map.

    Parts: ``sentence`` (an ``ipywidgets.Combobox``: pick a sentence or type one), ``layer`` and
    ``head`` (``ipywidgets.Dropdown``), ``message`` (an ``HTML`` line for errors), ``map`` (the
    ``HTML`` attention map) and ``widget`` (the whole layout).
    ``tokens``, ``maps`` and ``weights`` (the map shown, ``(T, T)``) read the current state;
    ``set_sentence(text)`` and ``select(layer=..., head=...)`` change it as a reader would.
    """

    def __init__(self, attention: Callable[[str], tuple[Any, Any]], sentences: list[str],
                 n_layer: int, n_head: int, sentence: str | None = None) -> None:
        import ipywidgets as w

        if not sentences:
            raise ValueError("sentences must hold at least one sentence, got none")
        if n_layer < 1 or n_head < 1:
            raise ValueError(f"n_layer and n_head must be >= 1, got n_layer={n_layer}, "
                             f"n_head={n_head}")
        self._attention = attention
        self.n_layer, self.n_head = n_layer, n_head
        self.sentence = w.Combobox(value=sentence or sentences[0], options=list(sentences),
                                   description="sentence", ensure_option=False,
                                   placeholder="pick or type")
        self.layer = w.Dropdown(options=[(f"layer {i + 1}", i) for i in range(n_layer)],
                                value=0, description="layer", layout=w.Layout(width="180px"))
        self.head = w.Dropdown(options=[(f"head {i + 1}", i) for i in range(n_head)],
                               value=0, description="head", layout=w.Layout(width="180px"))
        self.message = w.HTML("")
        self.map = w.HTML("")
        self.tokens: list[str] = []
        self.maps = np.zeros((n_layer, n_head, 0, 0))
        self.sentence.observe(lambda _c: self._compute(), names="value")
        self.layer.observe(lambda _c: self._draw(), names="value")
        self.head.observe(lambda _c: self._draw(), names="value")
        self.widget = w.VBox([w.HBox([self.sentence, self.layer, self.head]), self.message,
                              self.map])
        self._compute()
        if not self.tokens:
            raise ValueError(f"the starting sentence gave no attention map: "
                             f"{self.message.value}")

    @property
    def weights(self) -> np.ndarray:
        """The map on show: ``(T, T)`` weights of the chosen layer and head."""
        return self.maps[self.layer.value, self.head.value]

    def set_sentence(self, text: str) -> None:
        """Show ``text``, as if the reader had typed it."""
        self.sentence.value = text

    def select(self, layer: int | None = None, head: int | None = None) -> None:
        """Choose a layer and/or a head (counted from 0)."""
        for name, value, n in (("layer", layer, self.n_layer), ("head", head, self.n_head)):
            if value is not None and not 0 <= value < n:
                raise ValueError(f"{name} must be 0..{n - 1}, got {value}")
        if layer is not None:
            self.layer.value = layer
        if head is not None:
            self.head.value = head

    def _compute(self) -> None:
        text = self.sentence.value
        try:
            tokens, maps = self._attention(text)
        except ValueError as err:
            self.message.value = f"<span style='color:#D55E00'>{err}</span>"
            return
        maps = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=float)
        if maps.shape != (self.n_layer, self.n_head, len(tokens), len(tokens)):
            raise ValueError(f"attention({text!r}) must return maps of shape (n_layer, n_head, "
                             f"T, T) = ({self.n_layer}, {self.n_head}, {len(tokens)}, "
                             f"{len(tokens)}), got {maps.shape}")
        self.tokens, self.maps = [str(t) for t in tokens], maps
        self.message.value = ""
        self._draw()

    def _draw(self) -> None:
        title = f"{self.sentence.value!r}: layer {self.layer.value + 1}, head {self.head.value + 1}"
        may_look = np.tri(len(self.tokens), dtype=bool)     # causal: row i sees 0..i
        self.map.value = attention_map_html(self.weights, self.tokens, title=title,
                                            mask=may_look)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return (f"AttentionMapWidget(sentence={self.sentence.value!r}, layer={self.layer.value}, "
                f"head={self.head.value}, tokens={len(self.tokens)})")


def attention_map_widget(attention: Callable[[str], tuple[Any, Any]], sentences: list[str],
                         n_layer: int, n_head: int,
                         sentence: str | None = None) -> AttentionMapWidget:
    """A sentence box, a layer menu and a head menu above the chosen head's attention map.

    ``attention(sentence) -> (tokens, maps)`` with ``maps`` of shape ``(n_layer, n_head, T, T)``
    (for example :func:`llmcourse.copy_task.attention_for_example` with its model and task fixed).
    """
    if not callable(attention):
        raise TypeError(f"attention must be a function sentence -> (tokens, maps), got "
                        f"{type(attention).__name__}")
    return AttentionMapWidget(attention, list(sentences), n_layer, n_head, sentence)


class SamplingWidget:
    """Sliders for temperature, top-k and top-p, wired to a model's next-token distribution.

    Parts:

    * ``temperature``, ``top_k``, ``top_p`` -- the sliders (``top_k`` at the vocabulary size and
      ``top_p`` at 1.0 mean "no filter");
    * ``seed`` -- the seed of the sample (the same seed and settings give the same text);
    * ``bars`` -- an ``ipywidgets.HTML`` table of the most likely tokens: the probability at
      temperature 1 in grey, the probability sampled from in blue (empty where a filter removed
      the token);
    * ``sample`` -- an ``ipywidgets.HTML`` with the prompt and a sampled continuation;
    * ``widget`` -- the whole layout.

    ``probabilities`` is the distribution sampled from (a float64 tensor over the vocabulary),
    ``sample_text`` the continuation; ``set(temperature=..., top_k=..., top_p=..., seed=...)``
    moves the sliders as a reader would, and everything updates once.
    """

    def __init__(self, model: Any, tokenizer: Any, prompt: str, n_tokens: int = 100,
                 seed: int = 0, show: int = 12) -> None:
        import ipywidgets as w
        import torch

        from .sampling import _prompt_list

        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        self.model, self.tokenizer, self.prompt = model, tokenizer, prompt
        self.n_tokens, self.show = int(n_tokens), int(show)
        ids = _prompt_list(tokenizer.encode(prompt), model.config.vocab_size)
        self.prompt_ids = ids
        from llmcourse.metrics import evaluating

        with evaluating(model), torch.no_grad():
            window = torch.tensor([ids[-model.config.block_size:]], dtype=torch.long)
            self.logits = model(window)[0, -1].double()
        vocab = model.config.vocab_size
        slider = dict(continuous_update=False, style={"description_width": "90px"},
                      layout=w.Layout(width="360px"))
        self.temperature = w.FloatSlider(value=1.0, min=0.1, max=2.5, step=0.05,
                                         description="temperature", readout_format=".2f",
                                         **slider)
        self.top_k = w.IntSlider(value=vocab, min=1, max=vocab, step=1,
                                 description="top-k", **slider)
        self.top_p = w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05,
                                   description="top-p", readout_format=".2f", **slider)
        self.seed = w.IntText(value=seed, description="seed", style={"description_width": "90px"},
                              layout=w.Layout(width="200px"))
        self.bars = w.HTML()
        self.sample = w.HTML()
        self._updating = False
        for control in (self.temperature, self.top_k, self.top_p, self.seed):
            control.observe(self._on_change, names="value")
        controls = w.VBox([w.HTML("<b>Settings</b> (top-k at its maximum and top-p at 1 mean "
                                  "no filter)"), self.temperature, self.top_k, self.top_p,
                           self.seed])
        self.widget = w.VBox([w.HBox([controls, self.bars], layout=w.Layout(grid_gap="24px")),
                              self.sample])
        self.probabilities = None
        self.sample_text = ""
        self._refresh()

    def _settings(self) -> dict:
        vocab = self.model.config.vocab_size
        return {"temperature": float(self.temperature.value),
                "top_k": None if self.top_k.value >= vocab else int(self.top_k.value),
                "top_p": None if self.top_p.value >= 1.0 else float(self.top_p.value)}

    def set(self, temperature: float | None = None, top_k: int | None = None,
            top_p: float | None = None, seed: int | None = None) -> None:
        """Move the sliders (only those given); the bars and the sample update once."""
        self._updating = True
        try:
            if temperature is not None:
                self.temperature.value = temperature
            if top_k is not None:
                self.top_k.value = top_k
            if top_p is not None:
                self.top_p.value = top_p
            if seed is not None:
                self.seed.value = seed
        finally:
            self._updating = False
        self._refresh()

    def _on_change(self, change: dict) -> None:
        if not self._updating:
            self._refresh()

    def _refresh(self) -> None:
        import html

        import torch

        from .plots import token_label
        from .sampling import generate, next_token_probs

        settings = self._settings()
        self.probabilities = next_token_probs(self.logits, **settings)
        base = next_token_probs(self.logits)
        order = torch.argsort(-base, stable=True)[: self.show].tolist()
        rows = []
        for i in order:
            label = html.escape(token_label(self.tokenizer.vocab[i]))
            p0, p = float(base[i]), float(self.probabilities[i])
            rows.append(
                f"<tr><td style='font-family:monospace;padding-right:8px'>{label}</td>"
                f"<td style='width:220px'><div style='background:#d9d9d9;height:7px;"
                f"width:{220 * p0:.0f}px'></div><div style='background:#0072B2;height:9px;"
                f"width:{220 * p:.0f}px'></div></td>"
                f"<td style='font-family:monospace;padding-left:8px'>{100 * p0:5.1f}% &rarr; "
                f"{100 * p:5.1f}%</td></tr>")
        kept = int((self.probabilities > 0).sum())
        self.bars.value = (f"<b>Next token after the prompt</b> ({kept} of "
                           f"{len(self.probabilities)} tokens can be drawn)<br>"
                           f"<table>{''.join(rows)}</table>")
        new = generate(self.model, self.prompt_ids, self.n_tokens,
                       generator=torch.Generator().manual_seed(int(self.seed.value)), **settings)
        self.sample_text = self.tokenizer.decode(new)
        self.sample.value = (
            "<b>A sample</b> (the prompt in grey)<pre style='white-space:pre-wrap;"
            "background:#f6f6f6;color:#222;padding:6px'>"
            f"<span style='color:#888'>{html.escape(self.prompt)}</span>"
            f"{html.escape(self.sample_text)}</pre>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        s = self._settings()
        return (f"SamplingWidget(temperature={s['temperature']}, top_k={s['top_k']}, "
                f"top_p={s['top_p']}, {int((self.probabilities > 0).sum())} tokens possible)")


def sampling_widget(model: Any, tokenizer: Any, prompt: str, n_tokens: int = 100,
                    seed: int = 0) -> SamplingWidget:
    """Sliders for temperature, top-k and top-p over ``model``'s next token after ``prompt``,
    with a sample of ``n_tokens`` tokens drawn with ``seed``."""
    if not hasattr(model, "config") or not hasattr(tokenizer, "encode"):
        raise TypeError(f"sampling_widget needs a GPT and its tokenizer, got "
                        f"{type(model).__name__} and {type(tokenizer).__name__}")
    return SamplingWidget(model, tokenizer, prompt, n_tokens=n_tokens, seed=seed)
