"""Selections of map points: rectangles, free-hand polygons (lasso) and id lists, combined with the
usual modes (replace, add, remove). Pure numpy, so that the GUI, scripts and tests share one
definition of "inside"."""

from __future__ import annotations

from typing import Literal

import numpy as np

Mode = Literal["replace", "add", "remove"]


def points_in_rect(coords: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Boolean mask of the points inside the axis-aligned rectangle (edges included)."""
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    x, y = coords[:, 0], coords[:, 1]
    return (x >= xa) & (x <= xb) & (y >= ya) & (y <= yb)


def points_in_polygon(coords: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of the points inside a closed polygon (even-odd rule, vectorised over points,
    looping only over the polygon's edges). Only points inside its bounding box are tested."""
    poly = np.asarray(polygon, dtype=np.float64)
    if len(poly) < 3:
        return np.zeros(len(coords), dtype=bool)
    box = points_in_rect(coords, poly[:, 0].min(), poly[:, 1].min(), poly[:, 0].max(), poly[:, 1].max())
    candidates = np.flatnonzero(box)
    x, y = coords[candidates, 0].astype(np.float64), coords[candidates, 1].astype(np.float64)
    inside = np.zeros(len(candidates), dtype=bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < x_cross)
        xj, yj = xi, yi
    mask = np.zeros(len(coords), dtype=bool)
    mask[candidates[inside]] = True
    return mask


def combine(current: np.ndarray, new: np.ndarray, mode: Mode) -> np.ndarray:
    """The selection after applying `new` to `current` with the given mode."""
    if mode == "add":
        return current | new
    if mode == "remove":
        return current & ~new
    return new.copy()


def ids_mask(n: int, ids: np.ndarray | list[int]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(ids, dtype=np.int64)] = True
    return mask
