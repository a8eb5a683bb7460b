"""Launch → first map, timed on the real application (`glitchview-gui MODEL`, offscreen), the way a
user meets it: from starting the process to the first map of every token, and to the whole analysis
on screen. Before the early map, the window showed nothing until the whole analysis was done, so
the second time is today's-path baseline of the first, measured in the same run.

States: `cold` (empty cache folder: GGUF conversion, token table), `cached` (model files cached,
analysis computed again: `--fresh`), `reopened` (the model's last analysis is restored from the
analysis cache: its first map is the whole analysis, and today's path, which computed everything
again, is the `cached` row). Run: `python bench/bench_first_map.py smollm2 gemma3`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

MILESTONES = ("first map", "analysis shown")


def launch(model: str, cache: Path, home: Path, fresh: bool, timeout: float = 1800) -> dict[str, float]:
    """Seconds from process start to each milestone the window reports."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GLITCHVIEW_REPORT_TIMES": "1",
           "GLITCHVIEW_CACHE_DIR": str(cache), "GLITCHVIEW_DATA_DIR": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config"), "HOME": str(home)}
    start = time.perf_counter()
    command = [str(Path(sys.executable).parent / "glitchview-gui"), model, *(["--fresh"] if fresh else [])]
    app = subprocess.Popen(command, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    try:
        while len(seen) < len(MILESTONES) and time.perf_counter() - start < timeout:
            line = app.stderr.readline()
            if not line and app.poll() is not None:
                raise SystemExit(f"glitchview-gui ended with {app.returncode} on {model}")
            for milestone in MILESTONES:
                if f"glitchview: {milestone}" in line:
                    seen.setdefault(milestone, time.perf_counter() - start)
    finally:
        app.kill()
        app.wait()
    return seen


def main() -> None:
    models = sys.argv[1:] or ["smollm2", "gemma3"]
    print(f"machine: {machine()}")
    print("| model | state | launch → first map (s) | launch → whole analysis, today's first map (s) | ratio |")
    print("|---|---|---:|---:|---:|")
    for model in models:
        with tempfile.TemporaryDirectory(prefix="glitchview-first-map-") as tmp:
            cache, home = Path(tmp) / "cache", Path(tmp) / "home"
            for state in ("cold", "cached", "reopened"):
                seen = launch(model, cache, home, fresh=state != "reopened")
                first, whole = seen.get("first map", seen["analysis shown"]), seen["analysis shown"]
                print(f"| {model} | {state} | {first:.1f} | {whole:.1f} | {whole / first:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
