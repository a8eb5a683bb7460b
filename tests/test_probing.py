"""Verification on real models: the repetition test on SmolLM2 (ordinary tokens pass, a planted
untrained vocabulary entry is caught), prompts built by id, crashes as findings, output metrics,
taxonomy and indicator quality."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import TinyModel

from glitchview.core.pipeline import open_model, scan
from glitchview.core.progress import CancelToken
from glitchview.core.verify.engines.answers import greedy_scores
from glitchview.core.verify.generation import Generated, GenerationSettings, behaviour_verdict, generate, output_metrics
from glitchview.core.verify.probing import NotGenerativeError, ProbeModel, load_probe_model, verify_tokens
from glitchview.core.verify.quality import indicator_quality, quality_table, roc_auc
from glitchview.core.verify.taxonomy import TAXONOMY, classify_tokens
from glitchview.core.verify.templates import SLOT, default_templates, encode_template, fill, repetition_text
from glitchview.core.verify.verdicts import GLITCH_VERDICTS, Verdict
from glitchview.core.verify.verdicts import LABELS as VERDICTS

PLANTED_TEXT = "zqxglitchplant"


@pytest.fixture(scope="module")
def smollm2():
    model = open_model("smollm2")
    return model, load_probe_model(model)


@pytest.fixture(scope="module")
def planted_model(smollm2, tmp_path_factory: pytest.TempPathFactory):
    """SmolLM2 with one new vocabulary entry whose embedding row is random, i.e. never trained."""
    import torch
    from tokenizers import AddedToken, Tokenizer
    from transformers import AutoModelForCausalLM

    base, _ = smollm2
    folder = tmp_path_factory.mktemp("planted")
    tok = Tokenizer.from_file(str(base.folder / "tokenizer.json"))
    tok.add_tokens([AddedToken(PLANTED_TEXT, special=False)])
    tok.save(str(folder / "tokenizer.json"))
    for name in ("tokenizer_config.json",):
        if (base.folder / name).exists():
            shutil.copy(base.folder / name, folder / name)
    net = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=torch.float32)
    new_id = tok.token_to_id(PLANTED_TEXT)
    net.resize_token_embeddings(new_id + 1, mean_resizing=False)
    with torch.no_grad():
        emb = net.get_input_embeddings().weight
        emb[new_id] = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0)) * emb[:new_id].std()
    net.save_pretrained(str(folder))
    model = open_model(str(folder))
    return model, load_probe_model(model), new_id


def test_ordinary_tokens_are_not_glitches(smollm2) -> None:
    model, probe = smollm2
    ids = [model.tokenizer.token_to_id(t) for t in ("Ġthe", "ĠParis")]
    for mode in ("fast", "full"):
        result = verify_tokens(probe, ids, mode)
        assert [VERDICTS[v] for v in result.verdicts] == ["normal", "normal"], result.reasons
        assert (result.max_prob > 0.1).all()
        assert result.prompt_probs.shape == (2, 1 if mode == "fast" else 3)


def test_planted_untrained_token_is_verified_glitch(planted_model) -> None:
    model, probe, new_id = planted_model
    assert model.input_embeddings.shape[0] == new_id + 1
    the = model.tokenizer.token_to_id("Ġthe")
    result = verify_tokens(probe, [new_id, the], "full")
    assert VERDICTS[result.verdicts[0]] in ("glitch", "strong_glitch"), result.reasons[0]
    assert result.max_prob[0] < 0.01 and "max P(token)" in result.reasons[0]
    assert VERDICTS[result.verdicts[1]] == "normal"


def test_the_full_test_lets_the_model_answer(smollm2) -> None:
    """Word pieces the repetition prompt under-elicits turn up in the model's own answer (`inalg` as
    "Linalg", ` case`) and in a copy between quotes after a few examples; `<|endoftext|>` is reproduced
    by no prompt."""
    model, probe = smollm2
    ids = [model.tokenizer.token_to_id(t) for t in ("inalg", "Ġcase", "<|endoftext|>")]
    result = verify_tokens(probe, ids, "full")
    assert [Verdict(v) for v in result.verdicts[:2]] == [Verdict.NORMAL, Verdict.NORMAL], result.reasons
    assert Verdict(result.verdicts[2]) in GLITCH_VERDICTS, result.reasons[2]
    names = list(result.templates)
    assert (result.prompt_probs[:2, names.index("what-means-answer")] > 0.1).all()  # the answer writes them
    assert (result.prompt_probs[:2, names.index("copy-quoted-examples")] > 0.1).all()  # and so does the copy
    assert (result.prompt_probs[:2, names.index("repeat-device")] < 0.01).all()  # the device prompt alone does not


def test_positions_after_the_model_ends_its_text_do_not_count(smollm2) -> None:
    """SmolLM2 ends its answer to "What does the string « questionna» mean?" at once; what it would
    write after its own end-of-text (the token itself, at 0.07, before this rule) is no answer."""
    model, probe = smollm2
    token = model.tokenizer.token_to_id("Ġquestionna")
    spec = next(t for t in default_templates()["repetition"] if t["name"] == "what-means-answer")
    row = fill(encode_template(model.tokenizer, repetition_text(spec, 3)), np.asarray([token]))[0]
    answer = generate(probe, row, GenerationSettings(max_new_tokens=10))
    assert answer.ids == [], answer.text  # the model ends its text at once
    with torch.inference_mode():
        first = float(torch.softmax(probe.step(torch.from_numpy(row)[None, :])[0][0], dim=-1)[token])
    result = verify_tokens(probe, [token], "full")
    assert result.prompt_probs[0, list(result.templates).index("what-means-answer")] == pytest.approx(first, rel=1e-3)


def test_greedy_scores_stop_at_the_end_token() -> None:
    target_p = np.array([[0.01, 0.02, 0.9, 0.8], [0.01, 0.5, 0.9, 0.9]], dtype=np.float32)
    greedy = np.array([[5, 2, 7, 7], [5, 6, 7, 2]])  # row 0 ends at position 1 (token 2), row 1 at 3
    best = greedy_scores(None, target_p, greedy, np.ones_like(target_p), {2}, None)
    np.testing.assert_allclose(best, [0.02, 0.9])  # the end position itself counts, nothing after it


def test_screening_never_calls_a_glitch_without_the_full_test(planted_model) -> None:
    model, probe, new_id = planted_model
    ids = [new_id, model.tokenizer.token_to_id("Ġthe"), 0]  # planted, ordinary, <|endoftext|>
    screened = verify_tokens(probe, ids, "fast", confirm=False)
    assert not np.isin(screened.verdicts, GLITCH_VERDICTS).any()
    assert Verdict(screened.verdicts[0]) == Verdict.SUSPECT and Verdict(screened.verdicts[1]) == Verdict.NORMAL
    assert "NOT confirmed" in screened.mode
    confirmed = verify_tokens(probe, ids, "fast")
    suspects = np.flatnonzero(screened.verdicts == Verdict.SUSPECT)
    full = verify_tokens(probe, np.asarray(ids)[suspects], "full")  # the same batch the confirmation runs
    np.testing.assert_array_equal(confirmed.verdicts[suspects], full.verdicts)
    np.testing.assert_allclose(confirmed.max_prob[suspects], full.max_prob, rtol=1e-5)
    assert Verdict(confirmed.verdicts[0]) in GLITCH_VERDICTS
    assert confirmed.reasons[0].startswith("confirmed by the full test") and "confirmed by the full test" in confirmed.mode


def test_prompts_hold_the_exact_ids_for_tokens_that_do_not_round_trip(smollm2) -> None:
    model, _ = smollm2
    _, analysis = scan("smollm2")
    fragment = int(np.flatnonzero(analysis.table.flags["partial_utf8"])[0])
    assert model.tokenizer.encode(analysis.table.texts[fragment], add_special_tokens=False).ids != [fragment]
    template = encode_template(model.tokenizer, "Input: «{token}»\nOutput: «{token}»")
    assert (template == SLOT).sum() == 2
    rows = fill(template, np.array([fragment, 7]))
    assert (rows[0, template == SLOT] == fragment).all() and (rows[1, template == SLOT] == 7).all()
    np.testing.assert_array_equal(rows[0, template != SLOT], template[template != SLOT])


def test_a_token_that_breaks_the_forward_pass_is_a_crash_finding(smollm2) -> None:
    model, probe = smollm2
    rows = model.input_embeddings.shape[0]
    # a tokenizer/matrix mismatch: the probe believes in 10 more rows than the embedding has
    mismatched = ProbeModel(probe.model, probe.tokenizer, rows + 10, probe.dtype_name)
    ids = [model.tokenizer.token_to_id("Ġthe"), rows + 3, model.tokenizer.token_to_id("ĠParis")]
    result = verify_tokens(mismatched, ids, "fast")
    assert [VERDICTS[v] for v in result.verdicts] == ["normal", "crash", "normal"]
    assert result.reasons[1].startswith("crash:") and np.isnan(result.max_prob[1])
    beyond = verify_tokens(probe, [rows + 5], "fast")
    assert VERDICTS[beyond.verdicts[0]] == "crash" and "no embedding row" in beyond.reasons[0]


def test_encoder_models_cannot_be_prompted() -> None:
    with pytest.raises(NotGenerativeError, match="cannot generate"):
        load_probe_model(open_model("minilm"))


def test_generation_streams_and_stops_at_its_limits(smollm2) -> None:
    model, probe = smollm2
    prompt = fill(encode_template(model.tokenizer, "My favorite color is {token}."),
                  np.array([model.tokenizer.token_to_id("Ġblue")]))[0]
    streamed: list[tuple[int, str, float]] = []
    out = generate(probe, prompt, GenerationSettings(max_new_tokens=6), on_token=lambda *t: streamed.append(t))
    assert [t[0] for t in streamed] == out.ids and len(out.ids) <= 6
    assert out.stopped in ("max_tokens", "eos") and all(0 < p <= 1 for p in out.probs)
    sampled = generate(probe, prompt, GenerationSettings(max_new_tokens=5, greedy=False, seed=3))
    again = generate(probe, prompt, GenerationSettings(max_new_tokens=5, greedy=False, seed=3))
    assert sampled.ids == again.ids
    token = CancelToken()
    stopped = generate(probe, prompt, GenerationSettings(max_new_tokens=50),
                       on_token=lambda *t: token.cancel(), cancel=token)
    assert stopped.stopped == "cancelled" and len(stopped.ids) == 1
    timed = generate(probe, prompt, GenerationSettings(max_new_tokens=500, time_limit_s=0.0), eos_ids=set())
    assert timed.stopped == "time_limit" and len(timed.ids) == 1


def test_output_metrics_on_fixed_outputs() -> None:
    loop = Generated(ids=[5, 6, 7] * 8, pieces=[" the", " cat", " sat"] * 8)
    looping, reasons = behaviour_verdict(output_metrics(loop, 99, " dog"))
    assert looping and reasons[0].startswith("loops")
    garbled, reasons = behaviour_verdict(output_metrics(Generated(ids=list(range(10)), pieces=["\ufffd", "\x00", "ab"] + ["\ufffd"] * 7), 99, "x"))
    assert garbled and any(r.startswith("garbled") for r in reasons)
    empty, reasons = behaviour_verdict(output_metrics(Generated(), 99, "x"))
    assert empty and reasons[0].startswith("collapsed")
    normal = Generated(ids=list(range(12)), pieces=[f" word{k}" for k in range(12)], entropies=[1.0] * 12)
    ok, reasons = behaviour_verdict(output_metrics(normal, 3, " word3"))
    assert not ok and output_metrics(normal, 3, " word3")["reproduces"]


def test_taxonomy_and_indicator_quality_on_a_tiny_model(tiny_hf: TinyModel) -> None:
    _, analysis = scan(str(tiny_hf.path))
    taxonomy = classify_tokens(analysis.table)
    assert TAXONOMY[taxonomy[0]] == "special/control token"  # <|endoftext|>
    byte = int(np.flatnonzero(analysis.table.flags["partial_utf8"])[0])
    assert TAXONOMY[taxonomy[byte]] == "byte or partial-UTF-8 fragment"
    verdicts = np.full(len(analysis), Verdict.NORMAL, dtype=np.int8)
    verdicts[list(tiny_hf.planted)] = Verdict.GLITCH
    quality = {q.indicator: q for q in indicator_quality(analysis, verdicts, (6, 50))}
    planted_in_top6 = len(set(analysis.top("norm", 6).tolist()) & set(tiny_hf.planted))
    assert quality["norm"].precision_at[6] == pytest.approx(planted_in_top6 / 6)
    assert quality["norm"].recall == 1.0 and quality["norm"].verified_at[50] == 50
    assert roc_auc(np.array([3.0, 2.0, 1.0, 0.0]), np.array([True, True, False, False])) == 1.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([True, False])) == 0.5


def test_precision_counts_every_token_of_the_top_k(tiny_hf: TinyModel) -> None:
    from glitchview.cli import format_quality

    _, analysis = scan(str(tiny_hf.path))
    order = analysis.ranking("norm").order
    verdicts = np.full(len(analysis), Verdict.UNVERIFIED, dtype=np.int8)
    for (lo, hi), verdict in {(0, 4): Verdict.GLITCH, (4, 6): Verdict.UNCERTAIN, (6, 8): Verdict.SUSPECT,
                              (8, 10): Verdict.NORMAL}.items():
        verdicts[order[lo:hi]] = verdict
    q = {q.indicator: q for q in indicator_quality(analysis, verdicts, (10, 20))}["norm"]
    assert q.precision_at[10] == pytest.approx(0.4)  # uncertain, suspect and unverified count as not glitch
    assert (q.verified_at[10], q.uncertain_at[10], q.unverified_at[10]) == (6, 2, 2)
    assert q.precision_at[20] == pytest.approx(0.2) and q.unverified_at[20] == 12
    table = quality_table(analysis, verdicts, (10,), order[8:10])
    assert next(r for r in table.rows if r[0] == "norm")[2:6] == ["0.40", "6", "2", "2"]
    assert table.columns[2:6] == ["P@10", "verified@10", "uncertain@10", "unverified@10"]
    text = format_quality(analysis, verdicts, order[8:10], 10)
    assert "unverified@10" in text and "count as not glitch" in text


def test_verdicts_are_saved_and_exported(smollm2, tmp_path: Path) -> None:
    from glitchview.core.store.analysis_file import load_analysis, save_analysis
    from glitchview.core.store.export import write_csv, write_filter_list

    model, probe = smollm2
    _, analysis = scan("smollm2")
    ids = np.array([5, model.tokenizer.token_to_id("Ġthe")])
    result = verify_tokens(probe, ids, "fast")
    analysis.ensure_verdicts().record(result.ids, result.verdicts, result.max_prob, result.reasons)
    analysis.verdicts.history.append({"token": 5, "template": "x {token}", "output": "y"})
    back = load_analysis(save_analysis(analysis, tmp_path / "v.gva.npz"))
    np.testing.assert_array_equal(back.verdicts.verdict, analysis.verdicts.verdict)
    assert back.verdicts.reasons[5] == analysis.verdicts.reasons[5] and back.verdicts.history[0]["token"] == 5
    write_csv(back, tmp_path / "v.csv", ids, "norm")
    text = (tmp_path / "v.csv").read_text(encoding="utf-8")
    assert "strong_glitch" in text and "special/control token" in text
    assert write_filter_list(back, tmp_path / "filter.json") == 1
    data = json.loads((tmp_path / "filter.json").read_text(encoding="utf-8"))
    assert data["bad_words_ids"] == [[5]] and data["tokens"][0]["verdict"] == "strong_glitch"
