"""Everything the window needs to show an analysis, prepared off the GUI thread in one go:
colourings, the spatial index of each projection, and each indicator's ranks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis import Analysis
from ..progress import ProgressFn, no_progress
from ..store.text import escape_text
from ..verify.taxonomy import classify_tokens
from .colouring import Colouring, colour_options, colouring_for
from .mapindex import MapIndex, build_map_index


@dataclass
class ViewData:
    colourings: dict[str, Colouring]
    indexes: dict[str, MapIndex]
    ranks: dict[str, np.ndarray]  # 1-based rank from each indicator's suspicious end
    orders: dict[str, np.ndarray]  # token ids from each indicator's suspicious end (NaN last)
    escaped_texts: list[str]  # every token's text, escaped for display
    taxonomy: np.ndarray  # taxonomy code of every token (shown once it is verified)


def prepare_view_data(analysis: Analysis, progress: ProgressFn = no_progress) -> ViewData:
    progress(0.0, "Preparing the map: colourings")
    colourings = {name: colouring_for(analysis, name) for name in colour_options(analysis)}
    progress(0.5, "Preparing the map: spatial index")
    indexes = {name: build_map_index(coords, analysis.labels) for name, coords in analysis.projections.items()}
    orders = {name: analysis.order(name) for name in analysis.scores}
    rank = {}
    for name, order in orders.items():
        rank[name] = np.empty(len(order), dtype=np.int64)
        rank[name][order] = np.arange(1, len(order) + 1)
    escaped = [escape_text(t) for t in analysis.table.texts]
    progress(1.0, "Preparing the map: done")
    return ViewData(colourings, indexes, rank, orders, escaped, classify_tokens(analysis.table))
