"""Spatial index of a 2-D map, built off the GUI thread: a k-d tree for hover and click lookups
(pyqtgraph's own hover search is linear per mouse move), and where each cluster sits on the map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class MapIndex:
    coords: np.ndarray  # float64 (n, 2)
    tree: cKDTree
    cluster_centres: np.ndarray  # (k, 2): mean map position of each cluster's members

    def nearest(self, x: float, y: float, sx: float, sy: float, radius_px: float) -> int | None:
        """The point nearest (x, y) in screen distance, where one pixel is (sx, sy) data units,
        if it lies within `radius_px` pixels; else None."""
        reach = radius_px * max(sx, sy)
        dist, idx = self.tree.query([x, y], k=16, distance_upper_bound=reach)
        found = idx[np.isfinite(dist)]
        if found.size == 0:
            return None
        pix = np.hypot((self.coords[found, 0] - x) / sx, (self.coords[found, 1] - y) / sy)
        best = int(np.argmin(pix))
        return int(found[best]) if pix[best] <= radius_px else None


def build_map_index(coords: np.ndarray, labels: np.ndarray) -> MapIndex:
    pts = np.ascontiguousarray(coords, dtype=np.float64)
    k = int(labels.max()) + 1 if len(labels) else 0
    counts = np.maximum(np.bincount(labels, minlength=k), 1)
    centres = np.stack([np.bincount(labels, weights=pts[:, d], minlength=k) / counts for d in (0, 1)], axis=1)
    return MapIndex(pts, cKDTree(pts), centres)
