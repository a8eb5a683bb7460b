"""Checks an analysis file must pass before anything in it is used: a damaged or hostile file (a zip
bomb, a member header claiming a terabyte, labels of a million, offsets past the blob, unknown
codes or indicator names, metadata of the wrong types) gives one clear `AnalysisFileError`, never a
frozen window, an exhausted memory or an IndexError later.

The metadata is checked first; it says how many tokens (n) and dimensions the analysis has, which
fixes the shape of every other member. A member is inflated only after its declared size and its
`.npy` header (dtype, shape) agree with that, and the total read is capped by the available memory."""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass, fields

import numpy as np

from ..analysis import DEFAULT_INDICATOR, ModelInfo
from ..errors import AnalysisFileError
from ..model.memory import SAFETY, available_bytes
from ..model.token_structure import STRUCTURE
from ..model.vocab import CATEGORIES, FLAGS
from ..scores.indicators import INDICATORS
from ..verify.verdicts import Verdict

MAX_TOKENS = 2**24  # the largest vocabularies have about 2^18 tokens
MAX_CLUSTERS = 10_000  # the window draws a marker per centre; the command line refuses more too
MAX_DIM = 2**17
MAX_META_BYTES = 256 * 2**20
MAX_TOTAL_BYTES = 16 * 2**30
MAX_NPY_HEADER = 10_000
_MEMBER_NAME = re.compile(r"[a-z0-9_]{1,64}")
_COLOUR_BY = ("cluster", "category", "flagged", "verdict", *(f"flag:{f}" for f in FLAGS))
_BLOBS = ("pieces", "texts", "bytes")


@dataclass(frozen=True)
class Spec:
    """What a member must be: dtype kinds ('b' bool, 'i'/'u' integers, 'f' floats; 'blob' exactly
    uint8) and shape (None where any length is allowed)."""

    kinds: str
    shape: tuple[int | None, ...]
    required: bool = True


