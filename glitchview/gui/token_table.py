"""The outlier table widget: the filter bar, the table view over `TokenTableModel`, the row
count; selecting rows selects those tokens in the session."""

from __future__ import annotations

import numpy as np
import regex
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..core.model.vocab import CATEGORIES, FLAGS
from ..core.store.export import export_columns, export_rows
from ..core.view.find import match_texts
from ..core.view.research import FILTERS as RESEARCH_FILTERS
from .hub import SessionHub
from .token_table_model import VERDICT_FILTERS, TokenTableModel
from .workers import JobRunner


class TokenTable(QWidget):
    """Filter bar + table. Emits `tokensActivated` with the ids of the rows the user selects."""

    tokensActivated = Signal(object)

    filtered = Signal()  # the rows now match the filters (a text filter is matched on a worker)

    def __init__(self, hub: SessionHub, jobs: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub, self.jobs = hub, jobs
        self.model = TokenTableModel(hub)
        self.model.textSearch.connect(self._search_texts)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.setAlternatingRowColors(True)
        self.view.selectionModel().selectionChanged.connect(self._rows_selected)

        self.search = QLineEdit(placeholderText="filter tokens: text, or a regex")
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(self.apply_filters)
        self.use_regex = QCheckBox("regex")
        self.category = QComboBox()
        self.category.addItems(["any category", *CATEGORIES])
        self.flag = QComboBox()
        self.flag.addItems(["any flag", "flagged", *VERDICT_FILTERS, *RESEARCH_FILTERS, *FLAGS])
        self.cluster = QComboBox()
        self.only_selection = QCheckBox("only selection")
        for combo in (self.category, self.flag, self.cluster):
            combo.currentIndexChanged.connect(self.apply_filters)
        self.use_regex.toggled.connect(self.apply_filters)
        self.only_selection.toggled.connect(self.apply_filters)
        self.count = QLabel()
        self.error = QLabel()
        self.error.setStyleSheet("color: #ff6b6b")
        self.error.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never squeezes the count

        search_row, filter_row = QHBoxLayout(), QHBoxLayout()
        for w in (self.search, self.use_regex, self.only_selection):
            search_row.addWidget(w)
        search_row.setStretch(0, 1)
        for w in (self.category, self.flag, self.cluster):
            filter_row.addWidget(w, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(search_row)
        layout.addLayout(filter_row)
        layout.addWidget(self.view)
        status = QHBoxLayout()
        status.addWidget(self.count)
        status.addWidget(self.error, 1)
        layout.addLayout(status)
        hub.analysisChanged.connect(self._on_analysis)
        hub.indicatorChanged.connect(self._on_indicator)
        self.model.modelReset.connect(self._update_count)
        hub.selectionChanged.connect(self._on_session_selection)
        self._activating = False

    def _on_analysis(self) -> None:
        a = self.hub.session.analysis
        self.cluster.blockSignals(True)
        self.cluster.clear()
        self.cluster.addItems(["any cluster", *(f"cluster {c}" for c in range(len(a.centers)))])
        self.cluster.blockSignals(False)
        rank_col = self.model.columns.index("rank")
        self.view.sortByColumn(rank_col, Qt.SortOrder.AscendingOrder)
        # fixed widths: resizeColumnsToContents asks every row for its data (seconds at 262k rows)
        widths = {"id": 64, "token": 170, "category": 104, "flags": 110, "cluster": 56, "rank": 64, "flagged": 60,
                  "verdict": 100, "taxonomy": 190, "reasons": 420}
        for col, name in enumerate(self.model.columns):
            self.view.setColumnWidth(col, widths.get(name, 92))
        self._update_count()

    def _on_indicator(self) -> None:
        """Another indicator ranks the tokens: the rank column changes, the table goes back to rank order."""
        self.model.reset()
        self.view.sortByColumn(self.model.columns.index("rank"), Qt.SortOrder.AscendingOrder)

    def apply_filters(self) -> None:
        m = self.model
        m.filter_text, m.filter_regex = self.search.text(), self.use_regex.isChecked()
        m.filter_category = self.category.currentText() if self.category.currentIndex() > 0 else ""
        m.filter_flag = self.flag.currentText() if self.flag.currentIndex() > 0 else ""
        m.filter_cluster = self.cluster.currentIndex() - 1
        m.only_selection = self.only_selection.isChecked()
        if m.filter_text and m.filter_regex:
            try:
                regex.compile(m.filter_text)
            except regex.error as exc:
                self.error.setText(f"bad regex: {exc}")
                return
        self.error.clear()
        m.refilter()
        if not m.filter_text:
            self.filtered.emit()

    def _search_texts(self, candidates: np.ndarray) -> None:
        """Match the filter text over the candidates' texts on a worker (seconds at 262k rows)."""
        texts, needle, is_regex = self.hub.session.view.escaped_texts, self.model.filter_text, self.model.filter_regex
        self.count.setText(f"filtering {len(candidates):,} tokens…")
        self.jobs.start("filter", lambda p, c: match_texts(texts, needle, is_regex, candidates), self._filtered,
                        "search")

    def _filtered(self, ids: np.ndarray) -> None:
        self.model.set_rows(ids)
        self.filtered.emit()

    def _update_count(self) -> None:
        s = self.hub.session
        total, selected = (len(s), int(s.selection.sum())) if s is not None else (0, 0)
        self.count.setText(f"{len(self.model.rows):,} of {total:,} tokens · {selected:,} selected")

    def _rows_selected(self) -> None:
        rows = sorted({index.row() for index in self.view.selectionModel().selectedRows()})
        if rows:
            self._activating = True
            try:
                self.tokensActivated.emit(self.model.rows[np.asarray(rows)])
            finally:
                self._activating = False

    def _on_session_selection(self) -> None:
        """One selection for map and table: the session's, shown by the model's row shading. A
        selection made elsewhere (map, find, Esc) clears the view's own row highlight."""
        if not self._activating:
            selection_model = self.view.selectionModel()
            selection_model.blockSignals(True)
            selection_model.clearSelection()
            selection_model.blockSignals(False)
            self.view.viewport().update()
        self._update_count()

    def copy_rows(self) -> str:
        """Copy the selected rows as tab-separated text (the export's columns); says what it did."""
        ids = self.selected_row_ids()
        if ids.size == 0 or self.hub.session is None:
            return "No rows selected to copy."
        a = self.hub.session.analysis
        rows = ["\t".join(export_columns(a)), *("\t".join(r) for r in export_rows(a, ids, self.hub.session.indicator))]
        QGuiApplication.clipboard().setText("\n".join(rows) + "\n")
        return f"Copied {ids.size:,} rows"

    def selected_row_ids(self) -> np.ndarray:
        """The rows picked in the table, else the session's selection, in table order."""
        rows = sorted({index.row() for index in self.view.selectionModel().selectedRows()})
        if rows:
            return self.model.rows[np.asarray(rows, dtype=np.int64)]
        if self.hub.session is None:
            return np.zeros(0, dtype=np.int64)
        return self.model.rows[self.hub.session.selection[self.model.rows]]
