"""The machine every benchmark figure belongs to: CPU model, cores, and whether torch runs
bfloat16 matrix work on it (AMX / AVX512-BF16). Each benchmark prints this line first."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    from glitchview.core.verify.probing import bf16_is_fast

    return f"{cpu_model()}, {os.cpu_count()} cores, bf16 matrix units: {'yes' if bf16_is_fast() else 'no'}"
