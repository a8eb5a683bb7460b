"""Analysis files: one analysis saved to one file and reopened without recomputing anything.

Format (documented, never pickle): a NumPy `.npz` archive (a zip of `.npy` members, read with
`allow_pickle=False`). Member `meta` holds UTF-8 JSON (format name and version, model info,
settings, reference rule, timings, score names); strings are stored as one byte blob plus an
offsets array each (`pieces`, `texts`, `bytes`); numeric columns are plain arrays named
`flag_<name>`, `score_<name>`, `projection_<name>`, `labels`, `centers`, `category`,
`reference_ids`, `flagged`, and when present `selection`, the verification results
(`verdict`, `max_prob`, `reasons`; the prompt-run history is in `meta`) and corpus counts
(`corpus_counts`, int64 per token; what was counted is `meta["corpus"]`; `corpus_rarity` is derived
from them on reading, never stored). Files are written atomically."""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..analysis import CORPUS_RARITY, Analysis, ModelInfo, Verdicts
from ..errors import AnalysisFileError
from ..model.vocab import table_arrays, table_from_arrays
from ..scores.corpus import CorpusCounts
from ..scores.reference import ReferenceSet
from .blobs import pack_strings, unpack_strings
from .files import atomic_write

FORMAT_NAME = "glitchview-analysis"
FORMAT_VERSION = 1
SUFFIX = ".gva.npz"


def save_analysis(analysis: Analysis, path: Path) -> Path:
    """Write `analysis` to `path` atomically (the previous file survives any failure)."""
    path = Path(path)
    table = analysis.table
    arrays: dict[str, np.ndarray] = {}
    arrays.update(table_arrays(table))
    scores = {name: values for name, values in analysis.scores.items() if name != CORPUS_RARITY}
    for name, values in scores.items():
        arrays[f"score_{name}"] = values
    for name, coords in analysis.projections.items():
        arrays[f"projection_{name}"] = coords
    arrays.update(labels=analysis.labels, centers=analysis.centers,
                  reference_ids=analysis.reference.ids, flagged=analysis.flagged)
    if analysis.selection is not None:
        arrays["selection"] = analysis.selection
    if analysis.verdicts is not None:
        arrays["verdict"], arrays["max_prob"] = analysis.verdicts.verdict, analysis.verdicts.max_prob
        arrays["reasons_blob"], arrays["reasons_offsets"] = pack_strings(analysis.verdicts.reasons)
    meta = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "model": asdict(analysis.model),
        "settings": analysis.settings, "inertia": analysis.inertia, "reference_rule": analysis.reference.rule,
        "timings": analysis.timings, "scores": list(scores), "projections": list(analysis.projections),
        "view": analysis.view,
        "history": analysis.verdicts.history if analysis.verdicts is not None else [],
    }
    if analysis.corpus is not None:
        arrays["corpus_counts"], meta["corpus"] = analysis.corpus.counts, analysis.corpus.meta()
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as handle:
        np.savez(handle, allow_pickle=False, **arrays)
    return path


def load_analysis(path: Path) -> Analysis:
    """Read an analysis file; a missing, corrupt, foreign or newer file raises `AnalysisFileError`."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisFileError(f"no analysis file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise AnalysisFileError(f"{path.name} is not a readable GlitchView analysis (corrupt or "
                                f"truncated?): {exc}") from exc
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (KeyError, ValueError) as exc:
        raise AnalysisFileError(f"{path.name} is not a GlitchView analysis file") from exc
    if meta.get("format") != FORMAT_NAME:
        raise AnalysisFileError(f"{path.name} is not a GlitchView analysis file")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise AnalysisFileError(f"{path.name} was written by a newer GlitchView (format "
                                f"{meta['version']}; this one reads up to {FORMAT_VERSION}); please upgrade")
    try:
        return _build(arrays, meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnalysisFileError(f"{path.name} is incomplete or damaged: {exc}") from exc


def _build(arrays: dict[str, np.ndarray], meta: dict) -> Analysis:
    table = table_from_arrays(arrays)
    n = len(table)
    scores = {name: arrays[f"score_{name}"] for name in meta["scores"]}
    projections = {name: arrays[f"projection_{name}"] for name in meta["projections"]}
    for name, column in [*scores.items(), ("labels", arrays["labels"]), ("flagged", arrays["flagged"])]:
        if len(column) != n:
            raise ValueError(f"column {name} has {len(column)} rows, the token table {n}")
    analysis = Analysis(
        model=ModelInfo(**meta["model"]), settings=meta["settings"], table=table, scores=scores,
        labels=arrays["labels"], centers=arrays["centers"], inertia=float(meta["inertia"]),
        reference=ReferenceSet(arrays["reference_ids"], meta["reference_rule"]),
        projections=projections, flagged=arrays["flagged"], timings=meta.get("timings", {}),
        selection=arrays.get("selection"), view=meta.get("view", {}),
        verdicts=Verdicts(arrays["verdict"], arrays["max_prob"],
                          unpack_strings(arrays["reasons_blob"], arrays["reasons_offsets"]),
                          meta.get("history", [])) if "verdict" in arrays else None,
    )
    if "corpus_counts" in arrays:
        analysis.set_corpus(CorpusCounts.from_meta(arrays["corpus_counts"], meta["corpus"]))
    return analysis
