"""The window's link to its session: holds the current `core.session.Session` and turns each of its
changes into one Qt signal, so that every view listens to the hub and reads the session, and a
new session (another model or analysis) reaches every view at once."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..core.logs import LOGGER
from ..core.session import Result, Session, StaleResult
from ..core.verify.engines import DEFAULT_ENGINE, EngineChoice


class SessionHub(QObject):
    analysisChanged = Signal()  # a new session, or its analysis was recomputed
    selectionChanged = Signal()
    flagsChanged = Signal()
    colouringChanged = Signal()
    projectionChanged = Signal()
    indicatorChanged = Signal()
    tokenChanged = Signal()
    verdictsChanged = Signal()
    pathChanged = Signal()
    neighboursChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self.engine = DEFAULT_ENGINE  # where prompts run, for every session the window opens
        self._signals = {"analysis": self.analysisChanged, "selection": self.selectionChanged,
                         "flags": self.flagsChanged, "colouring": self.colouringChanged,
                         "projection": self.projectionChanged, "indicator": self.indicatorChanged,
                         "token": self.tokenChanged, "verdicts": self.verdictsChanged, "path": self.pathChanged,
                         "neighbours": self.neighboursChanged}

    def set_session(self, session: Session) -> None:
        if self.session is not None:
            self.session.unsubscribe(self._relay)
        self.session = session
        session.set_engine(self.engine)
        session.subscribe(self._relay)
        self.analysisChanged.emit()

    def set_engine(self, choice: EngineChoice) -> None:
        """Run prompts on `choice` from now on (the current session's engine is rebuilt on next use)."""
        self.engine = choice
        if self.session is not None:
            self.session.set_engine(choice)

    def _relay(self, event: str) -> None:
        self._signals[event].emit()

    def apply(self, result: Result) -> bool:
        """Apply a job's result to the current session; a stale one (another session, or superseded)
        is dropped and logged. True when it was applied."""
        if self.session is None:
            return False
        try:
            self.session.apply(result)
        except StaleResult as exc:
            LOGGER.info("%s", exc)
            return False
        return True
