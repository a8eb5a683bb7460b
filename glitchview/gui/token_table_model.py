"""The outlier table's Qt model over the analysis' numpy columns (no per-row Python objects),
sorted and filtered by numpy index arrays.

Why no QSortFilterProxyModel in front: a proxy sorts and filters by calling back into Python once
per row (262,144 calls for Gemma-3), which takes seconds; sorting the numpy index takes tens of
milliseconds. The model therefore keeps `rows`, the token ids in display order."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from ..core.model.vocab import CATEGORIES, FLAGS
from ..core.scores.indicators import INDICATORS, short_name
from ..core.session import Session
from ..core.store.text import escape_text
from ..core.verify.taxonomy import TAXONOMY
from ..core.verify.verdicts import GLITCH_VERDICTS, LABELS, Verdict
from ..core.view.research import FILTERS as RESEARCH_FILTERS
from ..core.view.research import research_columns, research_filter
from .hub import SessionHub

BASE_COLUMNS = ["id", "token", "category", "flags", "cluster"]
VERDICT_COLUMNS = ["verdict", "max_prob", "taxonomy", "reasons"]
VERDICT_FILTERS = {"verified glitch": list(GLITCH_VERDICTS), "verified": [v for v in Verdict if v != Verdict.UNVERIFIED],
                   "suspect": [Verdict.SUSPECT], "crash": [Verdict.CRASH]}
SELECTED_BRUSH = QBrush(QColor(255, 45, 149, 38))
Index = QModelIndex | QPersistentModelIndex


def research_cell(value: object) -> str:
    """A corpus count with thousands separators, a verdict label as it is, a number to 4 digits."""
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return value if isinstance(value, str) else f"{value:.4g}"


class TokenTableModel(QAbstractTableModel):
    textSearch = Signal(object)  # candidate ids whose texts must be matched against the filter text

    def __init__(self, hub: SessionHub) -> None:
        super().__init__()
        self.hub = hub
        self.rows = np.zeros(0, dtype=np.int64)
        self.columns: list[str] = []
        self._categories = np.asarray(CATEGORIES)
        self._sort: tuple[int, Qt.SortOrder] = (-1, Qt.SortOrder.AscendingOrder)
        self.filter_text, self.filter_regex = "", False
        self.filter_category, self.filter_flag, self.filter_cluster = "", "", -1
        self.only_selection = False
        self.taxonomy = np.zeros(0, dtype=np.int8)
        self.research: dict[str, np.ndarray] = {}  # corpus and comparison columns (core.view.research)
        hub.analysisChanged.connect(self.reset)
        hub.verdictsChanged.connect(self._verdicts_changed)
        hub.flagsChanged.connect(self._flags_changed)
        hub.selectionChanged.connect(self._selection_changed)

    @property
    def session(self) -> Session | None:
        return self.hub.session

    # --- structure ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.beginResetModel()
        a = self.session.analysis if self.session else None
        self.taxonomy = self.session.view.taxonomy if self.session else np.zeros(0, dtype=np.int8)
        self.research = research_columns(a) if a else {}
        self.columns = [*BASE_COLUMNS, *(a.scores if a else []), "rank", "flagged", *VERDICT_COLUMNS, *self.research]
        self.rows = self.candidate_ids()
        self.endResetModel()  # the view sorts it right after (TokenTable._on_analysis)
        if self.filter_text:
            self.refilter()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            name = self.columns[section]
            if role == Qt.ItemDataRole.DisplayRole:
                return short_name(name)
            if role == Qt.ItemDataRole.ToolTipRole:
                if name in INDICATORS:
                    return f"{name}: {INDICATORS[name].description} (suspicious: {INDICATORS[name].suspicious})"
                if name == "rank":
                    return f"rank by {self.session.indicator} from its suspicious end" if self.session else name
                return name
        return None

    # --- cells -------------------------------------------------------------------------------
    def token_id(self, row: int) -> int:
        return int(self.rows[row])

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        a = self.session.analysis if self.session else None
        if a is None or not index.isValid():
            return None
        i, name = int(self.rows[index.row()]), self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(i, name)
        if role == Qt.ItemDataRole.CheckStateRole and name == "flagged":
            return Qt.CheckState.Checked if a.flagged[i] else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.BackgroundRole and self.session.selection[i]:
            return SELECTED_BRUSH
        if role == Qt.ItemDataRole.TextAlignmentRole and name not in ("token", "category", "flags"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and name == "token":
            return QFont("monospace")
        if role == Qt.ItemDataRole.ToolTipRole and name == "token":
            return f"piece: {escape_text(a.table.pieces[i])}\nbytes: {a.table.token_bytes[i].hex(' ')}"
        return None

    def _display(self, i: int, name: str) -> str | None:
        a = self.session.analysis
        if name == "id":
            return str(i)
        if name == "token":
            return self.session.view.escaped_texts[i]
        if name == "category":
            return str(self._categories[a.table.category[i]])
        if name == "flags":
            return ", ".join(a.table.flag_names(i))
        if name == "cluster":
            return str(int(a.labels[i]))
        if name == "rank":
            return str(int(self.session.rank()[i]))
        if name in a.scores:
            return f"{a.scores[name][i]:.5g}"
        if name in self.research:
            return research_cell(self.research[name][i])
        v = a.verdicts
        if name in VERDICT_COLUMNS and v is not None and v.is_verified(i):
            if name == "verdict":
                return LABELS[v.verdict[i]]
            if name == "max_prob":
                return "" if np.isnan(v.max_prob[i]) else f"{v.max_prob[i]:.3g}"
            if name == "taxonomy":
                return TAXONOMY[self.taxonomy[i]]
            return escape_text(v.reasons[i])
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and self.columns[index.column()] == "flagged":
            return base | Qt.ItemFlag.ItemIsUserCheckable
        return base

    def setData(self, index: Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role == Qt.ItemDataRole.CheckStateRole and self.columns[index.column()] == "flagged":
            checked = Qt.CheckState(value) == Qt.CheckState.Checked
            self.session.set_flags([self.token_id(index.row())], checked)
            return True
        return False

    # --- sorting and filtering on numpy ------------------------------------------------------
    def sort_key(self, name: str) -> np.ndarray | list:
        a = self.session.analysis
        if name == "id":
            return np.arange(len(a))
        if name == "token":
            return self.session.view.text_rank
        if name == "category":
            return a.table.category
        if name == "flags":
            return sum(a.table.flags[f].astype(np.int64) << k for k, f in enumerate(FLAGS))
        if name == "cluster":
            return a.labels
        if name == "rank":
            return self.session.rank()
        if name == "flagged":
            return a.flagged
        if name in self.research:
            column = self.research[name]
            return column.tolist() if column.dtype == object else column
        v = a.ensure_verdicts()
        if name == "verdict":
            return v.verdict
        if name == "max_prob":
            return v.max_prob
        if name == "taxonomy":
            return np.where(v.verdict != Verdict.UNVERIFIED, self.taxonomy, -1)
        if name == "reasons":
            return v.reasons
        return a.scores[name]

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.layoutAboutToBeChanged.emit()
        self._sort = (column, order)
        self._apply_sort()
        self.layoutChanged.emit()

    def _apply_sort(self) -> None:
        """Order `rows` by the sort column (stable; NaN always last, in both directions)."""
        column, order = self._sort
        if self.session is None or not 0 <= column < len(self.columns):
            return
        if self.columns[column] == "rank":  # the precomputed order: no sort at all
            by_rank = self.session.order()
            keep = np.zeros(len(by_rank), dtype=bool)
            keep[self.rows] = True
            ranked = by_rank[keep[by_rank]]
            self.rows = ranked[::-1] if order == Qt.SortOrder.DescendingOrder else ranked
            return
        key = self.sort_key(self.columns[column])
        if isinstance(key, list):
            ordered = np.array(sorted(self.rows.tolist(), key=key.__getitem__), dtype=np.int64)
            missing = np.zeros(len(ordered), dtype=bool)
        else:
            values = np.asarray(key)[self.rows]
            missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
            perm = np.argsort(np.where(missing, 0, values), kind="stable")
            ordered, missing = self.rows[perm], missing[perm]
        present = ordered[~missing]
        if order == Qt.SortOrder.DescendingOrder:
            present = present[::-1]
        self.rows = np.concatenate([present, ordered[missing]]).astype(np.int64)

    def candidate_ids(self) -> np.ndarray:
        """The rows every filter but the text allows (numpy masks: milliseconds at 262k rows)."""
        a = self.session.analysis if self.session else None
        if a is None:
            return np.zeros(0, dtype=np.int64)
        mask = np.ones(len(a), dtype=bool)
        if self.filter_category:
            mask &= a.table.category == CATEGORIES.index(self.filter_category)
        if self.filter_flag in VERDICT_FILTERS:
            mask &= np.isin(a.ensure_verdicts().verdict, VERDICT_FILTERS[self.filter_flag])
        elif self.filter_flag in RESEARCH_FILTERS:
            mask &= research_filter(a, self.filter_flag)
        elif self.filter_flag:
            mask &= a.flagged if self.filter_flag == "flagged" else a.table.flags[self.filter_flag]
        if self.filter_cluster >= 0:
            mask &= a.labels == self.filter_cluster
        if self.only_selection:
            mask &= self.session.selection
        return np.flatnonzero(mask)

    def refilter(self) -> None:
        """Apply the current filter settings; a text filter is matched on a worker (`textSearch`)."""
        candidates = self.candidate_ids()
        if self.filter_text and len(candidates):
            self.textSearch.emit(candidates)
        else:
            self.set_rows(candidates)

    def set_rows(self, ids: np.ndarray) -> None:
        """Show these tokens, in the current sort order."""
        self.beginResetModel()
        try:
            self.rows = np.asarray(ids, dtype=np.int64)
            self._apply_sort()
        finally:
            self.endResetModel()

    def _verdicts_changed(self) -> None:
        if self.filter_flag in VERDICT_FILTERS:
            self.refilter()
        elif len(self.rows):
            first = self.columns.index(VERDICT_COLUMNS[0])
            self.dataChanged.emit(self.index(0, first), self.index(len(self.rows) - 1, len(self.columns) - 1))

    def _flags_changed(self) -> None:
        if self.filter_flag == "flagged":
            self.refilter()
        elif len(self.rows):
            col = self.columns.index("flagged")
            self.dataChanged.emit(self.index(0, col), self.index(len(self.rows) - 1, col))

    def _selection_changed(self) -> None:
        if self.only_selection:
            self.refilter()
        elif len(self.rows):
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(self.columns) - 1),
                                  [Qt.ItemDataRole.BackgroundRole])


