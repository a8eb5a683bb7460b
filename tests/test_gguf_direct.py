"""The direct GGUF reader: every quantisation type gguf's writer can produce is read back within
that type's tolerance; a whole tiny model opens without the whole-model conversion, which is done
only when the network is built; bad files end in one clear typed error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import quants
from tiny_models import TinyModel, write_gguf, write_matrix_gguf

from glitchview.core.errors import ModelLoadError, NoEmbeddingError, UnsupportedQuantizationError
from glitchview.core.model.gguf_direct import read_embeddings, read_header
from glitchview.core.model.loading import fingerprint, load_model
from glitchview.core.model.sources import resolve

# largest error allowed, as a share of the largest |value| of each 32-value block: half a quantisation
# step of the type (measured on Gaussian rows, with a margin); the ternary types hold ternary rows
TOLERANCE = {Q.F32: 0.0, Q.F16: 1e-3, Q.BF16: 4e-3, Q.Q8_0: 5e-3, Q.Q5_1: 0.035, Q.Q5_0: 0.065,
             Q.Q4_1: 0.07, Q.Q4_0: 0.13, Q.MXFP4: 0.26, Q.TQ1_0: 1e-3, Q.TQ2_0: 1e-3}
TERNARY = {Q.TQ1_0, Q.TQ2_0}


def _writable() -> list[Q]:
    """The types gguf's quantiser can write, asked of the installed package."""
    probe = np.ones((1, 256), dtype=np.float32)
    types = []
    for qtype in Q:
        try:
            quants.quantize(probe, qtype)
        except NotImplementedError:
            continue
        types.append(qtype)
    return types


