"""Starting the desktop application: `glitchview-gui [MODEL | FILE.gva.npz]`, `python main.py`."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
from importlib import resources

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from ..core.logs import setup_logging
from ..core.model.sources import DEFAULT_MODEL
from ..core.store.analysis_file import SUFFIX
from ..platform_check import check_platform, chosen_platform

APP_NAME = "GlitchView"
APP_ID = "io.github.glitchview.GlitchView"


def _resource(name: str):
    return resources.files("glitchview.resources").joinpath(name)


def dark_palette() -> QPalette:
    """Fusion's palette in dark colours (Qt's own Fusion style has no dark variant of its own)."""
    palette = QPalette()
    base, window, text, mid = QColor(30, 32, 38), QColor(40, 43, 50), QColor(225, 227, 234), QColor(70, 74, 84)
    for role, colour in ((QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
                         (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, QColor(36, 38, 45)),
                         (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
                         (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, base),
                         (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor(255, 45, 149)),
                         (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)), (QPalette.ColorRole.Mid, mid),
                         (QPalette.ColorRole.Midlight, mid), (QPalette.ColorRole.PlaceholderText, QColor(140, 144, 156))):
        palette.setColor(role, colour)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 124, 134))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 124, 134))
    return palette


def apply_palette(app: QApplication, scheme: Qt.ColorScheme | None = None) -> str:
    """Follow the desktop: a dark palette when it asks for dark, Fusion's light one otherwise."""
    scheme = app.styleHints().colorScheme() if scheme is None else scheme
    dark = scheme == Qt.ColorScheme.Dark
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    return "dark" if dark else "light"


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication, created once, named so that QSettings and the desktop entry match, with the
    icon, style sheet and a palette that follows the desktop's light or dark scheme."""
    QCoreApplication.setOrganizationName(APP_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setDesktopFileName(APP_ID)
    app.setStyle("Fusion")
    icon = QIcon()
    for size in (16, 32, 48, 64, 128, 256, 512):
        icon.addFile(str(_resource(f"icons/glitchview-{size}.png")))
    app.setWindowIcon(icon)
    app.setStyleSheet(_resource("style.qss").read_text(encoding="utf-8"))
    apply_palette(app)
    app.styleHints().colorSchemeChanged.connect(lambda scheme: apply_palette(app, scheme))
    setup_logging()
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glitchview-gui", description="GlitchView desktop application")
    parser.add_argument("target", nargs="?", default=DEFAULT_MODEL,
                        help=f"a model (demo name, folder or .gguf; default {DEFAULT_MODEL}) or an analysis file")
    parser.add_argument("--fresh", action="store_true",
                        help="analyse the model afresh even when its last analysis is in the cache")
    args = parser.parse_args(argv)
    problem = check_platform(chosen_platform())
    if problem:
        print(f"glitchview-gui: {problem}", file=sys.stderr)
        return 2
    app = create_application()
    from .main_window import MainWindow
    from .workers import live_threads

    window = MainWindow()
    window.show()
    if args.target.endswith((SUFFIX, ".npz")):
        window.open_analysis(args.target)
    else:
        window.open_model(args.target, fresh=args.fresh)
    window.offer_restore()
    code = app.exec()
    if live_threads():
        # a native step (a forward pass, a BLAS call) that cannot be interrupted is still running:
        # end its child processes and the process now rather than make the user wait for it
        for child in multiprocessing.active_children():
            child.kill()
        logging.shutdown()
        os._exit(code)
    return code
