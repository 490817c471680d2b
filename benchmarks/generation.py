"""Benchmark llmcourse.sampling.generate: tokens per second with and without the key/value cache,
measured side by side in one run on the shipped Chapter 6 model, and the time per token against
the length of the text.

Run:  .venv/bin/python benchmarks/generation.py [--threads N] [--repeats R] [--baseline PATH]
      (writes benchmarks/results/generation.md; by default PyTorch's own thread count, 3 repeats)

It also measures what a reader of Chapter 6 sees: characters per second when sampling 600
characters at temperature 1 with the cache on one thread (goal of issue 21: at least 500), for the
shipped model and, side by side, for an earlier checkpoint given with ``--baseline`` (for example
the previous shipped model: ``git show <commit>:llmcourse/checkpoints/shakespeare_char.json``
and ``.safetensors`` into a folder).

Target (issue 13): the cache's speed-up at 256 new tokens, reported as a ratio (aim: >= 3x), with
identical tokens (asserted). Greedy decoding from a one-character prompt; each setting is run
REPEATS times, alternating cached and uncached runs, and the best time of each is kept.

The shipped model has a short context window (block_size). Past it, both loops follow the window
rule of ``llmcourse.sampling.window_start``: when the text no longer fits, the context restarts with
the last three quarters of a window. The loop without a cache runs the model on that whole context
for every token; the cached loop fills its cache again once per restart (a quarter of a window
apart) and otherwise runs one token per step. The table also gives the speed-up while the text
still fits in the window.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from llmcourse.checkpoint import load_checkpoint, load_pretrained
from llmcourse.sampling import generate

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe  # noqa: E402

REPEATS = 3
RESULTS = Path(__file__).parent / "results" / "generation.md"


def run(model, prompt, n_new, use_cache):
    """(new ids, processor seconds per token, wall seconds in all) of one greedy generation.

    Processor time (``time.process_time``, all threads of this process) is what the generation
    itself costs; other programs on a shared machine inflate the wall time but not this.
    """
    stamps = []
    wall, start = time.perf_counter(), time.process_time()
    new = generate(model, prompt, n_new, greedy=True, use_cache=use_cache,
                   on_token=lambda _t: stamps.append(time.process_time()))
    times = [b - a for a, b in zip([start] + stamps, stamps)]
    return new, times, time.perf_counter() - wall


def measure(model, prompt, n_new, repeats):
    """Best total time with and without the cache, alternating, and the per-token times of the
    best runs; asserts that both give the same tokens."""
    best = {True: (float("inf"), None, float("inf")), False: (float("inf"), None, float("inf"))}
    reference = None
    for _ in range(repeats):
        for use_cache in (False, True):
            new, times, wall = run(model, prompt, n_new, use_cache)
            if reference is None:
                reference = new
            assert new == reference, "cached and uncached generation gave different tokens"
            if sum(times) < best[use_cache][0]:
                best[use_cache] = (sum(times), times, min(wall, best[use_cache][2]))
    return best


def sampling_speed(model, prompt, n_new=600, repeats=3):
    """Best characters per second (wall and processor time) of seeded sampling with the cache."""
    best_wall, best_cpu = 0.0, 0.0
    for seed in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        generate(model, prompt, n_new, generator=torch.Generator().manual_seed(seed))
        best_wall = max(best_wall, n_new / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, n_new / (time.process_time() - cpu))
    return best_wall, best_cpu


def sampling_section(model, baseline_path, repeats, label=None):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    models = [("shipped model", model)]
    if baseline_path:
        models.append((label or f"baseline ({Path(baseline_path).name})",
                       load_checkpoint(baseline_path)[0]))
    prompt = list(range(1, 201))
    speeds = {name: [] for name, _ in models}
    for _ in range(repeats):                       # alternate the models, keep the best of each
        for name, m in models:
            prompt_ids = [i % m.config.vocab_size for i in prompt]
            speeds[name].append(sampling_speed(m, prompt_ids, repeats=1))
    torch.set_num_threads(threads)
    lines = ["## Sampling speed as Chapter 6 uses it (1 thread)", "",
             "600 characters sampled at temperature 1 with the cache after a 200-character "
             f"prompt; best of {repeats} alternating runs per model.", "",
             "| model | parameters | characters/s (wall) | characters/s (processor) |",
             "| --- | ---: | ---: | ---: |"]
    for name, m in models:
        wall = max(w for w, _ in speeds[name])
        cpu = max(c for _, c in speeds[name])
        lines.append(f"| {name} | {sum(p.numel() for p in m.parameters()):,} | {wall:.0f} | "
                     f"{cpu:.0f} |")
    return lines + [""]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="PyTorch threads (default: PyTorch's own choice)")
    parser.add_argument("--repeats", type=int, default=REPEATS,
                        help="alternating runs per setting; the best is kept")
    parser.add_argument("--baseline", default=None,
                        help="an earlier checkpoint (path without suffix) to compare sampling speed")
    parser.add_argument("--baseline-label", default=None, help="how to name the baseline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_pretrained()
    block = model.config.block_size
    prompt = tokenizer.encode("\n")
    rows, figure = [], None
    for n_new in (256, block - len(prompt)):
        best = measure(model, prompt, n_new, args.repeats)
        plain, cached = best[False][0], best[True][0]
        rows.append((args.threads, n_new, n_new / plain, n_new / cached, plain / cached,
                     best[False][2] / best[True][2]))
        if n_new == 256:
            figure = (best[False][1], best[True][1])
        print(rows[-1], flush=True)

    lines = [
        "# Generation: with and without the key/value cache",
        "",
        f"Machine: {describe()}.",
        f"Model: the shipped Chapter 6 checkpoint ({sum(p.numel() for p in model.parameters()):,} "
        f"parameters, block_size {block}). Greedy decoding from a 1-character prompt; best of "
        f"{args.repeats} alternating runs per setting, measured in one run.",
        "",
        "Tokens per second of processor time (what the work costs; the wall-clock ratio is "
        "given too, but on a shared machine it also measures the other programs).",
        "",
        "| threads | new tokens | tokens/s without cache | tokens/s with cache | speed-up "
        "| speed-up, wall clock |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for threads, n_new, plain, cached, ratio, wall_ratio in rows:
        lines.append(f"| {threads} | {n_new} | {plain:.0f} | {cached:.0f} | {ratio:.2f}x "
                     f"| {wall_ratio:.2f}x |")
    lines += [
        "",
        f"Identical tokens with and without the cache: every timed pair above was asserted "
        f"identical (greedy, up to 256 new tokens, past the block size of {block}); "
        f"tests/test_sampling.py checks 300 greedy and 300 seeded sampled tokens on this model.",
        "",
        f"With {block - len(prompt)} new tokens the text just fills the window: every cached step "
        f"runs the model on one token. With 256 new tokens the text outgrows the window: the "
        f"context restarts with its last {max(1, block * 3 // 4)} tokens whenever it is full "
        f"(llmcourse.sampling.window_start), in both loops. The loop without a cache runs the "
        f"model on the whole context at every step; the cached loop fills its cache again at each "
        f"restart (every {block - max(1, block * 3 // 4) + 1} tokens) and otherwise runs one token "
        f"per step.",
        "",
        f"## Time per token against the length of the text ({args.threads} threads, "
        f"256 new tokens)",
        "",
        "Milliseconds of processor time for the token that makes the text this long (every 16th "
        "position; the first row includes the prefill).",
        "",
        "| length of the text | without cache (ms) | with cache (ms) |",
        "| ---: | ---: | ---: |",
    ]
    plain_t, cached_t = figure
    # Steadiness check: one-token cached steps cost about the same before and after the window is
    # full (the restarts, which run many tokens, are left out: the slowest quarter of the steps).
    full = block - len(prompt)
    before, after = sorted(cached_t[1:full]), sorted(cached_t[full:])
    after = after[:len(after) * 3 // 4]
    med_before, med_after = before[len(before) // 2], after[len(after) // 2]
    lines[-6:-6] = [
        f"Check: a cached step that runs one token costs about the same before and after the "
        f"window is full; the median is {1000 * med_before:.2f} ms before and {1000 * med_after:.2f} "
        f"ms after (ratio {med_after / med_before:.2f}). "
        + ("They agree within 25 %, so the machine's speed held steady during the cached run."
           if 0.8 < med_after / med_before < 1.25 else
           "They differ by more than 25 %: the machine's load changed during the runs, so the "
           "speed-ups above are unreliable; run the benchmark again on a quiet machine."),
        "",
    ]
    for i in list(range(0, 256, 16)) + [255]:
        lines.append(f"| {len(prompt) + i + 1} | {1000 * plain_t[i]:.2f} | "
                     f"{1000 * cached_t[i]:.2f} |")
    lines += [""] + sampling_section(model, args.baseline, args.repeats, args.baseline_label)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
