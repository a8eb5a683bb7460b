"""GlitchView's main window: the map in the centre, the outlier table and the panels docked around
it, a status bar with progress and Cancel. A thin layer over the core: every user request becomes
a core operation on a snapshot of the session (`core.operations`), run on the window's one job
runner; its result goes back through the session, which refuses results of another session."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QScrollArea, QSplitter

from ..core import operations
from ..core.pipeline import ScanSettings
from ..core.progress import CancelToken, ProgressFn
from ..core.session import Session
from ..core.store.analysis_file import SUFFIX
from ..core.store.text import escape_text
from .autosave import Autosaver, autosave_path, pending_autosave
from .dialogs import ask_to_restore, warn_changed_model
from .hub import SessionHub
from .job_status import JobStatus
from .map_area import MapArea
from .menus import build_menus
from .milestones import report_time
from .model_picker import ModelPicker, recent_models, remember_model
from .panels import SettingsPanel, TokenDetail
from .prompt_panel import PromptPanel
from .quality_panel import QualityPanel
from .token_table import TokenTable
from .workers import JobRunner, wait_for_threads

Operation = Callable[..., Any]  # operation(snapshot, *args, progress, cancel) -> Result
QUIT_WAIT_MS = 600  # how long closing waits for cancelled jobs to return
NEIGHBOURS = 10  # nearest neighbours listed and drawn for the current token


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("GlitchView")
        self.hub = SessionHub(self)
        self.jobs = JobRunner(self)
        self.last_warning = ""
        self._opening = 0  # a number for each model opened, so that a late early map of an older one is ignored
        self._map_reported = False  # the first map's milestone (bench/bench_first_map.py) is said once
        self.map_area = MapArea(self.hub, self.jobs)
        self.map = self.map_area.map
        self.setCentralWidget(self.map_area)
        self._build_docks()
        self.job_status = JobStatus(self, self.jobs)
        self.status, self.progress = self.job_status.label, self.job_status.progress
        self.cancel_button = self.job_status.cancel_button
        build_menus(self)
        self._connect()
        self.autosaver = Autosaver(self.hub, self.jobs, self)

    @property
    def session(self) -> Session | None:
        return self.hub.session

    @property
    def last_error(self) -> str:
        return self.job_status.last_error

    @last_error.setter
    def last_error(self, message: str) -> None:
        self.job_status.last_error = message

    # --- construction -----------------------------------------------------------------------------
    def _build_docks(self) -> None:
        self.table = TokenTable(self.hub, self.jobs)
        self.table.setMinimumWidth(340)
        self.settings_panel = SettingsPanel(self.hub)
        settings = QScrollArea(widgetResizable=True, frameShape=QScrollArea.Shape.NoFrame)
        settings.setWidget(self.settings_panel)  # its engine rows must not set the window's minimum height
        self.detail = TokenDetail(self.hub)
        self.prompt = PromptPanel(self.hub, self.jobs)
        self.quality = QualityPanel(self.hub)
        self.map.tooltip_for = self.detail.tooltip
        bottom = QSplitter()
        bottom.addWidget(self.detail)
        bottom.addWidget(self.prompt)
        bottom.setSizes([380, 1200])
        areas = Qt.DockWidgetArea
        self.docks: dict[str, QDockWidget] = {}
        for key, title, widget, area in (("table", "Outlier table", self.table, areas.RightDockWidgetArea),
                                         ("settings", "Analysis", settings, areas.RightDockWidgetArea),
                                         ("quality", "Indicator quality", self.quality, areas.RightDockWidgetArea),
                                         ("detail", "Token · prompts", bottom, areas.BottomDockWidgetArea)):
            dock = QDockWidget(title, self, objectName=key)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        # the map keeps the most room on a laptop screen: the table, the settings and the quality
        # measurements share one tabbed dock on the right, the token and prompts sit below
        self.tabifyDockWidget(self.docks["table"], self.docks["settings"])
        self.tabifyDockWidget(self.docks["settings"], self.docks["quality"])
        self.docks["table"].raise_()
        screen = QGuiApplication.primaryScreen().availableGeometry()
        width, height = min(1600, screen.width()), min(1000, screen.height())
        self.resize(max(width, 1024), max(height, 700))
        self.resizeDocks([self.docks["table"]], [int(self.width() * 0.34)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["detail"]], [int(self.height() * 0.3)], Qt.Orientation.Vertical)

    def _connect(self) -> None:
        self.hub.analysisChanged.connect(self._on_analysis)
        self.hub.selectionChanged.connect(self._on_selection)
        self.hub.tokenChanged.connect(self._look_up_neighbours)
        self.detail.tokenPicked.connect(lambda token: self.session.select_ids([token]))
        self.map_area.colouringRequested.connect(self._compute_colouring)
        self.map_area.projectionRequested.connect(self._compute_projection)
        self.table.tokensActivated.connect(self._on_rows_activated)
        self.settings_panel.reclusterRequested.connect(self.recluster)
        self.settings_panel.projectionRequested.connect(self.request_projection)
        self.settings_panel.flagTopRequested.connect(lambda n: self.session and self.session.flag_top(n))
        self.quality.verifyRequested.connect(self.prompt.verify)

    # --- opening: a new session ----------------------------------------------------------------------
    def open_model(self, name: str, settings: ScanSettings | None = None, fresh: bool = False) -> None:
        """Load a model on a worker and show it as a new session: its last analysis when it was
        analysed before (unless `fresh` or `settings` are given), else a new one, with its PCA map
        shown as soon as the matrix is read when nothing is shown yet."""
        self.status.setText(f"Opening {escape_text(name)}…")
        self._opening += 1
        ticket, post, reuse = self._opening, self.jobs.post, settings is None and not fresh

        def job(progress: ProgressFn, cancel: CancelToken) -> operations.Opened:
            return operations.open_model(name, settings, progress, cancel,
                                         lambda coords: post(self._on_early_map, ticket, coords),
                                         reuse, remember=settings is None)

        self.jobs.start("open model", job, self._opened)

    def _on_early_map(self, ticket: int, coords: np.ndarray) -> None:
        if ticket == self._opening and self.session is None:
            self.map_area.show_early_map(coords)
            self._map_reported = True
            report_time("first map")

    def open_analysis(self, path: str) -> None:
        keep = Path(path) != autosave_path()  # never save over the autosave
        self.jobs.start("open analysis", lambda p, c: operations.open_analysis(Path(path), p, keep), self._opened)

    def _opened(self, opened: operations.Opened) -> None:
        self.jobs.cancel("prompt")  # whatever the old session was verifying no longer matters
        self.hub.set_session(opened.session())
        if not self._map_reported:  # a restored analysis: its map is the first one
            report_time("first map")
        self._map_reported = True
        report_time("analysis shown")
        a = opened.analysis
        if opened.computed_at:
            self.job_status.ended(f"{escape_text(a.model.title)}: restored its analysis computed {opened.computed_at}",
                                  rerun=lambda: self.open_model(a.model.name, fresh=True))
            return
        if opened.model is not None:
            remember_model(a.model.name)
        if opened.warning:
            self.last_warning = opened.warning
            warn_changed_model(self, opened.warning, lambda: self.open_model(a.model.name))
        took = f" in {sum(a.timings.values()):.1f} s" if opened.model is not None else ""
        self.job_status.ended(f"{escape_text(a.model.title)}: {len(a):,} tokens analysed{took}")

    def offer_restore(self) -> None:
        """If the last session died, offer to restore its autosaved flags, selection and verdicts."""
        if pending_autosave() is not None:
            self.restore_box = ask_to_restore(self, lambda: self.open_analysis(str(autosave_path())))

    # --- operations on the session ----------------------------------------------------------------------
    def run(self, name: str, operation: Operation, *args: Any, kind: str | None = None,
            then: Callable[[Any], None] | None = None, lane: str = "analysis") -> None:
        """Run `operation(snapshot, *args, progress, cancel)` on a worker and apply its result."""
        if self.session is None:
            return
        snapshot = self.session.snapshot(kind or name)

        def job(progress: ProgressFn, cancel: CancelToken) -> Any:
            return operation(snapshot, *args, progress, cancel)

        def done(result: Any) -> None:
            if self.hub.apply(result):
                (then or (lambda _: self.job_status.ended(f"{name}: done")))(result)

        self.jobs.start(name, job, done, lane)

    def recluster(self, k: int) -> None:
        self.run("re-cluster", operations.recluster, k,
                 then=lambda _: self.job_status.ended(f"re-clustered into {k} clusters"))

    def request_projection(self, name: str) -> None:
        """Show the projection `name`, computing it first when needed."""
        self.map_area.request_projection(name)

    def request_colouring(self, name: str) -> None:
        """Colour the map by `name`, computing the colouring first when needed."""
        self.map_area.request_colouring(name)

    def _compute_projection(self, name: str) -> None:
        self.run("projection", operations.project_map, name,
                 then=lambda r: self.job_status.ended(f"{r.name.upper()} projection ready"))

    def _compute_colouring(self, name: str) -> None:
        self.run("colouring", operations.colour, name, then=lambda r: self.job_status.ended(f"coloured by {name}"))

    def save(self, ask: bool = False) -> None:
        if self.session is None:
            return
        path = self.session.path
        if ask or not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save analysis", path or f"analysis{SUFFIX}",
                                                  f"GlitchView analysis (*{SUFFIX})")
        if path:
            self.save_to(path)

    def save_to(self, path: str) -> None:
        self.run("save", operations.save, Path(path),
                 then=lambda r: self.job_status.ended(f"Saved the analysis to {r.path}"))

    def pick_analysis(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open analysis", "", f"GlitchView analysis (*{SUFFIX} *.npz)")
        if path:
            self.open_analysis(path)

    def export(self, which: str, path: str | None = None) -> None:
        if self.session is None:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, f"Export {which} tokens", f"{which}.csv", "CSV (*.csv)")
        if path:
            self.run("export", operations.export_tokens, which, Path(path), then=self._exported)

    def export_filter_list(self, path: str | None = None) -> None:
        """The verified glitch tokens as a JSON filter list (bad_words_ids / logits mask)."""
        if self.session is not None and path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export glitch filter list", "glitch-filter.json",
                                                  "JSON (*.json)")
        if path:
            self.run("export", operations.export_filter_list, Path(path), then=self._exported)

    def _exported(self, result: operations.Exported) -> None:
        self.job_status.ended(f"Exported {result.count:,} {result.what} to {result.path}")

    # --- views ------------------------------------------------------------------------------------------------
    def _on_analysis(self) -> None:
        self.setWindowTitle(f"GlitchView — {escape_text(self.session.analysis.model.title)}")

    def _on_selection(self) -> None:
        self.status.setText(f"{self.session.selected_ids().size:,} tokens selected")

    def _look_up_neighbours(self) -> None:
        if self.session is not None and self.session.token >= 0:
            self.run("neighbours", operations.nearest, NEIGHBOURS, lane="neighbours", then=lambda _: None)

    def show_token(self, token_id: int) -> None:
        """Make `token_id` the session's current token (detail view and prompt editor)."""
        if self.session is not None:
            self.session.set_token(token_id)

    def _on_rows_activated(self, ids: np.ndarray) -> None:
        self.session.select_ids(ids)
        self.show_token(int(ids[0]))
        self.map_area.show_ids(ids)

    def pick_model(self) -> None:
        dialog = ModelPicker(self)
        if dialog.exec() and dialog.choice:
            self.open_model(dialog.choice)

    def fill_recent(self) -> None:
        self.recent_menu.clear()
        for name in recent_models():
            action = self.recent_menu.addAction(escape_text(name))
            action.triggered.connect(lambda _=False, n=name: self.open_model(n))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Quit within a second: jobs are cancelled (child processes terminate at once); a step
        that cannot be interrupted is left to `app.main`, which ends the process."""
        self.jobs.cancel()
        self.autosaver.discard()
        wait_for_threads(QUIT_WAIT_MS / 1000)
        QSettings().setValue("windowState", self.saveState())
        super().closeEvent(event)
