"""The prompt editor: runs templates with the session's token (inserted by id) and an ordinary
control token side by side, streaming both outputs token by token with each token's probability;
verifies the token or the selection with the repetition test. Its jobs run in the window's
"prompt" lane, so that prompting never cancels an analysis, and their results go through the
session, which refuses those of another model."""

from __future__ import annotations

import html
import json

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core import operations
from ..core.store.text import escape_text
from ..core.verify.generation import GenerationSettings
from ..core.verify.templates import default_templates, repetition_text
from ..core.verify.verdicts import LABELS, summary
from .hub import SessionHub
from .workers import JobRunner

USER_TEMPLATES_KEY = "promptTemplates"
VERIFY_CHOICES = {"full": ("full", True), "fast": ("fast", True), "fast, unconfirmed": ("fast", False)}


def shipped_templates() -> dict[str, str]:
    data = default_templates()
    out = {t["name"]: t["text"] for t in data["behaviour"]}
    out.update({t["name"]: repetition_text(t, 3) for t in data["repetition"]})
    return out


def user_templates() -> dict[str, str]:
    raw = QSettings().value(USER_TEMPLATES_KEY, "{}")
    try:
        value = json.loads(str(raw))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _probability_colour(p: float) -> str:
    """Background of an output token: red when the model was unsure, none when it was certain."""
    alpha = max(0.0, min(1.0, 1.0 - p)) * 0.55
    return f"rgba(255, 80, 80, {alpha:.2f})"


class _Stream(QObject):
    """Tokens streamed from the worker (posted to the GUI thread, emitted there); each carries its
    request number, so a late token of an older run is never written under a newer one."""

    token = Signal(int, int, str, float)  # request, run (0 token, 1 control), text, probability
    started = Signal(int, int, int)  # request, run, token id


