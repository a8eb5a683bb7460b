"""A per-model report a colleague can open without GlitchView: one self-contained HTML file (every
picture embedded as a base64 PNG) and the same content as Markdown (pictures beside it as PNG files),
plus the glitch filter list as JSON.

It holds the model summary, the embedding map with the suspects highlighted, the distribution of
every score, the indicator-quality table and precision@k curves (against the verification verdicts),
the taxonomy counts, every verified glitch token (escaped, with its probabilities and the outputs of
the prompts run with it) and the filter list. Plots are drawn by matplotlib's Agg canvas (no GUI
backend, no pyplot state), so this runs on any thread and never touches Qt."""

from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..analysis import Analysis
from ..errors import GlitchViewError
from ..progress import ProgressFn, no_progress
from ..scores.compare import DECIDING, SHARE
from ..verify.quality import KS, indicator_quality, precision_curve
from ..verify.taxonomy import TAXONOMY, classify_tokens
from ..verify.verdicts import LABELS, counts, is_glitch
from .export import write_filter_list
from .files import atomic_write
from .text import escape_text

SUSPECT_COLOUR, GLITCH_COLOUR = "#e66100", "#ff2d95"
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~"})  # what can change a line's meaning mid-line


@dataclass
class Section:
    title: str
    rows: list[list[str]] = field(default_factory=list)  # a table: first row is the header
    text: str = ""
    image: str = ""  # name of a picture in `Report.images`
    preformatted: str = ""


@dataclass
class Report:
    title: str
    sections: list[Section]
    images: dict[str, bytes]  # name -> PNG bytes


