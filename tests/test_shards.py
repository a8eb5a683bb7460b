"""Sharded safetensors: the index leads to the shards with the embedding matrices and no other shard
is opened (a corrupt one does not stop the model opening); bf16/fp16 are converted to float32 a
block of rows at a time, exactly; a missing shard or a corrupt index is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import TinyModel, write_sharded_folder

from glitchview.core.errors import ModelLoadError
from glitchview.core.model.loading import load_model
from glitchview.core.model.sources import resolve

OTHER_SHARD = "model-00003-of-00003.safetensors"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return write_sharded_folder(tmp_path_factory.mktemp("sharded") / "bf16")


def _copy(tiny: TinyModel, folder: Path) -> Path:
    import shutil

    shutil.copytree(tiny.path, folder)
    return folder


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_only_the_embedding_shards_are_read(dtype: torch.dtype, tmp_path: Path) -> None:
    tiny = write_sharded_folder(tmp_path / "model", dtype=dtype)
    (tiny.path / OTHER_SHARD).write_bytes(b"\xff" * 4096)  # corrupt: opening it would fail
    model = load_model(resolve(str(tiny.path)))
    assert not model.tied
    np.testing.assert_array_equal(model.input_embeddings, tiny.embeddings)
    np.testing.assert_array_equal(model.output_embeddings, tiny.unembedding)
    assert model.input_embeddings.dtype == np.float32


def test_the_other_shard_really_is_corrupt(sharded: TinyModel, tmp_path: Path) -> None:
    """The check above can fail: without the index, every shard is opened and the corrupt one is hit."""
    folder = _copy(sharded, tmp_path / "no-index")
    (folder / OTHER_SHARD).write_bytes(b"\xff" * 4096)
    (folder / "model.safetensors.index.json").unlink()
    with pytest.raises(ModelLoadError, match=OTHER_SHARD):
        load_model(resolve(str(folder)))


def test_rows_converted_in_blocks_are_exact(sharded: TinyModel, monkeypatch: pytest.MonkeyPatch) -> None:
    import glitchview.core.model.shards as shards

    monkeypatch.setattr(shards, "_CHUNK_BYTES", 4 * 32 * 7)  # 7 rows per block of a 320-row matrix
    model = load_model(resolve(str(sharded.path)))
    np.testing.assert_array_equal(model.input_embeddings, sharded.embeddings)
    np.testing.assert_array_equal(model.output_embeddings, sharded.unembedding)


def test_missing_embedding_shard(sharded: TinyModel, tmp_path: Path) -> None:
    folder = _copy(sharded, tmp_path / "missing")
    (folder / "model-00001-of-00003.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"missing shard model-00001-of-00003.safetensors .*embed_tokens"):
        load_model(resolve(str(folder)))


@pytest.mark.parametrize("text", ["{not json", '{"metadata": {}}', '{"weight_map": []}'],
                         ids=["not-json", "no-weight-map", "weight-map-not-a-mapping"])
def test_corrupt_index(text: str, sharded: TinyModel, tmp_path: Path) -> None:
    folder = _copy(sharded, tmp_path / "bad-index")
    (folder / "model.safetensors.index.json").write_text(text)
    with pytest.raises(ModelLoadError, match="corrupt model.safetensors.index.json"):
        load_model(resolve(str(folder)))


def test_sharded_model_scans_like_the_single_file(sharded: TinyModel) -> None:
    from glitchview.core.pipeline import scan

    _, analysis = scan(str(sharded.path))
    assert set(sharded.planted) <= set(analysis.top("norm", 19).tolist())
    index = json.loads((sharded.path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3
