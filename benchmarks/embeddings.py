"""Benchmark llmcourse.embeddings: our skip-gram trainer against gensim's Word2Vec(sg=1), side by
side in one run, on the cleaned Tiny Shakespeare corpus with the same settings.

gensim is needed only here (it is not a course dependency). Install it, then run:

    pip install gensim
    .venv/bin/python benchmarks/embeddings.py     (a few minutes; writes benchmarks/results/embeddings.md)

Measured: training speed in corpus words per second (the corpus length times the epochs, divided
by the wall time of training), and quality: the analogy hit rate (the expected word among the top
10, query words excluded) on a list of pairs, and the mean overlap of the top-10 neighbours of
probe words. Each trainer runs with several seeds; two gensim runs with different seeds give the
overlap one can expect between two equally good models.

Targets: our training <= 30 s (the chapter's setting); our hit rate within 10 points of gensim's;
throughput reported as a ratio to gensim's (aim: >= 0.25x).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

from llmcourse.data import load_text
from llmcourse.embeddings import WordVectors, analogy_hit_rate, corpus_words, train_skipgram

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe  # noqa: E402

try:
    import gensim
    from gensim.models import Word2Vec
except ImportError:
    sys.exit("This benchmark compares with gensim, which the course does not install: "
             "pip install gensim")

RESULTS = Path(__file__).parent / "results" / "embeddings.md"
SETTINGS = dict(dim=50, window=5, negatives=5, epochs=5, min_count=5, subsample=1e-3, lr=0.025)
WORKERS = 2
SEEDS = [0, 1, 2]
PAIRS = [("lord", "lady"), ("duke", "duchess"), ("father", "mother"), ("son", "daughter"),
         ("brother", "sister"), ("he", "she"), ("his", "her"), ("king", "queen"),
         ("man", "woman"), ("husband", "wife"), ("sir", "madam"), ("uncle", "aunt"),
         ("boy", "girl"), ("prince", "princess")]
PROBES = ["lord", "lady", "duke", "father", "son", "thou", "love", "sword", "night", "three",
          "king", "death", "heaven", "blood", "eyes", "good", "come", "speak", "rome", "france"]


def train_ours(words, seed):
    start, cpu = time.perf_counter(), time.process_time()
    wv = train_skipgram(words, **SETTINGS, seed=seed)
    return time.perf_counter() - start, time.process_time() - cpu, wv


def train_gensim(words, seed):
    s = SETTINGS
    start, cpu = time.perf_counter(), time.process_time()
    model = Word2Vec([words[i:i + 10_000] for i in range(0, len(words), 10_000)], sg=1, hs=0,
                     vector_size=s["dim"], window=s["window"], negative=s["negatives"],
                     epochs=s["epochs"], min_count=s["min_count"], sample=s["subsample"],
                     alpha=s["lr"], min_alpha=s["lr"] * 1e-4, workers=WORKERS, seed=seed)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    kv = model.wv
    return seconds, cpu_seconds, WordVectors(list(kv.index_to_key), kv.vectors)


def overlap(a: WordVectors, b: WordVectors, k: int = 10) -> float:
    """The mean share of the top-k neighbours that two models agree on, over the probe words."""
    shares = [len({w for w, _ in a.most_similar(p, k)} & {w for w, _ in b.most_similar(p, k)}) / k
              for p in PROBES]
    return float(np.mean(shares))


def main() -> str:
    machine = describe()
    words = corpus_words(load_text("tinyshakespeare", progress=False))
    corpus = len(words) * SETTINGS["epochs"]
    runs = {"llmcourse": [], "gensim": []}
    for seed in SEEDS:
        runs["llmcourse"].append(train_ours(words, seed))
        runs["gensim"].append(train_gensim(words, seed))
    rows = {}
    for name, results in runs.items():
        times = [t for t, _, _ in results]
        rates = [analogy_hit_rate(wv, PAIRS, k=10) for _, _, wv in results]
        rows[name] = dict(
            best=min(times), median=statistics.median(times),
            speed=corpus / min(times),
            hit=float(np.mean([r for r, _, _ in rates])),
            hits=[h for _, h, _ in rates], questions=rates[0][2],
            cpu=min(c for _, c, _ in results),
            vocab=len(results[0][2]),
        )
    ours, theirs = [wv for _, _, wv in runs["llmcourse"]], [wv for _, _, wv in runs["gensim"]]
    cross = float(np.mean([overlap(a, b) for a, b in zip(ours, theirs)]))
    within_gensim = float(np.mean([overlap(theirs[i], theirs[j])
                                   for i in range(len(SEEDS)) for j in range(i + 1, len(SEEDS))]))
    within_ours = float(np.mean([overlap(ours[i], ours[j])
                                 for i in range(len(SEEDS)) for j in range(i + 1, len(SEEDS))]))
    ratio = rows["llmcourse"]["speed"] / rows["gensim"]["speed"]
    gap = 100 * (rows["gensim"]["hit"] - rows["llmcourse"]["hit"])

    s = SETTINGS
    lines = [
        "# Embeddings benchmark (`benchmarks/embeddings.py`)",
        "",
        f"Machine: {machine}.",
        "",
        f"Data: Tiny Shakespeare cleaned by `corpus_words` (speaker lines removed, lower case): "
        f"{len(words):,} words. Settings for both: {s['dim']} dimensions, window {s['window']}, "
        f"{s['negatives']} negatives, {s['epochs']} epochs, min_count {s['min_count']}, "
        f"subsampling {s['subsample']:g}, learning rate {s['lr']} falling linearly. gensim "
        f"{gensim.__version__} with `Word2Vec(sg=1, hs=0, workers={WORKERS})`; llmcourse with "
        f"its defaults (batches of 2048 pairs, 1 PyTorch thread). Seeds {SEEDS}; times are the "
        f"best and the median of the {len(SEEDS)} runs, hit rates their mean.",
        "",
        "| trainer | vocabulary | best time (s) | median time (s) | CPU time (s, best) | "
        "words/s (best) | analogy hit rate (top 10) | hits per seed |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['vocab']:,} | {r['best']:.2f} | {r['median']:.2f} | "
                     f"{r['cpu']:.2f} | "
                     f"{r['speed']:,.0f} | {r['hit']:.1%} | "
                     f"{', '.join(str(h) for h in r['hits'])} of {r['questions']} |")
    lines += [
        "",
        "CPU time is the processor time the training process used (all its threads). Our trainer "
        "uses one thread, so on an idle machine its wall time is about its CPU time; gensim's two "
        "workers can halve its wall time there. On a busy machine (see the load average above) "
        "wall times are longer than CPU times for both.",
        "",
        f"Analogy questions: every ordered pair of two different pairs from {len(PAIRS)} "
        f"(`{', '.join(f'{a}/{b}' for a, b in PAIRS)}`), \"a : b :: c : ?\", answer among the "
        f"top 10 with a, b and c excluded.",
        "",
        f"Top-10 neighbour overlap on {len(PROBES)} probe words (`{', '.join(PROBES)}`): "
        f"llmcourse vs gensim (same seed) {cross:.0%}; gensim vs gensim (different seeds) "
        f"{within_gensim:.0%}; llmcourse vs llmcourse (different seeds) {within_ours:.0%}.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
        f"| our training <= 30 s | {rows['llmcourse']['best']:.1f} s wall (best), "
        f"{rows['llmcourse']['cpu']:.1f} s CPU | "
        f"{'yes' if rows['llmcourse']['best'] <= 30 else 'no'} (wall time)"
        f"{'; yes by CPU time' if rows['llmcourse']['cpu'] <= 30 < rows['llmcourse']['best'] else ''} |",
        f"| hit rate within 10 points of gensim | {gap:+.1f} points behind gensim | "
        f"{'yes' if gap <= 10 else 'no'} |",
        f"| throughput >= 0.25x gensim | {ratio:.2f}x | {'yes' if ratio >= 0.25 else 'no'} |",
        "",
    ]
    report = "\n".join(lines)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(report, encoding="utf-8")
    return report


if __name__ == "__main__":
    print(main())