def _reference(qtype: Q, rows: int = 320, cols: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if qtype in TERNARY:  # a ternary model's rows are a scale times -1/0/+1
        return (rng.uniform(0.5, 2.0, size=(rows, 1)) * rng.integers(-1, 2, size=(rows, cols))).astype(np.float32)
    return rng.normal(size=(rows, cols)).astype(np.float32)


def _block_relative_error(got: np.ndarray, want: np.ndarray) -> float:
    scale = np.abs(want).reshape(want.shape[0], -1, 32).max(axis=-1).repeat(32, axis=1)
    return float((np.abs(got - want) / np.maximum(scale, 1e-12)).max())


def test_every_writable_type_has_a_tolerance() -> None:
    assert set(_writable()) == set(TOLERANCE), "a gguf upgrade changed what it can write: add the type here"


@pytest.mark.parametrize("qtype", _writable(), ids=lambda t: t.name)
def test_quantised_matrix_reads_back_within_tolerance(qtype: Q, tmp_path: Path) -> None:
    want = _reference(qtype)
    want_out = _reference(qtype, seed=1)
    path = write_matrix_gguf(tmp_path / f"{qtype.name}.gguf", want, qtype, outputs=want_out)
    header = read_header(path)
    assert header.tensors["token_embd.weight"].type_id == qtype.value
    inputs, outputs = read_embeddings(path, header)
    assert inputs.dtype == np.float32 and inputs.shape == want.shape
    assert outputs is not None and outputs.shape == want_out.shape
    assert _block_relative_error(inputs, want) <= TOLERANCE[qtype]
    assert _block_relative_error(outputs, want_out) <= TOLERANCE[qtype]


def test_row_chunks_join_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dequantised a few rows at a time, the matrix is the same as in one piece."""
    import glitchview.core.model.gguf_direct as direct

    want = _reference(Q.Q4_0, rows=1000)
    path = write_matrix_gguf(tmp_path / "chunks.gguf", want, Q.Q4_0)
    whole, _ = read_embeddings(path, read_header(path))
    monkeypatch.setattr(direct, "_CHUNK_BYTES", 4 * 256 * 7)  # 7 rows per step, 1000 rows
    chunked, _ = read_embeddings(path, read_header(path))
    np.testing.assert_array_equal(whole, chunked)
    assert _block_relative_error(chunked, want) <= TOLERANCE[Q.Q4_0]


def test_tied_output_is_returned_once(tmp_path: Path) -> None:
    want = _reference(Q.F32)
    path = write_matrix_gguf(tmp_path / "tied.gguf", want, Q.F32, outputs=want)
    inputs, outputs = read_embeddings(path, read_header(path))
    assert outputs is None
    np.testing.assert_array_equal(inputs, want)


def test_quantised_tiny_model_opens_without_converting_the_network(tmp_path: Path) -> None:
    from glitchview.core.pipeline import scan_model
    from glitchview.core.verify.probing import load_probe_model

    tiny: TinyModel = write_gguf(tmp_path / "q8.gguf", qtype=Q.Q8_0)
    model = load_model(resolve(str(tiny.path)))
    assert _block_relative_error(model.input_embeddings, tiny.embeddings) <= TOLERANCE[Q.Q8_0]
    assert model.tied and model.generative and model.architecture == "LlamaForCausalLM"
    assert model.tokenizer.get_vocab_size() == tiny.vocab_size
    assert (model.folder / "tokenizer.json").exists()
    assert not (model.folder / "model.safetensors").exists(), "an analysis must not convert the network"
    analysis = scan_model(model, str(tiny.path))
    assert set(tiny.planted) <= set(analysis.top("norm", 19).tolist())
    probe = load_probe_model(model, "float32")  # the network: converted now, on demand
    assert (model.folder / "model.safetensors").exists()
    assert probe.vocab_rows == tiny.vocab_size
    again = load_model(resolve(str(tiny.path)))  # the full conversion's folder is kept, not replaced
    assert (again.folder / "model.safetensors").exists()
    np.testing.assert_array_equal(again.input_embeddings, model.input_embeddings)


def test_type_gguf_cannot_dequantise_is_one_clear_error(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "q8_1.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((8, 40), dtype=np.uint8), raw_dtype=Q.Q8_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedQuantizationError, match=r"token_embd.weight is stored as Q8_1, which gguf"):
        read_embeddings(path, read_header(path))


def test_unknown_type_id_is_one_clear_error(tmp_path: Path) -> None:
    path = write_matrix_gguf(tmp_path / "odd.gguf", _reference(Q.F32, rows=4), Q.F32)
    header = read_header(path)
    data = bytearray(path.read_bytes())
    name = b"token_embd.weight"
    at = data.index(name) + len(name) + 4 + 8 * 2  # past the name, the dim count and two dims
    data[at:at + 4] = (250).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert header.tensors["token_embd.weight"].type_id != 250
    with pytest.raises(ModelLoadError, match="unknown type 250"):  # refused by the bounded header check
        read_embeddings(path, read_header(path))


def test_truncated_data_is_one_clear_error(tmp_path: Path) -> None:
    path = write_matrix_gguf(tmp_path / "cut.gguf", _reference(Q.Q8_0), Q.Q8_0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelLoadError, match="lies outside the file"):  # the bounded header check
        read_embeddings(path, read_header(path))


def test_gguf_without_embedding_matrix(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "no-embedding.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(NoEmbeddingError, match="no token_embd.weight"):
        load_model(resolve(str(path)))


def test_smollm2_reads_as_the_whole_model_conversion_did() -> None:
    """The demo's Q4_1 file: the same matrix as transformers' dequantiser (which the old whole-model
    conversion used) and a tokenizer that names and decodes every id alike, so the same indicators."""
    from glitchview.core.model.sources import demo_installed

    if not demo_installed("smollm2"):
        pytest.skip("the SmolLM2 demo package is not installed")
    from transformers import AutoTokenizer
    from transformers.integrations.gguf.dequant import dequantize
    from transformers.integrations.gguf.reader import GgufHeader, load_gguf_state_dict

    model = load_model(resolve("smollm2"))
    stored = load_gguf_state_dict(GgufHeader.from_file(str(model.source.path)))["token_embd.weight"]
    reference = dequantize(stored[...], stored.ggml_type).reshape(model.input_embeddings.shape).numpy()
    np.testing.assert_array_equal(model.input_embeddings, reference)
    assert model.tied and model.architecture == "LlamaForCausalLM"
    old = AutoTokenizer.from_pretrained(str(model.source.path.parent), gguf_file=model.source.path.name)
    new, ids = model.tokenizer, list(range(model.input_embeddings.shape[0]))
    assert [new.id_to_token(i) for i in ids] == old.convert_ids_to_tokens(ids)
    assert new.decode_batch([[i] for i in ids]) == old.backend_tokenizer.decode_batch([[i] for i in ids])


def test_tokenizer_failure_while_dequantising_is_one_clear_error_and_leaves_no_cache(tmp_path: Path) -> None:
    """The tokenizer is built in a child process while the matrices are dequantised: its failure
    still ends the open with its own message, and no half-built folder is left in the cache."""
    from glitchview.core.model.sources import cache_root

    path = write_matrix_gguf(tmp_path / "no-tokenizer.gguf", _reference(Q.Q8_0, rows=2048), Q.Q8_0)
    source = resolve(str(path))
    with pytest.raises(ModelLoadError, match="no tokenizer can be built from its metadata"):
        load_model(source)
    assert not (cache_root() / "models" / fingerprint(source)).exists()
    assert not list((cache_root() / "models").glob(".staging-*"))


def test_cancel_during_the_open_ends_the_tokenizer_child(tmp_path: Path) -> None:
    import threading

    from glitchview.core.errors import Cancelled
    from glitchview.core.model.sources import cache_root
    from glitchview.core.progress import CancelToken

    tiny = write_gguf(tmp_path / "q8.gguf", seed=5, qtype=Q.Q8_0)  # a file no other test has cached
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()  # the child is still importing transformers then
    before = {t.ident for t in threading.enumerate()}
    source = resolve(str(tiny.path))
    with pytest.raises(Cancelled):
        load_model(source, cancel=cancel)
    assert not [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("gguf-tokenizer")]
    assert not (cache_root() / "models" / fingerprint(source)).exists(), "the child ran on to the end"
