"""Fuzzing the three file formats GlitchView reads from strangers (issue 12): thousands of seeded
random mutations of a valid GGUF header, a safetensors file and a `.gva.npz` analysis each end in a
result or in one of our typed errors (never another exception), each case within a time cap, and
all of them together within a memory cap."""

from __future__ import annotations

import json
import os
import random
import resource
import struct
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from tiny_models import TinyModel

from glitchview.core.errors import GlitchViewError

CASE_SECONDS = 1.0
RSS_GROWTH_KB = 300 * 1024
SEED = int(os.environ.get("GLITCHVIEW_FUZZ_SEED", "12"))  # another seed explores other cases
BOUNDARY = [0, 1, 2, 7, 8, 255, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**64 - 1]


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One random damage: flipped bytes, a boundary integer written over a field, a cut, an insertion."""
    buf = bytearray(data)
    kind = rng.randrange(5)
    at = rng.randrange(len(buf))
    if kind == 0:
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == 1:
        buf[at:at + 8] = struct.pack("<Q", rng.choice(BOUNDARY))
    elif kind == 2:
        buf[at:at + 4] = struct.pack("<I", rng.choice(BOUNDARY) & 0xFFFFFFFF)
    elif kind == 3:
        del buf[at:]
    else:
        buf[at:at] = rng.randbytes(rng.randint(1, 16))
    return bytes(buf)


def _rewrite(path: Path, data: bytes) -> None:
    """Replace a file's content (a new file: truncating one in place is slow on some filesystems)."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def _fuzz(cases: int, seed: int, make: Callable[[random.Random], None], expected: type[Exception]) -> dict:
    """Run `make` on `cases` seeded mutations; every outcome must be a result or an `expected` error."""
    rng = random.Random(seed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {"result": 0, "error": 0}
    for case in range(cases):
        start = time.monotonic()
        try:
            make(rng)
            outcomes["result"] += 1
        except expected:
            outcomes["error"] += 1
        except Exception as exc:  # noqa: BLE001 (what the fuzz test exists to catch)
            pytest.fail(f"case {case} (seed {seed}) raised {type(exc).__name__}: {exc}")
        assert time.monotonic() - start < CASE_SECONDS, f"case {case} (seed {seed}) took too long"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < RSS_GROWTH_KB
    return outcomes


def _small_gguf(path: Path) -> bytes:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_token_list([f"t{i}" for i in range(12)])
    writer.add_token_scores([float(i) for i in range(12)])
    writer.add_tensor("token_embd.weight", np.ones((12, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def test_fuzz_gguf_header(tmp_path: Path) -> None:
    from glitchview.core.model.gguf_header import read_gguf_header

    valid = _small_gguf(tmp_path / "valid.gguf")
    assert read_gguf_header(tmp_path / "valid.gguf").n_elements == 12 * 8 + 8
    target = tmp_path / "m.gguf"

    def case(rng: random.Random) -> None:
        _rewrite(target, _mutate_bytes(valid, rng))
        read_gguf_header(target)

    outcomes = _fuzz(1500, SEED, case, GlitchViewError)
    assert outcomes["result"] > 50 and outcomes["error"] > 500  # both paths were exercised


def _mutate_safetensors(data: bytes, rng: random.Random) -> bytes:
    """Damage the JSON header (values, keys, the length prefix) more often than the raw bytes."""
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + length])
    if rng.random() < 0.4:
        return _mutate_bytes(data, rng)
    name = rng.choice(sorted(header))
    entry = header[name]
    field = rng.choice(["dtype", "shape", "data_offsets", "name"])
    junk = rng.choice([None, -1, 2**64, "F8_E4M3", "BOOL", "C64", [], [3], [2**40, 2], [0, 2**63], {"a": 1}, "x"])
    if field == "name":
        header[rng.choice(["", "model.embed_tokens.weight", "lm_head.weight", "\u202e"])] = header.pop(name)
    elif isinstance(entry, dict):
        entry[field] = junk if rng.random() < 0.5 else [rng.choice(BOUNDARY) for _ in range(rng.randint(0, 3))]
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + length:]


def test_fuzz_safetensors_header(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from glitchview.core.model.loading import read_embeddings

    folder = tmp_path / "model"
    folder.mkdir()
    target = folder / "model.safetensors"
    save_file({"model.embed_tokens.weight": torch.randn(16, 8), "lm_head.weight": torch.randn(16, 8)}, str(target))
    valid = target.read_bytes()
    assert read_embeddings(folder)[0].shape == (16, 8)

    def case(rng: random.Random) -> None:
        _rewrite(target, _mutate_safetensors(valid, rng))
        read_embeddings(folder)

    outcomes = _fuzz(1000, SEED, case, GlitchViewError)
    assert outcomes["result"] > 50 and outcomes["error"] > 300


def _mutate_member(arrays: dict[str, np.ndarray], meta: dict, rng: random.Random) -> None:
    """Damage one member's values, length or dtype, or one metadata field."""
    if rng.random() < 0.3:
        key = rng.choice(sorted(meta))
        meta[key] = rng.choice([None, -1, 2**70, "x", [], {}, [1, "a"], {"n_tokens": 3}, 1.5, True])
        return
    name = rng.choice(sorted(arrays))
    values = arrays[name]
    kind = rng.randrange(5)
    if kind == 0 and values.size:
        flat = values.reshape(-1).copy()
        junk = [-1, 0, 1, 127, 255, 10**6, 2**31 - 1] if values.dtype.kind in "iub" else [np.nan, np.inf, -1.0, 1e30]
        flat[rng.randrange(flat.size)] = np.asarray(rng.choice(junk)).astype(flat.dtype)
        arrays[name] = flat.reshape(values.shape)
    elif kind == 1:
        arrays[name] = values[: rng.randrange(values.shape[0] + 1)] if values.ndim else values
    elif kind == 2:
        with np.errstate(invalid="ignore", over="ignore"):
            arrays[name] = values.astype(rng.choice([np.float64, np.int64, np.uint8, np.bool_, np.float16]))
    elif kind == 3:
        arrays[name] = np.concatenate([values, values[:3]]) if values.ndim else values
    else:
        del arrays[name]


@pytest.fixture(scope="module")
def small_saved(tiny_hf: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from glitchview.core.pipeline import ScanSettings, scan
    from glitchview.core.store.analysis_file import save_analysis

    analysis = scan(str(tiny_hf.path), ScanSettings(clusters=3))[1]
    analysis.ensure_verdicts().verdict[[4, 5]] = 1
    return save_analysis(analysis, tmp_path_factory.mktemp("fuzz") / "a.gva.npz")


def test_fuzz_analysis_file(small_saved: Path, tmp_path: Path) -> None:
    from glitchview.core.store.analysis_file import load_analysis
    from glitchview.core.store.export import export_rows
    from glitchview.core.view.colouring import colour_options, colouring_for

    valid = small_saved.read_bytes()
    with np.load(small_saved, allow_pickle=False) as data:
        members = {name: data[name] for name in data.files if name != "meta"}
    meta = json.loads(bytes(np.load(small_saved)["meta"]))
    target = tmp_path / "m.gva.npz"

    def use(path: Path) -> None:
        """Load, then touch what the window and the exports index with the file's values."""
        analysis = load_analysis(path)
        indicator = analysis.settings["indicator"]
        list(export_rows(analysis, analysis.top(indicator, 5), indicator))
        for name in (analysis.view.get("colour_by", indicator), "cluster", "category", "verdict"):
            assert name in colour_options(analysis)
            colouring_for(analysis, name)

    def case(rng: random.Random) -> None:
        if rng.random() < 0.3:
            _rewrite(target, _mutate_bytes(valid, rng))
        else:
            target.unlink(missing_ok=True)
            arrays, changed = dict(members), json.loads(json.dumps(meta))
            for _ in range(rng.randint(1, 2)):
                _mutate_member(arrays, changed, rng)
            np.savez(target, meta=np.frombuffer(json.dumps(changed).encode(), dtype=np.uint8), **arrays)
        use(target)

    outcomes = _fuzz(1000, SEED, case, GlitchViewError)
    assert outcomes["result"] > 50 and outcomes["error"] > 300
