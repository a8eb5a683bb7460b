"""The window's menus and keyboard shortcuts, in one table each, so that the shortcut list in
Help and the menus never disagree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from ..core.logs import log_folder, log_path
from . import research_actions

if TYPE_CHECKING:
    from .main_window import MainWindow

SHORTCUTS = [
    ("Ctrl+O", "open a model"), ("Ctrl+Shift+O", "open an analysis file"), ("Ctrl+S", "save the analysis"),
    ("Ctrl+E", "export flagged tokens to CSV"), ("Ctrl+F", "find a token (text, /regex/ or #id)"),
    ("P / R / L", "pan, rectangle or lasso tool"), ("Shift+drag", "add to the selection"),
    ("Ctrl+drag, Alt+drag", "remove from the selection"), ("click", "select one token"),
    ("Esc", "clear the selection"), ("F", "flag the selection"), ("U", "unflag the selection"),
    ("Home", "fit all points"), ("Z", "zoom to the selection"), ("+ / -", "zoom in / out (map focused)"),
    ("Ctrl+Z, Ctrl+Shift+Z", "undo, redo a change of flags or selection"), ("arrow keys", "pan (map focused)"),
    ("wheel, right-drag", "zoom"),
    ("Ctrl+C", "copy the selected table rows as tab-separated text"), ("Ctrl+.", "cancel the running job"),
]


def add_action(window: MainWindow, menu: QMenu, text: str, slot: Callable, shortcut: str | None = None,
               map_only: bool = False) -> QAction:
    """A menu action; `map_only` shortcuts (arrows, +/-) act only while the map has focus, so that
    they never steal keys from the table or the text fields."""
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    if map_only:
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        window.map.addAction(action)
    action.triggered.connect(slot)
    menu.addAction(action)
    return action


def _with_session(window: MainWindow, method: str, *args) -> Callable[[], None]:
    """A slot that calls a session method when there is a session."""
    return lambda: getattr(window.session, method)(*args) if window.session is not None else None


def build_menus(w: MainWindow) -> None:
    bar = w.menuBar()
    file = bar.addMenu("&File")
    add_action(w, file, "Open model…", w.pick_model, "Ctrl+O")
    w.recent_menu = file.addMenu("Open recent model")
    w.recent_menu.aboutToShow.connect(w.fill_recent)
    file.addSeparator()
    add_action(w, file, "Open analysis…", w.pick_analysis, "Ctrl+Shift+O")
    add_action(w, file, "Save analysis", w.save, "Ctrl+S")
    add_action(w, file, "Save analysis as…", lambda: w.save(ask=True), "Ctrl+Shift+S")
    file.addSeparator()
    add_action(w, file, "Export flagged tokens…", lambda: w.export("flagged"), "Ctrl+E")
    add_action(w, file, "Export selection…", lambda: w.export("selection"))
    add_action(w, file, "Export glitch filter list…", w.export_filter_list)
    add_action(w, file, "Export report…", lambda: research_actions.export_report(w))
    file.addSeparator()
    add_action(w, file, "Count corpus tokens…", lambda: research_actions.count_corpus(w))
    add_action(w, file, "Compare with…", lambda: research_actions.compare_with(w))
    file.addSeparator()
    add_action(w, file, "Quit", w.close, "Ctrl+Q")
    edit = bar.addMenu("&Edit")
    add_action(w, edit, "Undo flags / selection", _with_session(w, "undo"), "Ctrl+Z")
    add_action(w, edit, "Redo flags / selection", _with_session(w, "redo"), "Ctrl+Shift+Z")
    add_action(w, edit, "Copy selected rows", lambda: w.status.setText(w.table.copy_rows()), "Ctrl+C")
    add_action(w, edit, "Clear selection", _with_session(w, "clear_selection"), "Esc")
    add_action(w, edit, "Flag selection", lambda: w.session and w.session.set_flags(w.session.selected_ids()), "F")
    add_action(w, edit, "Unflag selection",
               lambda: w.session and w.session.set_flags(w.session.selected_ids(), False), "U")
    add_action(w, edit, "Find token", lambda: w.map_area.find.setFocus(), "Ctrl+F")
    add_action(w, edit, "Cancel running job", w.jobs.cancel, "Ctrl+.")
    view = bar.addMenu("&View")
    tools = (("pan", "Pan tool", "P"), ("rect", "Rectangle tool", "R"), ("lasso", "Lasso tool", "L"))
    for key, text, shortcut in tools:
        add_action(w, view, text, lambda _=False, k=key: w.map_area.set_tool(k), shortcut)
    view.addSeparator()
    add_action(w, view, "Fit all", w.map.fit_all, "Home")
    add_action(w, view, "Zoom to selection", w.map_area.zoom_to_selection, "Z")
    add_action(w, view, "Zoom in", lambda: w.map.box.scaleBy((0.8, 0.8)), "+", map_only=True)
    add_action(w, view, "Zoom out", lambda: w.map.box.scaleBy((1.25, 1.25)), "-", map_only=True)
    for key, dx, dy in (("Left", -0.1, 0), ("Right", 0.1, 0), ("Up", 0, 0.1), ("Down", 0, -0.1)):
        add_action(w, view, f"Pan {key.lower()}", lambda _=False, a=dx, b=dy: w.map_area.pan(a, b), key, map_only=True)
    view.addSeparator()
    for dock in w.docks.values():
        view.addAction(dock.toggleViewAction())
    help_menu = bar.addMenu("&Help")
    add_action(w, help_menu, "Keyboard shortcuts", lambda: show_shortcuts(w), "F1")
    add_action(w, help_menu, "Open log folder", lambda: open_log_folder(w))
    add_action(w, help_menu, "About GlitchView", lambda: show_about(w))


def show_shortcuts(window: MainWindow) -> None:
    text = "\n".join(f"{keys:<22} {what}" for keys, what in SHORTCUTS)
    box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok, window)
    box.setStyleSheet("QLabel { font-family: monospace; }")
    box.open()


def open_log_folder(window: MainWindow) -> None:
    folder = log_folder()
    folder.mkdir(parents=True, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
    window.status.setText(f"Log file: {log_path()}")


def show_about(window: MainWindow) -> None:
    from .. import __version__

    QMessageBox.about(window, "About GlitchView",
                      f"GlitchView {__version__}\nFind, map and verify glitch tokens of language models.")
