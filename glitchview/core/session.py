"""One session: an analysis bound to its model, its verification network and the user's choices.

Everything that must belong together lives here, so that no result can land on the wrong model:
the analysis, the model it was made for (loaded on demand), the network built for prompting, and
what the user chose (selection, colouring, projection, indicator, current token, flags). Each
choice is an observable property: `subscribe(callback)` hears the name of every change (one of
`EVENTS`).

Work happens on snapshots: `snapshot(kind)` hands out an immutable copy stamped with the session's
identity and a request number; an operation (`core.operations`) computes a result from it on any
thread and returns it with the same stamp; `apply(result)` refuses a result stamped for another
session or superseded by a newer request of the same kind. Opening another model makes a new
session, so a late result of the old one is refused."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .analysis import DEFAULT_INDICATOR, Analysis
from .errors import GlitchViewError
from .scores.neighbours import Neighbours
from .verify.engines import DEFAULT_ENGINE, EngineChoice
from .view.colouring import Colouring, colour_options
from .view.mapindex import MapIndex
from .view.prepare import ViewData, prepare_view_data
from .view.selection import Mode, combine, ids_mask, points_in_polygon, points_in_rect

if TYPE_CHECKING:
    from .model.loading import LoadedModel
    from .verify.engines import Engine

UNDO_LIMIT = 50  # steps of flag and selection changes kept for undo
EVENTS = ("analysis", "selection", "flags", "colouring", "projection", "indicator", "token", "verdicts", "path",
          "neighbours")
Listener = Callable[[str], None]
_session_ids = itertools.count(1)


class StaleResult(GlitchViewError):
    """A result computed for another session, or for a request that a newer one superseded."""


@dataclass(frozen=True)
class Stamp:
    session: int
    kind: str  # the kind of request ("verify", "recluster", ...): a newer one supersedes an older one
    request: int


@dataclass(frozen=True)
class Snapshot:
    """What an operation may read: copies of the user's state, never the live session."""

    stamp: Stamp
    analysis: Analysis  # with the user's flags, selection, verdicts and view as they were
    model: LoadedModel | None  # None until loaded (an analysis opened from a file)
    probe: Engine | None  # the engine for prompting, once built
    indicator: str
    token: int  # the current token, -1 when none
    engine: EngineChoice = DEFAULT_ENGINE  # where prompts run: torch, llama.cpp or a server


@dataclass(frozen=True)
class Result:
    """A result of an operation; `apply_to` writes it into the session that `stamp` names."""

    stamp: Stamp

    def apply_to(self, session: Session) -> None:
        raise NotImplementedError


