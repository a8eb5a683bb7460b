"""Does Qt's platform plugin have the system libraries it needs? Checked before Qt starts, because
a missing library makes Qt abort the whole process (status 134) with a message that names another
one. The X11 plugin (xcb) needs several libxcb-* packages that minimal desktops and containers lack;
`ldd` tells which are missing, and Debian names its packages after the library's soname."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

PLATFORM_LIBRARIES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-shape0", "libxkbcommon-x11-0",
                      "libegl1", "libfontconfig1", "libdbus-1-3")  # README lists these for the X11 window


def platform_plugin(platform: str) -> Path | None:
    """The plugin file Qt will load for `platform` (honours QT_QPA_PLATFORM_PLUGIN_PATH)."""
    folder = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH")
    if not folder:
        import PySide6

        folder = str(Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms")
    path = Path(folder) / f"libq{platform}.so"
    return path if path.is_file() else None


def debian_package(soname: str) -> str:
    """Debian's package name for a shared library: libfoo.so.4 -> libfoo4, libfoo-x11.so.0 -> libfoo-x11-0."""
    name, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    return (name + ("-" if name[-1:].isdigit() else "") + version).lower()


def missing_libraries(plugin: Path) -> list[str]:
    """The sonames that `ldd` cannot find for the plugin (and the Qt libraries it pulls in)."""
    if shutil.which("ldd") is None:
        return []
    result = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30)
    return sorted(set(re.findall(r"^\s*(\S+) => not found", result.stdout, flags=re.M)))


def check_platform(platform: str) -> str:
    """'' when Qt's `platform` plugin can load, else a one-line message with the packages to install."""
    if not platform.startswith("xcb"):
        return ""
    plugin = platform_plugin("xcb")
    missing = missing_libraries(plugin) if plugin is not None else []
    if not missing:
        return ""
    packages = " ".join(sorted({debian_package(m) for m in missing}))
    return (f"Qt's X11 platform plugin cannot load: missing {', '.join(missing)}; "
            f"fix: apt-get install {packages} (or run with QT_QPA_PLATFORM=offscreen for no window)")


def chosen_platform() -> str:
    """The platform Qt will use: QT_QPA_PLATFORM, else X11 where a DISPLAY is set."""
    return os.environ.get("QT_QPA_PLATFORM") or ("xcb" if os.environ.get("DISPLAY") else "")
