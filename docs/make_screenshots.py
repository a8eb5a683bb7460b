"""Render the documentation screenshots offscreen: `python docs/make_screenshots.py`.

Opens the real window on the default demo model (SmolLM2), selects the 40 most suspicious tokens
by the recommended glitch_score, verifies them (fast screening confirmed by the full test),
filters the table to them, runs the seed's breakfast prompt with a verified glitch token beside a
control token, then measures the indicators (top 30 of each plus 30 random tokens), and saves PNGs
next to this script: main_window.png (1600 x 1000), main_window_1366.png (1366 x 768, a laptop
screen), prompt_panel.png, indicator_quality.png (used by README and guide.md)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent


def wait(app, owner, limit: float = 600) -> None:
    """Let the event loop run until `owner`'s job runner is idle."""
    start = time.monotonic()
    while True:
        app.processEvents()
        time.sleep(0.01)
        if not owner.jobs.busy or time.monotonic() - start > limit:
            return


def main() -> None:
    from glitchview.core.verify.verdicts import is_glitch
    from glitchview.gui.app import create_application
    from glitchview.gui.main_window import MainWindow

    app = create_application()
    window = MainWindow()
    window.resize(1600, 1000)
    window.show()
    window.open_model(sys.argv[1] if len(sys.argv) > 1 else "smollm2", fresh=True)
    start = time.monotonic()
    while (window.session is None or window.jobs.busy) and time.monotonic() - start < 600:
        app.processEvents()
        time.sleep(0.01)
    if window.last_error:
        raise SystemExit(window.last_error)
    state = window.session
    knot = state.analysis.top("glitch_score", 40)  # the 40 most suspicious tokens by the recommended score
    state.select_ids(knot)
    window.table.only_selection.setChecked(True)
    window.prompt.mode.setCurrentText("fast")
    window.prompt.verify_sel.click()
    wait(app, window.prompt)
    window.request_colouring("verdict")
    wait(app, window)
    glitch = next(int(i) for i in knot if is_glitch(state.analysis.verdicts.verdict[i]))
    window.show_token(glitch)
    window.prompt.template.setCurrentText("breakfast")
    window.prompt.max_tokens.setValue(16)
    window.prompt.run_button.click()
    wait(app, window.prompt)
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)
    window.grab().save(str(HERE / "main_window.png"))
    window.docks["detail"].widget().grab().save(str(HERE / "prompt_panel.png"))
    window.resize(1366, 768)
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)
    window.grab().save(str(HERE / "main_window_1366.png"))
    window.resize(1600, 1000)

    window.quality.top_n.setValue(30)
    window.quality.sample_n.setValue(30)
    window.quality.request()  # verify the top 30 of every indicator and 30 random tokens
    wait(app, window.prompt)
    window.docks["quality"].raise_()
    window.docks["quality"].setFloating(True)
    window.docks["quality"].resize(760, 720)
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)
    window.quality.grab().save(str(HERE / "indicator_quality.png"))
    for name in ("main_window.png", "main_window_1366.png", "prompt_panel.png", "indicator_quality.png"):
        print(f"wrote {HERE / name}")
    window.close()


if __name__ == "__main__":
    main()
