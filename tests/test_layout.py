"""Architecture rules, enforced by import-linter's contracts in pyproject.toml (transitively, not
by grepping import lines): the core never imports Qt, the window or the command line; the window
never imports the command line. And the agreed top-level layout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(LINT, cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_import_contracts_are_kept() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_a_core_module_that_reaches_qt_indirectly_breaks_the_contract(tmp_path: Path) -> None:
    """A scratch copy where a core module imports a gui module (which loads PySide6): the check fails."""
    shutil.copytree(ROOT / "glitchview", tmp_path / "glitchview")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    victim = tmp_path / "glitchview" / "core" / "scores" / "reference.py"
    victim.write_text(victim.read_text() + "\nfrom ...gui import hub  # noqa: E402, F401\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "glitchview.core.scores.reference -> glitchview.gui.hub" in result.stdout


def test_top_level_layout() -> None:
    for name in ("glitchview/core/model", "glitchview/core/scores", "glitchview/core/verify", "glitchview/core/store",
                 "glitchview/core/view", "glitchview/core/session.py", "glitchview/gui", "glitchview/cli",
                 "resources", "tests", "packaging", "bench", "pyproject.toml", "main.py", "README.md", ".ci/run"):
        assert (ROOT / name).exists(), name
