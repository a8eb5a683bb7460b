"""Analysis files and CSV export: round trips, safety against formula injection, lossless bytes,
clear errors for damaged files, atomic saves."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from analysis_checks import assert_same_analysis
from hypothesis import given
from hypothesis import strategies as st
from tiny_models import TinyModel

from glitchview.core.analysis import Analysis
from glitchview.core.errors import AnalysisFileError
from glitchview.core.pipeline import ScanSettings, scan
from glitchview.core.store.analysis_file import load_analysis, save_analysis
from glitchview.core.store.export import read_token_bytes, safe_cell, write_csv, write_json
from glitchview.core.store.text import escape_text, unescape_text


@pytest.fixture(scope="module")
def tiny_analysis(tiny_hf: TinyModel) -> Analysis:
    return scan(str(tiny_hf.path), ScanSettings(clusters=5))[1]


def test_analysis_round_trip(tiny_analysis: Analysis, tmp_path: Path) -> None:
    tiny_analysis.flagged[[3, 40]] = True
    tiny_analysis.selection = np.isin(np.arange(len(tiny_analysis)), [1, 2, 40])
    tiny_analysis.view = {"colour_by": "cluster", "projection": "pca"}
    path = save_analysis(tiny_analysis, tmp_path / "a.gva.npz")
    assert_same_analysis(tiny_analysis, load_analysis(path))
    with zipfile.ZipFile(path) as archive:  # a documented npz: plain .npy members, no pickle
        assert "meta.npy" in archive.namelist()


def test_saving_over_a_file_is_atomic(tiny_analysis: Analysis, tmp_path: Path) -> None:
    path = save_analysis(tiny_analysis, tmp_path / "keep.gva.npz")
    before = path.read_bytes()
    tiny_analysis.scores["broken"] = object()  # not an array: saving fails midway
    try:
        with pytest.raises(ValueError, match="allow_pickle"):
            save_analysis(tiny_analysis, path)
    finally:
        del tiny_analysis.scores["broken"]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.gva.npz"]


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:500]), "not a readable"),
    (lambda p: p.write_text("hello"), "not a readable"),
    (lambda p: np.savez(p.open("wb"), x=np.arange(3)), "not a GlitchView analysis"),
])
def test_damaged_files_give_clear_errors(tiny_analysis: Analysis, tmp_path: Path, damage, message: str) -> None:
    path = save_analysis(tiny_analysis, tmp_path / "d.gva.npz")
    damage(path)
    with pytest.raises(AnalysisFileError, match=message):
        load_analysis(path)


def test_missing_analysis_file(tmp_path: Path) -> None:
    with pytest.raises(AnalysisFileError, match="no analysis file"):
        load_analysis(tmp_path / "nothing.gva.npz")


def test_csv_export_round_trips_every_token(tiny_analysis: Analysis, tmp_path: Path) -> None:
    path = tmp_path / "all.csv"
    ids = tiny_analysis.top("norm", len(tiny_analysis))
    assert write_csv(tiny_analysis, path, ids, "norm") == len(tiny_analysis)
    back = read_token_bytes(path)
    assert back == {i: b for i, b in enumerate(tiny_analysis.table.token_bytes)}
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["id"]) for r in rows] == ids.tolist()
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert float(rows[0]["norm"]) == tiny_analysis.scores["norm"][ids[0]]
    for row in rows:
        assert "\n" not in row["text"] and "\r" not in row["text"]


def test_json_export(tiny_analysis: Analysis, tmp_path: Path) -> None:
    import json

    path = tmp_path / "top.json"
    write_json(tiny_analysis, path, tiny_analysis.top("norm", 5), "norm")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert len(data["tokens"]) == 5 and isinstance(data["tokens"][0]["norm"], float)


@pytest.mark.parametrize("text, expected", [
    ("=SUM(A1)", "'=SUM(A1)"), ("+1", "'+1"), ("-cmd", "'-cmd"), ("@x", "'@x"),
    ("\tx", "\\tx"), ("\rx", "\\rx"), ("a\nb", "a\\nb"), ("\u202eevil", "\\u202eevil"), ("ok", "ok"),
])
def test_safe_cell(text: str, expected: str) -> None:
    assert safe_cell(text) == expected


@given(st.text())
def test_escape_is_visible_and_one_to_one(text: str) -> None:
    escaped = escape_text(text)
    assert unescape_text(escaped) == text
    assert not any(c in escaped for c in "\n\r\t\x00\u202e\u200b\u2028")
    assert all(c.isprintable() or c == " " for c in escaped)


FORMULAS = st.sampled_from([b"=1+1", b"+cmd|' /C calc'!A0", b"-2+3", b"@SUM(A1)", b"\t=x", b"\r=x", b"\xff=bad"])


@given(st.lists(st.one_of(st.binary(max_size=12), FORMULAS,
                          st.text(max_size=8).map(lambda t: t.encode("utf-8", "surrogatepass"))), min_size=1, max_size=20))
def test_csv_keeps_arbitrary_token_bytes(tiny_analysis: Analysis, tmp_path_factory, tokens: list[bytes]) -> None:
    table = tiny_analysis.table
    saved = list(table.token_bytes), list(table.texts)
    try:
        for i, data in enumerate(tokens):
            table.token_bytes[i] = data
            table.texts[i] = data.decode("utf-8", "replace")
        path = tmp_path_factory.mktemp("csv") / "t.csv"
        write_csv(tiny_analysis, path, range(len(tokens)), "norm")
        assert read_token_bytes(path) == dict(enumerate(tokens))
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                for cell in (row["piece"], row["text"]):
                    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    finally:
        table.token_bytes[:], table.texts[:] = saved


def test_bytes_hex_cells_are_never_numbers_to_a_spreadsheet() -> None:
    """`00`, `40` or `4040` would become numbers in LibreOffice and Excel: the cell carries `0x`."""
    from glitchview.core.store.export import hex_cell, read_hex_cell

    for data in (b"\x00", b"@", b"@@", b"\x12\x34", b""):
        cell = hex_cell(data)
        assert cell.startswith("0x") and not cell.isdigit() and read_hex_cell(cell) == data
