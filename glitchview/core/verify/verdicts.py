"""The verdicts of verification, by name. Arrays of verdicts hold these codes (int8, so that a
whole vocabulary's verdicts stay one small array); code that reads them compares with the names,
and the numbers themselves matter only to the analysis-file format, which stores them."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Verdict(IntEnum):
    UNVERIFIED = 0
    STRONG_GLITCH = 1  # max P(token) below STRONG_BELOW
    GLITCH = 2  # below GLITCH_BELOW
    UNCERTAIN = 3  # between GLITCH_BELOW and REJECT_ABOVE
    NORMAL = 4  # above REJECT_ABOVE: the model reproduces the token
    CRASH = 5  # the forward pass failed for this token (or gave NaN)
    SUSPECT = 6  # a screening (fast mode) found it hard to reproduce: a full test decides

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, label: str) -> "Verdict":
        return cls[label.upper()]


LABELS: tuple[str, ...] = tuple(v.label for v in Verdict)  # indexable by code
GLITCH_VERDICTS = (Verdict.STRONG_GLITCH, Verdict.GLITCH)
DECIDED_VERDICTS = (*GLITCH_VERDICTS, Verdict.NORMAL)  # what a precision can be decided on
STRONG_BELOW, GLITCH_BELOW, REJECT_ABOVE = 0.001, 0.01, 0.1  # Land & Bartolo's thresholds on max P(token)


def empty(n: int) -> np.ndarray:
    return np.full(n, Verdict.UNVERIFIED, dtype=np.int8)


def is_glitch(codes: np.ndarray) -> np.ndarray:
    return np.isin(codes, GLITCH_VERDICTS)


def is_verified(codes: np.ndarray) -> np.ndarray:
    return np.asarray(codes) != Verdict.UNVERIFIED


def counts(codes: np.ndarray) -> dict[Verdict, int]:
    """How many of each verdict (unverified left out, zero counts left out)."""
    found = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(Verdict))
    return {v: int(found[v]) for v in Verdict if v != Verdict.UNVERIFIED and found[v]}


def summary(codes: np.ndarray) -> str:
    """'glitch 3, normal 12' for a status line."""
    return ", ".join(f"{v.label} {n}" for v, n in counts(codes).items()) or "nothing verified"
