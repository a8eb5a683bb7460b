"""The window's state: one analysis and what the user does with it (selection, flags, colouring,
projection). Views listen to its signals; workers hand it new data; tests and scripts drive it
through the same methods (the programmatic selection API lives here)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..core.analysis import DEFAULT_INDICATOR, Analysis
from ..core.model.loading import LoadedModel
from ..core.view.colouring import Colouring
from ..core.view.mapindex import MapIndex
from ..core.view.prepare import ViewData
from ..core.view.selection import Mode, combine, ids_mask, points_in_polygon, points_in_rect


class AnalysisState(QObject):
    analysisChanged = Signal()
    selectionChanged = Signal()
    flagsChanged = Signal()
    colouringChanged = Signal()
    projectionChanged = Signal()
    verdictsChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.analysis: Analysis | None = None
        self.model: LoadedModel | None = None
        self.colourings: dict[str, Colouring] = {}
        self.indexes: dict[str, MapIndex] = {}
        self.ranks: dict[str, np.ndarray] = {}
        self.orders: dict[str, np.ndarray] = {}
        self.escaped_texts: list[str] = []
        self.taxonomy = np.zeros(0, dtype=np.int8)
        self.selection = np.zeros(0, dtype=bool)
        self.colour_by = DEFAULT_INDICATOR
        self.projection = "pca"
        self.indicator = DEFAULT_INDICATOR
        self.path: str = ""  # the analysis file this state was opened from or saved to
        self.probe = None  # core.probing.ProbeModel once the network was built for prompting

    # --- data arriving from workers -------------------------------------------------------
    def set_analysis(self, analysis: Analysis, view: ViewData, model: LoadedModel | None = None,
                     selection: np.ndarray | None = None, colour_by: str | None = None,
                     projection: str | None = None) -> None:
        self.analysis = analysis
        self.colourings, self.indexes, self.ranks = dict(view.colourings), dict(view.indexes), dict(view.ranks)
        self.escaped_texts, self.orders, self.taxonomy = view.escaped_texts, dict(view.orders), view.taxonomy
        if model is not None and (self.model is None or model.fingerprint != self.model.fingerprint):
            self.probe = None
        if model is not None:
            self.model = model
        n = len(analysis)
        self.selection = selection if selection is not None and len(selection) == n else np.zeros(n, dtype=bool)
        self.indicator = analysis.settings.get("indicator", DEFAULT_INDICATOR)
        self.colour_by = colour_by if colour_by in self.colourings else self.indicator
        self.projection = projection if projection in self.indexes else next(iter(self.indexes))
        self.analysisChanged.emit()

    def add_projection(self, name: str, coords: np.ndarray, index: MapIndex) -> None:
        assert self.analysis is not None
        self.analysis.projections[name] = coords
        self.indexes[name] = index
        self.set_projection(name)

    def add_colouring(self, colouring: Colouring) -> None:
        self.colourings[colouring.name] = colouring
        self.colour_by = colouring.name
        self.colouringChanged.emit()

    # --- user choices -----------------------------------------------------------------------
    @property
    def coords(self) -> np.ndarray:
        return self.indexes[self.projection].coords

    def set_projection(self, name: str) -> None:
        if name in self.indexes:
            self.projection = name
            self.projectionChanged.emit()

    def set_colour_by(self, name: str) -> bool:
        """Switch colouring; False when it has to be computed first (see the window)."""
        if name not in self.colourings:
            return False
        self.colour_by = name
        self.colouringChanged.emit()
        return True

    # --- selection API ---------------------------------------------------------------------
    def selected_ids(self) -> np.ndarray:
        return np.flatnonzero(self.selection)

    def _apply(self, mask: np.ndarray, mode: Mode) -> None:
        self.selection = combine(self.selection, mask, mode)
        self.selectionChanged.emit()

    def select_ids(self, ids, mode: Mode = "replace") -> None:
        self._apply(ids_mask(len(self.selection), ids), mode)

    def select_rect(self, x0: float, y0: float, x1: float, y1: float, mode: Mode = "replace") -> None:
        self._apply(points_in_rect(self.coords, x0, y0, x1, y1), mode)

    def select_polygon(self, polygon: np.ndarray, mode: Mode = "replace") -> None:
        self._apply(points_in_polygon(self.coords, polygon), mode)

    def clear_selection(self) -> None:
        self._apply(np.zeros(len(self.selection), dtype=bool), "replace")

    # --- flags --------------------------------------------------------------------------------
    def set_flags(self, ids, value: bool = True) -> None:
        assert self.analysis is not None
        self.analysis.flagged[np.asarray(ids, dtype=np.int64)] = value
        self.colourings.pop("flagged", None)
        self.flagsChanged.emit()

    def record_verification(self, result) -> None:
        """Store a `core.probing.Verification` in the analysis and tell the views."""
        assert self.analysis is not None
        self.analysis.ensure_verdicts().record(result.ids, result.verdicts, result.max_prob, result.reasons)
        self.colourings.pop("verdict", None)
        self.verdictsChanged.emit()

    def flag_top(self, n: int) -> None:
        assert self.analysis is not None
        self.set_flags(self.analysis.top(self.indicator, n))