class MemberReader:
    """Reads the defined `.npy` members of an open `.npz` zip, checking each before inflating it."""

    def __init__(self, archive: zipfile.ZipFile, file: str) -> None:
        self.archive, self.file = archive, file
        self.infos = {i.filename[:-4]: i for i in archive.infolist() if i.filename.endswith(".npy")}
        self.names = set(self.infos)
        self.budget = min(MAX_TOTAL_BYTES, int(SAFETY * available_bytes()))

    def _fail(self, message: str) -> AnalysisFileError:
        return AnalysisFileError(f"{self.file} is damaged: {message}")

    def read_all(self, specs: dict[str, Spec]) -> dict[str, np.ndarray]:
        missing = [name for name, spec in specs.items() if spec.required and name not in self.names]
        if missing:
            raise self._fail(f"member {missing[0]} is missing")
        return {name: self.read(name, spec) for name, spec in specs.items() if name in self.names}

    def read(self, name: str, spec: Spec, limit: int | None = None) -> np.ndarray:
        info = self.infos[name]
        cap = min(self.budget, limit or self.budget)
        if info.file_size > cap:
            raise self._fail(f"member {name} declares {info.file_size:,} bytes, more than the {cap:,} allowed")
        with self.archive.open(info) as stream:
            shape, fortran, dtype = self._header(stream, name)
            self._check(name, spec, shape, dtype)
            count = math.prod(shape)
            if count * dtype.itemsize > info.file_size:
                raise self._fail(f"member {name}'s header claims {count * dtype.itemsize:,} bytes but it holds "
                                 f"{info.file_size:,}")
            flat = np.empty(count, dtype=dtype)
            target = memoryview(flat.view(np.uint8))
            if stream.readinto(target) != len(target):
                raise self._fail(f"member {name} is truncated")
        self.budget -= info.file_size
        return flat.reshape(shape, order="F" if fortran else "C")

    def _header(self, stream, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        try:
            version = np.lib.format.read_magic(stream)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                raise ValueError(f"npy format version {version}")
            return read[version](stream, max_header_size=MAX_NPY_HEADER)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise self._fail(f"member {name} has no valid .npy header ({exc})") from None

    def _check(self, name: str, spec: Spec, shape: tuple[int, ...], dtype: np.dtype) -> None:
        blob = spec.kinds == "blob"
        if dtype.hasobject or dtype.fields is not None or (blob and dtype != np.uint8) or \
                (not blob and dtype.kind not in spec.kinds) or dtype.itemsize > 8:
            raise self._fail(f"member {name} has dtype {dtype}")
        if len(shape) != len(spec.shape) or any(e is not None and e != s for e, s in zip(spec.shape, shape)):
            wanted = tuple("any" if e is None else e for e in spec.shape)
            raise self._fail(f"member {name} has shape {shape}, expected {wanted}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _model_info(model: object, file: str) -> dict:
    """The `model` record, with the fields and types of `ModelInfo` (unknown fields dropped)."""
    if not isinstance(model, dict):
        raise AnalysisFileError(f"{file} is damaged: its model record is not an object")
    types = {"n_tokens": _is_int, "dim": _is_int, "tied": lambda v: isinstance(v, bool),
             "generative": lambda v: isinstance(v, bool),
             "notes": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)}
    out = {}
    for f in fields(ModelInfo):
        if f.name not in model and f.name == "notes":
            continue
        value = model.get(f.name)
        if not types.get(f.name, lambda v: isinstance(v, str))(value):
            raise AnalysisFileError(f"{file} is damaged: model field '{f.name}' is {value!r:.40}")
        out[f.name] = value
    if not 1 <= out["n_tokens"] <= MAX_TOKENS or not 1 <= out["dim"] <= MAX_DIM:
        raise AnalysisFileError(f"{file} is damaged: {out['n_tokens']} tokens x {out['dim']} dimensions")
    return out


def _names(value: object, file: str, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and _MEMBER_NAME.fullmatch(v) for v in value):
        raise AnalysisFileError(f"{file} is damaged: its list of {what} is {value!r:.60}")
    return list(dict.fromkeys(value))


def _sanitised_view(view: object, scores: list[str], projections: list[str]) -> dict:
    """The saved view with every choice the window cannot show dropped (it then shows its default)."""
    if not isinstance(view, dict):
        return {}
    valid = {"colour_by": (*scores, *_COLOUR_BY), "projection": projections, "indicator": scores}
    return {k: v for k, v in view.items() if (v in valid[k] if k in valid else
                                                  isinstance(v, (str, int, float, bool, type(None))))}


def check_meta(meta: dict, file: str, newest: int) -> dict:
    """The metadata with its types checked; unknown indicator names dropped (with a note), the
    settings' and view's choices restricted to what the file holds."""
    version = meta.get("version")
    if not _is_int(version) or version < 1:
        raise AnalysisFileError(f"{file} is damaged: format version {version!r:.20}")
    if version > newest:
        raise AnalysisFileError(f"{file} was written by a newer GlitchView (format {version}; this one reads "
                                f"up to {newest}); please upgrade")
    model = _model_info(meta.get("model"), file)
    saved_scores = _names(meta.get("scores"), file, "scores")
    scores = [name for name in saved_scores if name in INDICATORS]
    if not scores:
        raise AnalysisFileError(f"{file} holds no indicator this GlitchView knows ({', '.join(saved_scores)})")
    dropped = [name for name in saved_scores if name not in INDICATORS]
    if dropped:
        model["notes"] = [*model.get("notes", []), f"indicators unknown to this version left out: {dropped}"]
    projections = _names(meta.get("projections"), file, "projections")
    settings = meta.get("settings")
    if not isinstance(settings, dict) or not _is_number(meta.get("inertia")) or \
            not isinstance(meta.get("reference_rule"), str):
        raise AnalysisFileError(f"{file} is damaged: settings, inertia or reference rule of the wrong type")
    if settings.get("indicator") not in scores:
        settings["indicator"] = DEFAULT_INDICATOR if DEFAULT_INDICATOR in scores else scores[0]
    timings = meta.get("timings")
    history = meta.get("history")
    return {**meta, "model": model, "scores": scores, "projections": projections, "settings": settings,
            "view": _sanitised_view(meta.get("view"), scores, projections),
            "timings": {k: v for k, v in timings.items() if _is_number(v)} if isinstance(timings, dict) else {},
            "history": [r for r in history if _history_record(r)] if isinstance(history, list) else []}


def _history_record(record: object) -> bool:
    runs = record.get("runs", []) if isinstance(record, dict) else None
    return isinstance(runs, list) and all(isinstance(run, dict) for run in runs)


def expected_members(meta: dict, present: set[str]) -> dict[str, Spec]:
    """Every member the format defines, with the shape the checked metadata fixes for it."""
    n, dim = meta["model"]["n_tokens"], meta["model"]["dim"]
    specs = {"category": Spec("iu", (n,)), "tokenizer_size": Spec("iu", (1,), required=False),
             "labels": Spec("iu", (n,)), "centers": Spec("f", (None, dim)), "reference_ids": Spec("iu", (None,)),
             "flagged": Spec("b", (n,)), "selection": Spec("b", (n,), required=False)}
    for name in _BLOBS:
        specs.update({f"{name}_blob": Spec("blob", (None,)), f"{name}_offsets": Spec("iu", (n + 1,))})
    specs.update({f"flag_{name}": Spec("b", (n,), required=False) for name in FLAGS})
    specs.update({f"structure_{name}": Spec("f", (n,), required=False) for name in STRUCTURE})
    specs.update({f"score_{name}": Spec("f", (n,)) for name in meta["scores"]})
    specs.update({f"projection_{name}": Spec("f", (n, 2)) for name in meta["projections"]})
    if "verdict" in present:
        specs.update(verdict=Spec("iu", (n,)), max_prob=Spec("f", (n,)), reasons_blob=Spec("blob", (None,)),
                     reasons_offsets=Spec("iu", (n + 1,)))
    if "corpus" in meta:  # token counts of a corpus (core.scores.corpus), optional
        specs.update(corpus_counts=Spec("iu", (n,)))
    return specs


def _in_range(values: np.ndarray, low: int, high: int, what: str) -> None:
    if values.size and (values.min() < low or values.max() >= high):
        raise ValueError(f"{what} out of range {low}..{high - 1} (found {values.min()}..{values.max()})")


def _check_offsets(arrays: dict[str, np.ndarray], name: str) -> None:
    offsets, blob = arrays[f"{name}_offsets"], arrays[f"{name}_blob"]
    if offsets[0] != 0 or offsets[-1] != len(blob) or (np.diff(offsets.astype(np.int64)) < 0).any():
        raise ValueError(f"{name} offsets are not increasing from 0 to the blob's {len(blob)} bytes")
    arrays[f"{name}_offsets"] = offsets.astype(np.int64)


def check_arrays(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, np.ndarray]:
    """Check every value that indexes something; returns the arrays with canonical integer types."""
    n = meta["model"]["n_tokens"]
    k = len(arrays["centers"])
    if not 1 <= k <= min(n, MAX_CLUSTERS):
        raise ValueError(f"{k} cluster centres for {n} tokens (1 to {min(n, MAX_CLUSTERS)} allowed)")
    _in_range(arrays["labels"], 0, k, "cluster labels")
    _in_range(arrays["category"], 0, len(CATEGORIES), "category codes")
    _in_range(arrays["reference_ids"], 0, n, "reference ids")
    for name in (*_BLOBS, *(["reasons"] if "verdict" in arrays else [])):
        _check_offsets(arrays, name)
    if "verdict" in arrays:
        _in_range(arrays["verdict"], 0, len(Verdict), "verdict codes")
        arrays["verdict"] = arrays["verdict"].astype(np.int8)
    if "corpus_counts" in arrays:
        _in_range(arrays["corpus_counts"], 0, 2**62, "corpus counts")
        if not isinstance(meta.get("corpus"), dict):
            raise ValueError("corpus counts without their corpus description")
    if "tokenizer_size" in arrays:
        _in_range(arrays["tokenizer_size"], 0, 2**31, "tokenizer size")
    structure = [f"structure_{name}" for name in STRUCTURE if f"structure_{name}" in arrays]
    for name in ("centers", *(f"projection_{p}" for p in meta["projections"]), *structure):
        if not np.isfinite(arrays[name]).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    arrays["category"] = arrays["category"].astype(np.int8)
    arrays["labels"] = arrays["labels"].astype(np.int64)
    arrays["reference_ids"] = arrays["reference_ids"].astype(np.int64)
    return arrays
