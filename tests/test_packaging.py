"""Shipping: desktop entry and AppStream metadata agree with the application's names and validate,
the install target puts them and the icons under a prefix, every command answers --help, the
self-test passes, palettes follow the desktop, and (marker `frozen`) the PyInstaller build passes
its own self-test."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from glitchview import __version__
from glitchview.gui.app import APP_ID, APP_NAME, apply_palette, create_application

ROOT = Path(__file__).resolve().parents[1]
DESKTOP = ROOT / "packaging" / f"{APP_ID}.desktop"
METAINFO = ROOT / "packaging" / f"{APP_ID}.metainfo.xml"


def test_desktop_entry_and_metainfo_match_the_application() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(DESKTOP, encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["StartupWMClass"] == APP_NAME and desktop["Icon"] == APP_ID
    assert desktop["Exec"].split()[0] == "glitchview-gui" and desktop["Type"] == "Application"
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    assert root.find("launchable").text == DESKTOP.name
    assert root.find("content_rating").get("type").startswith("oars")
    assert root.find("releases/release").get("version") == __version__
    app = create_application()
    assert app.applicationName() == APP_NAME and app.desktopFileName() == APP_ID and not app.windowIcon().isNull()


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstreamcli not installed (.ci/run installs it)")
def test_metainfo_validates_with_appstreamcli() -> None:
    result = subprocess.run(["appstreamcli", "validate", "--no-net", str(METAINFO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_target_puts_files_under_a_prefix(tmp_path: Path) -> None:
    result = subprocess.run(["make", "-s", "install", f"PREFIX={tmp_path}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    share = tmp_path / "share"
    assert (share / "applications" / f"{APP_ID}.desktop").read_text() == DESKTOP.read_text()
    assert (share / "metainfo" / f"{APP_ID}.metainfo.xml").exists()
    assert (share / "icons/hicolor/scalable/apps" / f"{APP_ID}.svg").exists()
    for size in (16, 32, 48, 128, 256, 512):
        assert (share / f"icons/hicolor/{size}x{size}/apps" / f"{APP_ID}.png").exists()


def test_version_and_help_for_every_command() -> None:
    run = [sys.executable, "-m", "glitchview"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"glitchview {__version__}"
    for command in ("scan", "verify", "export", "gui", "models", "indicators"):
        result = subprocess.run([*run, command, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "usage: glitchview" in result.stdout, command


def test_self_test_passes_in_a_real_process() -> None:
    result = subprocess.run([sys.executable, "-m", "glitchview", "--self-test"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout and "smoke run: a" in result.stdout


def test_palettes_follow_the_desktop(qapp) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPalette

    app = create_application()
    assert apply_palette(app, Qt.ColorScheme.Dark) == "dark"
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
    assert apply_palette(app, Qt.ColorScheme.Light) == "light"
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 180


@pytest.mark.frozen
def test_frozen_build_passes_its_self_test(tmp_path: Path) -> None:
    program = ROOT / "dist" / "glitchview" / "glitchview"
    assert program.exists(), "run `make dist` first (make test-frozen does)"
    result = subprocess.run([str(program), "--self-test"], capture_output=True, text=True, timeout=600,
                            env={"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "smoke run: a" in result.stdout
