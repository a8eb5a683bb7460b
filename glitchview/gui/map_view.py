"""The embedding map: every token drawn (never a sample), coloured by the chosen colouring, with
rectangle and lasso selection, click-to-select, hover tooltips, cluster centre markers.

Fast path for 262k points: the points are drawn by one custom item that groups them by colour
bin and draws each bin with a single `QPainter.drawPoints` call (cosmetic pen = constant pixel
size); the colour grouping is precomputed off the GUI thread (`core.colouring`). The selection
is a second item of the same kind on top; hover uses a k-d tree (`core.mapindex`)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem, QToolTip

from ..core.colouring import Colouring

SELECTION_COLOUR = QColor(255, 45, 149)
BACKGROUND = QColor(22, 24, 30)


def _polygon(points: np.ndarray) -> QPolygonF:
    poly = pg.functions.create_qpolygonf(len(points))
    pg.functions.ndarray_from_qpolygonf(poly)[:] = points
    return poly


class PointCloudItem(pg.GraphicsObject):
    """Many points of a few colours, each colour group drawn in one call."""

    def __init__(self, size: float = 3.0) -> None:
        super().__init__()
        self._groups: list[tuple[QPen, QPolygonF]] = []
        self._bounds = QRectF()
        self.size = size

    def set_groups(self, coords: np.ndarray, colouring: Colouring | None, ids: np.ndarray | None = None,
                   colour: QColor | None = None) -> None:
        """Draw `coords[ids]` in one colour, or all points grouped by `colouring`."""
        self.prepareGeometryChange()
        groups: list[tuple[QColor, np.ndarray]] = []
        if colouring is not None:
            for slot, rgb in enumerate(colouring.slot_colours):
                members = colouring.order[colouring.offsets[slot]:colouring.offsets[slot + 1]]
                if members.size:
                    groups.append((QColor(*map(int, rgb)), coords[members]))
        elif ids is not None and ids.size:
            groups.append((colour or SELECTION_COLOUR, coords[ids]))
        self._groups = [(self._pen(c), _polygon(pts)) for c, pts in groups]
        if groups:
            allpts = np.concatenate([pts for _, pts in groups])
            lo, hi = allpts.min(axis=0), allpts.max(axis=0)
            self._bounds = QRectF(lo[0], lo[1], max(hi[0] - lo[0], 1e-9), max(hi[1] - lo[1], 1e-9))
        else:
            self._bounds = QRectF()
        self.update()

    def _pen(self, colour: QColor) -> QPen:
        pen = QPen(colour)
        pen.setWidthF(self.size)
        pen.setCosmetic(True)
        pen.setCapStyle(Qt.PenCapStyle.SquareCap)
        return pen

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return self._bounds

    def paint(self, painter: QPainter, *args) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        for pen, poly in self._groups:
            painter.setPen(pen)
            painter.drawPoints(poly)


class MapViewBox(pg.ViewBox):
    """A ViewBox whose left drag draws a rectangle or lasso in the selection tools."""

    shapeDrawn = Signal(str, object, object)  # tool ("rect"/"lasso"), (n, 2) array of view points, modifiers
    pointClicked = Signal(float, float, object)  # view x, y, modifiers

    def __init__(self) -> None:
        super().__init__()
        self.tool = "pan"
        self._path: list[QPointF] = []
        self._band = QGraphicsPathItem()
        band_pen = QPen(QColor(255, 255, 255, 220), 1, Qt.PenStyle.DashLine)
        band_pen.setCosmetic(True)
        self._band.setPen(band_pen)
        self._band.setBrush(QColor(255, 255, 255, 30))
        self._band.setZValue(1e9)
        self._band.hide()
        self.addItem(self._band, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt API)
        if self.tool == "pan" or ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        here = self.mapSceneToView(ev.scenePos())  # scene positions: item-local ones may belong to a parent
        if ev.isStart():
            self._path = [self.mapSceneToView(ev.buttonDownScenePos())]
        if self.tool == "rect":
            self._path = [self._path[0], here]
        else:
            self._path.append(here)
        self._band.setPath(self._shape_path())
        self._band.show()
        if ev.isFinish():
            self._band.hide()
            points = np.array([[p.x(), p.y()] for p in self._path])
            self.shapeDrawn.emit(self.tool, points, ev.modifiers())

    def _shape_path(self) -> QPainterPath:
        path = QPainterPath()
        if self.tool == "rect":
            path.addRect(QRectF(self._path[0], self._path[-1]).normalized())
        else:
            path.addPolygon(QPolygonF(self._path))
            path.closeSubpath()
        return path

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt API)
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.pointClicked.emit(p.x(), p.y(), ev.modifiers())
        else:
            super().mouseClickEvent(ev)


class EmbeddingMap(pg.PlotWidget):
    """The map widget: points, selection overlay, cluster centres, hover tooltips."""

    hovered = Signal(int)  # token id under the mouse, -1 for none

    def __init__(self, parent=None) -> None:
        self.box = MapViewBox()
        super().__init__(parent=parent, viewBox=self.box, background=BACKGROUND)
        self.setMenuEnabled(False)
        self.hideButtons()
        for axis in ("left", "bottom"):
            self.getPlotItem().getAxis(axis).setPen(QColor(90, 95, 110))
            self.getPlotItem().getAxis(axis).setTextPen(QColor(150, 155, 170))
        self.getPlotItem().getAxis("left").setWidth(48)  # fixed: the map must not shift as tick labels change
        self.points = PointCloudItem(3.0)
        self.selection = PointCloudItem(5.0)
        self.selection.setZValue(10)
        self.centres = pg.ScatterPlotItem(symbol="+", size=16, pen=pg.mkPen("w", width=2), brush=None)
        self.centres.setZValue(20)
        self.centre_labels: list[pg.TextItem] = []
        for item in (self.points, self.selection, self.centres):
            self.addItem(item)
        self.coords = np.zeros((0, 2))
        self.tooltip_for = lambda token_id: str(token_id)
        self.index = None
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.setMouseTracking(True)

    def set_points(self, coords: np.ndarray, colouring: Colouring, fit: bool = False) -> None:
        self.coords = coords
        self.points.set_groups(coords, colouring)
        if fit:
            self.fit_all()

    def set_colouring(self, colouring: Colouring) -> None:
        self.points.set_groups(self.coords, colouring)

    def set_selection(self, ids: np.ndarray) -> None:
        self.selection.set_groups(self.coords, None, ids)
        self.points.setOpacity(0.3 if ids.size else 1.0)

    def set_centres(self, centres: np.ndarray, visible: bool) -> None:
        for label in self.centre_labels:
            self.removeItem(label)
        self.centre_labels = []
        self.centres.setData(pos=centres if visible else np.zeros((0, 2)))
        if visible:
            for c, (x, y) in enumerate(centres):
                label = pg.TextItem(str(c), color=(255, 255, 255), anchor=(-0.2, 1.1))
                label.setPos(float(x), float(y))
                label.setZValue(21)
                self.addItem(label)
                self.centre_labels.append(label)

    def fit_all(self) -> None:
        if len(self.coords):
            lo, hi = self.coords.min(axis=0), self.coords.max(axis=0)
            self.box.setRange(xRange=(lo[0], hi[0]), yRange=(lo[1], hi[1]), padding=0.03)

    def zoom_to(self, ids: np.ndarray, min_span: float = 0.0) -> None:
        if ids.size == 0:
            return
        pts = self.coords[ids]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        span = np.maximum(hi - lo, min_span)
        mid = (lo + hi) / 2
        self.box.setRange(xRange=(mid[0] - span[0] / 2, mid[0] + span[0] / 2),
                          yRange=(mid[1] - span[1] / 2, mid[1] + span[1] / 2), padding=0.1)

    def centre_on(self, token_id: int) -> None:
        (x0, x1), (y0, y1) = self.box.viewRange()
        x, y = self.coords[token_id]
        self.box.setRange(xRange=(x - (x1 - x0) / 2, x + (x1 - x0) / 2),
                          yRange=(y - (y1 - y0) / 2, y + (y1 - y0) / 2), padding=0)

    def pixel_size(self) -> tuple[float, float]:
        sx, sy = self.box.viewPixelSize()
        return max(sx, 1e-12), max(sy, 1e-12)

    def token_at(self, x: float, y: float, radius_px: float = 6.0) -> int | None:
        if self.index is None:
            return None
        return self.index.nearest(x, y, *self.pixel_size(), radius_px)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.index is None or not self.box.sceneBoundingRect().contains(scene_pos):
            return
        p = self.box.mapSceneToView(scene_pos)
        token = self.token_at(p.x(), p.y())
        self.hovered.emit(-1 if token is None else token)
        if token is None:
            QToolTip.hideText()
        else:
            global_pos = self.mapToGlobal(self.mapFromScene(scene_pos))
            QToolTip.showText(global_pos, self.tooltip_for(token), self)
