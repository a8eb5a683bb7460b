"""Analysis files: one analysis saved to one file and reopened without recomputing anything.

Format (documented, never pickle): a NumPy `.npz` archive (a zip of `.npy` members, read with
`allow_pickle=False`). Member `meta` holds UTF-8 JSON (format name and version, model info,
settings, reference rule, timings, score names); strings are stored as one byte blob plus an
offsets array each (`pieces`, `texts`, `bytes`); numeric columns are plain arrays named
`flag_<name>`, `structure_<name>` (model/token_structure.py), `score_<name>`, `projection_<name>`,
`labels`, `centers`, `category`, `reference_ids`, `flagged`, and when present `selection`, the verification results
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
from ..errors import AnalysisFileError, one_line
from ..model.loading import rank_broken_first
from ..model.vocab import table_arrays, table_from_arrays
from ..scores.corpus import CorpusCounts
from ..scores.indicators import GLITCH_SCORE_PARTS, combine_glitch_score
from ..scores.reference import ReferenceSet
from .analysis_checks import MAX_META_BYTES, MemberReader, Spec, check_arrays, check_meta, expected_members
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
    """Read an analysis file; a missing, corrupt, foreign, newer or damaged file raises `AnalysisFileError`.

    Nothing is trusted before it is checked: only the members the format defines are read, each one's
    declared size and `.npy` header (dtype, shape) are checked against the metadata before it is
    inflated, the total is capped, and every value that indexes something (labels, offsets, codes, ids)
    is checked to be in range (see `analysis_checks`). Unknown indicator names are left out."""
    path = Path(path)
    if not path.exists():
        raise AnalysisFileError(f"no analysis file at {path}")
    if not path.is_file():
        raise AnalysisFileError(f"{path} is not a regular file; refusing to read it")
    try:
        with zipfile.ZipFile(path) as archive:
            reader = MemberReader(archive, path.name)
            meta = check_meta(_read_meta(reader), path.name, FORMAT_VERSION)
            arrays = reader.read_all(expected_members(meta, reader.names))
    except AnalysisFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as exc:
        raise AnalysisFileError(f"{path.name} is not a readable GlitchView analysis (corrupt or "
                                f"truncated?): {one_line(exc)}") from None
    try:
        return _build(check_arrays(arrays, meta), meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnalysisFileError(f"{path.name} is incomplete or damaged: {one_line(exc)}") from None


def _read_meta(reader: "MemberReader") -> dict:
    if "meta" not in reader.names:
        raise AnalysisFileError(f"{reader.file} is not a GlitchView analysis file")
    raw = reader.read("meta", Spec("blob", (None,)), limit=MAX_META_BYTES)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError):
        raise AnalysisFileError(f"{reader.file} is not a GlitchView analysis file (unreadable metadata)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise AnalysisFileError(f"{reader.file} is not a GlitchView analysis file")
    return meta


def _build(arrays: dict[str, np.ndarray], meta: dict) -> Analysis:
    table = table_from_arrays(arrays)
    scores = {name: arrays[f"score_{name}"] for name in meta["scores"]}
    if all(name in scores for name in GLITCH_SCORE_PARTS):  # derived, not measured: as this version defines it
        scores["glitch_score"] = rank_broken_first(combine_glitch_score(scores), table.flags["nonfinite"], "low")
    projections = {name: arrays[f"projection_{name}"] for name in meta["projections"]}
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
