"""Attention: ours (which builds the T x T weights) vs PyTorch's fused kernel, by sequence length.

Chapter 5 shows the same measurement as a figure. Here, for each length T, both run alternately
for several rounds on the same inputs (2 heads of width 32, one thread), and we keep the least
processor time of each (``time.process_time``: it does not count time the machine gives to other
programs). Memory is what PyTorch's profiler counts as allocated during one call. Results go to
``benchmarks/results/attention.md``. Run: ``python benchmarks/attention.py``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # keep the profiler's log lines out of the output

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import describe, least_times  # noqa: E402

from llmcourse.attention import causal_mask, scaled_dot_product_attention  # noqa: E402

ROUNDS = 5
LENGTHS = [128, 256, 512, 1024, 2048]
HEADS, WIDTH = 2, 32


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def allocated_mib(fn) -> float:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        fn()
    return sum(e.self_cpu_memory_usage for e in prof.key_averages()
               if e.self_cpu_memory_usage > 0) / 2**20


def main() -> str:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rows = []
    for T in LENGTHS:
        q, k, v = (torch.randn(1, HEADS, T, WIDTH, generator=g) for _ in range(3))
        mask = causal_mask(T)
        calls = {"ours": lambda: scaled_dot_product_attention(q, k, v, mask),
                 "fused": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)}
        for fn in calls.values():
            fn()  # warm up
        best = least_times({name: lambda fn=fn: cpu_seconds(fn) for name, fn in calls.items()},
                           ROUNDS)
        t_ours, t_fused = best["ours"], best["fused"]
        m_ours, m_fused = allocated_mib(calls["ours"]), allocated_mib(calls["fused"])
        rows.append(f"| {T} | {t_ours * 1000:.1f} | {t_fused * 1000:.1f} | {t_ours / t_fused:.1f} "
                    f"| {m_ours:.1f} | {m_fused:.2f} |")
    table = "\n".join([
        "# Attention: ours (T x T weights) vs PyTorch's fused scaled_dot_product_attention",
        "",
        f"Machine: {describe()}.",
        f"Causal self-attention, batch 1, {HEADS} heads of width {WIDTH}, float32, one thread. "
        f"Least processor time of {ROUNDS} alternating rounds; memory allocated during one call, "
        "as PyTorch's profiler counts it.",
        "",
        "| T | ours (ms) | fused (ms) | ours / fused | ours (MiB) | fused (MiB) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ])
    out = Path(__file__).parent / "results" / "attention.md"
    out.write_text(table)
    return table


if __name__ == "__main__":
    print(main())
