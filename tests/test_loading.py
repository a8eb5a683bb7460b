"""Tiny models in the three forms load through the same code path, and bad inputs end in the
typed error with a clear message (never a traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TinyModel

from glitchview.core.errors import MissingDemoPackageError, ModelLoadError, NoEmbeddingError
from glitchview.core.model.loading import load_model
from glitchview.core.model.sources import DEMO_MODELS, resolve
from glitchview.core.pipeline import open_model, scan


@pytest.mark.parametrize("fixture", ["tiny_hf", "tiny_untied", "tiny_gguf"])
def test_three_forms_load_the_exact_matrices(fixture: str, request: pytest.FixtureRequest) -> None:
    tiny: TinyModel = request.getfixturevalue(fixture)
    model = open_model(str(tiny.path))
    np.testing.assert_array_equal(model.input_embeddings, tiny.embeddings)
    if tiny.unembedding is None:
        assert model.tied and model.output_embeddings is None
    else:
        assert not model.tied
        np.testing.assert_array_equal(model.output_embeddings, tiny.unembedding)
    assert model.tokenizer.get_vocab_size() == tiny.vocab_size
    assert model.generative


@pytest.mark.parametrize("fixture", ["tiny_hf", "tiny_untied", "tiny_gguf"])
def test_planted_untrained_rows_rank_first(fixture: str, request: pytest.FixtureRequest) -> None:
    tiny: TinyModel = request.getfixturevalue(fixture)
    _, analysis = scan(str(tiny.path))
    planted = set(tiny.planted)
    assert planted <= set(analysis.top("norm", 19).tolist())
    assert planted <= set(analysis.top("unembedding_cosine", 19).tolist())
    assert "bytes never in UTF-8" in analysis.reference.rule
    assert not any(np.isnan(v).any() for v in analysis.scores.values())


def test_gguf_second_open_reads_the_cache(tiny_gguf: TinyModel) -> None:
    first = open_model(str(tiny_gguf.path))
    second = open_model(str(tiny_gguf.path))
    assert any("cache" in note for note in second.notes)
    assert second.folder == first.folder and (second.folder / "tokenizer.json").exists()
    np.testing.assert_array_equal(first.input_embeddings, second.input_embeddings)


def test_missing_path() -> None:
    with pytest.raises(ModelLoadError, match="no model at"):
        resolve("/nonexistent/model-folder")


def test_text_file_named_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("this is not a model\n")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        open_model(str(fake))


def test_zero_byte_gguf(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.touch()
    with pytest.raises(ModelLoadError, match="empty"):
        open_model(str(empty))


def test_truncated_gguf(tiny_gguf: TinyModel, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    data = tiny_gguf.path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cannot read GGUF"):
        open_model(str(cut))


def test_folder_without_weights(tiny_hf: TinyModel, tmp_path: Path) -> None:
    folder = tmp_path / "no-weights"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(tiny_hf.path / name, folder / name)
    with pytest.raises(ModelLoadError, match="no weights"):
        open_model(str(folder))


def test_truncated_safetensors(tiny_hf: TinyModel, tmp_path: Path) -> None:
    folder = tmp_path / "truncated"
    shutil.copytree(tiny_hf.path, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        open_model(str(folder))


def test_weights_without_embedding_matrix(tiny_hf: TinyModel, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "no-embedding"
    shutil.copytree(tiny_hf.path, folder)
    state = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in state.items() if "embed" not in k}, str(folder / "model.safetensors"))
    with pytest.raises(NoEmbeddingError, match="no token-embedding matrix"):
        open_model(str(folder))


def test_custom_code_config_is_never_run(tiny_hf: TinyModel, tmp_path: Path) -> None:
    folder = tmp_path / "custom-code"
    shutil.copytree(tiny_hf.path, folder)
    marker = tmp_path / "code-ran"
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    model = load_model(resolve(str(folder)))
    assert model.input_embeddings.shape == tiny_hf.embeddings.shape
    assert any("custom code" in note for note in model.notes)
    assert not marker.exists()


def test_missing_demo_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import glitchview.core.model.sources as sources

    monkeypatch.setitem(sources.DEMO_MODELS, "absent", sources.DemoModel(
        "absent", "Absent demo", "glitchview-absent-demo", "glitchview_absent_demo",
        "pip install glitchview-absent-demo", 10, 4, True, 1))
    with pytest.raises(MissingDemoPackageError, match="pip install glitchview-absent-demo"):
        resolve("absent")
    assert "smollm2" in DEMO_MODELS
