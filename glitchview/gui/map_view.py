"""The embedding map: every token drawn (never a sample), coloured by the chosen colouring, with
rectangle and lasso selection, click-to-select, hover tooltips, cluster centre markers.

Fast path for 262k points: one custom item rasterises the points with numpy on each paint (each
point's colour slot written into a one-pixel canvas, in drawing order so that suspects land on
top; a separable maximum filter widens them to 3 px; a colour table; one `drawImage`). The colour
grouping is precomputed off the GUI thread (`core.view.colouring`). The selection is a second item
of the same kind on top; hover uses a k-d tree (`core.view.mapindex`)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem, QToolTip

from ..core.view.colouring import Colouring
from .map_overlays import SELECTION_COLOUR, CentreMarkers, NeighbourLines, SelectionMarkers

BACKGROUND = QColor(22, 24, 30)
DENSITY_LEVELS = 32  # grey levels of the density mode
SUSPECT_SHARE = 0.15  # the share of a colouring's slots (its suspicious end) kept in colour in density mode
MAX_LABELS = 30  # selected tokens labelled on the map
MIN_SPAN_SHARE = 0.02  # zooming to a selection never shows less than this share of the whole map


def _grow(canvas: np.ndarray, rounds: int) -> np.ndarray:
    """Grow each drawn pixel by one pixel per round (a separable max filter): the highest code wins."""
    for _ in range(rounds):
        grown = canvas.copy()
        np.maximum(grown[1:], canvas[:-1], out=grown[1:])
        np.maximum(grown[:-1], canvas[1:], out=grown[:-1])
        canvas = grown.copy()
        np.maximum(canvas[:, 1:], grown[:, :-1], out=canvas[:, 1:])
        np.maximum(canvas[:, :-1], grown[:, 1:], out=canvas[:, :-1])
    return canvas


class PointCloudItem(pg.GraphicsObject):
    """Many points of a few colours, rasterised with numpy on every paint.

    Each point writes its colour slot (later slots = more suspicious, drawn on top) into a
    one-pixel canvas the size of the view; a separable max filter grows every point to a square of
    `size` pixels, keeping the highest slot where points overlap; a lookup turns slots into
    colours, and the canvas is drawn as one image. The cost is a few array passes whatever the
    zoom, so 262k points pan and zoom smoothly (see bench/bench_gui.py)."""

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        self.radius = size // 2
        self.density = False  # draw a density of all points, with only the suspects in colour
        self._xy = np.zeros((0, 2))
        self._slots = np.zeros(0, dtype=np.uint16)
        self._lut = np.zeros(1, dtype=np.uint32)
        self._bounds = QRectF()
        self._image: np.ndarray | None = None  # keeps the pixels alive while Qt draws them

    @property
    def count(self) -> int:
        return len(self._xy)

    def set_groups(self, coords: np.ndarray, colouring: Colouring | None, ids: np.ndarray | None = None,
                   colour: QColor | None = None) -> None:
        """Draw `coords[ids]` in one colour, or all points grouped by `colouring`."""
        self.prepareGeometryChange()
        if colouring is not None:
            order, counts = colouring.order, np.diff(colouring.offsets)
            rgb = colouring.slot_colours.astype(np.uint32)
        else:
            order = np.zeros(0, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
            c = colour or SELECTION_COLOUR
            counts, rgb = np.array([len(order)]), np.array([[c.red(), c.green(), c.blue()]], dtype=np.uint32)
        self._xy = np.ascontiguousarray(coords[order], dtype=np.float64)
        self._slots = np.repeat(np.arange(1, len(counts) + 1, dtype=np.uint16), counts)
        self._lut = np.concatenate([[0], 0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]]).astype(np.uint32)
        if len(self._xy):
            lo, hi = self._xy.min(axis=0), self._xy.max(axis=0)
            self._bounds = QRectF(lo[0], lo[1], max(hi[0] - lo[0], 1e-9), max(hi[1] - lo[1], 1e-9))
        else:
            self._bounds = QRectF()
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return self._bounds

    def set_size(self, pixels: int) -> None:
        self.radius = max(pixels, 1) // 2
        self.update()

    def set_density(self, on: bool) -> None:
        self.density = on
        self.update()

    def _density_levels(self, pixels: np.ndarray, slots: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Canvas codes for the density mode: 1..DENSITY_LEVELS grey by log point count per pixel,
        above them the top SUSPECT_SHARE of colour slots (the suspicious end) in their colours."""
        counts = np.bincount(pixels, minlength=size)
        level = np.log1p(counts) / np.log1p(max(int(counts.max()), 1)) * (DENSITY_LEVELS - 1)
        canvas = np.where(counts > 0, 1 + level.astype(np.uint16), 0).astype(np.uint16)
        n_slots = len(self._lut) - 1
        first_suspect = int(np.ceil(n_slots * (1 - SUSPECT_SHARE))) if n_slots > 2 else n_slots + 1
        suspect = slots >= first_suspect
        canvas[pixels[suspect]] = DENSITY_LEVELS + slots[suspect]
        grey = np.linspace(60, 235, DENSITY_LEVELS).astype(np.uint32)
        lut = np.concatenate([self._lut[:1], 0xFF000000 | (grey << 16) | (grey << 8) | grey, self._lut[1:]])
        return canvas, lut.astype(np.uint32)

    def paint(self, painter: QPainter, *args) -> None:
        if not len(self._xy):
            return
        t = painter.transform()
        device = painter.viewport()
        w, h, r = device.width(), device.height(), self.radius
        width = w + 2 * r
        ix = np.floor(self._xy[:, 0] * t.m11() + t.m31()).astype(np.int64) + r
        iy = np.floor(self._xy[:, 1] * t.m22() + t.m32()).astype(np.int64) + r
        inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < h + 2 * r)
        pixels, slots = iy[inside] * width + ix[inside], self._slots[inside]
        lut = self._lut
        if self.density:  # grey levels by log count, then the most suspicious slots in colour on top
            levels, lut = self._density_levels(pixels, slots, (h + 2 * r) * width)
            canvas = levels
        else:
            canvas = np.zeros((h + 2 * r) * width, dtype=np.uint16)
            canvas[pixels] = slots  # later (higher) slots win
        canvas = _grow(canvas.reshape(h + 2 * r, width), r)
        self._image = np.ascontiguousarray(lut[canvas[r:r + h, r:r + w]])
        image = QImage(self._image.data, w, h, 4 * w, QImage.Format.Format_ARGB32)
        painter.save()
        painter.resetTransform()
        painter.drawImage(device.topLeft(), image)
        painter.restore()


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
        self.points = PointCloudItem(3)
        self.selection = PointCloudItem(5)
        self.selection.setZValue(25)  # above the centre markers
        self.centres = CentreMarkers()
        self.rings = SelectionMarkers()
        self.lines = NeighbourLines()
        for item in (self.points, self.selection, self.centres, self.lines, self.rings):
            self.addItem(item)
        self.label_for = lambda token_id: str(token_id)
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
        ringed = ids[:MAX_LABELS] if ids.size <= MAX_LABELS else ids[:0]
        self.rings.set_rings(self.coords[ringed], [self.label_for(int(i)) for i in ringed])

    def set_centres(self, centres: np.ndarray, visible: bool) -> None:
        self.centres.set_centres(centres if visible else np.zeros((0, 2)))

    def fit_all(self) -> None:
        if len(self.coords):
            lo, hi = self.coords.min(axis=0).astype(float), self.coords.max(axis=0).astype(float)
            self.box.setRange(xRange=(float(lo[0]), float(hi[0])), yRange=(float(lo[1]), float(hi[1])), padding=0.03)

    def zoom_to(self, ids: np.ndarray) -> None:
        """Show the tokens `ids`, never zooming in further than MIN_SPAN_SHARE of the whole map."""
        if ids.size == 0:
            return
        pts = self.coords[ids]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        whole = self.coords.max(axis=0) - self.coords.min(axis=0)
        span = np.maximum(hi - lo, whole * MIN_SPAN_SHARE)
        mid = ((lo + hi) / 2).astype(float)
        span = span.astype(float)
        self.box.setRange(xRange=(float(mid[0] - span[0] / 2), float(mid[0] + span[0] / 2)),
                          yRange=(float(mid[1] - span[1] / 2), float(mid[1] + span[1] / 2)), padding=0.1)

    def centre_on(self, token_id: int) -> None:
        (x0, x1), (y0, y1) = self.box.viewRange()
        x, y = (float(v) for v in self.coords[token_id])
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
