"""The CPU description the benchmarks print with their figures (the instruction sets that decide speed)."""

from __future__ import annotations

import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> str:
    """Which of :data:`FLAGS` this CPU has, from /proc/cpuinfo ("none" if none; the processor name where
    there is no /proc/cpuinfo)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next(line for line in lines if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"
    have = set(flags.split(":", 1)[1].split())
    return " ".join(f for f in FLAGS if f in have) or "none"
