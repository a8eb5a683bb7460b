"""The map's legend: a colour bar with its value range and suspicious end for indicators, or
colour swatches for clusters, categories and flags."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..core.view.colouring import Colouring

MAX_SWATCHES = 24


class Legend(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colouring: Colouring | None = None
        self.setMinimumWidth(118)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)

    def set_colouring(self, colouring: Colouring) -> None:
        self.colouring = colouring
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(22, 24, 30))
        painter.setPen(QColor(220, 222, 230))
        c = self.colouring
        if c is None:
            return
        painter.drawText(QRectF(8, 6, self.width() - 12, 18), Qt.AlignmentFlag.AlignLeft, c.name)
        if c.continuous:
            self._paint_bar(painter, c)
        else:
            self._paint_swatches(painter, c)

    def _paint_bar(self, painter: QPainter, c: Colouring) -> None:
        top, bottom = 34.0, max(self.height() - 30.0, 80.0)
        rgb = c.slot_colours if c.suspicious == "high" else c.slot_colours[::-1]
        gradient = QLinearGradient(0, bottom, 0, top)  # low value at the bottom
        for k, colour in enumerate(rgb):
            gradient.setColorAt(k / max(len(rgb) - 1, 1), QColor(*map(int, colour)))
        painter.fillRect(QRectF(10, top, 18, bottom - top), gradient)
        lo, hi = c.labels
        painter.drawText(QRectF(34, top - 2, 84, 16), Qt.AlignmentFlag.AlignLeft, f"{hi} (p99)")
        painter.drawText(QRectF(34, bottom - 14, 84, 16), Qt.AlignmentFlag.AlignLeft, f"{lo} (p1)")
        end_y = top + 20 if c.suspicious == "high" else bottom - 34
        painter.setPen(QColor(255, 45, 149))
        painter.drawText(QRectF(34, end_y, 84, 16), Qt.AlignmentFlag.AlignLeft, "◀ suspicious")

    def _paint_swatches(self, painter: QPainter, c: Colouring) -> None:
        y = 30.0
        for label, colour in list(zip(c.labels, c.slot_colours))[:MAX_SWATCHES]:
            painter.fillRect(QRectF(10, y + 3, 12, 12), QColor(*map(int, colour)))
            painter.drawText(QRectF(28, y, self.width() - 30, 18), Qt.AlignmentFlag.AlignLeft, label)
            y += 18
        if len(c.labels) > MAX_SWATCHES:
            painter.drawText(QRectF(28, y, self.width() - 30, 18), Qt.AlignmentFlag.AlignLeft,
                             f"… {len(c.labels) - MAX_SWATCHES} more")
