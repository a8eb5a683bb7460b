"""What the map draws over its points, at a constant pixel size whatever the zoom: cluster centre
crosses, rings and labels around the selected tokens, lines to the current token's neighbours."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QPainter, QPen

SELECTION_COLOUR = QColor(255, 45, 149)


def _bounds(points: np.ndarray) -> QRectF:
    if not len(points):
        return QRectF()
    lo, hi = points.min(axis=0), points.max(axis=0)
    return QRectF(lo[0], lo[1], max(hi[0] - lo[0], 1e-9), max(hi[1] - lo[1], 1e-9))


class PixelOverlay(pg.GraphicsObject):
    """Marks at data positions drawn at a constant pixel size (crosses, rings, labels, lines): the
    subclass draws in device pixels, given each point's device position."""

    def __init__(self, z: float) -> None:
        super().__init__()
        self.points = np.zeros((0, 2))
        self.setZValue(z)

    def set_points(self, points: np.ndarray) -> None:
        self.prepareGeometryChange()
        self.points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return _bounds(self.points)

    def paint(self, painter: QPainter, *args) -> None:
        t = painter.transform()
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.draw(painter, [t.map(QPointF(x, y)) for x, y in self.points])
        painter.restore()

    def draw(self, painter: QPainter, at: list[QPointF]) -> None:
        raise NotImplementedError


class CentreMarkers(PixelOverlay):
    """Cluster centres as white crosses with their numbers."""

    def __init__(self) -> None:
        super().__init__(z=20)

    def set_centres(self, centres: np.ndarray) -> None:
        self.set_points(centres)

    def draw(self, painter: QPainter, at: list[QPointF]) -> None:
        for number, p in enumerate(at):
            for pen in (QPen(QColor(0, 0, 0, 200), 4), QPen(QColor(255, 255, 255), 2)):
                painter.setPen(pen)
                painter.drawLine(p + QPointF(-7, 0), p + QPointF(7, 0))
                painter.drawLine(p + QPointF(0, -7), p + QPointF(0, 7))
            painter.drawText(p + QPointF(6, -6), str(number))


class SelectionMarkers(PixelOverlay):
    """Rings around the selected tokens and, for a few, their texts: drawn above everything, so
    that one selected token is never a dot lost under a centre cross."""

    def __init__(self) -> None:
        super().__init__(z=30)
        self.labels: list[str] = []

    def set_rings(self, points: np.ndarray, labels: list[str]) -> None:
        self.labels = labels
        self.set_points(points)

    def draw(self, painter: QPainter, at: list[QPointF]) -> None:
        for k, p in enumerate(at):
            for pen in (QPen(QColor(0, 0, 0, 220), 4), QPen(SELECTION_COLOUR, 2)):
                painter.setPen(pen)
                painter.drawEllipse(p, 7, 7)
            if k < len(self.labels):
                painter.setPen(QColor(0, 0, 0, 230))
                painter.drawText(p + QPointF(11, 5), self.labels[k])
                painter.setPen(QColor(255, 255, 255))
                painter.drawText(p + QPointF(10, 4), self.labels[k])


class NeighbourLines(PixelOverlay):
    """Lines from the current token to its nearest neighbours, one colour per embedding space."""

    COLOURS = (QColor(86, 180, 233), QColor(230, 159, 0))  # Okabe-Ito sky blue, orange

    def __init__(self) -> None:
        super().__init__(z=22)
        self.segments: list[tuple[np.ndarray, np.ndarray]] = []  # (origin, ends) per space

    def set_lines(self, segments: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.segments = [(np.asarray(o, dtype=np.float64), np.asarray(e, dtype=np.float64).reshape(-1, 2))
                         for o, e in segments]
        self.set_points(np.vstack([np.vstack([o[None, :], e]) for o, e in self.segments]) if self.segments
                        else np.zeros((0, 2)))

    def draw(self, painter: QPainter, at: list[QPointF]) -> None:
        k = 0
        for space, (_, ends) in enumerate(self.segments):
            painter.setPen(QPen(self.COLOURS[space % len(self.COLOURS)], 1.5))
            origin = at[k]
            for end in at[k + 1:k + 1 + len(ends)]:
                painter.drawLine(origin, end)
            k += 1 + len(ends)
