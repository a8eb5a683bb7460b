"""A model comparison as CSV: one row per token with both models' scores, the delta B - A, both
verdicts and the under-trained calls (the same safe cells as every other export)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..analysis import Analysis
from ..scores.compare import Comparison
from ..verify.verdicts import LABELS
from .export import safe_cell
from .files import atomic_write


def write_comparison(a: Analysis, comparison: Comparison, path: Path) -> int:
    """Write every token of the comparison of `a` (model A) with B; returns the rows written."""
    c = comparison
    names = list(c.deltas)
    head = ["id", "text", "bytes_hex", *(f"{n}_{side}" for n in names for side in ("a", "b", "delta")),
            "verdict_a", "verdict_b", "undertrained_a", "undertrained_b", "decided_by"]
    with atomic_write(Path(path), "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(head)
        for i in range(len(a)):
            cells = [repr(float(x)) for n in names for x in (a.scores[n][i], c.scores_b[n][i], c.deltas[n][i])]
            writer.writerow([str(i), safe_cell(a.table.texts[i]), a.table.token_bytes[i].hex(), *cells,
                             LABELS[c.verdict_a[i]], LABELS[c.verdict_b[i]], int(c.undertrained_a[i]),
                             int(c.undertrained_b[i]), f"{c.indicator}:{c.share:g}"])
    return len(a)