class Session:
    def __init__(self, analysis: Analysis, view: ViewData | None = None, model: LoadedModel | None = None,
                 path: str = "", selection: np.ndarray | None = None, colour_by: str | None = None,
                 projection: str | None = None) -> None:
        self.id = next(_session_ids)
        self._listeners: list[Listener] = []
        self._requests: dict[str, int] = {}
        self._undo: list[tuple[str, np.ndarray]] = []  # (what, the mask before the change)
        self._redo: list[tuple[str, np.ndarray]] = []
        self.model = model
        self.probe: Engine | None = None
        self.engine = DEFAULT_ENGINE
        self.path = path  # the analysis file this session was opened from or last saved to
        self.token = -1
        self.neighbours: dict[str, Neighbours] = {}  # of the current token, by embedding space
        self._install(analysis, view, selection, colour_by or analysis.view.get("colour_by"),
                      projection or analysis.view.get("projection"),
                      analysis.view.get("indicator") or analysis.settings.get("indicator"))

    def _install(self, analysis: Analysis, view: ViewData | None, selection: np.ndarray | None, colour_by: str | None,
                 projection: str | None, indicator: str | None) -> None:
        if model_fingerprint(self.model) not in ("", analysis.model.fingerprint):
            raise GlitchViewError(f"the analysis of {analysis.model.name} does not belong to the loaded model "
                                  f"{self.model.source.display_name}")
        self.analysis, self._view = analysis, view
        n = len(analysis)
        self.selection = selection.copy() if selection is not None and len(selection) == n else np.zeros(n, bool)
        self.indicator = indicator if indicator in analysis.scores else (
            DEFAULT_INDICATOR if DEFAULT_INDICATOR in analysis.scores else next(iter(analysis.scores)))
        self.colour_by = colour_by if colour_by in colour_options(analysis) else self.indicator
        self.projection = projection if projection in analysis.projections else next(iter(analysis.projections))
        if not 0 <= self.token < n:
            self.token = -1

    # --- observing ----------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self, event: str) -> None:
        for listener in list(self._listeners):
            listener(event)

    # --- what the views read --------------------------------------------------------------------
    @property
    def view(self) -> ViewData:
        """Colourings, spatial indexes and texts for display: the window hands them in prepared on a
        worker; a headless session prepares them the first time something asks."""
        if self._view is None:
            self._view = prepare_view_data(self.analysis)
        return self._view

    def __len__(self) -> int:
        return len(self.analysis)

    @property
    def colourings(self) -> dict[str, Colouring]:
        return self.view.colourings

    @property
    def indexes(self) -> dict[str, MapIndex]:
        return self.view.indexes

    @property
    def index(self) -> MapIndex:
        return self.view.indexes[self.projection]

    @property
    def coords(self) -> np.ndarray:
        return self.index.coords

    @property
    def colouring(self) -> Colouring:
        return self.view.colourings[self.colour_by]

    def rank(self, indicator: str | None = None) -> np.ndarray:
        return self.analysis.ranking(indicator or self.indicator).rank

    def order(self, indicator: str | None = None) -> np.ndarray:
        return self.analysis.ranking(indicator or self.indicator).order

    # --- the user's choices -----------------------------------------------------------------------
    def set_projection(self, name: str) -> bool:
        """Show another projection; False when it has to be computed first (`operations.project_map`)."""
        if name not in self.view.indexes:
            return False
        if name != self.projection:
            self.projection = name
            self._changed("projection")
        return True

    def set_colour_by(self, name: str) -> bool:
        """Colour by `name`; False when the colouring has to be computed first (`operations.colour`)."""
        if name not in self.view.colourings:
            return False
        self.colour_by = name
        self._changed("colouring")
        return True

    def set_indicator(self, name: str) -> None:
        if name not in self.analysis.scores:
            raise GlitchViewError(f"unknown indicator '{name}'; this analysis has {', '.join(self.analysis.scores)}")
        if name != self.indicator:
            self.indicator = name
            self._changed("indicator")

    def set_token(self, token_id: int) -> None:
        """The token the detail view and the prompt editor show."""
        if 0 <= token_id < len(self) and token_id != self.token:
            self.token = int(token_id)
            self.neighbours = {}
            self._changed("token")

    def set_neighbours(self, token: int, spaces: dict[str, Neighbours]) -> None:
        if token == self.token:  # neighbours of a token that is no longer current are dropped
            self.neighbours = spaces
            self._changed("neighbours")

    # --- selection (the programmatic API that scripts and tests use) -----------------------------
    def selected_ids(self) -> np.ndarray:
        return np.flatnonzero(self.selection)

    def _select(self, mask: np.ndarray, mode: Mode) -> None:
        self._remember("selection")
        self.selection = combine(self.selection, mask, mode)
        self._changed("selection")
        ids = self.selected_ids()
        if ids.size == 1:
            self.set_token(int(ids[0]))

    def select_ids(self, ids: Any, mode: Mode = "replace") -> None:
        self._select(ids_mask(len(self), ids), mode)

    def select_rect(self, x0: float, y0: float, x1: float, y1: float, mode: Mode = "replace") -> None:
        self._select(points_in_rect(self.coords, x0, y0, x1, y1), mode)

    def select_polygon(self, polygon: np.ndarray, mode: Mode = "replace") -> None:
        self._select(points_in_polygon(self.coords, polygon), mode)

    def clear_selection(self) -> None:
        self._select(np.zeros(len(self), dtype=bool), "replace")

    # --- flags --------------------------------------------------------------------------------------
    def set_flags(self, ids: Any, value: bool = True) -> None:
        self._remember("flags")
        self.analysis.flagged[np.asarray(ids, dtype=np.int64)] = value
        self._flags_changed()

    def _flags_changed(self) -> None:
        self._forget_colouring("flagged")
        self._changed("flags")

    def flag_top(self, n: int) -> None:
        self.set_flags(self.analysis.top(self.indicator, n))

    # --- undo and redo of flags and selection ----------------------------------------------------
    def _mask(self, what: str) -> np.ndarray:
        return self.selection if what == "selection" else self.analysis.flagged

    def _remember(self, what: str) -> None:
        self._undo.append((what, self._mask(what).copy()))
        del self._undo[:-UNDO_LIMIT]
        self._redo.clear()

    def _swap(self, source: list[tuple[str, np.ndarray]], target: list[tuple[str, np.ndarray]]) -> bool:
        if not source:
            return False
        what, mask = source.pop()
        target.append((what, self._mask(what).copy()))
        if what == "selection":
            self.selection = mask
            self._changed("selection")
        else:
            self.analysis.flagged[:] = mask
            self._flags_changed()
        return True

    def undo(self) -> bool:
        """Undo the last change of flags or selection; False when there is none."""
        return self._swap(self._undo, self._redo)

    def redo(self) -> bool:
        return self._swap(self._redo, self._undo)

    # --- work on snapshots --------------------------------------------------------------------------
    def snapshot(self, kind: str = "read") -> Snapshot:
        """An immutable copy for an operation of `kind`; it supersedes earlier requests of that kind."""
        self._requests[kind] = self._requests.get(kind, 0) + 1
        a = self.analysis
        copy = dataclasses.replace(
            a, flagged=a.flagged.copy(), selection=self.selection.copy(), projections=dict(a.projections),
            settings=dict(a.settings), verdicts=a.verdicts.copy() if a.verdicts is not None else None,
            view={"colour_by": self.colour_by, "projection": self.projection, "indicator": self.indicator})
        return Snapshot(Stamp(self.id, kind, self._requests[kind]), copy, self.model, self.probe,
                        self.indicator, self.token, self.engine)

    def check(self, stamp: Stamp) -> None:
        """Raise StaleResult unless `stamp` is this session's latest request of its kind."""
        if stamp.session != self.id:
            raise StaleResult(f"a {stamp.kind} result of another model or session was refused")
        if stamp.request != self._requests.get(stamp.kind):
            raise StaleResult(f"a superseded {stamp.kind} result was refused")

    def apply(self, result: Result) -> None:
        self.check(result.stamp)
        result.apply_to(self)

    # --- what results write (called by `Result.apply_to`) ---------------------------------------------
    def set_engine(self, choice: EngineChoice) -> None:
        """Where prompts run from now on; the engine built for another choice is dropped."""
        if choice != self.engine:
            self.engine, self.probe = choice, None

    def adopt_model(self, model: LoadedModel | None, probe: Engine | None = None,
                    choice: EngineChoice | None = None) -> None:
        """Keep the model (and engine) an operation loaded for this session's analysis; an engine built
        for another choice than the session's current one is not kept."""
        if model is not None:
            if model.fingerprint != self.analysis.model.fingerprint:
                raise StaleResult(f"a model with another fingerprint ({model.fingerprint}) was refused")
            self.model = model
        if probe is not None and (choice is None or choice == self.engine):
            self.probe = probe

    def _forget_colouring(self, name: str) -> None:
        """A colouring that no longer matches the data is recomputed on request."""
        if self._view is not None:
            self._view.colourings.pop(name, None)

    def replace_analysis(self, analysis: Analysis, view: ViewData) -> None:
        """A recomputed analysis of the same model (re-clustering): choices are kept where they still apply."""
        self._install(analysis, view, self.selection, self.colour_by, self.projection, self.indicator)
        self._changed("analysis")

    def add_projection(self, name: str, coords: np.ndarray, index: MapIndex) -> None:
        self.analysis.projections[name] = coords
        self.view.indexes[name] = index
        self.projection = name
        self._changed("projection")

    def add_colouring(self, colouring: Colouring) -> None:
        self.view.colourings[colouring.name] = colouring
        self.colour_by = colouring.name
        self._changed("colouring")

    def record_verification(self, ids: np.ndarray, verdicts: np.ndarray, max_prob: np.ndarray,
                            reasons: list[str]) -> None:
        self.analysis.ensure_verdicts().record(ids, verdicts, max_prob, reasons)
        self._forget_colouring("verdict")
        self._changed("verdicts")

    def record_prompt_run(self, record: dict[str, Any]) -> None:
        self.analysis.ensure_verdicts().history.append(record)
        self._changed("verdicts")

    def set_path(self, path: str) -> None:
        self.path = path
        self._changed("path")


def model_fingerprint(model: LoadedModel | None) -> str:
    return model.fingerprint if model is not None else ""
