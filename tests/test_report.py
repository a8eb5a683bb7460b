"""The per-model report of a verified analysis (a tiny model verified by the real repetition test,
one prompt run recorded): every verified glitch token is in the HTML (read with an HTML parser) and
the Markdown, every embedded picture decodes, and headless Chromium renders it without console
messages."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TinyModel

from glitchview.cli import main
from glitchview.core import operations
from glitchview.core.store.report import md_escape, write_report
from glitchview.core.store.text import escape_text
from glitchview.core.verify.generation import GenerationSettings
from glitchview.core.verify.verdicts import is_glitch


class ReportParser(HTMLParser):
    """The text of every table cell of class `token`, and every image source."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[str] = []
        self.images: list[str] = []
        self.cells: list[str] = []
        self._in_token = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "td":
            self._in_token = attributes.get("class") == "token"
            self.cells.append("")
            if self._in_token:
                self.tokens.append("")
        if tag == "img":
            self.images.append(attributes["src"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_token = False

    def handle_data(self, data: str) -> None:
        if self.cells and self.lasttag == "td":
            self.cells[-1] += data
        if self._in_token:
            self.tokens[-1] += data


def png_decodes(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, decoded by PIL when installed, else checked by its signature, IHDR and
    a full inflate of its image data."""
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size
    except ImportError:
        import struct

        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        chunks, pos = b"", 8
        while pos < len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            if kind == b"IDAT":
                chunks += data[pos + 8:pos + 8 + length]
            pos += 12 + length
        zlib.decompress(chunks)
        return width, height


@pytest.fixture(scope="module")
def verified(tiny_hf: TinyModel):
    """A session of the tiny model with its 60 most suspicious tokens verified and one prompt run."""
    session = operations.open_model(str(tiny_hf.path)).session()
    ids = session.analysis.top("unembedding_cosine", 60)
    session.apply(operations.verify(session.snapshot("verify"), ids, "full"))
    glitch = np.flatnonzero(is_glitch(session.analysis.verdicts.verdict))
    assert len(glitch) >= 5
    session.set_token(int(glitch[0]))
    session.apply(operations.run_prompt(session.snapshot("prompt"), "Say {token} again: ",
                                        GenerationSettings(max_new_tokens=8), lambda *a: None, lambda *a: None))
    return session


@pytest.fixture(scope="module")
def report(verified, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    write_report(verified.analysis, folder)
    return folder


def test_report_holds_every_verified_glitch_token(verified, report: Path) -> None:
    a = verified.analysis
    glitch = np.flatnonzero(is_glitch(a.verdicts.verdict))
    parser = ReportParser()
    parser.feed((report / "report.html").read_text(encoding="utf-8"))
    assert sorted(parser.tokens) == sorted(escape_text(a.table.texts[i]) for i in glitch)
    for i in glitch:
        assert str(i) in parser.cells
    output = a.verdicts.history[0]["runs"][0]["output"]
    assert any(escape_text(output) in cell for cell in parser.cells)  # the prompt's output is shown
    assert "<th>P@50</th>" in (report / "report.html").read_text(encoding="utf-8")  # the quality table
    markdown = (report / "report.md").read_text(encoding="utf-8")
    for i in glitch:
        assert md_escape(escape_text(a.table.texts[i])) in markdown
    assert '"bad_words_ids"' in markdown and (report / "glitch-filter.json").exists()


def test_every_embedded_picture_decodes(report: Path) -> None:
    parser = ReportParser()
    parser.feed((report / "report.html").read_text(encoding="utf-8"))
    assert len(parser.images) == 3  # map, distributions, precision@k
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        width, height = png_decodes(base64.b64decode(src.split(",", 1)[1], validate=True))
        assert width > 300 and height > 200
    for png in report.glob("report-*.png"):
        png_decodes(png.read_bytes())


def test_chromium_renders_it_without_console_messages(verified, report: Path) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); the browser check needs it")
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                              "--disable-component-update", "--disable-sync", "--no-first-run",
                              f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom",
                              (report / "report.html").as_uri()], check=False, capture_output=True, text=True,
                             timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    parser = ReportParser()
    parser.feed(run.stdout)  # the DOM the browser built
    a = verified.analysis
    assert sorted(parser.tokens) == sorted(escape_text(a.table.texts[i]) for i in np.flatnonzero(is_glitch(a.verdicts.verdict)))
    assert len(parser.images) == 3


def test_cli_report_of_an_analysis_file(verified, tmp_path: Path, capsys) -> None:
    session_file = tmp_path / "v.gva.npz"
    verified.apply(operations.save(verified.snapshot("save"), session_file))
    assert main(["report", str(session_file), "--out", str(tmp_path / "out")]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (tmp_path / "out" / "report.md").exists()
    assert main(["report", str(tmp_path / "missing.gva.npz"), "--out", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_report_of_a_verified_smollm2_analysis(smollm2_scan, tmp_path: Path) -> None:
    """The same checks on the real demo model, its 40 most suspicious tokens verified (full test)."""
    import dataclasses

    from glitchview.core.view.prepare import prepare_view_data

    model, scanned = smollm2_scan
    analysis = dataclasses.replace(scanned, verdicts=None, flagged=scanned.flagged.copy(), rankings={})
    session = operations.Opened(analysis, prepare_view_data(analysis), model).session()
    session.apply(operations.verify(session.snapshot("verify"), analysis.top("unembedding_cosine", 40), "full"))
    glitch = np.flatnonzero(is_glitch(session.analysis.verdicts.verdict))
    assert len(glitch) >= 10
    write_report(session.analysis, tmp_path)
    parser = ReportParser()
    parser.feed((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert sorted(parser.tokens) == sorted(escape_text(session.analysis.table.texts[i]) for i in glitch)
    for src in parser.images:
        png_decodes(base64.b64decode(src.split(",", 1)[1], validate=True))
