"""Indicator quality: how well each indicator finds the tokens the model itself fails to repeat.
Precision at k, recall and ROC-AUC against the verdicts, a precision@k plot with the random
sample's base rate, and the taxonomy of the verified glitch tokens."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.scores.indicators import INDICATORS
from ..core.verify.probing import MODES
from ..core.verify.quality import KS, base_rate, indicator_quality, precision_curve, verification_ids
from ..core.verify.taxonomy import TAXONOMY
from ..core.verify.verdicts import is_glitch, is_verified
from ..core.view.colouring import categorical
from .hub import SessionHub


class QualityPanel(QWidget):
    verifyRequested = Signal(object, str)  # token ids, mode

    def __init__(self, hub: SessionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub = hub
        self.sample = np.zeros(0, dtype=np.int64)
        self.top_n = QSpinBox(minimum=10, maximum=100_000, value=100)
        self.sample_n = QSpinBox(minimum=0, maximum=100_000, value=100)
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.mode.setCurrentText("fast")
        run = QPushButton("Verify", toolTip="verify the top N of every indicator and a random sample of "
                                            "ordinary tokens (the base rate), then measure each indicator")
        run.clicked.connect(self.request)
        self.table = QTableWidget(0, 0)
        self.table.verticalHeader().setVisible(False)
        self.plot = pg.PlotWidget(background=(22, 24, 30))
        self.plot.setLabel("left", "precision")
        self.plot.setLabel("bottom", "k (top k of the indicator)")
        self.plot.addLegend(offset=(-10, -40))
        self.plot.setYRange(0, 1.02)
        self.summary = QLabel(wordWrap=True)
        controls = QGridLayout()
        for col, (label, w) in enumerate((("top N", self.top_n), ("sample", self.sample_n), ("mode", self.mode))):
            controls.addWidget(QLabel(label), 0, col)
            controls.addWidget(w, 1, col)
        controls.addWidget(run, 1, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.plot, 2)
        layout.addWidget(self.summary)
        hub.verdictsChanged.connect(self.refresh)
        hub.analysisChanged.connect(self.refresh)

    def request(self) -> None:
        if self.hub.session is None:
            return
        a = self.hub.session.analysis
        ids, self.sample = verification_ids(a, list(a.scores), self.top_n.value(), self.sample_n.value())
        self.verifyRequested.emit(ids, self.mode.currentText())

    def refresh(self) -> None:
        s = self.hub.session
        a = s.analysis if s is not None else None
        self.plot.clear()
        if a is None or a.verdicts is None or not is_verified(a.verdicts.verdict).any():
            self.table.setRowCount(0)
            self.summary.setText("No verdicts yet: verify tokens to measure the indicators.")
            return
        verdicts = a.verdicts.verdict
        ks = tuple(k for k in KS if k <= max(self.top_n.value(), KS[0]))
        rows = indicator_quality(a, verdicts, ks)
        headers = ["indicator", "end", *(f"P@{k}" for k in ks), "recall", "ROC-AUC"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(rows))
        colours = categorical(len(rows))
        for r, q in enumerate(rows):
            cells = [q.indicator, q.end, *(f"{q.precision_at[k]:.2f}" for k in ks), f"{q.recall:.2f}", f"{q.roc_auc:.3f}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setToolTip(INDICATORS[q.indicator].description if q.indicator in INDICATORS else "")
                self.table.setItem(r, c, item)
            curve = precision_curve(s.order(q.indicator), verdicts, max(ks))
            self.plot.plot(np.arange(1, len(curve) + 1), curve, pen=pg.mkPen(tuple(int(v) for v in colours[r]), width=2),
                           name=q.indicator, connect="finite")
        self.table.resizeColumnsToContents()
        glitch = np.flatnonzero(is_glitch(verdicts))
        taxonomy = Counter(TAXONOMY[s.view.taxonomy[i]] for i in glitch)
        rate = base_rate(verdicts, self.sample) if len(self.sample) else float("nan")
        if np.isfinite(rate):
            self.plot.addItem(pg.InfiniteLine(pos=rate, angle=0, pen=pg.mkPen((200, 200, 200), style=pg.QtCore.Qt.PenStyle.DashLine),
                                              label=f"base rate {rate:.3f}", labelOpts={"color": (200, 200, 200)}))
        self.summary.setText(
            f"{int(is_verified(verdicts).sum()):,} tokens verified, {len(glitch):,} glitch tokens"
            f"{f'; base rate {rate:.3f} on a random sample of {len(self.sample)}' if np.isfinite(rate) else ''}.\n"
            "Taxonomy: " + (", ".join(f"{name} {n}" for name, n in taxonomy.most_common()) or "none"))
