"""The headless command line: a real scan, exports from a saved analysis, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import TinyModel

from glitchview.cli import main


def test_scan_prints_both_ends_and_writes_files(tiny_hf: TinyModel, tmp_path: Path, capsys) -> None:
    out, session = tmp_path / "t.csv", tmp_path / "t.gva.npz"
    code = main(["scan", str(tiny_hf.path), "-k", "4", "--indicator", "norm", "--top", "5",
                 "--out", str(out), "--session", str(session)])
    captured = capsys.readouterr()
    assert code == 0
    assert "Top 5 by norm, low end (suspicious end)" in captured.out
    assert "Top 5 by norm, high end (other end)" in captured.out
    assert "Clustering" in captured.err and "Load model" in captured.err
    assert out.read_text(encoding="utf-8").count("\n") == tiny_hf.vocab_size + 1
    assert session.exists()
    first_row = next(line for line in captured.out.splitlines() if line.strip().startswith("1 "))
    assert int(first_row.split()[1]) in tiny_hf.planted or "byte_fragment" in first_row

    json_out = tmp_path / "top.json"
    assert main(["export", str(session), "--out", str(json_out), "--top", "3"]) == 0
    assert json_out.read_text(encoding="utf-8").count('"id"') == 3


@pytest.mark.parametrize("args, message", [
    (["scan", "/no/such/model"], "no model at"),
    (["scan", "nope.gguf"], "no model at"),
    (["export", "/no/such.gva.npz", "--out", "x.csv"], "no analysis file"),
    (["scan", "smollm2", "-k", "0"], "expected a number of clusters from 1"),
    (["verify", "smollm2", "--server", "http://127.0.0.1:9/v1", "--rate-limit", "-1"], "expected requests per second"),
])
def test_errors_are_one_line_and_nonzero(args: list[str], message: str, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_server_options_reach_the_engine_choice() -> None:
    from glitchview.cli.arguments import build_parser
    from glitchview.cli.verify import engine_choice

    args = ["verify", "smollm2", "--server", "http://127.0.0.1:9/v1", "--concurrency", "3", "--rate-limit", "2.5"]
    choice = engine_choice(build_parser().parse_args(args))
    assert (choice.engine, choice.concurrency, choice.rate_limit) == ("server", 3, 2.5)
    assert engine_choice(build_parser().parse_args(args[:4])).rate_limit == 0.0  # no limit unless asked


def test_verify_refuses_an_encoder_clearly(capsys) -> None:
    assert main(["verify", "minilm", "--ids", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot generate" in err[-1] and err[-1].startswith("glitchview: error:")
    assert not any("Traceback" in line or "Token table" in line for line in err)  # refused before any work


def test_python_dash_m_and_bad_gguf_in_a_real_process(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    result = subprocess.run([sys.executable, "-m", "glitchview", "scan", str(fake)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "not a GGUF file" in result.stderr and "Traceback" not in result.stderr
    listing = subprocess.run([sys.executable, "-m", "glitchview", "models"], capture_output=True, text=True,
                             timeout=60)
    assert listing.returncode == 0 and "smollm2" in listing.stdout and "(default)" in listing.stdout


def test_the_recommended_score_is_the_default(tiny_hf: TinyModel, capsys) -> None:
    from glitchview.cli import build_parser
    from glitchview.core.analysis import DEFAULT_INDICATOR
    from glitchview.core.pipeline import ScanSettings

    assert build_parser().parse_args(["scan"]).indicator == "glitch_score" == DEFAULT_INDICATOR
    assert ScanSettings().indicator == "glitch_score"
    assert main(["scan", str(tiny_hf.path), "-k", "4", "--top", "3"]) == 0
    assert "Top 3 by glitch_score, low end (suspicious end)" in capsys.readouterr().out
    assert main(["indicators"]) == 0
    listing = capsys.readouterr().out
    assert "glitch_score" in listing and "(recommended, the default)" in listing
    assert "low end: the knot" in listing and "high end: the seed's direction" in listing


def test_verify_ids_needs_only_the_model(tiny_hf: TinyModel, capsys) -> None:
    assert main(["verify", str(tiny_hf.path), "--ids", "1,2,3", "--mode", "fast"]) == 0
    captured = capsys.readouterr()
    assert "Verify (fast)" in captured.err and "Load model" in captured.err
    assert "Clustering" not in captured.err and "Indicators" not in captured.err  # no analysis step ran
    assert "no analysis needed" in captured.out and "Verdicts:" in captured.out


def test_verify_top_reuses_the_saved_analysis(tiny_hf: TinyModel, tmp_path: Path, capsys) -> None:
    session = tmp_path / "t.gva.npz"
    assert main(["scan", str(tiny_hf.path), "-k", "4", "--session", str(session)]) == 0
    capsys.readouterr()
    assert main(["verify", str(tiny_hf.path), "--top", "3", "--sample", "2", "--session", str(session)]) == 0
    captured = capsys.readouterr()
    assert "Clustering" not in captured.err and f"reused the analysis saved in {session}" in captured.out
    assert "P@" in captured.out and "unverified@" in captured.out


def test_verify_top_reuses_the_models_cached_analysis(tiny_untied: TinyModel, capsys) -> None:
    """Without --session, `verify --top` takes the model's last analysis from the analysis cache
    (written by `scan` or the window) instead of clustering again."""
    from glitchview.core.model.sources import fingerprint, resolve
    from glitchview.core.store import analysis_cache

    assert main(["scan", str(tiny_untied.path), "--top", "3"]) == 0
    assert analysis_cache.load_cached(fingerprint(resolve(str(tiny_untied.path)))) is not None
    capsys.readouterr()
    assert main(["verify", str(tiny_untied.path), "--top", "3", "--sample", "2", "--mode", "fast"]) == 0
    captured = capsys.readouterr()
    assert "Clustering" not in captured.err and "reused its last analysis" in captured.out


@pytest.mark.slow
def test_hunt_learns_on_smollm2_and_saves_the_token_structure(tmp_path: Path, capsys) -> None:
    """`glitchview hunt`: verifies a budget of informative tokens, fits the detector, checks the top of
    its new ranking, and saves the analysis with the token structure it learnt from (which opening
    the model no longer computes)."""
    from glitchview.core.model.token_structure import STRUCTURE
    from glitchview.core.store.analysis_file import load_analysis
    from glitchview.core.verify.verdicts import is_verified

    session = tmp_path / "hunt.gva.npz"
    assert main(["hunt", "smollm2", "--budget", "60", "--check", "8", "--session", str(session)]) == 0
    out = capsys.readouterr().out
    assert "Verified 60 chosen tokens" in out and "Detector fitted on" in out and "Precision@8" in out
    assert "Top 8 of the detector's new ranking, never verified before, full test:" in out
    saved = load_analysis(session)
    assert set(saved.table.structure) == set(STRUCTURE) and saved.table.structure["consumed_share"].any()
    assert int(is_verified(saved.verdicts.verdict).sum()) >= 60 + 8
