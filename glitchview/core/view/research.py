"""What the corpus counts and a model comparison add to the views: table columns, table filters and
map colourings, each present only when the analysis holds what it needs. The table, the map and
the exports read them from here, so that they never disagree about names or values."""

from __future__ import annotations

import numpy as np

from ..analysis import CORPUS_RARITY, Analysis
from ..scores.indicators import short_name
from ..verify.verdicts import LABELS

NEVER_SEEN = "never seen in the corpus"
ONLY_A = "under-trained in A, not in B"
ONLY_B = "under-trained in B, not in A"
FILTERS = (NEVER_SEEN, ONLY_A, ONLY_B)
COMPARE_COLOURING = "compare: under-trained"
COMPARE_LABELS = ["in neither", "in both", "in A only", "in B only"]  # codes 0..3, drawn in this order


def delta_name(indicator: str) -> str:
    return f"Δ {short_name(indicator)}"


def research_columns(analysis: Analysis) -> dict[str, np.ndarray]:
    """Extra table columns: corpus count and per million; per indicator B - A and B's verdict."""
    columns: dict[str, np.ndarray] = {}
    if analysis.corpus is not None:
        columns["corpus count"] = analysis.corpus.counts
        columns["per million"] = analysis.corpus.per_million()
    c = analysis.comparison
    if c is not None:
        for name, delta in c.deltas.items():
            columns[delta_name(name)] = delta
        columns["verdict B"] = np.asarray(LABELS, dtype=object)[c.verdict_b]
    return columns


def research_filter(analysis: Analysis, name: str) -> np.ndarray:
    """The rows a research filter keeps (none when the analysis lacks what the filter needs)."""
    c = analysis.comparison
    if name == NEVER_SEEN and analysis.corpus is not None:
        return analysis.corpus.never_seen
    if name == ONLY_A and c is not None:
        return c.only_a
    if name == ONLY_B and c is not None:
        return c.only_b
    return np.zeros(len(analysis), dtype=bool)


def research_colourings(analysis: Analysis) -> list[str]:
    """Map colourings: the comparison's under-trained calls and each delta (corpus_rarity is a score,
    coloured like any indicator, on its log scale)."""
    c = analysis.comparison
    return [] if c is None else [COMPARE_COLOURING, *(delta_name(name) for name in c.deltas)]


def compare_codes(analysis: Analysis) -> np.ndarray:
    c = analysis.comparison
    return (c.undertrained_a & c.undertrained_b) * 1 + c.only_a * 2 + c.only_b * 3


RARITY_DESCRIPTION = ("-log10 of the token's add-one smoothed frequency per million in the counted corpus (a log "
                      "scale; every never-seen token shares the top)")


def describe_indicator(name: str) -> tuple[str, str]:
    """(description, suspicious end) of any score an analysis can hold."""
    from ..scores.indicators import INDICATORS

    if name in INDICATORS:
        return INDICATORS[name].description, INDICATORS[name].suspicious
    if name == CORPUS_RARITY:
        return RARITY_DESCRIPTION, "high"
    return name, "high"
