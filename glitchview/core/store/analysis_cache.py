"""The last analysis of every model, kept in the cache folder by the model's fingerprint: opening a model that was analysed before restores that analysis (with the user's
flags, selection, verdicts and view, which the window keeps writing back) in seconds instead of
computing it again. When it was computed is kept beside it, so the window can say so."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..analysis import Analysis
from ..errors import GlitchViewError
from ..logs import LOGGER
from ..model.sources import cache_root
from .analysis_file import SUFFIX, load_analysis, save_analysis
from .files import atomic_write

COMPUTED_AT = "computed_at.txt"


@dataclass(frozen=True)
class Cached:
    analysis: Analysis
    computed_at: str  # local time, "YYYY-MM-DD HH:MM"


def entry(fingerprint: str) -> Path:
    """The folder of a model's last analysis."""
    return cache_root() / "analyses" / fingerprint


def load_cached(fingerprint: str) -> Cached | None:
    """The cached analysis, or None when there is none (or it cannot be read: it is computed again)."""
    folder = entry(fingerprint)
    path = folder / f"analysis{SUFFIX}"
    if not path.is_file():
        return None
    try:
        analysis = load_analysis(path)
        computed_at = (folder / COMPUTED_AT).read_text(encoding="utf-8").strip()
    except (GlitchViewError, OSError, UnicodeDecodeError) as exc:
        LOGGER.warning("the cached analysis %s is not used: %s", path, exc)
        return None
    if analysis.model.fingerprint != fingerprint:
        return None
    return Cached(analysis, computed_at)


def store(analysis: Analysis, new: bool = False) -> Path:
    """Write the analysis into its model's cache entry; `new` marks it as computed now."""
    folder = entry(analysis.model.fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    path = save_analysis(analysis, folder / f"analysis{SUFFIX}")
    if new or not (folder / COMPUTED_AT).is_file():
        with atomic_write(folder / COMPUTED_AT, "w", encoding="utf-8") as handle:
            handle.write(time.strftime("%Y-%m-%d %H:%M"))
    return path
