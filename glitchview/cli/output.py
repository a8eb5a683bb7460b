"""What the command line prints: step progress bars, token tables, the model summary and the
indicator-quality table (the same rows the window shows)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np

from ..core.analysis import Analysis
from ..core.scores.indicators import short_name
from ..core.store.text import display_width, escape_text

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
TOKEN_WIDTH = 28


class StepBars:
    """One progress bar line per pipeline step on stderr (messages are 'Step: detail')."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream, self.width = stream or sys.stderr, width
        self.tty = self.stream.isatty()
        self.step, self.detail, self.fraction = "", "", 0.0
        self.step_start = self.last_draw = time.monotonic()

    def __call__(self, fraction: float, message: str) -> None:
        step, _, detail = message.partition(": ")
        if step != self.step:
            self.close()
            self.step, self.step_start = step, time.monotonic()
        self.detail, self.fraction = detail, fraction
        if self.tty and time.monotonic() - self.last_draw > 0.1:
            self._draw("\r")
            self.last_draw = time.monotonic()

    def _draw(self, prefix: str, end: str = "") -> None:
        filled = int(round(self.fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.step_start
        line = f"{self.step:<22} [{bar}] {self.fraction:4.0%} {elapsed:6.1f}s  {self.detail}"
        self.stream.write(f"{prefix}{line[:150]:<150}{end}" if self.tty else f"{line}{end}")
        self.stream.flush()

    def close(self) -> None:
        if self.step:
            self._draw("\r" if self.tty else "", "\n")
        self.step = ""


def _cell(text: str, width: int) -> str:
    escaped = escape_text(text)
    out, used = "", 0
    for char in escaped:
        w = display_width(char)
        if used + w > width - 1 and len(out) < len(escaped):
            return out + "…" + " " * (width - used - 1)
        out, used = out + char, used + w
    return out + " " * (width - used)


def format_table(analysis: Analysis, ids: np.ndarray, indicator: str) -> str:
    """A fixed-width table of tokens: rank, id, token, category, cluster and every indicator."""
    names = [indicator, *(n for n in analysis.scores if n != indicator)]
    short = {n: short_name(n) for n in names}
    head = f"{'rank':>5} {'id':>7}  {'token':<{TOKEN_WIDTH}} {'category':<15} {'cluster':>7} " + \
        " ".join(f"{short[n]:>14}" for n in names)
    lines = [head, "-" * len(head)]
    categories = analysis.table.category_names()
    for rank, i in enumerate(ids, 1):
        token = _cell(analysis.table.texts[i], TOKEN_WIDTH)
        scores = " ".join(f"{analysis.scores[n][i]:>14.6g}" for n in names)
        lines.append(f"{rank:>5} {i:>7}  {token} {categories[i]:<15} {int(analysis.labels[i]):>7} {scores}")
    return "\n".join(lines)


def _print_summary(analysis: Analysis, out: TextIO) -> None:
    m = analysis.model
    out.write(f"\nModel: {escape_text(m.title)} [{escape_text(m.architecture)}], {m.n_tokens} tokens x "
              f"{m.dim} dims, {'tied' if m.tied else 'untied'} embeddings, fingerprint {m.fingerprint}\n")
    for note in m.notes:  # notes name files and tokens: shown escaped, like every token string
        out.write(f"Note: {escape_text(note)}\n")
    out.write(f"Clusters: k={len(analysis.centers)}, inertia {analysis.inertia:.6g}\n")
    out.write(f"Reference unused tokens: {analysis.reference.rule}\n")
    counts = ", ".join(f"{name} {int(mask.sum())}" for name, mask in analysis.table.flags.items() if mask.any())
    out.write(f"Token flags: {counts or 'none'}\n")
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in analysis.timings.items())
    out.write(f"Timings: {timing}\n")


def format_quality(analysis: Analysis, verdicts: np.ndarray, sample: np.ndarray, top: int) -> str:
    """The indicator-quality table (`quality_table`, as the window shows it) as fixed-width text."""
    from ..core.verify.quality import KS, quality_table

    ks = tuple(k for k in KS if k <= top) or (top,)
    table = quality_table(analysis, verdicts, ks, sample)
    widths = [max(len(c), *(len(r[i]) for r in table.rows)) for i, c in enumerate(table.columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    head = line(table.columns)
    return "\n".join([head, "-" * len(head), *(line(r) for r in table.rows), *table.notes])


