"""PyTorch on this machine: 1 thread or 2? Measured side by side in one run.

The course's networks are small (a 9-16-16-4 network in Chapter 1, a 27x27 bigram layer in
Chapter 2, later a small transformer). On a 2-vCPU machine the thread count can change their speed
a lot, either way, so we measure it on workloads shaped like the chapters' rather than guess:

* ``mlp``: Chapter 1's network, full-batch training steps on 1,000 displays;
* ``bigram``: Chapter 2's one-layer network, training steps on 200,000 one-hot characters;
* ``matmul``: a 512x512 matrix product, a stand-in for a transformer's larger layers.

Each workload runs alternately with 1 and 2 threads, several rounds, and the best time of each is
kept. Results go to ``benchmarks/results/torch_threads.md``. Run: ``python benchmarks/torch_threads.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe, least_times  # noqa: E402

ROUNDS = 5


def mlp_step():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 9, generator=g)
    y = torch.randint(0, 4, (1000,), generator=g)
    net = torch.nn.Sequential(torch.nn.Linear(9, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                              torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def run():
        for _ in range(200):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    return run


def bigram_step():
    g = torch.Generator().manual_seed(0)
    xs = torch.randint(0, 27, (200_000,), generator=g)
    ys = torch.randint(0, 27, (200_000,), generator=g)
    W = torch.randn(27, 27, generator=g, requires_grad=True)

    def run():
        for _ in range(20):
            logits = torch.nn.functional.one_hot(xs, 27).float() @ W
            loss = torch.nn.functional.cross_entropy(logits, ys)
            W.grad = None
            loss.backward()
            with torch.no_grad():
                W.sub_(10 * W.grad)
    return run


def matmul_step():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=g), torch.randn(512, 512, generator=g)

    def run():
        for _ in range(50):
            a @ b
    return run


def best_time(run, threads: int) -> float:
    torch.set_num_threads(threads)
    run()  # warm up
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> str:
    rows = []
    for name, make in [("mlp (Ch. 1)", mlp_step), ("bigram (Ch. 2)", bigram_step),
                       ("matmul 512", matmul_step)]:
        run = make()
        best = least_times({threads: lambda threads=threads: best_time(run, threads)
                            for threads in (1, 2)}, ROUNDS)
        t1, t2 = best[1], best[2]
        rows.append(f"| {name} | {t1 * 1000:.0f} | {t2 * 1000:.0f} | {t1 / t2:.2f} |")
    table = "\n".join([
        "# PyTorch: 1 thread vs 2 threads",
        "",
        f"Machine: {describe()}.",
        f"Best of {ROUNDS} alternating rounds per setting, measured in one run.",
        "",
        "| workload | 1 thread (ms) | 2 threads (ms) | speed-up with 2 threads |",
        "| --- | ---: | ---: | ---: |",
        *rows,
        "",
    ])
    out = Path(__file__).parent / "results" / "torch_threads.md"
    out.write_text(table)
    return table


if __name__ == "__main__":
    print(main())
