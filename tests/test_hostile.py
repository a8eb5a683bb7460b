"""Hostile inputs, round two (issue 12): special files at output and input paths, header and zip
bombs, damaged analysis files, out-of-range ids and counts, unusual vocabularies and matrices.
Every case ends in a result or in one of our typed errors with a one-line message."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TinyModel

from glitchview.cli import main
from glitchview.core.analysis import Analysis
from glitchview.core.errors import OutputFileError
from glitchview.core.pipeline import ScanSettings, scan
from glitchview.core.store.analysis_file import save_analysis
from glitchview.core.store.export import safe_cell, write_csv, write_json
from glitchview.core.store.files import atomic_write, remove_stale_temporaries


@pytest.fixture(scope="module")
def tiny_analysis(tiny_hf: TinyModel) -> Analysis:
    return scan(str(tiny_hf.path), ScanSettings(clusters=4))[1]


@pytest.fixture(scope="module")
def saved(tiny_analysis: Analysis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_analysis(tiny_analysis, tmp_path_factory.mktemp("saved") / "a.gva.npz")


def _one_line_error(capsys, args: list[str], message: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert message in err[0] and "Traceback" not in err[0] and "\x1b" not in err[0]


# --- item 1: saving never replaces what is at the path ---------------------------------------

def test_saving_to_a_character_device_writes_through(tiny_analysis: Analysis, tmp_path: Path) -> None:
    """A null device of the test's own (as root: mknod) stands for /dev/null, so that a regression
    replaces the test's file and never the machine's /dev/null."""
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        device = Path("/dev/null")  # not root: the system's, which an unprivileged writer cannot replace
    before = os.stat(device)
    assert write_csv(tiny_analysis, device, [1, 2], "norm") == 2
    after = os.stat(device)
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev, before.st_ino)


def test_saving_to_a_fifo_writes_through_or_refuses(tiny_analysis: Analysis, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(OutputFileError, match="FIFO that nobody reads"):  # never hangs waiting for one
        write_csv(tiny_analysis, fifo, [1], "norm")
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # once the reader waits in open(), a writer writes through
        try:
            write_csv(tiny_analysis, fifo, [1, 2, 3], "norm")
            break
        except OutputFileError:
            time.sleep(0.01)
    reader.join(10)
    assert fifo.is_fifo() and received[0].count(b"\r\n") == 4


def test_saving_through_a_symlink_replaces_its_target(tiny_analysis: Analysis, tmp_path: Path) -> None:
    target = tmp_path / "real" / "out.csv"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write_csv(tiny_analysis, link, [1, 2], "norm")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text(encoding="utf-8").startswith("id,piece")
    assert not list(target.parent.glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_saving_over_a_folder_is_refused(tiny_analysis: Analysis, tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(OutputFileError, match="it is a folder"):
        write_csv(tiny_analysis, tmp_path / "dir.csv", [1], "norm")
    assert (tmp_path / "dir.csv").is_dir()


def test_export_over_its_own_analysis_is_refused(saved: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "a.gva.npz"
    shutil.copy(saved, copy)
    link = tmp_path / "other-name.csv"
    link.symlink_to(copy)
    for out in (copy, link):
        _one_line_error(capsys, ["export", str(copy), "--out", str(out)], "over the input file")
    assert copy.read_bytes() == saved.read_bytes()
    _one_line_error(capsys, ["scan", "/no/model", "--out", str(tmp_path / "x"), "--session", str(tmp_path / "x")],
                    "refusing to write")  # two outputs of one command, refused before any work


# --- item 16: stale temporary files of dead writers are cleaned --------------------------------

def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    target = tmp_path / "a.csv"
    stale = tmp_path / f".a.csv.{dead_pid}.x1y2.tmp"
    live = tmp_path / f".a.csv.{os.getppid()}.z3w4.tmp"  # a live writer: kept
    other = tmp_path / f".b.csv.{dead_pid}.q5.tmp"  # another file's: kept
    for path in (stale, live, other):
        path.write_text("partial")
    with atomic_write(target, "w") as handle:
        handle.write("new")
    assert target.read_text() == "new"
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(target) == []


# --- item 12 and 16: strict JSON, one-to-one CSV cells ------------------------------------------

def test_json_export_writes_null_for_nan_and_infinity(tiny_analysis: Analysis, tmp_path: Path) -> None:
    tiny_analysis.scores["norm"][[1, 2]] = [np.nan, np.inf]
    try:
        write_json(tiny_analysis, tmp_path / "a.json", [1, 2, 3], "norm")
    finally:
        tiny_analysis.scores["norm"][[1, 2]] = 1.0
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    rows = json.loads(text, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}"))["tokens"]
    by_id = {row["id"]: row for row in rows}
    assert by_id["1"]["norm"] is None and by_id["2"]["norm"] is None and isinstance(by_id["3"]["norm"], float)


@pytest.mark.parametrize("a, b", [("'=already", "=already"), ("'+1", "+1"), ("''x", "'x")])
def test_csv_cells_stay_one_to_one(a: str, b: str) -> None:
    assert safe_cell(a) != safe_cell(b)
    assert safe_cell(a).startswith("'") and safe_cell(b).startswith("'")
    assert safe_cell(a)[1:] == a and safe_cell(b)[1:] == b


# --- items 4 and 13: ids and counts on the command line -----------------------------------------

@pytest.mark.parametrize("args, message", [
    (["scan", "smollm2", "--top", "-5"], "argument --top: expected a positive whole number, got -5"),
    (["scan", "smollm2", "--top", "0"], "expected a positive whole number, got 0"),
    (["scan", "smollm2", "-k", "0"], "expected a number of clusters from 1 to 10000, got 0"),
    (["verify", "smollm2", "-k", "10001"], "expected a number of clusters from 1 to 10000, got 10001"),
    (["scan", "smollm2", "--seed", "1e23"], "expected a seed between 0 and 4294967295"),
    (["scan", "smollm2", "--seed", "100000000000000000000000"], "expected a seed between"),
    (["verify", "smollm2", "--top=-3", "--sample", "0"], "argument --top: expected a positive whole number"),
    (["verify", "smollm2", "--sample=-5"], "argument --sample: expected a whole number, 0 or more, got -5"),
    (["verify", "smollm2", "--ids=-1"], "argument --ids: expected comma-separated token ids"),
    (["verify", "smollm2", "--ids", "3,-1"], "got -1"),
    (["verify", "smollm2", "--ids", ","], "expected comma-separated token ids"),
    (["scan", "smollm2", "--reference-ids", "-4"], "expected comma-separated token ids"),
    (["export", "x.gva.npz", "--out", "y.csv", "--top", "0"], "argument --top: expected a positive whole number"),
])
def test_bad_counts_ids_and_seeds_are_argument_errors(args: list[str], message: str, capsys) -> None:
    _one_line_error(capsys, args, message)


def test_ids_past_the_matrix_are_crash_findings(tiny_hf: TinyModel, tmp_path: Path, capsys) -> None:
    from tokenizers import AddedToken, Tokenizer

    folder = tmp_path / "mismatch"
    shutil.copytree(tiny_hf.path, folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.add_tokens([AddedToken(f"orphan{k}", special=False) for k in range(3)])
    tok.save(str(folder / "tokenizer.json"))
    n = tiny_hf.vocab_size
    session, out = tmp_path / "v.gva.npz", tmp_path / "v.csv"
    code = main(["verify", str(folder), "-k", "3", "--ids", f"5,{n + 1}", "--session", str(session),
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"crash {n + 1}: crash: id {n + 1} has no embedding row" in captured.out
    assert "Verdicts:" in captured.out and "crash 1" in captured.out
    from glitchview.core.store.analysis_file import load_analysis

    verdicts = load_analysis(session).verdicts
    assert verdicts.is_verified(5) and not verdicts.is_verified(n - 1)  # nothing landed on the last row


# --- items 3, 6, 11: damaged and hostile analysis files ------------------------------------------

def _members(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, json.loads(arrays["meta"].tobytes())


def _write(path: Path, arrays: dict[str, np.ndarray], meta: object, raw_meta: bytes | None = None) -> Path:
    meta_bytes = raw_meta if raw_meta is not None else json.dumps(meta).encode()
    np.savez(path, **{**arrays, "meta": np.frombuffer(meta_bytes, dtype=np.uint8)})
    return path


def _damage(saved: Path, tmp_path: Path, change) -> Path:
    arrays, meta = _members(saved)
    change(arrays, meta)
    return _write(tmp_path / "damaged.gva.npz", arrays, meta)


def _set(name: str, make):
    return lambda arrays, meta: arrays.__setitem__(name, make(arrays[name]))


def _set_meta(*keys, value):
    def change(arrays, meta):
        target = meta
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


def _with_verdict(code: int):
    def change(arrays, meta):
        n = len(arrays["labels"])
        arrays["verdict"] = np.full(n, code, dtype=np.int8)
        arrays["max_prob"] = np.zeros(n, dtype=np.float32)
        arrays["reasons_blob"], arrays["reasons_offsets"] = np.zeros(0, np.uint8), np.zeros(n + 1, np.int64)
    return change


DAMAGE = {
    "labels of a million": (_set("labels", lambda a: np.full_like(a, 10**6)), "cluster labels out of range"),
    "negative label": (_set("labels", lambda a: np.where(np.arange(len(a)) == 3, -1, a)), "cluster labels"),
    "short labels": (_set("labels", lambda a: a[:-1]), "member labels has shape"),
    "short flag": (_set("flag_special", lambda a: a[:-1]), "member flag_special has shape"),
    "short text offsets": (_set("texts_offsets", lambda a: a[:-2]), "member texts_offsets has shape"),
    "short category": (_set("category", lambda a: a[:5]), "member category has shape"),
    "category code": (_set("category", lambda a: np.full_like(a, 99)), "category codes out of range"),
    "offsets past the blob": (_set("pieces_offsets", lambda a: a + 5), "pieces offsets"),
    "offsets not monotone": (_set("bytes_offsets", lambda a: a[::-1].copy()), "bytes offsets"),
    "too many centres": (_set("centers", lambda a: np.repeat(a, 200, axis=0)), "cluster centres for"),
    "selection of ids": (lambda arrays, meta: arrays.update(selection=np.array([3, 10**6])), "member selection has"),
    "short selection": (lambda arrays, meta: arrays.update(selection=np.ones(7, dtype=bool)), "member selection has"),
    "reference id": (_set("reference_ids", lambda a: a + 10**6), "reference ids out of range"),
    "object dtype": (_set("flagged", lambda a: a.astype(np.float64)), "member flagged has dtype float64"),
    "verdict code": (_with_verdict(42), "verdict codes out of range"),
    "version string": (_set_meta("version", value="2"), "format version '2'"),
    "version null": (_set_meta("version", value=None), "format version None"),
    "n_tokens string": (_set_meta("model", "n_tokens", value="320"), "model field 'n_tokens'"),
    "n_tokens wrong": (_set_meta("model", "n_tokens", value=5), "has shape"),
    "dim huge": (_set_meta("model", "dim", value=10**12), "dimensions"),
    "scores not a list": (_set_meta("scores", value="norm"), "list of scores"),
    "settings a list": (_set_meta("settings", value=[1]), "settings, inertia or reference rule"),
    "projection NaN": (_set("projection_pca", lambda a: np.full_like(a, np.nan)), "projection_pca holds NaN"),
    "member missing": (lambda arrays, meta: arrays.pop("centers"), "member centers is missing"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_analysis_files_give_one_clear_error(case: str, saved: Path, tmp_path: Path, capsys) -> None:
    change, message = DAMAGE[case]
    path = _damage(saved, tmp_path, change)
    _one_line_error(capsys, ["export", str(path), "--out", str(tmp_path / "x.csv")], message)


@pytest.mark.parametrize("meta, message", [
    (b"[1, 2]", "not a GlitchView analysis file"),
    (b"null", "not a GlitchView analysis file"),
    (b"[" * 100_000 + b"]" * 100_000, "unreadable metadata"),
    (b"\xff\xfe", "unreadable metadata"),
])
def test_foreign_metadata_is_refused(meta: bytes, message: str, saved: Path, tmp_path: Path, capsys) -> None:
    arrays, _ = _members(saved)
    path = _write(tmp_path / "foreign.gva.npz", arrays, None, raw_meta=meta)
    _one_line_error(capsys, ["export", str(path), "--out", str(tmp_path / "x.csv")], message)


def _npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_member_header_claiming_a_terabyte_is_refused_before_reading(saved: Path, tmp_path: Path, capsys) -> None:
    import zipfile

    path = tmp_path / "claim.gva.npz"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "pieces_blob.npy":
                data = _npy_header("|u1", (2**40,)) + b"\0" * 64
            dst.writestr(info.filename, data)
    _one_line_error(capsys, ["export", str(path), "--out", str(tmp_path / "x.csv")],
                    "member pieces_blob's header claims 1,099,511,627,776 bytes")


def test_zip_bombs_are_never_inflated(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys) -> None:
    import resource
    import time
    import zipfile

    from glitchview.core.store.analysis_file import load_analysis

    bomb = _npy_header("|u1", (512 * 2**20,))
    extra, defined = tmp_path / "extra.gva.npz", tmp_path / "defined.gva.npz"
    shutil.copy(saved, extra)
    with zipfile.ZipFile(extra, "a", compression=zipfile.ZIP_DEFLATED) as archive:  # a member the format lacks
        with archive.open("bomb.npy", "w", force_zip64=True) as member:
            member.write(bomb)
            for _ in range(512):
                member.write(bytes(2**20))
    assert extra.stat().st_size < 4 * 2**20
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(defined, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != "texts_blob.npy":
                dst.writestr(info.filename, src.read(info))
        with dst.open("texts_blob.npy", "w", force_zip64=True) as member:  # a defined member, hugely inflated
            member.write(bomb)
            for _ in range(512):
                member.write(bytes(2**20))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    assert len(load_analysis(extra)) == len(load_analysis(saved))  # the stranger is never read
    monkeypatch.setenv("GLITCHVIEW_MEMORY_LIMIT_MB", "256")
    _one_line_error(capsys, ["export", str(defined), "--out", str(tmp_path / "x.csv")],
                    "member texts_blob declares 536,871,040 bytes, more than the")
    assert time.monotonic() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 100 * 1024  # kB: nothing was inflated


def test_unknown_indicators_and_view_choices_are_dropped(saved: Path, tmp_path: Path) -> None:
    from glitchview.core.store.analysis_file import load_analysis

    def change(arrays, meta):
        arrays["score_from_the_future"] = arrays["score_norm"]
        meta["scores"].append("from_the_future")
        meta["settings"]["indicator"] = "from_the_future"
        meta["view"] = {"colour_by": "from_the_future", "indicator": "from_the_future", "projection": "tsne",
                        "zoom": 2.5, "nested": {"a": 1}}

    analysis = load_analysis(_damage(saved, tmp_path, change))
    assert "from_the_future" not in analysis.scores
    assert analysis.settings["indicator"] in analysis.scores
    assert analysis.view == {"zoom": 2.5}
    assert any("from_the_future" in note for note in analysis.model.notes)


def test_a_fifo_is_not_an_analysis_file(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "a.gva.npz"
    os.mkfifo(fifo)
    _one_line_error(capsys, ["export", str(fifo), "--out", str(tmp_path / "x.csv")], "not a regular file")
