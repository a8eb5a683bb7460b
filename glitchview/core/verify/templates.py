"""Prompt templates with a `{token}` placeholder, and their token-id form.

A template is encoded once, text part by text part, leaving a slot (-1) wherever `{token}`
stands; the token under test is then written into the slots *by id*, never by re-encoding its
text (a glitch token's text often does not encode back to it). Defaults ship in
`resources/prompt_templates.json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

SLOT = -1
PLACEHOLDER = "{token}"


@dataclass(frozen=True)
class Template:
    name: str
    text: str


def default_templates() -> dict[str, list[dict[str, str]]]:
    """The shipped templates: {'repetition': [...], 'behaviour': [...]}."""
    data = resources.files("glitchview.resources").joinpath("prompt_templates.json").read_text(encoding="utf-8")
    return json.loads(data)


def repetition_text(spec: dict[str, str], pairs: int) -> str:
    """Expand a repetition template's `{pairs}` with `pairs` copies of its example pair."""
    return spec["text"].replace("{pairs}", spec.get("pair", "") * pairs)


def prefix_ids(tokenizer: Any) -> list[int]:
    """The special ids the tokenizer puts before any text (a BOS token, or nothing)."""
    with_special = tokenizer.encode("a", add_special_tokens=True).ids
    plain = tokenizer.encode("a", add_special_tokens=False).ids
    return with_special[: len(with_special) - len(plain)] if with_special[-len(plain):] == plain else []


def encode_template(tokenizer: Any, text: str) -> np.ndarray:
    """Token ids of `text` with SLOT wherever the placeholder stands (the parts are encoded apart)."""
    parts = text.split(PLACEHOLDER)
    ids: list[int] = list(prefix_ids(tokenizer))
    for k, part in enumerate(parts):
        if part:
            ids.extend(tokenizer.encode(part, add_special_tokens=False).ids)
        if k < len(parts) - 1:
            ids.append(SLOT)
    return np.asarray(ids, dtype=np.int64)


def fill(template_ids: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
    """One row per token: the template with every slot holding that token's id."""
    rows = np.repeat(template_ids[None, :], len(token_ids), axis=0)
    slots = template_ids == SLOT
    rows[:, slots] = np.asarray(token_ids, dtype=np.int64)[:, None]
    return rows
