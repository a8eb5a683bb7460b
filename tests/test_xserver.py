"""The real application in a real X server (Xvfb), driven as a person would with synthesised X
input (xdotool): launch `glitchview-gui` on SmolLM2, wait for its map, drag a rectangle, flag the
selection, export through the menu's file dialog, and check the screen (the map is not blank and
its suspects are bright). `.ci/run` installs Xvfb, xdotool and ImageMagick; elsewhere the test is
skipped with the reason."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TOOLS = ("Xvfb", "xdotool", "import")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                                  reason="needs Xvfb, xdotool and ImageMagick's import (.ci/run installs them)")]
SCREEN = (1600, 1000)


@pytest.fixture
def display(tmp_path: Path):
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
                               "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    number = os.read(read, 16).decode().strip()  # the pipe stays open: Xvfb dies if it cannot write to it
    name = f":{number}"
    xdotool(name, "getdisplaygeometry")  # the server answers
    yield name
    server.terminate()
    server.wait(10)
    os.close(read)


def xdotool(display: str, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip()


def screenshot(display: str, path: Path) -> np.ndarray:
    from PySide6.QtGui import QImage

    subprocess.run(["import", "-window", "root", str(path)], env={**os.environ, "DISPLAY": display}, check=True,
                   timeout=60)
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return data.reshape(image.height(), image.bytesPerLine())[:, :image.width() * 3].reshape(
        image.height(), image.width(), 3).copy()


def wait_for_line(process: subprocess.Popen, text: str, timeout: float) -> None:
    end, seen = time.monotonic() + timeout, []
    while time.monotonic() < end:
        line = process.stderr.readline()
        seen.append(line)
        if text in line:
            return
        if not line and process.poll() is not None:
            raise AssertionError(f"glitchview-gui ended with {process.returncode} before '{text}': "
                                 f"{''.join(seen)[-3000:]}")
    raise AssertionError(f"no '{text}' within {timeout} s")


def map_region(shot: np.ndarray, x: int, y: int) -> np.ndarray:
    return shot[y + 80:y + 500, x + 60:x + 900].reshape(-1, 3).astype(np.int64)


def bright_suspects(region: np.ndarray) -> int:
    """Pixels of viridis' bright yellow end: the suspects of the default colouring."""
    return int(((region[:, 0] > 180) & (region[:, 1] > 180) & (region[:, 2] < 120)).sum())


def wait_for_colourful_map(display: str, path: Path, x: int, y: int, timeout: float = 90) -> np.ndarray:
    """The screen once the map shows its colouring (many colours, bright suspects), not the early
    one-colour map drawn before the scores."""
    end = time.monotonic() + timeout
    while True:
        shot = screenshot(display, path)
        region = map_region(shot, x, y)
        colours = len(np.unique(region[:, 0] << 16 | region[:, 1] << 8 | region[:, 2]))
        if (colours > 50 and bright_suspects(region) > 5) or time.monotonic() > end:
            assert colours > 50, f"the map shows {colours} colours"
            return shot
        time.sleep(1)


def test_the_real_app_in_a_real_x_server(display: str, tmp_path: Path) -> None:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "GLITCHVIEW_REPORT_TIMES": "1",
           "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           # a cache of its own: another test's last analysis of SmolLM2 (and its colouring) is not restored
           "GLITCHVIEW_CACHE_DIR": str(tmp_path / "cache"), "GLITCHVIEW_DATA_DIR": str(tmp_path / "data")}
    app = subprocess.Popen([str(Path(sys.executable).parent / "glitchview-gui"), "smollm2"], env=env,
                           stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        wait_for_line(app, "first map", 300)
        wait_for_line(app, "analysis shown", 600)
        window = xdotool(display, "search", "--sync", "--onlyvisible", "--name", "GlitchView").split()[0]
        geometry = dict(line.split("=") for line in xdotool(display, "getwindowgeometry", "--shell", window).split())
        x, y = int(geometry["X"]), int(geometry["Y"])
        before = wait_for_colourful_map(display, tmp_path / "before.png", x, y)
        # the map fills the left part of the window under its toolbar: drag a rectangle over its middle
        xdotool(display, "windowfocus", "--sync", window)
        xdotool(display, "key", "r")  # Rectangle tool
        x0, y0, x1, y1 = x + 250, y + 150, x + 750, y + 420
        xdotool(display, "mousemove", "--sync", str(x0), str(y0), "mousedown", "1")
        for k in range(1, 11):
            xdotool(display, "mousemove", "--sync", str(x0 + (x1 - x0) * k // 10), str(y0 + (y1 - y0) * k // 10))
            time.sleep(0.03)
        xdotool(display, "mouseup", "1")
        time.sleep(0.5)
        xdotool(display, "key", "f")  # flag the selection
        xdotool(display, "key", "ctrl+e")  # File → Export flagged tokens…: Qt's own file dialog
        time.sleep(2)
        out = tmp_path / "flagged.csv"
        xdotool(display, "key", "ctrl+a")
        xdotool(display, "type", "--delay", "20", str(out))
        xdotool(display, "key", "Return")
        end = time.monotonic() + 60
        while not out.exists() and time.monotonic() < end:
            time.sleep(0.2)
        with out.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert 0 < len(rows) < 49_152 and all(r["flagged"] == "1" for r in rows)

        # the map region of the screen: many colours (points, not a blank plot) and bright suspects
        region = map_region(before, x, y)
        luminance = 0.2126 * region[:, 0] + 0.7152 * region[:, 1] + 0.0722 * region[:, 2]
        assert (luminance > 180).sum() > 20 and bright_suspects(region) > 5  # viridis' bright end: the suspects
        screenshot(display, tmp_path / "after.png")
        xdotool(display, "windowfocus", "--sync", window)
        xdotool(display, "key", "ctrl+q")
        app.wait(15)
    finally:
        if app.poll() is None:
            app.kill()
