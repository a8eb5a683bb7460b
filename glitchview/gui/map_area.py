"""The centre of the window: the embedding map with its toolbar (selection tools, centre markers,
fit and zoom, colouring, projection, find) and its legend. It shows the hub's session and turns
drags and clicks into the session's selection API; colourings and projections that still have to
be computed are asked of the window (`colouringRequested`, `projectionRequested`)."""

from __future__ import annotations

import numpy as np
import regex
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.pipeline import PROJECTIONS
from ..core.session import Session
from ..core.view.colouring import colour_options
from ..core.view.find import find_tokens
from ..core.view.selection import Mode
from .hub import SessionHub
from .legend import Legend
from .map_view import EmbeddingMap
from .workers import JobRunner

EARLY_COLOUR = QColor(150, 160, 185)  # the points before their scores arrive
TOOLS = (("pan", "Pan", "P: pan and zoom"), ("rect", "Rectangle", "R: drag a rectangle"),
         ("lasso", "Lasso", "L: draw a free-hand region"))


def modifier_mode(modifiers: Qt.KeyboardModifier) -> Mode:
    if modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
        return "remove"
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        return "add"
    return "replace"


class MapArea(QWidget):
    colouringRequested = Signal(str)
    projectionRequested = Signal(str)
    earlyMapShown = Signal()  # the PCA map of every token is on screen, before the scores

    def __init__(self, hub: SessionHub, jobs: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub, self.jobs = hub, jobs
        self.map = EmbeddingMap()
        self.map.label_for = self._label
        self.legend = Legend()
        self.colour_by = QComboBox(minimumWidth=150)
        self.projection = QComboBox()
        self.projection.addItems([p.upper() for p in PROJECTIONS])
        self.tools = QButtonGroup(self)
        bar = QToolBar()  # shows an overflow arrow instead of widening the window on small screens
        bar.setStyleSheet("QToolBar { border: none; spacing: 4px; }")
        for key, label, tip in TOOLS:
            button = QToolButton(text=label, checkable=True, toolTip=tip, checked=key == "pan")
            button.setProperty("tool", key)
            self.tools.addButton(button)
            bar.addWidget(button)
        self.find = QLineEdit(placeholderText="find: text, /regex/ or #id", minimumWidth=120, maximumWidth=260)
        self.find.setClearButtonEnabled(True)
        self.find.returnPressed.connect(lambda: self.find_token(self.find.text()))
        bar.addWidget(self.find)
        bar.addSeparator()
        for w in (QLabel("colour "), self.colour_by, QLabel(" map "), self.projection):
            bar.addWidget(w)
        bar.addSeparator()
        self.show_centres = QCheckBox("centres", checked=True, toolTip="show the cluster centres")
        self.density = QCheckBox("density", toolTip="draw all points as a grey density, and only the "
                                                    "suspicious end of the colouring in colour")
        self.point_size = QSpinBox(minimum=1, maximum=9, value=3, singleStep=2, suffix=" px",
                                   toolTip="point size on the map")
        for w in (self.show_centres, self.density, self.point_size):
            bar.addWidget(w)
        bar.addAction("Fit all", self.map.fit_all)
        bar.addAction("Zoom to sel.", self.zoom_to_selection).setToolTip("Z: zoom to the selected tokens")
        maps = QHBoxLayout()
        maps.setSpacing(0)
        maps.addWidget(self.map, 1)
        maps.addWidget(self.legend)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 0)
        layout.addWidget(bar)
        layout.addLayout(maps, 1)
        self._connect()

    def _label(self, token_id: int) -> str:
        text = self.hub.session.view.escaped_texts[token_id] if self.hub.session is not None else ""
        return f"{text[:24]}…" if len(text) > 25 else text

    def _connect(self) -> None:
        hub = self.hub
        hub.analysisChanged.connect(self._on_analysis)
        hub.projectionChanged.connect(lambda: self._draw_all(fit=True))
        hub.projectionChanged.connect(lambda: self._on_neighbours())
        hub.colouringChanged.connect(self._on_colouring)
        hub.selectionChanged.connect(lambda: self.map.set_selection(hub.session.selected_ids()))
        hub.flagsChanged.connect(self._on_flags)
        hub.verdictsChanged.connect(self._on_verdicts)
        hub.tokenChanged.connect(lambda: self.map.lines.set_lines([]))
        hub.neighboursChanged.connect(self._on_neighbours)
        self.colour_by.activated.connect(lambda _: self.request_colouring(self.colour_by.currentText()))
        self.projection.activated.connect(lambda _: self.request_projection(self.projection.currentText().lower()))
        self.tools.buttonClicked.connect(lambda b: self.set_tool(b.property("tool")))
        self.show_centres.toggled.connect(lambda _: self._draw_centres())
        self.density.toggled.connect(self.map.points.set_density)
        self.point_size.valueChanged.connect(self.map.points.set_size)
        self.map.box.shapeDrawn.connect(self._on_shape)
        self.map.box.pointClicked.connect(self._on_click)

    # --- requests -----------------------------------------------------------------------------
    def request_colouring(self, name: str) -> None:
        if self.hub.session is not None and not self.hub.session.set_colour_by(name):
            self.colouringRequested.emit(name)

    def request_projection(self, name: str) -> None:
        if self.hub.session is not None and not self.hub.session.set_projection(name):
            self.projectionRequested.emit(name)

    # --- drawing the session ------------------------------------------------------------------------
    def _on_analysis(self) -> None:
        self.colour_by.clear()
        self.colour_by.addItems(colour_options(self.hub.session.analysis))
        self._draw_all(fit=True)

    def _draw_all(self, fit: bool = False) -> None:
        s = self.hub.session
        self.map.index = s.index
        self.map.set_points(s.coords, s.colouring, fit=fit)
        self.map.set_selection(s.selected_ids())
        self._draw_centres()
        self._sync_controls()

    def _sync_controls(self) -> None:
        s = self.hub.session
        self.colour_by.setCurrentText(s.colour_by)
        self.projection.setCurrentText(s.projection.upper())
        self.legend.set_colouring(s.colouring)

    def _draw_centres(self) -> None:
        if self.hub.session is not None:
            self.map.set_centres(self.hub.session.index.cluster_centres, self.show_centres.isChecked())

    def _on_colouring(self) -> None:
        self.map.set_colouring(self.hub.session.colouring)
        self._sync_controls()

    def _on_flags(self) -> None:
        if self.hub.session.colour_by == "flagged":
            self.colouringRequested.emit("flagged")

    def _on_neighbours(self) -> None:
        s = self.hub.session
        self.map.lines.set_lines([(s.coords[s.token], s.coords[found.ids]) for found in s.neighbours.values()])

    def _on_verdicts(self) -> None:
        if self.hub.session.colour_by == "verdict":
            self.colouringRequested.emit("verdict")

    def show_early_map(self, coords: np.ndarray) -> None:
        """Every token on the PCA map in one colour while the scores are computed (no session yet)."""
        self.map.index = None
        self.map.coords = coords
        self.map.points.set_groups(coords, None, np.arange(len(coords)), EARLY_COLOUR)
        self.map.fit_all()
        self.earlyMapShown.emit()

    # --- the user's hands on the map ----------------------------------------------------------------
    def _on_shape(self, tool: str, points: np.ndarray, modifiers) -> None:
        mode = modifier_mode(modifiers)
        if tool == "rect":
            (x0, y0), (x1, y1) = points[0], points[-1]
            self.hub.session.select_rect(x0, y0, x1, y1, mode)
        else:
            self.hub.session.select_polygon(points, mode)

    def _on_click(self, x: float, y: float, modifiers) -> None:
        if self.hub.session is None:
            return
        token = self.map.token_at(x, y)
        if token is not None:
            self.hub.session.select_ids([token], modifier_mode(modifiers))
        elif modifier_mode(modifiers) == "replace":
            self.hub.session.clear_selection()

    def set_tool(self, tool: str) -> None:
        self.map.box.tool = tool
        for button in self.tools.buttons():
            button.setChecked(button.property("tool") == tool)

    def zoom_to_selection(self) -> None:
        if self.hub.session is not None:
            self.map.zoom_to(self.hub.session.selected_ids())

    def pan(self, dx: float, dy: float) -> None:
        (x0, x1), (y0, y1) = self.map.box.viewRange()
        self.map.box.translateBy(x=dx * (x1 - x0), y=dy * (y1 - y0))

    def show_ids(self, ids: np.ndarray) -> None:
        """Bring tokens into view: centre on one, or zoom to several."""
        if ids.size == 1:
            self.map.centre_on(int(ids[0]))
        elif ids.size:
            self.map.zoom_to(ids)

    def find_token(self, query: str) -> None:
        """Select the tokens matching `#id`, `/regex/` or a plain text (matched on a worker), and
        centre the map on the best ranked of them; the box's tooltip says how many matched."""
        s = self.hub.session
        if s is None:
            return
        pattern = query.strip()
        if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
            try:
                regex.compile(pattern[1:-1])
            except regex.error as exc:
                self.find.setToolTip(f"bad regex: {exc}")
                return
        texts = s.view.escaped_texts
        self.jobs.start("find", lambda p, c: find_tokens(texts, query), lambda ids: self._found(s, query, ids),
                        "search")

    def _found(self, session: Session, query: str, ids: np.ndarray) -> None:
        if session is not self.hub.session:  # another model was opened meanwhile
            return
        self.find.setToolTip(f"{ids.size:,} tokens match" if ids.size else f"no token matches {query}")
        if ids.size:
            ids = ids[np.argsort(session.rank()[ids], kind="stable")]
            session.select_ids(ids)
            session.set_token(int(ids[0]))
            self.map.centre_on(int(ids[0]))
