"""Finding tokens by what the user types: `#123` for an id, `/regex/` or a plain text, matched
against the escaped texts the views show (so what is seen is what is found)."""

from __future__ import annotations

import numpy as np
import regex


def match_texts(texts: list[str], needle: str, is_regex: bool, candidates: np.ndarray) -> np.ndarray:
    """The `candidates` whose text contains `needle` (case-insensitive) or matches the regex
    (raises regex.error for a bad pattern)."""
    if is_regex:
        pattern = regex.compile(needle)
        return np.asarray([i for i in candidates.tolist() if pattern.search(texts[i])], dtype=np.int64)
    needle = needle.lower()
    return np.asarray([i for i in candidates.tolist() if needle in texts[i].lower()], dtype=np.int64)


def find_tokens(texts: list[str], query: str) -> np.ndarray:
    """The ids a find query names, in id order (raises regex.error for a bad pattern)."""
    query = query.strip()
    if not query:
        return np.zeros(0, dtype=np.int64)
    if query.startswith("#") and query[1:].isdigit():
        token = int(query[1:])
        return np.array([token] if token < len(texts) else [], dtype=np.int64)
    is_regex = len(query) > 1 and query.startswith("/") and query.endswith("/")
    return match_texts(texts, query[1:-1] if is_regex else query, is_regex, np.arange(len(texts)))
