"""Architecture rules: the core never imports Qt; the project has the agreed top-level layout."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_never_imports_qt() -> None:
    offenders = []
    for path in (ROOT / "glitchview" / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in {"PySide6", "pyqtgraph", "PyQt6"}]
    assert offenders == []


def test_top_level_layout() -> None:
    for name in ("glitchview/core", "glitchview/gui", "glitchview/cli.py", "resources", "tests", "packaging",
                 "bench", "pyproject.toml", "main.py", "README.md", ".ci/run"):
        assert (ROOT / name).exists(), name
