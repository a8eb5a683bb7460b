"""Milestones of the window on stderr (first map, analysis shown), for the benchmark that launches
the real application and for the X-server test: set GLITCHVIEW_REPORT_TIMES=1; they time the
lines' arrival."""

from __future__ import annotations

import os
import sys

REPORT_TIMES = os.environ.get("GLITCHVIEW_REPORT_TIMES") == "1"  # bench/bench_first_map.py and the X-server test


def report_time(event: str) -> None:
    """Say on stderr when the window reaches a milestone (the benchmark times the lines' arrival)."""
    if REPORT_TIMES:
        print(f"glitchview: {event}", file=sys.stderr, flush=True)
