"""A description of the machine a benchmark ran on, for results tables."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [f"{cpu}", f"{os.cpu_count()} logical CPUs", f"Python {platform.python_version()}",
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
