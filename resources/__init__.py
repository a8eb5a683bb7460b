"""GlitchView's data files (prompt templates, ...), installed as `glitchview.resources`."""
