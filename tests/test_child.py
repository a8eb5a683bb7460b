"""Work split across child processes (`run_in_children`): every share runs, a failure or a cancel ends
them all at once, and the failure's own message reaches the caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from glitchview.core.child import run_in_children
from glitchview.core.errors import Cancelled
from glitchview.core.progress import CancelToken


def _write_after(seconds: float, path: Path, progress: Callable[[float, str], None]) -> None:
    progress(0.5, f"share {path.name}")
    time.sleep(seconds)
    path.write_text("done")


def test_every_share_runs_and_reports_progress(tmp_path: Path) -> None:
    messages: list[str] = []
    paths = [tmp_path / f"{k}.txt" for k in range(3)]
    run_in_children(_write_after, [(0.2, path) for path in paths], "test", lambda f, m: messages.append(m))
    assert all(path.read_text() == "done" for path in paths)
    assert sorted(messages) == [f"share {path.name}" for path in paths]


def _fail_or_sleep(fail: bool, path: Path, progress: Callable[[float, str], None]) -> None:
    if fail:
        time.sleep(1.0)  # the other share has started by then
        raise ValueError("share two broke")
    _write_after(60.0, path, progress)


def test_a_failing_share_ends_the_others_and_its_message_is_raised(tmp_path: Path) -> None:
    slow = tmp_path / "slow.txt"
    start = time.monotonic()
    with pytest.raises(ValueError, match="share two broke"):
        run_in_children(_fail_or_sleep, [(False, slow), (True, slow)], "test")
    assert time.monotonic() - start < 20 and not slow.exists()  # the sleeper was stopped, not waited for


def test_cancel_stops_every_share(tmp_path: Path) -> None:
    cancel = CancelToken()
    threading.Timer(1.0, cancel.cancel).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        run_in_children(_write_after, [(60.0, tmp_path / "a.txt"), (60.0, tmp_path / "b.txt")], "test",
                        cancel=cancel)
    assert time.monotonic() - start < 20
    assert not (tmp_path / "a.txt").exists() and not (tmp_path / "b.txt").exists()
