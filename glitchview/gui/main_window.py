"""GlitchView's main window: the embedding map in the centre, the outlier table and the panels
docked around it, a status bar with progress and Cancel. Every computation runs as a job on the
worker pool (`workers.JobRunner`); this module only wires views, state and jobs together."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.analysis import Analysis
from ..core.logs import log_folder, log_path
from ..core.model.loading import LoadedModel
from ..core.pipeline import ScanSettings, analyse, model_changed, project, reopen_model, scan
from ..core.progress import CancelToken, ProgressFn, sub_progress
from ..core.store.analysis_file import SUFFIX, load_analysis, save_analysis
from ..core.store.export import export_columns, export_rows, write_csv, write_filter_list
from ..core.store.text import escape_text
from ..core.view.colouring import colour_options, colouring_for
from ..core.view.mapindex import build_map_index
from ..core.view.prepare import ViewData, prepare_view_data
from .autosave import Autosaver, autosave_path, pending_autosave
from .legend import Legend
from .map_view import EmbeddingMap
from .model_picker import ModelPicker, recent_models, remember_model
from .panels import SettingsPanel, TokenDetail
from .prompt_panel import PromptPanel
from .quality_panel import QualityPanel
from .state import AnalysisState
from .token_table import TokenTable
from .workers import JobRunner

SHORTCUTS = [
    ("Ctrl+O", "open a model"), ("Ctrl+Shift+O", "open an analysis file"), ("Ctrl+S", "save the analysis"),
    ("Ctrl+E", "export flagged tokens to CSV"), ("Ctrl+F", "find a token (text, /regex/ or #id)"),
    ("P / R / L", "pan, rectangle or lasso tool"), ("Shift+drag", "add to the selection"),
    ("Ctrl+drag, Alt+drag", "remove from the selection"), ("click", "select one token"),
    ("Esc", "clear the selection"), ("F", "flag the selection"), ("U", "unflag the selection"),
    ("Home", "fit all points"), ("Z", "zoom to the selection"), ("+ / -", "zoom in / out (map focused)"),
    ("arrow keys", "pan (map focused)"), ("wheel, right-drag", "zoom"), ("Ctrl+C", "copy the selected table rows as tab-separated text"),
    ("Ctrl+.", "cancel the running job"),
]


@dataclass
class Shown:
    """What a job hands the window to show: an analysis, prepared for the views, and how to show it."""

    analysis: Analysis
    view: ViewData
    model: LoadedModel | None = None
    path: str = ""  # the analysis file it was opened from
    warning: str = ""  # set when the model changed on disk since that file was saved
    selection: np.ndarray | None = None
    colour_by: str | None = None


def _modifier_mode(modifiers) -> str:
    if modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
        return "remove"
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        return "add"
    return "replace"


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("GlitchView")
        self.state = AnalysisState(self)
        self.jobs = JobRunner(self)
        self.last_error = ""
        self.model_name = ""
        self._build_map_area()
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._connect()
        self.autosaver = Autosaver(self.state, self.snapshot, self)
        self.last_warning = ""
        self.resize(1600, 1000)

    # --- construction -----------------------------------------------------------------------
    def _build_map_area(self) -> None:
        self.map = EmbeddingMap()
        self.legend = Legend()
        self.colour_by = QComboBox()
        self.colour_by.setMinimumWidth(170)
        self.projection = QComboBox()
        self.tools = QButtonGroup(self)
        bar = QHBoxLayout()
        for key, label, tip in (("pan", "Pan", "P: pan and zoom"), ("rect", "Rectangle", "R: drag a rectangle"),
                                ("lasso", "Lasso", "L: draw a free-hand region")):
            button = QToolButton(text=label, checkable=True, toolTip=tip)
            button.setProperty("tool", key)
            self.tools.addButton(button)
            bar.addWidget(button)
            if key == "pan":
                button.setChecked(True)
        self.show_centres = QCheckBox("centres", checked=True, toolTip="show the cluster centres")
        fit = QPushButton("Fit all")
        fit.clicked.connect(self.map.fit_all)
        zoom_sel = QPushButton("Zoom to sel.", toolTip="Z: zoom to the selected tokens")
        zoom_sel.clicked.connect(self.zoom_to_selection)
        self.find = QLineEdit(placeholderText="find: text, /regex/ or #id")
        self.find.setClearButtonEnabled(True)
        self.find.setMinimumWidth(150)
        self.find.returnPressed.connect(lambda: self.find_token(self.find.text()))
        for w in (self.show_centres, fit, zoom_sel, QLabel("colour by"), self.colour_by, QLabel("map"),
                  self.projection, self.find):
            bar.addWidget(w)
        bar.setStretch(bar.count() - 1, 1)
        maps = QHBoxLayout()
        maps.setSpacing(0)
        maps.addWidget(self.map, 1)
        maps.addWidget(self.legend)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.addLayout(bar)
        layout.addLayout(maps, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.table = TokenTable(self.state)
        self.table.setMinimumWidth(540)
        self.settings_panel = SettingsPanel(self.state)
        self.detail = TokenDetail(self.state)
        self.prompt = PromptPanel(self.state)
        self.quality = QualityPanel(self.state)
        self.map.tooltip_for = self.detail.tooltip
        bottom = QSplitter()
        bottom.addWidget(self.detail)
        bottom.addWidget(self.prompt)
        bottom.setSizes([380, 1200])
        self.docks: dict[str, QDockWidget] = {}
        for key, title, widget, area in (("table", "Outlier table", self.table, Qt.DockWidgetArea.RightDockWidgetArea),
                                         ("settings", "Analysis", self.settings_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
                                         ("quality", "Indicator quality", self.quality, Qt.DockWidgetArea.LeftDockWidgetArea),
                                         ("detail", "Token · prompts", bottom, Qt.DockWidgetArea.BottomDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(key)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        self.resizeDocks([self.docks["table"]], [720], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["settings"]], [300], Qt.Orientation.Horizontal)
        self.settings_panel.setMaximumWidth(420)
        self.resizeDocks([self.docks["detail"]], [260], Qt.Orientation.Vertical)
        self.tabifyDockWidget(self.docks["settings"], self.docks["quality"])
        self.docks["settings"].raise_()

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar(maximum=1000, textVisible=True)
        self.progress.setFixedWidth(260)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(self.jobs.cancel)
        self.status = QLabel("Open a model to begin (File → Open model…).")
        self.statusBar().addWidget(self.status, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

    def _action(self, menu, text: str, slot, shortcut: str | None = None, map_only: bool = False) -> QAction:
        """A menu action; `map_only` shortcuts (arrows, +/-) act only while the map has focus, so
        that they never steal keys from the table or the text fields."""
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if map_only:
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.map.addAction(action)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        m = self.menuBar()
        file = m.addMenu("&File")
        self._action(file, "Open model…", self.pick_model, "Ctrl+O")
        self.recent_menu = file.addMenu("Open recent model")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        self._action(file, "Open analysis…", self.pick_analysis, "Ctrl+Shift+O")
        self._action(file, "Save analysis", self.save, "Ctrl+S")
        self._action(file, "Save analysis as…", lambda: self.save(ask=True), "Ctrl+Shift+S")
        file.addSeparator()
        self._action(file, "Export flagged tokens…", lambda: self.export("flagged"), "Ctrl+E")
        self._action(file, "Export selection…", lambda: self.export("selection"))
        self._action(file, "Export glitch filter list…", self.export_filter_list)
        file.addSeparator()
        self._action(file, "Quit", self.close, "Ctrl+Q")
        edit = m.addMenu("&Edit")
        self._action(edit, "Copy selected rows", self.copy_rows, "Ctrl+C")
        self._action(edit, "Clear selection", self.state.clear_selection, "Esc")
        self._action(edit, "Flag selection", lambda: self.state.set_flags(self.state.selected_ids()), "F")
        self._action(edit, "Unflag selection", lambda: self.state.set_flags(self.state.selected_ids(), False), "U")
        self._action(edit, "Find token", lambda: self.find.setFocus(), "Ctrl+F")
        self._action(edit, "Cancel running job", self.jobs.cancel, "Ctrl+.")
        view = m.addMenu("&View")
        for key, text, shortcut in (("pan", "Pan tool", "P"), ("rect", "Rectangle tool", "R"),
                                    ("lasso", "Lasso tool", "L")):
            self._action(view, text, lambda _=False, k=key: self.set_tool(k), shortcut)
        view.addSeparator()
        self._action(view, "Fit all", self.map.fit_all, "Home")
        self._action(view, "Zoom to selection", self.zoom_to_selection, "Z")
        self._action(view, "Zoom in", lambda: self.map.box.scaleBy((0.8, 0.8)), "+", map_only=True)
        self._action(view, "Zoom out", lambda: self.map.box.scaleBy((1.25, 1.25)), "-", map_only=True)
        for key, dx, dy in (("Left", -0.1, 0), ("Right", 0.1, 0), ("Up", 0, 0.1), ("Down", 0, -0.1)):
            self._action(view, f"Pan {key.lower()}", lambda _=False, a=dx, b=dy: self._pan(a, b), key, map_only=True)
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        help_menu = m.addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "Open log folder", self.open_log_folder)
        self._action(help_menu, "About GlitchView", self.show_about)

    def _connect(self) -> None:
        s = self.state
        s.analysisChanged.connect(self._on_analysis)
        s.selectionChanged.connect(self._on_selection)
        s.colouringChanged.connect(self._on_colouring)
        s.projectionChanged.connect(self._on_projection)
        s.flagsChanged.connect(self._on_flags)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.finished.connect(self._on_job_finished)
        self.jobs.failed.connect(self._on_job_failed)
        self.jobs.cancelled.connect(lambda name: self._job_ended(f"{name}: cancelled"))
        self.jobs.busyChanged.connect(self.cancel_button.setEnabled)
        self.colour_by.activated.connect(lambda _: self.request_colouring(self.colour_by.currentText()))
        self.projection.activated.connect(lambda _: self.request_projection(self.projection.currentText().lower()))
        self.tools.buttonClicked.connect(lambda b: self.set_tool(b.property("tool")))
        self.show_centres.toggled.connect(lambda _: self._draw_centres())
        self.map.box.shapeDrawn.connect(self._on_shape)
        self.map.box.pointClicked.connect(self._on_click)
        self.table.tokensActivated.connect(self._on_rows_activated)
        self.settings_panel.reclusterRequested.connect(self.recluster)
        self.settings_panel.projectionRequested.connect(self.request_projection)
        self.settings_panel.flagTopRequested.connect(self.state.flag_top)
        self.quality.verifyRequested.connect(self.prompt.verify)
        s.verdictsChanged.connect(self._on_verdicts)

    # --- jobs ---------------------------------------------------------------------------------
    def open_model(self, name: str, settings: ScanSettings | None = None) -> None:
        """Load and analyse a model on a worker; the window shows it when done."""
        settings = settings or ScanSettings()
        self.model_name = name

        def job(progress: ProgressFn, cancel: CancelToken) -> Shown:
            model, analysis = scan(name, settings, sub_progress(progress, 0, 0.95), cancel)
            return Shown(analysis, prepare_view_data(analysis, sub_progress(progress, 0.95, 1.0)), model)

        self.status.setText(f"Opening {name}…")
        self.jobs.start("open model", job)

    def recluster(self, k: int) -> None:
        model, old = self.state.model, self.state.analysis
        if old is None:
            return
        snapshot = self.snapshot()  # flags, verdicts, selection and colouring as they are now
        if model is None:  # opened from a file: reload the (cached) model first
            self._run_with_model(lambda m, p, c: self._recluster_job(m, snapshot, k, p, c), "re-cluster")
            return
        self.jobs.start("re-cluster", lambda p, c: self._recluster_job(model, snapshot, k, p, c))

    @staticmethod
    def _recluster_job(model, old: Analysis, k: int, progress: ProgressFn, cancel: CancelToken) -> Shown:
        """Runs on a worker, on a snapshot: the new clustering keeps the user's flags, verdicts and view."""
        settings = ScanSettings(**{**old.settings, "clusters": k, "projections": ()})  # maps do not depend on k
        new = analyse(model, old.model.name, settings, sub_progress(progress, 0, 0.95), cancel, table=old.table)
        new.projections, new.settings["projections"] = dict(old.projections), list(old.projections)
        new.flagged, new.verdicts, new.view = old.flagged, old.verdicts, dict(old.view)
        return Shown(new, prepare_view_data(new, sub_progress(progress, 0.95, 1.0)), model,
                     selection=old.selection, colour_by=old.view["colour_by"])

    def _run_with_model(self, work, name: str) -> None:
        info = self.state.analysis.model

        def job(progress: ProgressFn, cancel: CancelToken):
            model = reopen_model(info, sub_progress(progress, 0, 0.3), cancel)
            return work(model, sub_progress(progress, 0.3, 1.0), cancel)

        self.jobs.start(name, job)

    def request_projection(self, name: str) -> None:
        if self.state.analysis is None:
            return
        if name in self.state.indexes:
            self.state.set_projection(name)
            return
        labels = self.state.analysis.labels

        def work(model, progress: ProgressFn, cancel: CancelToken):
            coords = project(model.input_embeddings, name, progress=progress, cancel=cancel)
            return name, coords, build_map_index(coords, labels), model

        if self.state.model is not None:
            model = self.state.model
            self.jobs.start("projection", lambda p, c: work(model, p, c))
        else:
            self._run_with_model(work, "projection")

    def request_colouring(self, name: str) -> None:
        if self.state.analysis is None or self.state.set_colour_by(name):
            return
        analysis = self.state.analysis
        flagged = analysis.flagged.copy()
        self.jobs.start("colouring", lambda p, c: colouring_for(dataclasses.replace(analysis, flagged=flagged), name))

    def save(self, ask: bool = False) -> None:
        if self.state.analysis is None:
            return
        path = self.state.path
        if ask or not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save analysis", path or f"analysis{SUFFIX}",
                                                  f"GlitchView analysis (*{SUFFIX})")
        if path:
            self.save_to(path)

    def snapshot(self) -> Analysis:
        """A copy of the analysis with the user's flags, selection and view, safe to hand to a worker."""
        a = self.state.analysis
        return dataclasses.replace(a, flagged=a.flagged.copy(), selection=self.state.selection.copy(),
                                   projections=dict(a.projections),
                                   verdicts=a.verdicts.copy() if a.verdicts is not None else None,
                                   view={"colour_by": self.state.colour_by, "projection": self.state.projection,
                                         "indicator": self.state.indicator})

    def save_to(self, path: str) -> None:
        snapshot = self.snapshot()
        self.jobs.start("save", lambda p, c: str(save_analysis(snapshot, Path(path))))

    def pick_analysis(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open analysis", "", f"GlitchView analysis (*{SUFFIX} *.npz)")
        if path:
            self.open_analysis(path)

    def open_analysis(self, path: str) -> None:
        def job(progress: ProgressFn, cancel: CancelToken) -> Shown:
            progress(0.1, f"Reading {Path(path).name}")
            analysis = load_analysis(Path(path))
            analysis.settings["indicator"] = analysis.view.get("indicator", analysis.settings.get("indicator"))
            return Shown(analysis, prepare_view_data(analysis, sub_progress(progress, 0.5, 1.0)),
                         path="" if Path(path) == autosave_path() else path,  # never save over the autosave
                         warning=model_changed(analysis), selection=analysis.selection,
                         colour_by=analysis.view.get("colour_by"))

        self.jobs.start("open analysis", job)

    def offer_restore(self) -> None:
        """If the last session died, offer to restore its autosaved flags, selection and verdicts."""
        path = pending_autosave()
        if path is None:
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Restore the last session?",
                          "GlitchView did not close cleanly last time. Restore the flags, selection and "
                          "verification results it autosaved?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setModal(False)
        box.accepted.connect(lambda: self.open_analysis(str(path)))
        box.open()
        self.restore_box = box

    def _warn_changed_model(self, message: str) -> None:
        self.last_warning = message
        box = QMessageBox(QMessageBox.Icon.Warning, "The model has changed", message,
                          QMessageBox.StandardButton.Retry | QMessageBox.StandardButton.Ignore, self)
        box.button(QMessageBox.StandardButton.Retry).setText("Re-run the analysis")
        box.button(QMessageBox.StandardButton.Retry).clicked.connect(
            lambda: self.open_model(self.state.analysis.model.name))
        box.setModal(False)
        box.open()

    def export(self, which: str, path: str | None = None) -> None:
        if self.state.analysis is None:
            return
        snapshot = self.snapshot()
        ids = np.flatnonzero(snapshot.flagged if which == "flagged" else snapshot.selection)
        if ids.size == 0:
            self.status.setText(f"Nothing to export: no {'flagged' if which == 'flagged' else 'selected'} tokens.")
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, f"Export {which} tokens", f"{which}.csv", "CSV (*.csv)")
        if not path:
            return
        order = ids[np.argsort(self.state.ranks[self.state.indicator][ids], kind="stable")]
        indicator = self.state.indicator
        self.jobs.start("export", lambda p, c: (write_csv(snapshot, Path(path), order, indicator), path))

    def export_filter_list(self, path: str | None = None) -> None:
        """The verified glitch tokens as a JSON filter list (bad_words_ids / logits mask)."""
        if self.state.analysis is None:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export glitch filter list", "glitch-filter.json", "JSON (*.json)")
        if path:
            snapshot = self.snapshot()
            self.jobs.start("export", lambda p, c: (write_filter_list(snapshot, Path(path)), path))

    # --- job results ----------------------------------------------------------------------------
    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{fraction:.0%}")
        self.status.setText(message)

    def _job_ended(self, message: str) -> None:
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.status.setText(message)

    def _on_job_finished(self, name: str, result) -> None:
        if isinstance(result, Shown):
            self._show(name, result)
        elif name == "projection":
            proj, coords, index, model = result
            self.state.model = model
            self.state.add_projection(proj, coords, index)
            self._job_ended(f"{proj.upper()} projection ready")
        elif name == "colouring":
            self.state.add_colouring(result)
            self._job_ended(f"coloured by {result.name}")
        elif name == "save":
            self.state.path = result
            self._job_ended(f"Saved the analysis to {result}")
        elif name == "export":
            count, path = result
            self._job_ended(f"Exported {count:,} tokens to {path}")

    def _show(self, name: str, shown: Shown) -> None:
        analysis = shown.analysis
        self.state.path = shown.path
        self.state.set_analysis(analysis, shown.view, shown.model, selection=shown.selection,
                                colour_by=shown.colour_by, projection=analysis.view.get("projection"))
        if name == "open model":
            remember_model(analysis.model.name)
        if shown.warning:
            self._warn_changed_model(shown.warning)
        took = f" in {sum(analysis.timings.values()):.1f} s" if name != "open analysis" else ""
        self._job_ended(f"{analysis.model.title}: {len(analysis):,} tokens analysed{took}")

    def _on_job_failed(self, name: str, message: str, details: str) -> None:
        self.last_error = message
        self._job_ended(f"{name} failed: {message}")
        box = QMessageBox(QMessageBox.Icon.Critical, f"GlitchView: {name} failed", message,
                          QMessageBox.StandardButton.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setModal(False)
        box.open()

    # --- views ----------------------------------------------------------------------------------
    def _on_analysis(self) -> None:
        a = self.state.analysis
        self.setWindowTitle(f"GlitchView — {escape_text(a.model.title)}")
        self.colour_by.clear()
        self.colour_by.addItems(colour_options(a))
        self.projection.clear()
        self.projection.addItems([p.upper() for p in ("pca", "umap")])
        self._draw_all(fit=True)

    def _draw_all(self, fit: bool = False) -> None:
        s = self.state
        self.map.index = s.indexes[s.projection]
        self.map.set_points(s.coords, s.colourings[s.colour_by], fit=fit)
        self.map.set_selection(s.selected_ids())
        self._draw_centres()
        self._sync_controls()

    def _sync_controls(self) -> None:
        self.colour_by.setCurrentText(self.state.colour_by)
        self.projection.setCurrentText(self.state.projection.upper())
        self.legend.set_colouring(self.state.colourings[self.state.colour_by])

    def _draw_centres(self) -> None:
        if self.state.analysis is not None:
            self.map.set_centres(self.state.indexes[self.state.projection].cluster_centres,
                                 self.show_centres.isChecked())

    def _on_projection(self) -> None:
        self._draw_all(fit=True)

    def _on_colouring(self) -> None:
        self.map.set_colouring(self.state.colourings[self.state.colour_by])
        self._sync_controls()

    def _on_flags(self) -> None:
        if self.state.colour_by == "flagged":
            self.request_colouring("flagged")

    def _on_verdicts(self) -> None:
        if self.state.colour_by == "verdict":
            self.request_colouring("verdict")
        if self.detail.token_id >= 0:
            self.detail.show_token(self.detail.token_id)

    def show_token(self, token_id: int) -> None:
        """Show one token in the detail view and make it the prompt editor's token."""
        self.detail.show_token(token_id)
        self.prompt.show_token(token_id)

    def _on_selection(self) -> None:
        ids = self.state.selected_ids()
        self.map.set_selection(ids)
        if ids.size == 1:
            self.show_token(int(ids[0]))
        self.status.setText(f"{ids.size:,} tokens selected")

    def _on_shape(self, tool: str, points: np.ndarray, modifiers) -> None:
        mode = _modifier_mode(modifiers)
        if tool == "rect":
            (x0, y0), (x1, y1) = points[0], points[-1]
            self.state.select_rect(x0, y0, x1, y1, mode)
        else:
            self.state.select_polygon(points, mode)

    def _on_click(self, x: float, y: float, modifiers) -> None:
        token = self.map.token_at(x, y)
        if token is not None:
            self.state.select_ids([token], _modifier_mode(modifiers))
        elif _modifier_mode(modifiers) == "replace":
            self.state.clear_selection()

    def _on_rows_activated(self, ids: np.ndarray) -> None:
        self.state.select_ids(ids)
        self.show_token(int(ids[0]))
        if ids.size == 1:
            self.map.centre_on(int(ids[0]))
        else:
            self.map.zoom_to(ids)

    def set_tool(self, tool: str) -> None:
        self.map.box.tool = tool
        for button in self.tools.buttons():
            button.setChecked(button.property("tool") == tool)

    def zoom_to_selection(self) -> None:
        self.map.zoom_to(self.state.selected_ids())

    def _pan(self, dx: float, dy: float) -> None:
        (x0, x1), (y0, y1) = self.map.box.viewRange()
        self.map.box.translateBy(x=dx * (x1 - x0), y=dy * (y1 - y0))

    def find_token(self, query: str) -> np.ndarray:
        """Select the tokens matching `#id`, `/regex/` or a plain text, and centre the map on the first."""
        a = self.state.analysis
        query = query.strip()
        if a is None or not query:
            return np.zeros(0, dtype=np.int64)
        if query.startswith("#") and query[1:].isdigit():
            ids = np.array([int(query[1:])]) if int(query[1:]) < len(a) else np.zeros(0, dtype=np.int64)
        else:
            self.table.search.setText(query.strip("/"))
            self.table.use_regex.setChecked(query.startswith("/") and query.endswith("/") and len(query) > 1)
            self.table.apply_filters()
            ids = self.table.model.rows.copy()
        if ids.size == 0:
            self.status.setText(f"No token matches {query}")
            return ids
        self.state.select_ids(ids)
        self.show_token(int(ids[0]))
        self.map.centre_on(int(ids[0]))
        return ids

    def copy_rows(self) -> None:
        ids = self.table.selected_row_ids()
        if ids.size == 0 or self.state.analysis is None:
            return
        snapshot = self.state.analysis
        rows = ["\t".join(export_columns(snapshot))]
        rows += ["\t".join(r) for r in export_rows(snapshot, ids, self.state.indicator)]
        QGuiApplication.clipboard().setText("\n".join(rows) + "\n")
        self.status.setText(f"Copied {ids.size:,} rows")

    def pick_model(self) -> None:
        dialog = ModelPicker(self)
        if dialog.exec() and dialog.choice:
            self.open_model(dialog.choice)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for name in recent_models():
            self._action(self.recent_menu, name, lambda _=False, n=name: self.open_model(n))

    def show_shortcuts(self) -> None:
        text = "\n".join(f"{keys:<22} {what}" for keys, what in SHORTCUTS)
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok, self)
        box.setStyleSheet("QLabel { font-family: monospace; }")
        box.open()

    def open_log_folder(self) -> None:
        folder = log_folder()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        self.status.setText(f"Log file: {log_path()}")

    def show_about(self) -> None:
        from .. import __version__

        QMessageBox.about(self, "About GlitchView",
                          f"GlitchView {__version__}\nFind, map and verify glitch tokens of language models.")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.jobs.cancel()
        self.prompt.jobs.cancel()
        self.autosaver.discard()
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(5000)
        QSettings().setValue("windowState", self.saveState())
        super().closeEvent(event)
