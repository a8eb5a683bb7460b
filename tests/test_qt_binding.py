"""Guards the Qt binding pin: PySide6 6.12.0 drops a reference to None on every processEvents()
call (and to True/False on some signal emissions) under Python 3.11, so a long session, or any
test that waits on events, aborts with "deallocating None". pyproject.toml excludes it."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    value = Signal(object)


def test_process_events_and_signals_keep_refcounts(qapp) -> None:
    received: list[object] = []
    emitter = _Emitter()
    emitter.value.connect(received.append)
    before_none, before_true = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(300):
        qapp.processEvents()
        emitter.value.emit(True)
    assert len(received) == 300
    received.clear()
    assert sys.getrefcount(None) - before_none > -50
    assert sys.getrefcount(True) - before_true > -50