class PromptPanel(QWidget):
    finished = Signal(str)  # "prompt" or "verify", once its result is in the session

    def __init__(self, hub: SessionHub, jobs: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub, self.jobs = hub, jobs
        self.stream = _Stream()
        self.stream.token.connect(self._append_token)
        self.stream.started.connect(self._start_output)
        self.request = 0
        self.last_result: dict | None = None
        self._build()
        jobs.progress.connect(self._on_progress)
        jobs.failed.connect(self._on_failed)
        jobs.cancelled.connect(lambda name: self._done(f"{name}: stopped") if name in ("prompt", "verify") else None)
        jobs.busyChanged.connect(lambda lane, busy: self._busy(busy) if lane == "prompt" else None)
        hub.analysisChanged.connect(self._on_analysis)
        hub.tokenChanged.connect(self._on_token)

    # --- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.template = QComboBox()
        self.template.currentTextChanged.connect(self._load_template)
        self.editor = QPlainTextEdit()
        self.editor.setFont(QFont("monospace"))
        self.editor.setMaximumHeight(56)
        manage = QToolButton(text="⋯", toolTip="save this text as a template of your own, rename or delete one",
                             popupMode=QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(manage)
        menu.addAction("Save as…", lambda: self.save_template())
        menu.addAction("Rename…", lambda: self.rename_template())
        menu.addAction("Delete", lambda: self.delete_template())
        manage.setMenu(menu)
        self.max_tokens = QSpinBox(minimum=1, maximum=1024, value=32)
        self.greedy = QCheckBox("greedy", checked=True)
        self.temperature = QDoubleSpinBox(minimum=0.05, maximum=5.0, value=0.8, singleStep=0.1)
        self.top_p = QDoubleSpinBox(minimum=0.05, maximum=1.0, value=0.95, singleStep=0.05)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.time_limit = QSpinBox(minimum=1, maximum=3600, value=int(GenerationSettings.time_limit_s), suffix=" s",
                                   toolTip="a run stops after this many seconds even before its token count")
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop", enabled=False)
        self.stop_button.clicked.connect(lambda: self.jobs.cancel("prompt"))
        self.verify_button = QPushButton("Verify token", toolTip="full repetition test on this token")
        self.verify_button.clicked.connect(lambda: self.verify([self.token_id], "full"))
        self.mode = QComboBox()
        self.mode.addItems(list(VERIFY_CHOICES))
        self.mode.setToolTip("Verify selection / flagged: full (every prompt), fast (one short prompt, then the "
                             "full test on its suspects) or fast, unconfirmed (suspects stay suspects)")
        self.verify_sel = QPushButton("Verify selection")
        self.verify_sel.clicked.connect(lambda: self.verify(self.hub.session.selected_ids(), self.mode.currentText()))
        self.verify_flagged = QPushButton("Verify flagged")
        self.verify_flagged.clicked.connect(
            lambda: self.verify(np.flatnonzero(self.hub.session.analysis.flagged), self.mode.currentText()))
        self.progress = QProgressBar(maximum=1000, textVisible=False)
        self.progress.setFixedHeight(8)
        self.status = QLabel("Select a token, then Run a template or Verify it.", wordWrap=True)
        self.status.setFixedHeight(2 * self.status.fontMetrics().lineSpacing() + 4)  # the form never jumps
        self.status.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.outputs = [QTextBrowser(), QTextBrowser()]
        self.headers = [QLabel("token run"), QLabel("control run")]
        self.verdicts = [QLabel(wordWrap=True), QLabel(wordWrap=True)]
        for label in (*self.headers, *self.verdicts):  # long token texts must not widen the window
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        for box in self.outputs:
            box.setMinimumWidth(120)

        left = QGridLayout()
        left.addWidget(QLabel("template"), 0, 0)
        left.addWidget(self.template, 0, 1, 1, 2)
        left.addWidget(manage, 0, 3)
        left.addWidget(self.editor, 1, 0, 1, 4)
        for row, fields in ((2, (("tokens", self.max_tokens), ("time limit", self.time_limit), ("seed", self.seed))),
                            (3, (("", self.greedy), ("T", self.temperature), ("top-p", self.top_p)))):
            settings = QHBoxLayout()
            for label, w in fields:
                if label:
                    settings.addWidget(QLabel(label))
                settings.addWidget(w)
            settings.addStretch(1)
            left.addLayout(settings, row, 0, 1, 4)
        buttons, verify = QHBoxLayout(), QHBoxLayout()
        for w in (self.run_button, self.stop_button, self.verify_button):
            buttons.addWidget(w)
        for w in (self.mode, self.verify_sel, self.verify_flagged):
            verify.addWidget(w)
        left.addLayout(buttons, 4, 0, 1, 4)
        left.addLayout(verify, 5, 0, 1, 4)
        left.addWidget(self.progress, 6, 0, 1, 4)
        left.addWidget(self.status, 7, 0, 1, 4)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(440)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(left_widget)
        for k in range(2):
            column = QVBoxLayout()
            column.addWidget(self.headers[k])
            column.addWidget(self.outputs[k], 1)
            column.addWidget(self.verdicts[k])
            row.addLayout(column, 1)
        self.reload_templates()

    # --- templates -------------------------------------------------------------------------------
    def reload_templates(self, select: str | None = None) -> None:
        self.templates = {**shipped_templates(), **user_templates()}
        current = select or self.template.currentText()
        self.template.blockSignals(True)
        self.template.clear()
        self.template.addItems(list(self.templates))
        self.template.blockSignals(False)
        self.template.setCurrentText(current if current in self.templates else "weather")
        self._load_template(self.template.currentText())

    def _load_template(self, name: str) -> None:
        if name in self.templates:
            self.editor.setPlainText(self.templates[name])

    def _store(self, items: dict[str, str]) -> None:
        QSettings().setValue(USER_TEMPLATES_KEY, json.dumps(items))

    def save_template(self, name: str | None = None) -> None:
        if name is None:
            name, ok = QInputDialog.getText(self, "Save template", "Name:")
            if not ok:
                return
        name = name.strip()
        if not name or name in shipped_templates():
            self.status.setText("Choose a new name: the shipped templates cannot be overwritten.")
            return
        self._store({**user_templates(), name: self.editor.toPlainText()})
        self.reload_templates(name)

    def rename_template(self, new: str | None = None) -> None:
        old = self.template.currentText()
        mine = user_templates()
        if old not in mine:
            self.status.setText("Only templates of your own can be renamed.")
            return
        if new is None:
            new, ok = QInputDialog.getText(self, "Rename template", "New name:", text=old)
            if not ok:
                return
        new = new.strip()
        if not new or new in shipped_templates():
            return
        mine[new] = mine.pop(old)
        self._store(mine)
        self.reload_templates(new)

    def delete_template(self) -> None:
        mine = user_templates()
        if mine.pop(self.template.currentText(), None) is not None:
            self._store(mine)
            self.reload_templates()

    # --- the session ---------------------------------------------------------------------------------
    @property
    def token_id(self) -> int:
        return self.hub.session.token if self.hub.session is not None else -1

    def _generative(self) -> bool:
        return self.hub.session is not None and self.hub.session.analysis.model.generative

    def _on_analysis(self) -> None:
        a = self.hub.session.analysis
        self._busy(self.jobs.busy_in("prompt"))
        self._on_token()
        if not a.model.generative:
            self.status.setText(f"{escape_text(a.model.title)} is an encoder ({a.model.architecture}): it cannot "
                                f"generate, so prompts and verification are not available for it.")

    def _on_token(self) -> None:
        """Another token: its header, and empty outputs (the old ones belong to the previous token)."""
        s = self.hub.session
        token = s.token if s is not None else -1
        self.headers[0].setText(f"token run: «{escape_text(s.analysis.table.texts[token])}» (id {token})"
                                if token >= 0 else "token run")
        self.headers[1].setText("control run")
        for box, verdict in zip(self.outputs, self.verdicts):
            box.clear()
            verdict.clear()

    def _busy(self, busy: bool) -> None:
        self.stop_button.setEnabled(busy)
        for w in (self.run_button, self.verify_button, self.verify_sel, self.verify_flagged):
            w.setEnabled(self._generative() and not busy)

    # --- jobs ----------------------------------------------------------------------------------------
    def settings(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.max_tokens.value(), greedy=self.greedy.isChecked(),
                                  temperature=self.temperature.value(), top_p=self.top_p.value(),
                                  seed=self.seed.value(), time_limit_s=float(self.time_limit.value()))

    def run(self) -> None:
        """Run the template with the token and with a control token, streaming both."""
        s = self.hub.session
        if s is None or s.token < 0:
            self.status.setText("Select a token first.")
            return
        snapshot, text, settings, stream = s.snapshot("prompt"), self.editor.toPlainText(), self.settings(), self.stream
        request, post = snapshot.stamp.request, self.jobs.post
        self.request = request
        for box in self.outputs:
            box.clear()
        self.jobs.start("prompt", lambda p, c: operations.run_prompt(
            snapshot, text, settings, lambda run, tid: post(stream.started.emit, request, run, tid),
            lambda run, piece, prob: post(stream.token.emit, request, run, piece, prob), p, c), self._on_ran, "prompt")

    def verify(self, ids, choice: str) -> None:
        """Verify the tokens `ids` with one of VERIFY_CHOICES."""
        s = self.hub.session
        ids = np.asarray([int(i) for i in ids if int(i) >= 0], dtype=np.int64)
        if s is None or ids.size == 0:
            self.status.setText("Nothing to verify: select tokens first.")
            return
        snapshot, (mode, confirm) = s.snapshot("verify"), VERIFY_CHOICES[choice]
        self.jobs.start("verify", lambda p, c: operations.verify(snapshot, ids, mode, p, c, confirm=confirm),
                        self._on_verified, "prompt")

    # --- results ------------------------------------------------------------------------------------
    def _start_output(self, request: int, run: int, token: int) -> None:
        if request != self.request or self.hub.session is None:
            return
        text = escape_text(self.hub.session.analysis.table.texts[token])
        self.headers[run].setText(f"{'token' if run == 0 else 'control'} run: «{text}» (id {token})")
        self.outputs[run].clear()
        self.verdicts[run].clear()

    def _append_token(self, request: int, run: int, piece: str, p: float) -> None:
        if request != self.request:
            return
        cursor = self.outputs[run].textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        text = html.escape(escape_text(piece))  # white-space: pre-wrap keeps spaces and wraps only at them
        cursor.insertHtml(f'<span style="white-space: pre-wrap; background-color:{_probability_colour(p)}" '
                          f'title="p = {p:.3g}">{text}</span>')
        self.outputs[run].setTextCursor(cursor)

    def _on_progress(self, lane: str, fraction: float, message: str) -> None:
        if lane == "prompt":
            self.progress.setValue(int(fraction * 1000))
            self.status.setText(message)

    def _done(self, message: str) -> None:
        """The message in the status's two lines (cut short with an ellipsis; whole in its tooltip)."""
        self.progress.setValue(0)
        room = int(1.8 * self.status.width())  # two wrapped lines, less what word breaks waste
        self.status.setText(self.status.fontMetrics().elidedText(message, Qt.TextElideMode.ElideRight, room))
        self.status.setToolTip(message)

    def _on_failed(self, name: str, message: str, details: str) -> None:
        if name in ("prompt", "verify"):
            self._done(f"{name} failed: {message}")

    def _on_verified(self, result: operations.Verified) -> None:
        if not self.hub.apply(result):
            return
        v = result.verification
        n = len(v.ids)
        text = f"{LABELS[v.verdicts[0]]}: {v.reasons[0]}" if n == 1 else summary(v.verdicts)
        self._done(f"Verified {n} token{'s' if n != 1 else ''}: {text} ({v.mode}; {v.engine}; {v.seconds:.1f} s, "
                   f"{v.tokens_per_second:.2g} tokens/s)")  # the verdicts first: two lines show
        self.finished.emit("verify")

    def _on_ran(self, result: operations.PromptRan) -> None:
        if not self.hub.apply(result):
            return
        record = result.record
        table = self.hub.session.analysis.table
        for k, run in enumerate(record["runs"]):
            self.verdicts[k].setText(("⚠ " if run["anomalous"] else "✓ ") + "; ".join(run["reasons"]) +
                                     f" · stopped: {run['stopped']} · mean entropy {run['metrics']['mean_entropy']:.2f}")
        self.last_result = record
        names = [f"«{escape_text(table.texts[run['token']])}»" for run in record["runs"]]
        self._done(f"Ran {names[0]}" + (f" and the control {names[1]}" if len(names) > 1 else ""))
        self.finished.emit("prompt")