# --- pictures ----------------------------------------------------------------------------------------------
def _png(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise GlitchViewError("the report's plots need matplotlib, which is not installed: pip install matplotlib") \
            from None

    return Figure(figsize=(width, height), layout="constrained")


def map_picture(analysis: Analysis, suspects: np.ndarray, glitch: np.ndarray) -> bytes:
    """Every token on the first projection, suspects and verified glitch tokens drawn on top."""
    name = next(iter(analysis.projections))
    xy = analysis.projections[name]
    fig = _figure(7, 6)
    ax = fig.add_subplot()
    ax.scatter(xy[:, 0], xy[:, 1], s=1, c="#9a9ca6", linewidths=0, rasterized=True, label=f"{len(xy):,} tokens")
    ax.scatter(xy[suspects, 0], xy[suspects, 1], s=6, c=SUSPECT_COLOUR, linewidths=0,
               label=f"suspects ({len(suspects):,})")
    if len(glitch):
        ax.scatter(xy[glitch, 0], xy[glitch, 1], s=14, c=GLITCH_COLOUR, marker="x",
                   label=f"verified glitch ({len(glitch):,})")
    ax.set_title(f"Embedding map ({name.upper()})")
    ax.legend(loc="best", markerscale=2, fontsize=8)
    return _png(fig)


def distributions_picture(analysis: Analysis) -> bytes:
    """A histogram of every score, the suspicious end marked."""
    names = list(analysis.scores)
    cols = 3
    rows = (len(names) + cols - 1) // cols
    fig = _figure(10, 2.4 * rows)
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        values = analysis.scores[name][np.isfinite(analysis.scores[name])]
        ax.hist(values, bins=80, color="#3b6ea5", log=True)
        end = analysis.suspicious_end(name)
        if len(values):
            cut = np.quantile(values, SHARE if end == "low" else 1 - SHARE)
            ax.axvline(cut, color=SUSPECT_COLOUR, linewidth=1)
        ax.set_title(f"{name} (suspicious: {end})", fontsize=9)
        ax.tick_params(labelsize=7)
    return _png(fig)


def precision_picture(analysis: Analysis, n: int) -> bytes:
    """Precision@k down each indicator's ranking, over the verified tokens."""
    verdicts = analysis.ensure_verdicts().verdict
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    k = np.arange(1, n + 1)
    for name in analysis.scores:
        ax.plot(k, precision_curve(analysis.ranking(name).order, verdicts, n), label=name, linewidth=1.2)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("k (top k of the indicator)")
    ax.set_ylabel("precision@k (verified glitch / verified)")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


# --- content -----------------------------------------------------------------------------------------------
def _deciding(analysis: Analysis) -> str:
    return next((n for n in DECIDING if n in analysis.scores), next(iter(analysis.scores)))


def _summary(analysis: Analysis) -> list[list[str]]:
    m = analysis.model
    rows = [["", ""], ["model", m.title], ["source", m.name], ["architecture", m.architecture],
            ["tokens x dimensions", f"{m.n_tokens:,} x {m.dim}"], ["embeddings", "tied" if m.tied else "untied"],
            ["fingerprint", m.fingerprint], ["clusters", f"k = {len(analysis.centers)}, inertia {analysis.inertia:.6g}"],
            ["reference unused tokens", analysis.reference.rule],
            ["token flags", ", ".join(f"{n} {int(v.sum()):,}" for n, v in analysis.table.flags.items() if v.any())]]
    rows += [["note", note] for note in m.notes]
    if analysis.verdicts is not None:
        rows.append(["verdicts", ", ".join(f"{v.label} {c:,}" for v, c in counts(analysis.verdicts.verdict).items()
                                           if c)])
    if analysis.corpus is not None:
        rows.append(["corpus", analysis.corpus.summary()])
    if analysis.comparison is not None:
        rows.append(["comparison", analysis.comparison.summary()])
    return rows


def _quality(analysis: Analysis) -> list[list[str]]:
    verdicts = analysis.ensure_verdicts().verdict
    ks = tuple(KS)
    rows = [["indicator", "end", *(f"P@{k}" for k in ks), "recall", "ROC-AUC", "verified"]]
    for q in indicator_quality(analysis, verdicts, ks):
        rows.append([q.indicator, q.end, *(f"{q.precision_at[k]:.2f}" for k in ks), f"{q.recall:.2f}",
                     f"{q.roc_auc:.3f}", f"{q.n_verified:,}"])
    return rows


def _outputs(analysis: Analysis, token: int) -> str:
    runs = [r["runs"][0] for r in analysis.ensure_verdicts().history_for(token)]
    return " | ".join(escape_text(r.get("output", "")) for r in runs)


def _glitch_rows(analysis: Analysis, glitch: np.ndarray) -> list[list[str]]:
    v = analysis.ensure_verdicts()
    order = glitch[np.argsort(v.max_prob[glitch], kind="stable")]
    taxonomy = classify_tokens(analysis.table, order)
    rows = [["id", "token", "verdict", "max P(token)", "taxonomy", "probabilities per prompt", "prompt outputs"]]
    for i, code in zip(order.tolist(), taxonomy):
        rows.append([str(i), escape_text(analysis.table.texts[i]), LABELS[v.verdict[i]], f"{v.max_prob[i]:.3g}",
                     TAXONOMY[code], escape_text(v.reasons[i]), _outputs(analysis, i)])
    return rows


def build_report(analysis: Analysis, folder: Path, progress: ProgressFn = no_progress) -> Report:
    """Everything the report shows; writes the filter list into `folder` (it is part of the report)."""
    deciding = _deciding(analysis)
    suspects = analysis.top(deciding, max(1, round(SHARE * len(analysis))))
    v = analysis.verdicts
    glitch = np.flatnonzero(is_glitch(v.verdict)) if v is not None else np.zeros(0, dtype=np.int64)
    progress(0.1, "Report: map")
    images = {"map": map_picture(analysis, suspects, glitch)}
    progress(0.4, "Report: score distributions")
    images["distributions"] = distributions_picture(analysis)
    sections = [Section("Model", rows=_summary(analysis)),
                Section("Embedding map", image="map",
                        text=f"Suspects: the {len(suspects):,} tokens ({SHARE:.0%}) at the suspicious end of {deciding}; "
                             f"verified glitch tokens marked with a cross."),
                Section("Score distributions", image="distributions",
                        text=f"Log-scale histograms; the line marks the suspicious {SHARE:.0%} of each score.")]
    verified = v is not None and bool((v.verdict != 0).any())
    if verified:
        progress(0.6, "Report: indicator quality")
        n = int(min(len(analysis), max(KS)))
        images["precision"] = precision_picture(analysis, n)
        sections.append(Section("Indicator quality", rows=_quality(analysis),
                                text="Against this model's own verification verdicts (precision over the verified "
                                     "tokens of each top k).", image="precision"))
        codes = classify_tokens(analysis.table, glitch)
        tally = np.bincount(codes, minlength=len(TAXONOMY))
        sections.append(Section("Taxonomy of the verified glitch tokens",
                                rows=[["kind", "tokens"], *([TAXONOMY[c], str(int(n))] for c, n in enumerate(tally) if n)]))
        sections.append(Section(f"Verified glitch tokens ({len(glitch):,})", rows=_glitch_rows(analysis, glitch),
                                text="Lowest probability of repetition first; texts escaped (\\n, \\u{...}, ...)."))
    else:
        sections.append(Section("Indicator quality", text="No token of this analysis is verified yet: verify "
                                "suspects (glitchview verify, or Verify in the window) to measure the indicators."))
    progress(0.8, "Report: filter list")
    listed = write_filter_list(analysis, folder / "glitch-filter.json")
    filter_text = (folder / "glitch-filter.json").read_text(encoding="utf-8")
    sections.append(Section(f"Filter list ({listed:,} tokens, glitch-filter.json)", preformatted=filter_text))
    return Report(f"GlitchView report: {analysis.model.title}", sections, images)


# --- rendering ---------------------------------------------------------------------------------------------
_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .5em;"
        "text-align:left;vertical-align:top}th{background:#eee}td.token{font-family:monospace;white-space:pre}"
        "pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em}img{max-width:100%}")


