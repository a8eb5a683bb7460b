"""Indicator quality: how well each indicator finds the tokens the model itself fails to repeat.
The same table as `glitchview verify` prints (`core.verify.quality.quality_table`: per k the
precision over every token of the top k, with the verified, uncertain and unverified counts beside
it, so that a partly verified top k is never mistaken for a measured one; recall, ROC-AUC), the
precision@k curves against the random sample's base rate, and the taxonomy of the glitch tokens."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.scores.indicators import INDICATORS
from ..core.verify.quality import KS, base_rate, precision_curve, quality_table, verification_ids
from ..core.verify.taxonomy import TAXONOMY
from ..core.verify.verdicts import is_glitch, is_verified
from .hub import SessionHub

# Okabe-Ito: distinguishable with every common colour-vision deficiency
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (200, 200, 200)]
PEN_STYLES = [Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine]


class QualityPanel(QWidget):
    verifyRequested = Signal(object, str)  # token ids, verification choice (see prompt_panel.VERIFY_CHOICES)

    def __init__(self, hub: SessionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub = hub
        self.sample = np.zeros(0, dtype=np.int64)
        self.top_n = QSpinBox(minimum=10, maximum=100_000, value=100)
        self.sample_n = QSpinBox(minimum=0, maximum=100_000, value=100)
        self.mode = QComboBox()
        self.mode.addItems(["fast", "full", "fast, unconfirmed"])
        run = QPushButton("Verify", toolTip="verify the top N of every indicator and a random sample of "
                                            "ordinary tokens (the base rate), then measure each indicator")
        run.clicked.connect(self.request)
        self.table = QTableWidget(0, 0)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.plot = pg.PlotWidget(background=(22, 24, 30))
        self.plot.setLabel("left", "precision")
        self.plot.setLabel("bottom", "k (top k of the indicator)")
        self.plot.setYRange(0, 1.02)
        self.legend = QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText)  # beside the curves, never over them
        self.summary = QLabel(wordWrap=True)
        controls = QGridLayout()
        for col, (label, w) in enumerate((("top N", self.top_n), ("sample", self.sample_n), ("mode", self.mode))):
            controls.addWidget(QLabel(label), 0, col)
            controls.addWidget(w, 1, col)
        controls.addWidget(run, 1, 3)
        plots = QWidget()
        column = QVBoxLayout(plots)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.plot, 1)
        column.addWidget(self.legend)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(plots)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(split, 1)
        layout.addWidget(self.summary)
        hub.verdictsChanged.connect(self.refresh)
        hub.analysisChanged.connect(self.refresh)

    def request(self) -> None:
        if self.hub.session is None:
            return
        a = self.hub.session.analysis
        ids, self.sample = verification_ids(a, list(a.scores), self.top_n.value(), self.sample_n.value())
        self.summary.setText(f"Verifying {len(ids):,} tokens ({self.mode.currentText()}): the top "
                             f"{self.top_n.value()} of every indicator and {len(self.sample):,} random ones; "
                             f"progress under the prompt editor…")
        self.verifyRequested.emit(ids, self.mode.currentText())

    def refresh(self) -> None:
        s = self.hub.session
        a = s.analysis if s is not None else None
        self.plot.clear()
        if a is None or a.verdicts is None or not is_verified(a.verdicts.verdict).any():
            self.table.setRowCount(0)
            self.legend.clear()
            self.summary.setText("No verdicts yet: verify tokens to measure the indicators.")
            return
        verdicts = a.verdicts.verdict
        ks = tuple(k for k in KS if k <= max(self.top_n.value(), KS[0]))
        table = quality_table(a, verdicts, ks, self.sample)
        self.table.setColumnCount(len(table.columns))
        self.table.setHorizontalHeaderLabels(table.columns)
        self.table.setRowCount(len(table.rows))
        legend = []
        for r, cells in enumerate(table.rows):
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setToolTip(INDICATORS[text].description if text in INDICATORS else "")
                self.table.setItem(r, c, item)
            name, colour, style = cells[0], PALETTE[r % len(PALETTE)], PEN_STYLES[r // len(PALETTE) % 4]
            curve = precision_curve(s.order(name), verdicts, max(ks))
            self.plot.plot(np.arange(1, len(curve) + 1), curve, pen=pg.mkPen(colour, width=2, style=style),
                           connect="finite")
            legend.append(f'<span style="color: rgb{colour}">━━ {name}</span>')
        rate = base_rate(verdicts, self.sample) if len(self.sample) else float("nan")
        if np.isfinite(rate):
            self.plot.addItem(pg.InfiniteLine(pos=rate, angle=0, pen=pg.mkPen((200, 200, 200),
                                                                               style=Qt.PenStyle.DashLine)))
            legend.append(f"╌╌ base rate {rate:.3f}")
        self.legend.setText(" &nbsp; ".join(legend))
        glitch = np.flatnonzero(is_glitch(verdicts))
        taxonomy = Counter(TAXONOMY[s.view.taxonomy[i]] for i in glitch)
        self.summary.setText(
            f"{int(is_verified(verdicts).sum()):,} tokens verified, {len(glitch):,} glitch tokens. "
            + " ".join(f"{note}." for note in table.notes)
            + "\nTaxonomy: " + (", ".join(f"{name} {n}" for name, n in taxonomy.most_common()) or "none"))
