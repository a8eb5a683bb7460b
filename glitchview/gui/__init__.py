"""The desktop window (PySide6 + pyqtgraph) is built in the window issue; until it lands,
`glitchview-gui` and `python main.py` run the headless scan of the default model instead."""

from __future__ import annotations


def main() -> int:
    from ..cli import main as cli_main

    print("GlitchView's window is not built yet: running the headless scan of the default model.")
    return cli_main(["scan"])
