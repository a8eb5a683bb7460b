"""GlitchView: find, map and verify glitch tokens of language models."""

__version__ = "0.1.0"
