"""Hostile and broken inputs for the core: pickled weights that try to run code, models too big
for memory, tokenizer and matrix that disagree, an unsupported GGUF architecture, a forced offline
mode, newer or half-written analysis files (a writer killed mid-save), and round trips of analysis
files and CSV exports with arbitrary token strings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from analysis_checks import assert_same_analysis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_models import TinyModel, write_gguf

from glitchview.core.errors import AnalysisFileError, ModelLoadError
from glitchview.core.pipeline import ScanSettings, open_model, scan
from glitchview.core.store.analysis_file import load_analysis, save_analysis

EVIL = """
import os
class Evil:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
"""


def _copy_without_weights(tiny: TinyModel, folder: Path) -> Path:
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if (tiny.path / name).exists():
            shutil.copy(tiny.path / name, folder / name)
    return folder


def test_pickled_weights_never_run_code(tiny_hf: TinyModel, tmp_path: Path) -> None:
    import pickle
    import types

    import torch

    marker = tmp_path / "pwned"
    module = types.ModuleType("evil_payload")
    exec(EVIL.format(marker=marker), module.__dict__)  # noqa: S102 (the attack under test)
    folder = _copy_without_weights(tiny_hf, tmp_path / "evil")
    with (folder / "pytorch_model.bin").open("wb") as f:
        pickle.dump({"model.embed_tokens.weight": module.Evil()}, f)
    with pytest.raises(ModelLoadError, match="only plain tensors"):
        open_model(str(folder))
    assert not marker.exists()

    plain = _copy_without_weights(tiny_hf, tmp_path / "plain")
    torch.save({"model.embed_tokens.weight": torch.from_numpy(tiny_hf.embeddings)}, plain / "pytorch_model.bin")
    np.testing.assert_array_equal(open_model(str(plain)).input_embeddings, tiny_hf.embeddings)


def test_too_big_for_memory_is_refused_before_reading(tiny_hf: TinyModel, tiny_gguf: TinyModel, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLITCHVIEW_MEMORY_LIMIT_MB", "0.01")  # a machine with 10 kB to spare
    with pytest.raises(ModelLoadError, match="needs about .* MB of memory"):
        open_model(str(tiny_hf.path))
    fresh = tmp_path / "fresh.gguf"
    fresh.write_bytes(tiny_gguf.path.read_bytes() + b"")  # same content, so use a new cache folder
    monkeypatch.setenv("GLITCHVIEW_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ModelLoadError, match="dequantising .* needs about"):
        open_model(str(fresh))
    monkeypatch.delenv("GLITCHVIEW_MEMORY_LIMIT_MB")
    assert open_model(str(fresh)).input_embeddings.shape == tiny_gguf.embeddings.shape


def test_tokenizer_larger_than_the_matrix_is_a_finding(tiny_hf: TinyModel, tmp_path: Path) -> None:
    from tokenizers import AddedToken, Tokenizer

    folder = tmp_path / "mismatch"
    shutil.copytree(tiny_hf.path, folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.add_tokens([AddedToken(f"orphan{k}", special=False) for k in range(3)])
    tok.save(str(folder / "tokenizer.json"))
    _, analysis = scan(str(folder), ScanSettings(clusters=4))
    n = tiny_hf.vocab_size
    assert len(analysis) == n
    assert any(f"ids {n}..{n + 2} have no embedding" in note for note in analysis.model.notes)


def test_unsupported_gguf_architecture(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "alienformer")
    writer.add_tensor("token_embd.weight", np.ones((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="cannot read GGUF"):
        open_model(str(path))


def test_unknown_architecture_folder_is_analysed_but_not_prompted(tiny_hf: TinyModel, tmp_path: Path) -> None:
    from glitchview.core.errors import GlitchViewError
    from glitchview.core.verify.probing import load_probe_model

    folder = tmp_path / "alien"
    shutil.copytree(tiny_hf.path, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="alienformer", architectures=["AlienformerForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    model, analysis = scan(str(folder), ScanSettings(clusters=4))
    assert len(analysis) == tiny_hf.vocab_size  # the embedding matrix is all an analysis needs
    with pytest.raises(GlitchViewError, match="cannot build"):
        load_probe_model(model)


def test_offline_mode_is_forced_whatever_the_environment() -> None:
    code = ("import os; os.environ['HF_HUB_OFFLINE'] = '0'; import glitchview.core; "
            "print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["1", "1"]


def test_newer_and_foreign_analysis_files(tiny_hf: TinyModel, tmp_path: Path) -> None:
    _, analysis = scan(str(tiny_hf.path), ScanSettings(clusters=4))
    path = save_analysis(analysis, tmp_path / "a.gva.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["version"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    newer = tmp_path / "newer.gva.npz"
    with newer.open("wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(AnalysisFileError, match="newer GlitchView"):
        load_analysis(newer)


def test_a_writer_killed_mid_save_leaves_the_previous_file_intact(tiny_hf: TinyModel, tmp_path: Path) -> None:
    _, analysis = scan(str(tiny_hf.path), ScanSettings(clusters=4))
    target = save_analysis(analysis, tmp_path / "keep.gva.npz")
    before = target.read_bytes()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from glitchview.core.pipeline import scan, ScanSettings
        from glitchview.core.store.analysis_file import save_analysis
        _, a = scan({str(tiny_hf.path)!r}, ScanSettings(clusters=4))
        a.ensure_verdicts().reasons[0] = "x" * 50_000_000  # a long write (of a valid analysis)
        print("saving", flush=True)
        while True:
            save_analysis(a, {str(target)!r})
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "saving"
    time.sleep(0.5)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    after = load_analysis(target)  # whichever version is there, it is whole
    assert len(after) == len(analysis)
    assert target.read_bytes() == before or len(after.verdicts.reasons[0]) == 50_000_000
    leftovers = [p for p in tmp_path.iterdir() if p.name != "keep.gva.npz"]
    assert all(p.name.startswith(".keep.gva.npz.") for p in leftovers)  # only an orphaned temp file


TOKENS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=()), max_size=12)


@pytest.fixture(scope="module")
def small_analysis(tiny_hf: TinyModel):
    return scan(str(tiny_hf.path), ScanSettings(clusters=4))[1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(TOKENS, min_size=3, max_size=3), raw=st.lists(st.binary(max_size=8), min_size=3, max_size=3))
def test_analysis_round_trip_with_arbitrary_tokens(small_analysis, tmp_path_factory, pieces, raw) -> None:
    analysis = small_analysis
    for k in range(3):
        analysis.table.pieces[k], analysis.table.texts[k] = pieces[k], pieces[k][::-1]
        analysis.table.token_bytes[k] = raw[k]
    path = save_analysis(analysis, tmp_path_factory.mktemp("rt") / "a.gva.npz")
    assert_same_analysis(analysis, load_analysis(path))


def test_gguf_fixture_is_reproducible(tmp_path: Path) -> None:
    a, b = write_gguf(tmp_path / "a.gguf"), write_gguf(tmp_path / "b.gguf")
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
