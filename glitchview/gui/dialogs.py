"""The window's non-modal questions: restore a crashed session, re-run an analysis whose model
changed on disk. Non-modal, so that a waiting dialog never blocks the jobs that are running."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QMessageBox, QWidget


def ask_to_restore(parent: QWidget, restore: Callable[[], None]) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Question, "Restore the last session?",
                      "GlitchView did not close cleanly last time. Restore the flags, selection and "
                      "verification results it autosaved?",
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setModal(False)
    box.accepted.connect(restore)
    box.open()
    return box


def warn_changed_model(parent: QWidget, message: str, rerun: Callable[[], None]) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Warning, "The model has changed", message,
                      QMessageBox.StandardButton.Retry | QMessageBox.StandardButton.Ignore, parent)
    box.button(QMessageBox.StandardButton.Retry).setText("Re-run the analysis")
    box.button(QMessageBox.StandardButton.Retry).clicked.connect(rerun)
    box.setModal(False)
    box.open()
    return box
