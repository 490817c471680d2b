"""The machine a model was trained or measured on: its processor, its device, its libraries.

A loss or a speed means little without the machine it came from, so checkpoints (their JSON)
and benchmark tables record it. :func:`cpu_name` reads the processor's name once for both.
"""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["cpu_name", "machine_info", "pick_device"]


def cpu_name() -> str:
    """The processor's model name (from ``/proc/cpuinfo`` on Linux), else the platform's word."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """The machine and library versions, for a checkpoint's JSON."""
    import torch

    info = {"platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__}
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    for lib in ("numpy", "safetensors"):
        try:
            info[lib] = __import__(lib).__version__
        except ImportError:
            pass
    return info


def pick_device(name: str = "auto"):
    """``auto``: CUDA if present, then Apple's MPS, then the CPU; otherwise the device named."""
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
