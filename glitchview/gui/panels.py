"""Side panels: analysis settings (clusters, projection, indicator, flagging) and the token detail
view shown beside the prompt editor (scores, ranks, verdict, prompt history)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import GlitchViewError
from ..core.pipeline import PROJECTIONS
from ..core.scores.indicators import INDICATORS
from ..core.store.text import escape_text
from ..core.verify.engines import ENGINES, EngineChoice
from ..core.verify.engines.devices import DEVICES
from ..core.verify.taxonomy import TAXONOMY
from ..core.verify.verdicts import LABELS
from ..core.view.research import describe_indicator
from .hub import SessionHub


class SettingsPanel(QWidget):
    reclusterRequested = Signal(int)
    projectionRequested = Signal(str)
    flagTopRequested = Signal(int)

    def __init__(self, hub: SessionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub = hub
        self.clusters = QSpinBox(minimum=2, maximum=500, value=20)
        self.recluster = QPushButton("Re-cluster")
        self.recluster.clicked.connect(lambda: self.reclusterRequested.emit(self.clusters.value()))
        self.projection = QComboBox()
        self.projection.addItems([p.upper() for p in PROJECTIONS])
        self.projection.activated.connect(lambda i: self.projectionRequested.emit(PROJECTIONS[i]))
        self.indicator = QComboBox()
        self.indicator.addItems(list(INDICATORS))
        self.indicator.currentTextChanged.connect(self._indicator_changed)
        self.indicator_help = QLabel(wordWrap=True)
        self.indicator_help.setStyleSheet("color: #9aa0b0")
        self.top_n = QSpinBox(minimum=1, maximum=1_000_000, value=100)
        self.flag_top = QPushButton("Flag top N")
        self.flag_top.clicked.connect(lambda: self.flagTopRequested.emit(self.top_n.value()))

        form = QFormLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.clusters)
        row.addWidget(self.recluster)
        form.addRow("clusters k", row)
        form.addRow("projection", self.projection)
        form.addRow("indicator", self.indicator)
        form.addRow(self.indicator_help)
        row = QHBoxLayout()
        row.addWidget(self.top_n)
        row.addWidget(self.flag_top)
        form.addRow("top N", row)
        self.summary = QLabel(wordWrap=True)
        self.summary.setStyleSheet("color: #9aa0b0")
        form.addRow(self.summary)
        self._engine_rows(form)
        for signal in (hub.analysisChanged, hub.projectionChanged, hub.flagsChanged, hub.indicatorChanged):
            signal.connect(self._sync)

    def _engine_rows(self, form: QFormLayout) -> None:
        """Where verification and the prompt editor run: torch (on a device), llama.cpp, or a server."""
        self.engine = QComboBox()
        self.engine.addItems(list(ENGINES))
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(self.hub.engine.device)
        self.server_url = QLineEdit(placeholderText="http://127.0.0.1:8000/v1")
        self.api_key_env = QLineEdit(placeholderText="environment variable holding the API key (optional)")
        self.api_key_keyring = QCheckBox("or the system keyring")
        self.api_key_keyring.setToolTip("the keyring entry of service 'glitchview' whose user name is the server URL "
                                        "(store it with: keyring set glitchview URL)")
        self.apply_engine = QPushButton("Use this engine")
        self.apply_engine.clicked.connect(self._engine_chosen)
        self.engine_status = QLabel(self.hub.engine.label, wordWrap=True)
        self.engine_status.setStyleSheet("color: #9aa0b0")
        self.engine.currentTextChanged.connect(self._engine_fields)
        form.addRow("engine", self.engine)
        form.addRow("device", self.device)
        form.addRow("server", self.server_url)
        form.addRow("API key from", self.api_key_env)
        form.addRow("", self.api_key_keyring)
        form.addRow(self.apply_engine)
        form.addRow(self.engine_status)
        self._engine_fields(self.engine.currentText())

    def _engine_fields(self, engine: str) -> None:
        self.device.setEnabled(engine == "torch")
        self.server_url.setEnabled(engine == "server")
        self.api_key_env.setEnabled(engine == "server")
        self.api_key_keyring.setEnabled(engine == "server")

    def _engine_chosen(self) -> None:
        try:
            choice = EngineChoice(self.engine.currentText(), self.device.currentText(),
                                  server=self.server_url.text().strip(), api_key_env=self.api_key_env.text().strip(),
                                  api_key_keyring=self.api_key_keyring.isChecked())
        except GlitchViewError as exc:
            self.engine_status.setText(str(exc))
            return
        self.hub.set_engine(choice)
        self.engine_status.setText(f"prompts run on {choice.label} (prepared on the next verification or prompt)")

    def _indicator_changed(self, name: str) -> None:
        description, suspicious = describe_indicator(name)
        ind = INDICATORS.get(name)
        ends = "; ".join(f"{end} end: {ind.end_label(end)}" for end in ("low", "high")) if ind else "corpus counts"
        self.indicator_help.setText(f"{description}. Ranked from the {suspicious} end ({ends}).")
        if self.hub.session is not None:
            self.hub.session.set_indicator(name)

    def _sync(self) -> None:
        s = self.hub.session
        if s is None:
            return
        a = s.analysis
        self.clusters.setValue(len(a.centers))
        self.projection.setCurrentIndex(PROJECTIONS.index(s.projection))
        self.indicator.blockSignals(True)
        if [self.indicator.itemText(i) for i in range(self.indicator.count())] != list(a.scores):
            self.indicator.clear()  # corpus counts add corpus_rarity
            self.indicator.addItems(list(a.scores))
        self.indicator.setCurrentText(s.indicator)
        self.indicator.blockSignals(False)
        self._indicator_changed(s.indicator)
        m = a.model
        self.summary.setText(
            f"{m.title}\n{m.n_tokens:,} tokens × {m.dim} · {'tied' if m.tied else 'untied'} · "
            f"{m.architecture}\nk-means inertia {a.inertia:.6g}\nreference: {a.reference.rule}\n"
            f"{int(a.flagged.sum()):,} flagged")


class TokenDetail(QWidget):
    """Everything known about one token, with its text shown safely (escaped), and its nearest
    neighbours in each embedding space (click one to select it)."""

    tokenPicked = Signal(int)

    def __init__(self, hub: SessionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub = hub
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setFont(QFont("monospace"))
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setPlaceholderText("Select a token on the map or in the table.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.text, 2)
        self.neighbours = QListWidget()
        self.neighbours.setFont(QFont("monospace"))
        self.neighbours.setToolTip("nearest neighbours by cosine similarity; click one to select it")
        self.neighbours.itemActivated.connect(self._pick)
        self.neighbours.itemClicked.connect(self._pick)
        layout.addWidget(self.neighbours, 1)
        hub.neighboursChanged.connect(self.show_neighbours)
        hub.tokenChanged.connect(self.neighbours.clear)
        hub.tokenChanged.connect(self.refresh)
        hub.verdictsChanged.connect(self.refresh)
        hub.analysisChanged.connect(self.refresh)

    def refresh(self) -> None:
        """Show the session's current token."""
        s = self.hub.session
        if s is None or s.token < 0:
            self.text.clear()
            return
        a, token_id = s.analysis, s.token
        t = a.table
        lines = [f"id {token_id}   cluster {int(a.labels[token_id])}   category {t.category_names()[token_id]}",
                 f"text   «{escape_text(t.texts[token_id])}»", f"piece  «{escape_text(t.pieces[token_id])}»",
                 f"bytes  {t.token_bytes[token_id].hex(' ') or '(none)'}",
                 f"flags  {', '.join(t.flag_names(token_id)) or 'none'}"
                 f"{'   · FLAGGED' if a.flagged[token_id] else ''}", ""]
        for name, values in a.scores.items():
            rank = s.rank(name)[token_id]
            lines.append(f"{name:<24} {values[token_id]:>12.6g}   rank {rank:>7,} from the "
                         f"{a.suspicious_end(name)} end")
        v = a.verdicts
        if v is not None and v.is_verified(token_id):
            lines += ["", f"verdict  {LABELS[v.verdict[token_id]]} · {TAXONOMY[s.view.taxonomy[token_id]]}",
                      f"         {escape_text(v.reasons[token_id])}"]
        for record in (v.history_for(token_id) if v is not None else [])[-3:]:
            runs = record["runs"]
            lines.append(f"prompt   «{escape_text(record['template'])[:60]}» → "
                         + " | ".join(f"{'token' if k == 0 else 'control'}: {'; '.join(r['reasons'])}"
                                      for k, r in enumerate(runs)))
        self.text.setPlainText("\n".join(lines))

    def _pick(self, item: QListWidgetItem) -> None:
        token = item.data(Qt.ItemDataRole.UserRole)
        if token is not None:
            self.tokenPicked.emit(int(token))

    def show_neighbours(self) -> None:
        s = self.hub.session
        self.neighbours.clear()
        for space, found in s.neighbours.items():
            header = QListWidgetItem(f"nearest in the {space}")
            header.setFlags(Qt.ItemFlag.NoItemFlags)
            self.neighbours.addItem(header)
            for token, cosine in zip(found.ids.tolist(), found.cosine.tolist()):
                item = QListWidgetItem(f"  {cosine:6.3f}  {token:>7}  «{s.view.escaped_texts[token][:40]}»")
                item.setData(Qt.ItemDataRole.UserRole, token)
                self.neighbours.addItem(item)

    def tooltip(self, token_id: int) -> str:
        if self.hub.session is None:
            return ""
        a = self.hub.session.analysis
        scores = "\n".join(f"{n}: {v[token_id]:.5g}" for n, v in a.scores.items())
        return (f"«{escape_text(a.table.texts[token_id])}»  id {token_id}\ncluster {int(a.labels[token_id])} · "
                f"{a.table.category_names()[token_id]}\n{scores}")
