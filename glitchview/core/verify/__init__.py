"""Verification by the model itself: repetition test, generation, templates, taxonomy, quality."""
