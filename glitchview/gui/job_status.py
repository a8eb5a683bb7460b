"""The status bar: what the analysis lane is doing (message, progress, Cancel), how each job
ended, and a non-modal dialog with the details when one failed."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton

from .workers import JobRunner

QUIET_JOBS = ("neighbours",)


class JobStatus:
    def __init__(self, window: QMainWindow, jobs: JobRunner) -> None:
        self.window = window
        self.last_error = ""
        self.progress = QProgressBar(maximum=1000, textVisible=True)
        self.progress.setFixedWidth(220)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(lambda: jobs.cancel("analysis"))
        self.label = QLabel("Open a model to begin (File → Open model…).")
        self.rerun_button = QPushButton("Re-run", visible=False, toolTip="compute this model's analysis again")
        self.rerun_button.clicked.connect(lambda: self.rerun_button.hide())
        self._rerun: Callable[[], None] | None = None
        self.rerun_button.clicked.connect(lambda: self._rerun() if self._rerun else None)
        bar = window.statusBar()
        bar.addWidget(self.label, 1)
        bar.addWidget(self.rerun_button)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        jobs.progress.connect(self._on_progress)
        jobs.failed.connect(self._on_failed)
        jobs.cancelled.connect(lambda name: self.ended(f"{name}: cancelled"))
        jobs.busyChanged.connect(lambda lane, busy: self.cancel_button.setEnabled(busy) if lane == "analysis" else None)

    def say(self, message: str) -> None:
        self.label.setText(message)

    def ended(self, message: str, rerun: Callable[[], None] | None = None) -> None:
        """A job ended; `rerun`, when given, is offered as a Re-run button (a restored analysis)."""
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.say(message)
        self._rerun = rerun
        self.rerun_button.setVisible(rerun is not None)

    def _on_progress(self, lane: str, fraction: float, message: str) -> None:
        if lane == "analysis":
            self.progress.setValue(int(fraction * 1000))
            self.progress.setFormat(f"{fraction:.0%}")
            self.say(message)

    def _on_failed(self, name: str, message: str, details: str) -> None:
        self.last_error = message
        self.ended(f"{name} failed: {message}")
        if name in QUIET_JOBS:  # a lookup the user did not ask for: the status line is enough
            return
        box = QMessageBox(QMessageBox.Icon.Critical, f"GlitchView: {name} failed", message,
                          QMessageBox.StandardButton.Ok, self.window)
        if details:
            box.setDetailedText(details)
        box.setModal(False)
        box.open()
