"""Colourings of the embedding map, precomputed off the GUI thread: for each thing a user can
colour by (an indicator, the cluster, a token category or flag), every point's colour bin, the
point order grouped by bin (so a view draws each bin with one call), and the legend.

Continuous values use a colour-blind-safe viridis scale over their 1st-99th percentile range, with
the suspicious end bright (the scale is reversed for indicators whose low end is suspicious) and
drawn last, so that suspects are painted on top; categories use the Okabe-Ito
palette extended with further distinguishable colours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis import Analysis
from ..model.vocab import CATEGORIES, FLAGS
from ..scores.indicators import INDICATORS
from ..verify.verdicts import LABELS, Verdict
from .research import COMPARE_COLOURING, COMPARE_LABELS, compare_codes, research_colourings, research_columns

CONTINUOUS_BINS = 64
_VIRIDIS = np.array([  # viridis at 10 evenly spaced stops; linear interpolation between them
    [68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]], dtype=np.float64)
_CATEGORICAL = np.array([  # Okabe-Ito, then Tableau-like extensions
    [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178], [213, 94, 0],
    [204, 121, 167], [153, 153, 153], [148, 103, 189], [140, 86, 75], [23, 190, 207], [188, 189, 34],
    [255, 152, 150], [197, 176, 213], [174, 199, 232], [152, 223, 138]], dtype=np.uint8)
_FLAG_OFF, _FLAG_ON = [120, 120, 130], [255, 64, 64]
_VERDICT_COLOURS = np.array([  # in Verdict order: unverified, strong_glitch, glitch, uncertain, normal, crash, suspect
    [90, 92, 100], [255, 45, 149], [240, 130, 60], [240, 228, 66], [86, 180, 233], [255, 255, 255],
    [204, 121, 167]], dtype=np.uint8)
_COMPARE_COLOURS = np.array([[90, 92, 100], [240, 228, 66], [0, 114, 178], [255, 45, 149]], dtype=np.uint8)
_VERDICT_DRAW_ORDER = [Verdict.UNVERIFIED, Verdict.NORMAL, Verdict.UNCERTAIN, Verdict.SUSPECT, Verdict.GLITCH,
                       Verdict.STRONG_GLITCH, Verdict.CRASH]  # bottom to top


@dataclass(frozen=True)
class Colouring:
    name: str
    continuous: bool
    bins: np.ndarray  # uint8/uint16 colour bin of each point
    order: np.ndarray  # point ids grouped by bin, bins in drawing order
    offsets: np.ndarray  # order[offsets[b]:offsets[b+1]] are the points of drawing-slot b
    slot_colours: np.ndarray  # RGB uint8 per drawing slot
    labels: list[str]  # legend: category names, or [low value, high value]
    suspicious: str = ""  # for indicators: which end is suspicious


def viridis(n: int) -> np.ndarray:
    """n RGB colours along viridis."""
    t = np.linspace(0, len(_VIRIDIS) - 1, n)
    lo = np.floor(t).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (t - lo)[:, None]
    return np.round(_VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac).astype(np.uint8)


def categorical(n: int) -> np.ndarray:
    return _CATEGORICAL[np.arange(n) % len(_CATEGORICAL)]


def _grouped(bins: np.ndarray, n_bins: int, slot_of_bin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    slots = slot_of_bin[bins]
    order = np.argsort(slots, kind="stable").astype(np.int64)
    offsets = np.zeros(n_bins + 1, dtype=np.int64)
    np.cumsum(np.bincount(slots, minlength=n_bins), out=offsets[1:])
    return order, offsets


def continuous(name: str, values: np.ndarray, suspicious: str = "high") -> Colouring:
    finite = np.isfinite(values)
    lo, hi = (np.percentile(values[finite], [1, 99]) if finite.any() else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    with np.errstate(over="ignore", invalid="ignore"):  # extreme values (a damaged file) clip to the ends
        scaled = np.clip((np.nan_to_num(values, nan=lo) - lo) / (hi - lo), 0, 1)
    bins = np.minimum((scaled * CONTINUOUS_BINS).astype(np.int64), CONTINUOUS_BINS - 1)
    # the suspicious end is always the bright end of viridis, and drawn last (on top)
    colours = viridis(CONTINUOUS_BINS) if suspicious == "high" else viridis(CONTINUOUS_BINS)[::-1]
    slot_of_bin = np.arange(CONTINUOUS_BINS) if suspicious == "high" else np.arange(CONTINUOUS_BINS)[::-1]
    order, offsets = _grouped(bins, CONTINUOUS_BINS, slot_of_bin)
    slot_colours = colours[np.argsort(slot_of_bin)]
    return Colouring(name, True, bins.astype(np.uint8), order, offsets, slot_colours,
                     [f"{lo:.4g}", f"{hi:.4g}"], suspicious)


def discrete(name: str, codes: np.ndarray, labels: list[str], colours: np.ndarray | None = None,
             draw_order: list[int] | None = None) -> Colouring:
    """A colouring by category code; `draw_order` lists the codes from bottom to top."""
    n = len(labels)
    order_of_codes = np.asarray(draw_order if draw_order is not None else range(n))
    slot_of_bin = np.argsort(order_of_codes)
    colours = categorical(n) if colours is None else colours
    order, offsets = _grouped(codes.astype(np.int64), n, slot_of_bin)
    return Colouring(name, False, codes.astype(np.uint16), order, offsets, colours[order_of_codes],
                     [labels[c] for c in order_of_codes])


def colour_options(analysis: Analysis) -> list[str]:
    """Everything the map can be coloured by, in menu order."""
    return [*analysis.scores, "cluster", "category", *(f"flag:{f}" for f in FLAGS), "flagged", "verdict",
            *research_colourings(analysis)]


def colouring_for(analysis: Analysis, name: str) -> Colouring:
    """The colouring of the analysis by `name` (see `colour_options`)."""
    if name in analysis.scores:
        return continuous(name, analysis.scores[name], INDICATORS[name].suspicious if name in INDICATORS else "high")
    if name == "cluster":
        k = int(analysis.labels.max()) + 1 if len(analysis.labels) else 1
        return discrete(name, analysis.labels, [f"cluster {c}" for c in range(k)])
    if name == "category":
        return discrete(name, analysis.table.category.astype(np.int64), list(CATEGORIES))
    if name == COMPARE_COLOURING:
        return discrete(name, compare_codes(analysis), COMPARE_LABELS, _COMPARE_COLOURS)
    if name in research_colourings(analysis):  # a delta B - A
        return continuous(name, research_columns(analysis)[name])
    if name == "verdict":
        codes = analysis.ensure_verdicts().verdict.astype(np.int64)
        return discrete(name, codes, list(LABELS), _VERDICT_COLOURS, draw_order=[int(v) for v in _VERDICT_DRAW_ORDER])
    mask = analysis.flagged if name == "flagged" else analysis.table.flags[name.removeprefix("flag:")]
    return discrete(name, mask.astype(np.int64), ["no", "yes"], np.array([_FLAG_OFF, _FLAG_ON], dtype=np.uint8))
