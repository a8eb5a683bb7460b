"""The prompt editor: runs templates with the selected token (inserted by id) and an ordinary
control token side by side, streaming both outputs token by token with each token's probability;
verifies the token or the selection with the repetition test. Runs on its own job runner so that
prompting never cancels an analysis."""

from __future__ import annotations

import html
import json

import numpy as np
from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core.pipeline import reopen_model
from ..core.progress import CancelToken, ProgressFn, sub_progress
from ..core.store.text import escape_text
from ..core.verify.generation import GenerationSettings, behaviour_verdict, generate, output_metrics, pick_control_token
from ..core.verify.probing import MODES, load_probe_model, verify_tokens
from ..core.verify.templates import PLACEHOLDER, default_templates, encode_template, fill, repetition_text
from ..core.verify.verdicts import LABELS, summary
from .state import AnalysisState
from .workers import JobRunner

USER_TEMPLATES_KEY = "promptTemplates"


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
    token = Signal(int, str, float)  # run (0 token, 1 control), text, probability
    started = Signal(int, str)  # run, header


class PromptPanel(QWidget):
    def __init__(self, state: AnalysisState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.jobs = JobRunner(self)
        self.stream = _Stream()
        self.stream.token.connect(self._append_token)
        self.stream.started.connect(self._start_output)
        self.token_id = -1
        self.last_result: dict | None = None
        self._build()
        self.jobs.progress.connect(self._on_progress)
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(lambda name: self._done(f"{name}: stopped"))
        self.jobs.busyChanged.connect(self._busy)
        state.analysisChanged.connect(self._on_analysis)

    # --- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.template = QComboBox()
        self.template.currentTextChanged.connect(self._load_template)
        self.editor = QPlainTextEdit()
        self.editor.setFont(QFont("monospace"))
        self.editor.setMaximumHeight(70)
        save = QPushButton("Save as…", toolTip="save this text as a template of your own")
        save.clicked.connect(self.save_template)
        rename = QPushButton("Rename…")
        rename.clicked.connect(self.rename_template)
        delete = QPushButton("Delete", toolTip="delete a template of your own")
        delete.clicked.connect(self.delete_template)
        self.max_tokens = QSpinBox(minimum=1, maximum=1024, value=32)
        self.greedy = QCheckBox("greedy", checked=True)
        self.temperature = QDoubleSpinBox(minimum=0.05, maximum=5.0, value=0.8, singleStep=0.1)
        self.top_p = QDoubleSpinBox(minimum=0.05, maximum=1.0, value=0.95, singleStep=0.05)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop", enabled=False)
        self.stop_button.clicked.connect(self.jobs.cancel)
        self.verify_button = QPushButton("Verify token", toolTip="full repetition test on this token")
        self.verify_button.clicked.connect(lambda: self.verify([self.token_id], "full"))
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.mode.setToolTip("mode for Verify selection / flagged: full (three prompts) or fast (one short prompt)")
        self.verify_sel = QPushButton("Verify selection")
        self.verify_sel.clicked.connect(lambda: self.verify(list(self.state.selected_ids()), self.mode.currentText()))
        self.verify_flagged = QPushButton("Verify flagged")
        self.verify_flagged.clicked.connect(
            lambda: self.verify(list(np.flatnonzero(self.state.analysis.flagged)), self.mode.currentText()))
        self.progress = QProgressBar(maximum=1000, textVisible=False)
        self.progress.setFixedHeight(8)
        self.status = QLabel("Select a token, then Run a template or Verify it.", wordWrap=True)
        self.outputs = [QTextBrowser(), QTextBrowser()]
        self.headers = [QLabel("token run"), QLabel("control run")]
        self.verdicts = [QLabel(wordWrap=True), QLabel(wordWrap=True)]

        left = QGridLayout()
        left.addWidget(QLabel("template"), 0, 0)
        left.addWidget(self.template, 0, 1, 1, 3)
        left.addWidget(self.editor, 1, 0, 1, 4)
        for col, w in enumerate((save, rename, delete)):
            left.addWidget(w, 2, col + 1)
        settings = QHBoxLayout()
        for label, w in (("tokens", self.max_tokens), ("", self.greedy), ("T", self.temperature),
                         ("top-p", self.top_p), ("seed", self.seed)):
            if label:
                settings.addWidget(QLabel(label))
            settings.addWidget(w)
        left.addLayout(settings, 3, 0, 1, 4)
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
        left_widget.setMaximumWidth(500)
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

    # --- state -------------------------------------------------------------------------------------
    def _on_analysis(self) -> None:
        a = self.state.analysis
        can = a is not None and a.model.generative
        for w in (self.run_button, self.verify_button, self.verify_sel, self.verify_flagged):
            w.setEnabled(can)
        if a is not None and not a.model.generative:
            self.status.setText(f"{a.model.title} is an encoder ({a.model.architecture}): it cannot generate, "
                                f"so prompts and verification are not available for it.")

    def show_token(self, token_id: int) -> None:
        self.token_id = token_id
        a = self.state.analysis
        if a is not None and 0 <= token_id < len(a):
            self.headers[0].setText(f"token run: «{escape_text(a.table.texts[token_id])}» (id {token_id})")

    def _busy(self, busy: bool) -> None:
        self.stop_button.setEnabled(busy)
        generative = self.state.analysis is not None and self.state.analysis.model.generative
        for w in (self.run_button, self.verify_button, self.verify_sel, self.verify_flagged):
            w.setEnabled(generative and not busy)

    def _probe(self, progress: ProgressFn, cancel: CancelToken):
        """The network for prompting, built once per model (on the worker)."""
        if self.state.probe is not None:
            return self.state.probe
        model = self.state.model
        if model is None:  # opened from an analysis file
            model = reopen_model(self.state.analysis.model, sub_progress(progress, 0, 0.5), cancel)
        progress(0.6, "Building the network for generation")
        return load_probe_model(model)

    # --- jobs ----------------------------------------------------------------------------------------
    def settings(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=self.max_tokens.value(), greedy=self.greedy.isChecked(),
                                  temperature=self.temperature.value(), top_p=self.top_p.value(),
                                  seed=self.seed.value())

    def run(self) -> None:
        """Run the template with the token and with a control token, streaming both."""
        a = self.state.analysis
        text = self.editor.toPlainText()
        if a is None or not 0 <= self.token_id < len(a):
            self.status.setText("Select a token first.")
            return
        if PLACEHOLDER not in text:
            self.status.setText(f"The template needs a {PLACEHOLDER} placeholder.")
            return
        token, settings, stream, table = self.token_id, self.settings(), self.stream, a.table
        unemb = a.scores.get("unembedding_cosine", np.full(len(a), np.nan))

        def job(progress: ProgressFn, cancel: CancelToken):
            probe = self._probe(progress, cancel)
            control = pick_control_token(table, unemb, token)
            template = encode_template(probe.tokenizer, text)
            runs = []
            for run, tid in enumerate((token, control)):
                stream.started.emit(run, f"«{escape_text(table.texts[tid])}» (id {tid})")
                progress(0.5 * run, f"Generating with «{escape_text(table.texts[tid])}»")
                out = generate(probe, fill(template, np.array([tid]))[0], settings,
                               on_token=lambda _id, piece, p, r=run: stream.token.emit(r, piece, p), cancel=cancel)
                runs.append((tid, out))
                if out.stopped == "cancelled":
                    break
            return probe, text, runs

        for box in self.outputs:
            box.clear()
        self.jobs.start("prompt", job)

    def verify(self, ids: list[int], mode: str) -> None:
        ids = [int(i) for i in ids if i >= 0]
        if not ids or self.state.analysis is None:
            self.status.setText("Nothing to verify: select tokens first.")
            return

        def job(progress: ProgressFn, cancel: CancelToken):
            probe = self._probe(sub_progress(progress, 0, 0.1), cancel)
            return probe, verify_tokens(probe, ids, mode, sub_progress(progress, 0.1, 1.0), cancel)

        self.jobs.start("verify", job)

    # --- results ------------------------------------------------------------------------------------
    def _start_output(self, run: int, header: str) -> None:
        self.headers[run].setText(("token run: " if run == 0 else "control run: ") + header)
        self.outputs[run].clear()
        self.verdicts[run].clear()

    def _append_token(self, run: int, piece: str, p: float) -> None:
        cursor = self.outputs[run].textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        text = html.escape(escape_text(piece)).replace(" ", "&nbsp;")
        cursor.insertHtml(f'<span style="background-color:{_probability_colour(p)}" title="p = {p:.3g}">{text}</span>')
        self.outputs[run].setTextCursor(cursor)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(message)

    def _done(self, message: str) -> None:
        self.progress.setValue(0)
        self.status.setText(message)

    def _on_failed(self, name: str, message: str, details: str) -> None:
        self._done(f"{name} failed: {message}")

    def _on_finished(self, name: str, result) -> None:
        probe = result[0]
        self.state.probe = probe
        if name == "verify":
            verification = result[1]
            self.state.record_verification(verification)
            text = summary(verification.verdicts)
            if len(verification.ids) == 1:
                text = f"{LABELS[verification.verdicts[0]]}: {verification.reasons[0]}"
            self._done(f"Verified {len(verification.ids)} tokens ({verification.mode}, "
                       f"{verification.tokens_per_second:.1f} tokens/s): {text}")
            return
        _, text, runs = result
        table = self.state.analysis.table
        record = {"template": text, "settings": self.settings().__dict__, "runs": []}
        for k, (tid, out) in enumerate(runs):
            metrics = output_metrics(out, tid, table.texts[tid])
            anomalous, reasons = behaviour_verdict(metrics)
            self.verdicts[k].setText(("⚠ " if anomalous else "✓ ") + "; ".join(reasons) +
                                     f" · stopped: {out.stopped} · mean entropy {metrics['mean_entropy']:.2f}")
            record["runs"].append({"token": int(tid), "output": out.text, "stopped": out.stopped,
                                   "anomalous": anomalous, "reasons": reasons,
                                   "metrics": {m: float(v) for m, v in metrics.items()}})
        self.state.analysis.ensure_verdicts().history.append(record)
        self.last_result = record
        self._done(f"Ran «{escape_text(table.texts[runs[0][0]])}»" +
                   (f" and the control «{escape_text(table.texts[runs[1][0]])}»" if len(runs) > 1 else ""))
