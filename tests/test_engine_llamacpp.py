"""The llama.cpp engine on SmolLM2's own GGUF file (Q4_1, as shipped): its verdicts agree with the torch
engine's on the same weights, the prompt editor streams through it, and the command line runs it end to
end. Needs llama-cpp-python: `make test-engines` installs it and runs these."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from glitchview.cli import main
from glitchview.core.errors import GlitchViewError
from glitchview.core.pipeline import open_model, scan
from glitchview.core.verify.engines import EngineChoice, load_engine
from glitchview.core.verify.engines.llamacpp_engine import host_simd
from glitchview.core.verify.generation import GenerationSettings, generate
from glitchview.core.verify.probing import load_probe_model, verify_tokens
from glitchview.core.verify.templates import encode_template
from glitchview.core.verify.verdicts import is_glitch

pytestmark = [pytest.mark.engines, pytest.mark.slow]


@pytest.fixture(scope="module")
def smollm2():
    model, analysis = scan("smollm2")
    return model, analysis, load_engine(model, EngineChoice("llamacpp"))


def checked_ids(analysis, n: int = 32) -> np.ndarray:
    """`n` top suspects of the unembedding indicator and `n` random ordinary tokens."""
    suspects = analysis.top("unembedding_cosine", n)
    rest = np.setdiff1d(np.flatnonzero(~analysis.table.flags["special"]), suspects)
    return np.concatenate([suspects, np.random.default_rng(1).choice(rest, n, replace=False)])


def test_llamacpp_verdicts_agree_with_torch_on_the_same_weights(smollm2) -> None:
    model, analysis, engine = smollm2
    ids = checked_ids(analysis)
    fast = verify_tokens(engine, ids, "full")
    ref = verify_tokens(load_probe_model(model, "float32"), ids, "full")
    agreement = float((is_glitch(fast.verdicts) == is_glitch(ref.verdicts)).mean())
    assert agreement >= 0.9, agreement
    assert is_glitch(fast.verdicts).sum() >= 5  # the suspects hold glitch tokens: the test can tell them apart
    assert "llama.cpp, Q4_1" in fast.engine
    assert np.corrcoef(np.log10(fast.max_prob + 1e-6), np.log10(ref.max_prob + 1e-6))[0, 1] > 0.9


def test_the_prompt_editor_streams_through_llamacpp(smollm2) -> None:
    model, _, engine = smollm2
    prompt = encode_template(model.tokenizer, "The capital of France is")
    streamed = []
    out = generate(engine, prompt, GenerationSettings(max_new_tokens=6), on_token=lambda *t: streamed.append(t))
    assert [t[0] for t in streamed] == out.ids and len(out.ids) == 6 and out.stopped == "max_tokens"
    assert "Paris" in out.text
    assert all(0 < p <= 1 for p in out.probs)
    sampled = [generate(engine, prompt, GenerationSettings(max_new_tokens=5, greedy=False, seed=3)).ids for _ in "ab"]
    assert sampled[0] == sampled[1]  # seeded


def test_verify_command_runs_on_llamacpp(smollm2, capsys) -> None:
    _, analysis, _ = smollm2
    ids = ",".join(str(i) for i in checked_ids(analysis, 4))
    assert main(["verify", "smollm2", "--engine", "llamacpp", "--ids", ids]) == 0
    out = capsys.readouterr().out
    assert "Verified 8 tokens (full; llama.cpp, Q4_1 on CPU (" in out


def test_make_builds_llamacpp_for_this_cpu(smollm2) -> None:
    """`make test-engines` builds llama-cpp-python with GGML_NATIVE: the engine uses this CPU's widest
    vector instructions (an AVX2 build ran IQ4_NL 1.5x slower here), and says which it was built with."""
    engine = smollm2[2]
    assert engine.simd == host_simd() != ""
    assert engine.description.endswith(f"({engine.simd} build)")


def test_a_folder_model_is_refused_by_llamacpp(tiny_hf) -> None:
    with pytest.raises(GlitchViewError, match="reads GGUF files"):
        load_engine(open_model(str(tiny_hf.path)), EngineChoice("llamacpp"))


def test_the_window_prompts_through_llamacpp(qtbot, window) -> None:
    from gui_helpers import open_and_wait

    open_and_wait(qtbot, window, "smollm2")
    window.settings_panel.engine.setCurrentText("llamacpp")
    window.settings_panel.apply_engine.click()
    window.session.select_ids([36743])  # 'PlaneProtection': never trained in SmolLM2
    window.prompt.max_tokens.setValue(5)
    streamed = []
    window.prompt.stream.token.connect(lambda _request, run, piece, p: streamed.append((run, piece, p)))
    with qtbot.waitSignal(window.prompt.finished, timeout=120_000):
        window.prompt.run_button.click()
    record = window.prompt.last_result
    assert record["engine"].startswith("llama.cpp") and len(record["runs"]) == 2
    assert {run for run, _, _ in streamed} == {0, 1}
    with qtbot.waitSignal(window.prompt.finished, timeout=120_000):
        window.prompt.verify_button.click()  # the full test of this token, on llama.cpp
    assert f"(full; llama.cpp, Q4_1 on CPU ({host_simd()} build); " in window.prompt.status.toolTip()
