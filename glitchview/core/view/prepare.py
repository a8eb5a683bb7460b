"""Everything the window needs to show an analysis, prepared off the GUI thread in one go:
colourings, the spatial index of each projection, escaped texts, taxonomy, and each indicator's
ranking (computed once, kept in the analysis)."""

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
    escaped_texts: list[str]  # every token's text, escaped for display
    text_rank: np.ndarray  # each token's position in the sorted escaped texts (sorting by text is numpy)
    taxonomy: np.ndarray  # taxonomy code of every token (shown once it is verified)


def prepare_view_data(analysis: Analysis, progress: ProgressFn = no_progress) -> ViewData:
    progress(0.0, "Preparing the map: colourings")
    colourings = {name: colouring_for(analysis, name) for name in colour_options(analysis)}
    progress(0.5, "Preparing the map: spatial index")
    indexes = {name: build_map_index(coords, analysis.labels) for name, coords in analysis.projections.items()}
    for name in analysis.scores:
        analysis.ranking(name)
    escaped = [escape_text(t) for t in analysis.table.texts]
    text_rank = np.empty(len(escaped), dtype=np.int64)
    text_rank[sorted(range(len(escaped)), key=escaped.__getitem__)] = np.arange(len(escaped))
    progress(1.0, "Preparing the map: done")
    return ViewData(colourings, indexes, escaped, text_rank, classify_tokens(analysis.table))
