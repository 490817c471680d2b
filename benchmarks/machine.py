"""A description of the machine a benchmark ran on, for results tables, and the timing loop the
benchmarks share (alternating rounds, the least time of each setting kept)."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    from llmcourse.machine import cpu_name

    parts = [cpu_name(), f"{os.cpu_count()} logical CPUs", f"Python {platform.python_version()}",
             f"{platform.system()} {platform.release()}"]
    for module in ("numpy", "torch", "tiktoken", "regex"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    if hasattr(os, "getloadavg"):
        parts.append(f"load average {os.getloadavg()[0]:.1f} when described (other programs "
                     f"share the machine, so absolute times vary; ratios measured side by side "
                     f"vary less)")
    return ", ".join(parts)


def least_times(measures: dict, rounds: int) -> dict:
    """The least seconds of each measurement over ``rounds`` alternating rounds.

    ``measures`` maps a name to a function that runs the work once and returns the seconds it
    took. Each round runs every function once, in turn, so that a change in the machine's load
    affects all settings alike; the least time of each is the one least disturbed by other
    programs.
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    times: dict = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            times[name].append(measure())
    return {name: min(t) for name, t in times.items()}
