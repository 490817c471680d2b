// The Playground page: the course's Chapter 6 model generating text in the reader's browser.
// The model runs with onnxruntime-web (WebAssembly, one thread), loaded from this site only.
// The sampling rules follow llmcourse.sampling exactly (Chapter 7): temperature, then top-k
// (ties with the k-th largest kept), then top-p (ties with the threshold kept), then a softmax;
// one uniform number u per step, first id (in id order) whose running sum exceeds u * total.
(function () {
  "use strict";
  const script = document.currentScript;
  const BASE = new URL("playground/", script ? script.src : location.href).href;

  // ------------------------------------------------------------------ sampling (Chapter 7)
  function softmax(x) {                      // float64, like torch.softmax: exp(x - max) / sum
    let max = -Infinity;
    for (const v of x) if (v > max) max = v;
    const e = x.map((v) => (v === -Infinity ? 0 : Math.exp(v - max)));
    let s = 0;
    for (const v of e) s += v;
    return e.map((v) => v / s);
  }
  function applyTemperature(logits, temperature) {
    if (!(temperature > 0) || !isFinite(temperature)) throw new Error("temperature must be > 0");
    return logits.map((v) => v / temperature);
  }
  function topKFilter(x, k) {                 // keep x >= the k-th largest (all ties kept)
    if (k >= x.length) return x.slice();
    const kth = x.slice().sort((a, b) => b - a)[k - 1];
    return x.map((v) => (v < kth ? -Infinity : v));
  }
  function topPFilter(x, p) {                 // smallest set of most likely tokens reaching p
    if (p >= 1) return x.slice();
    const probs = softmax(x);
    const ordered = probs.slice().sort((a, b) => b - a);
    let running = 0, reached = 0;
    for (const q of ordered) { running += q; if (running < p) reached += 1; }
    let threshold;
    if (reached >= x.length) {                // rounding kept the sum below p: keep every p > 0
      threshold = Infinity;
      for (const q of probs) if (q > 0 && q < threshold) threshold = q;
    } else threshold = ordered[reached];
    return x.map((v, i) => (probs[i] < threshold ? -Infinity : v));
  }
  function nextTokenProbs(logits, temperature, topK, topP) {
    let t = applyTemperature(Array.from(logits), temperature);
    if (topK) t = topKFilter(t, topK);
    if (topP !== null && topP !== undefined) t = topPFilter(t, topP);
    return softmax(t);
  }
  function sampleFromProbs(probs, u) {
    let total = 0;
    const running = probs.map((q) => (total += q));
    const target = u * total;
    let id = running.findIndex((r) => r > target);
    let last = probs.length - 1;
    while (last > 0 && !(probs[last] > 0)) last -= 1;
    if (id < 0 || id > last) id = last;       // u * total rounded up to the total itself
    return id;
  }
  function greedy(logits) {                   // the smallest id among equal largest logits
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  // A seeded generator of uniform numbers in [0, 1) (mulberry32, 53 bits from two draws).
  function rng(seed) {
    let a = seed >>> 0;
    function next32() {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0;
    }
    return () => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
  }

  // ------------------------------------------------------------------ the model
  const state = { session: null, vocab: null, stoi: null, block: 128, stop: false,
                  stats: {}, error: null };

  async function load() {
    if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
    await new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = BASE + "ort.wasm.min.js";
      s.onload = resolve;
      s.onerror = () => reject(new Error("onnxruntime-web is not on this site (" + s.src + ")"));
      document.head.appendChild(s);
    });
    const ort = window.ort;
    ort.env.wasm.wasmPaths = BASE;            // the .wasm and .mjs come from this site
    ort.env.wasm.numThreads = 1;              // no cross-origin isolation needed
    ort.env.wasm.proxy = false;
    const [vocab, meta] = await Promise.all(["vocab.json", "meta.json"].map(async (f) => {
      const r = await fetch(BASE + f);
      if (!r.ok) throw new Error(f + ": HTTP " + r.status);
      return r.json();
    }));
    state.vocab = vocab;
    state.block = meta.block_size;
    state.stoi = new Map(vocab.map((c, i) => [c, i]));
    const t0 = performance.now();
    state.session = await ort.InferenceSession.create(BASE + "model.onnx",
                                                      { executionProviders: ["wasm"] });
    state.stats.load_ms = performance.now() - t0;
    return state;
  }

  // The window rule of llmcourse.sampling.window_start: the model sees ids[start:]; the context
  // grows until it holds block tokens, and when one more would not fit it restarts with the last
  // three quarters of a window.
  function windowStart(length, start) {
    if (length - start <= state.block) return start;
    return length - Math.max(1, Math.floor(state.block * 3 / 4));
  }

  async function lastLogits(window_) {       // the whole context again, every step (no cache)
    const ort = window.ort;
    const input = new ort.Tensor("int64", BigInt64Array.from(window_.map(BigInt)),
                                 [1, window_.length]);
    const out = await state.session.run({ ids: input });
    const logits = out.logits.data;
    const V = state.vocab.length;
    return Array.from(logits.subarray((window_.length - 1) * V, window_.length * V));
  }
  function encode(text) { return Array.from(text).filter((c) => state.stoi.has(c)).map((c) => state.stoi.get(c)); }
  function decode(ids) { return ids.map((i) => state.vocab[i]).join(""); }

  async function generate(opts, onToken) {
    const ids = encode(opts.prompt);
    if (!ids.length) throw new Error("the prompt has no character the model knows");
    const draw = rng(opts.seed || 0);
    const out = [];
    const start = performance.now();
    let first = null;
    state.stop = false;
    let from = 0;
    for (let n = 0; n < opts.maxNewTokens && !state.stop; n++) {
      from = windowStart(ids.length, from);
      const logits = await lastLogits(ids.slice(from));
      let id, probs;
      if (opts.greedy) { id = greedy(logits); probs = softmax(logits); }
      else {
        probs = nextTokenProbs(logits, opts.temperature, opts.topK, opts.topP);
        id = sampleFromProbs(probs, draw());
      }
      ids.push(id); out.push(id);
      if (first === null) first = performance.now() - start;
      if (onToken) await onToken(id, probs);
    }
    const total = performance.now() - start;
    state.stats = Object.assign(state.stats, {
      first_token_ms: first, tokens: out.length,
      tokens_per_s: out.length > 1 ? (out.length - 1) / ((total - first) / 1000) : null });
    return decode(out);
  }

  // ------------------------------------------------------------------ the page
  const show = (c) => (c === "\n" ? "⏎" : c === " " ? "␣" : c);
  function drawBars(el, probs) {
    const top = probs.map((q, i) => [q, i]).sort((a, b) => b[0] - a[0]).slice(0, 10);
    el.innerHTML = "";
    for (const [q, i] of top) {
      const row = document.createElement("div");
      row.className = "pg-bar-row";
      row.innerHTML = `<span class="pg-bar-label"></span><span class="pg-bar"><span class="pg-bar-fill" style="width:${(100 * q).toFixed(1)}%"></span></span><span class="pg-bar-value">${(100 * q).toFixed(1)}%</span>`;
      row.querySelector(".pg-bar-label").textContent = show(state.vocab[i]);
      el.appendChild(row);
    }
  }

  function init() {
    const root = document.getElementById("llm-playground");
    if (!root) return;
    const $ = (id) => document.getElementById(id);
    const status = $("pg-status");
    const fail = (err) => {
      state.error = String(err && err.message ? err.message : err);
      status.textContent = "The model could not be loaded in this browser (" + state.error +
        "). Below is a sample the same model wrote; to run it yourself, open Chapter 7 in " +
        "Binder or Colab.";
      status.classList.add("pg-error");
      $("pg-static").hidden = false;
      $("pg-generate").disabled = true;
    };
    for (const id of ["pg-temperature", "pg-topk", "pg-topp"]) {
      const input = $(id), label = $(id + "-value");
      const update = () => { label.textContent = id === "pg-topk" && input.value === "0" ? "off" : input.value; };
      input.addEventListener("input", update); update();
    }
    window.llmPlayground = {
      ready: load().then(() => {
        status.textContent = "The model is loaded (" + state.vocab.length +
          " characters, a window of " + state.block + "). Type a prompt and press Generate.";
        $("pg-generate").disabled = false;
        return true;
      }).catch((e) => { fail(e); return false; }),
      logits: async (text) => { const ids = encode(text); return lastLogits(ids.slice(windowStart(ids.length, 0))); },
      generate, encode, decode, nextTokenProbs, sampleFromProbs, rng, state,
    };
    $("pg-generate").addEventListener("click", async () => {
      const out = $("pg-output"), bars = $("pg-bars");
      const prompt = $("pg-prompt").value;
      const k = parseInt($("pg-topk").value, 10), p = parseFloat($("pg-topp").value);
      const opts = { prompt, maxNewTokens: parseInt($("pg-length").value, 10) || 200,
                     temperature: parseFloat($("pg-temperature").value),
                     topK: k > 0 ? k : null, topP: p < 1 ? p : null,
                     seed: parseInt($("pg-seed").value, 10) || 0, greedy: $("pg-greedy").checked };
      const known = encode(prompt).length;
      out.textContent = prompt;
      const gen = document.createElement("span"); gen.className = "pg-new"; out.appendChild(gen);
      $("pg-generate").disabled = true; $("pg-stop").disabled = false;
      status.textContent = known < Array.from(prompt).length
        ? "Characters the model never saw were left out of the prompt. Generating..." : "Generating...";
      try {
        await generate(opts, async (id, probs) => {
          gen.textContent += state.vocab[id];
          drawBars(bars, probs);
          await new Promise((r) => setTimeout(r, 0));   // let the page paint each character
        });
        const s = state.stats;
        status.textContent = `Done: ${s.tokens} characters, first after ${Math.round(s.first_token_ms)} ms, then ` +
          (s.tokens_per_s ? `${s.tokens_per_s.toFixed(1)} characters per second.` : "");
      } catch (e) { status.textContent = "Generation failed: " + e.message; }
      $("pg-generate").disabled = false; $("pg-stop").disabled = true;
    });
    $("pg-stop").addEventListener("click", () => { state.stop = true; });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
