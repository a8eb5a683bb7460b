"""Memory checks before big reads: estimate what a step needs from file headers and refuse with a
clear message, instead of being killed by the operating system halfway through."""

from __future__ import annotations

import os

from ..errors import ModelLoadError

SAFETY = 0.8  # use at most this share of the available memory


def available_bytes() -> int:
    """Memory available now: GLITCHVIEW_MEMORY_LIMIT_MB if set, else the kernel's MemAvailable."""
    limit = os.environ.get("GLITCHVIEW_MEMORY_LIMIT_MB")
    if limit:
        return int(float(limit) * 2**20)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(needed: int, what: str, advice: str) -> None:
    """Raise ModelLoadError when `needed` bytes exceed the safe share of available memory."""
    free = available_bytes()
    if needed > SAFETY * free:
        raise ModelLoadError(f"{what} needs about {needed / 2**20:,.0f} MB of memory but only "
                             f"{free / 2**20:,.0f} MB are available; {advice}")