def render_html(report: Report, generated: str) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(report.title)}</h1><p>{e(generated)}</p>"]
    for s in report.sections:
        parts.append(f"<h2>{e(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{e(s.text)}</p>")
        if s.image:
            data = base64.b64encode(report.images[s.image]).decode("ascii")
            parts.append(f'<img alt="{e(s.title)}" src="data:image/png;base64,{data}">')
        if s.rows:
            head, *body = s.rows
            token_col = head.index("token") if "token" in head else -1
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
            for row in body:
                parts.append("<tr>" + "".join(f'<td class="token">{e(c)}</td>' if k == token_col else f"<td>{e(c)}</td>"
                                              for k, c in enumerate(row)) + "</tr>")
            parts.append("</table>")
        if s.preformatted:
            parts.append(f"<pre>{e(s.preformatted)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def md_escape(text: str) -> str:
    return text.translate(_MD_SPECIAL)


def render_markdown(report: Report, generated: str, image_files: dict[str, str]) -> str:
    lines = [f"# {md_escape(report.title)}", "", md_escape(generated), ""]
    for s in report.sections:
        lines += [f"## {md_escape(s.title)}", ""]
        if s.text:
            lines += [md_escape(s.text), ""]
        if s.image:
            lines += [f"![{md_escape(s.title)}]({image_files[s.image]})", ""]
        if s.rows:
            head, *body = s.rows
            lines.append("| " + " | ".join(md_escape(h) or " " for h in head) + " |")
            lines.append("|" + "---|" * len(head))
            lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in body]
            lines.append("")
        if s.preformatted:
            fence = "`" * max(3, max((len(run) for run in s.preformatted.split("\n") if set(run) == {"`"}), default=0) + 1)
            lines += [fence + "json", s.preformatted, fence, ""]
    return "\n".join(lines)


def write_report(analysis: Analysis, folder: Path, progress: ProgressFn = no_progress) -> tuple[Path, Path]:
    """Write report.html (self-contained), report.md with its PNG files, and glitch-filter.json into `folder`."""
    start = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = build_report(analysis, folder, progress)
    image_files = {name: f"report-{name}.png" for name in report.images}
    for name, data in report.images.items():
        with atomic_write(folder / image_files[name]) as handle:
            handle.write(data)
    generated = (f"Generated by GlitchView on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
                 f"in {time.perf_counter() - start:.1f} s.")
    html_path, md_path = folder / "report.html", folder / "report.md"
    with atomic_write(html_path, "w", encoding="utf-8") as handle:
        handle.write(render_html(report, generated))
    with atomic_write(md_path, "w", encoding="utf-8") as handle:
        handle.write(render_markdown(report, generated, image_files))
    progress(1.0, f"Report: written to {html_path}")
    return html_path, md_path

