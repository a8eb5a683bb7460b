"""The window's research actions: count a corpus, compare with a second model or analysis, export the
per-model report. Each asks for its input in a dialog (or takes it from a script or test) and runs
the matching operation of `core.research_operations` on a worker through `MainWindow.run`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core import research_operations as research
from ..core.store.analysis_file import SUFFIX

if TYPE_CHECKING:
    from .main_window import MainWindow


class CorpusDialog(QDialog):
    """Files and folders of a corpus, and the text field of JSON lines / Parquet / datasets."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Count tokens in a corpus")
        self.paths = QListWidget()
        self.field = QLineEdit("text")
        add_files, add_folder = QPushButton("Add files…"), QPushButton("Add folder…")
        add_files.clicked.connect(self._add_files)
        add_folder.clicked.connect(self._add_folder)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(add_files)
        row.addWidget(add_folder)
        form = QFormLayout()
        form.addRow("text field / column", self.field)
        layout = QVBoxLayout(self)
        layout.addWidget(self.paths)
        layout.addLayout(row)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Corpus files", "", "Text corpora (*.txt *.jsonl *.parquet);;All (*)")
        self.paths.addItems(files)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Corpus folder (or a saved dataset)")
        if folder:
            self.paths.addItem(folder)

    def chosen(self) -> list[Path]:
        return [Path(self.paths.item(i).text()) for i in range(self.paths.count())]


def count_corpus(window: MainWindow, paths: list[Path] | None = None, field: str = "text") -> None:
    if window.session is None:
        return
    if paths is None:
        dialog = CorpusDialog(window)
        if not dialog.exec() or not dialog.chosen():
            return
        paths, field = dialog.chosen(), dialog.field.text().strip() or "text"
    window.run("corpus", research.count_corpus, paths, field,
               then=lambda r: window.job_status.ended(f"Corpus counted: {r.corpus.summary()}"))


def compare_with(window: MainWindow, target: str | None = None) -> None:
    """Compare with a second model (a folder's config.json, a .gguf) or an analysis file."""
    if window.session is None:
        return
    if target is None:
        path, _ = QFileDialog.getOpenFileName(window, "Compare with a model or an analysis", "",
                                              f"Analysis or model (*{SUFFIX} *.gguf config.json);;All (*)")
        if not path:
            return
        target = str(Path(path).parent) if Path(path).name == "config.json" else path
    window.run("compare", research.compare_with, target,
               then=lambda r: window.job_status.ended(r.comparison.summary()))


def export_report(window: MainWindow, folder: str | None = None) -> None:
    if window.session is None:
        return
    if folder is None:
        folder = QFileDialog.getExistingDirectory(window, "Folder for the report")
        if not folder:
            return
    load_plotting()
    window.run("report", research.export_report, Path(folder),
               then=lambda r: window.job_status.ended(f"Report written to {r.path}"))


def load_plotting() -> None:
    """Import matplotlib's figure and Agg canvas on the GUI thread, once, before a report job uses
    them: imported for the first time on a worker while Qt's event loop runs, the import stalled
    for good in the test suite (the worker waiting on the GIL in matplotlib's docstring setup)."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError:
        pass  # the report job says how to install it
