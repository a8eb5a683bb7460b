"""CSV (and JSON) export of any set of tokens with their scores.

CSV rules: UTF-8, RFC 4180 quoting (Python's csv module), display cells escaped visibly
(`core.text.escape_text`) and neutralised against spreadsheet formula injection (a cell starting
with =, +, -, @, tab or CR gets a leading apostrophe, as OWASP recommends; so does a cell that
starts with an apostrophe, which keeps the rule one-to-one: `'=x` and `=x` stay two cells). Programs read the
`bytes_hex` column, the exact token bytes, which round-trips every token losslessly.
JSON is strict (RFC 8259): a NaN or infinite score is written as null."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np

from ..analysis import Analysis
from ..scores.indicators import Direction
from ..verify.taxonomy import TAXONOMY, classify_tokens
from ..verify.verdicts import LABELS, is_glitch
from .files import atomic_write
from .text import escape_text

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def safe_cell(text: str) -> str:
    """A display cell: visibly escaped and never read as a formula by a spreadsheet."""
    escaped = escape_text(text)
    return "'" + escaped if escaped.startswith(_FORMULA_START) else escaped


def hex_cell(data: bytes) -> str:
    """A token's exact bytes as `0x` + hex: spreadsheets never read it as a number ("00", "4040"
    become 0 and 4040 without the prefix), programs strip the prefix (`read_hex_cell`)."""
    return "0x" + data.hex()


def read_hex_cell(cell: str) -> bytes:
    return bytes.fromhex(cell.removeprefix("0x"))


def export_columns(analysis: Analysis) -> list[str]:
    return ["id", "piece", "text", "bytes_hex", "category", "flags", "cluster", *analysis.scores,
            "rank", "ranked_by", "flagged", "verdict", "max_prob", "taxonomy", "reasons"]


def export_rows(analysis: Analysis, ids: Iterable[int], indicator: str,
                end: Direction | None = None) -> Iterable[list[str]]:
    """One list of cell strings per token, in the order of `ids`."""
    end = end or analysis.suspicious_end(indicator)
    rank = analysis.ranking(indicator, end).rank
    categories = analysis.table.category_names()
    table = analysis.table
    v = analysis.verdicts
    ids = np.asarray(list(ids), dtype=np.int64)
    taxonomy = dict(zip(ids.tolist(), classify_tokens(table, ids).tolist())) if v is not None else {}
    for i in ids.tolist():
        verified = v is not None and v.is_verified(i)
        yield [str(i), safe_cell(table.pieces[i]), safe_cell(table.texts[i]), hex_cell(table.token_bytes[i]),
               str(categories[i]), ";".join(table.flag_names(i)), str(int(analysis.labels[i])),
               *(repr(float(s[i])) for s in analysis.scores.values()),
               str(int(rank[i])), f"{indicator}:{end}", "1" if analysis.flagged[i] else "0",
               LABELS[v.verdict[i]] if verified else "", repr(float(v.max_prob[i])) if verified else "",
               TAXONOMY[taxonomy[i]] if verified else "", safe_cell(v.reasons[i]) if verified else ""]


def write_csv(analysis: Analysis, path: Path, ids: Iterable[int], indicator: str,
              end: Direction | None = None) -> int:
    """Write the tokens `ids` to a CSV file atomically; returns the number of rows written."""
    count = 0
    with atomic_write(Path(path), "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(export_columns(analysis))
        for row in export_rows(analysis, ids, indicator, end):
            writer.writerow(row)
            count += 1
    return count


def _json_number(value: str | float) -> float | None:
    """A score as a JSON number; empty, NaN and infinite scores as null (strict JSON has no NaN)."""
    if isinstance(value, str) and not value:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def write_json(analysis: Analysis, path: Path, ids: Iterable[int], indicator: str,
               end: Direction | None = None) -> int:
    """The same rows as `write_csv`, as a JSON list of objects (scores as numbers)."""
    columns = export_columns(analysis)
    score_names = set(analysis.scores) | {"max_prob"}
    rows = []
    for row in export_rows(analysis, ids, indicator, end):
        rows.append({c: (_json_number(v) if c in score_names else v) for c, v in zip(columns, row)})
    with atomic_write(Path(path), "w", encoding="utf-8") as handle:
        json.dump({"model": analysis.model.name, "fingerprint": analysis.model.fingerprint, "tokens": rows},
                  handle, ensure_ascii=False, indent=1, allow_nan=False)
    return len(rows)


def read_token_bytes(path: Path) -> dict[int, bytes]:
    """Read back `id -> exact token bytes` from an exported CSV (the lossless column)."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return {int(row["id"]): read_hex_cell(row["bytes_hex"]) for row in csv.DictReader(handle)}


def write_filter_list(analysis: Analysis, path: Path) -> int:
    """The verified glitch tokens as an input-filter list: ids usable as `bad_words_ids` (or a
    logits mask) and their text and bytes. Returns how many tokens it lists."""
    v = analysis.verdicts
    glitch = np.zeros(0, dtype=np.int64) if v is None else np.flatnonzero(is_glitch(v.verdict))
    taxonomy = classify_tokens(analysis.table, glitch)
    tokens = [{"id": int(i), "text": escape_text(analysis.table.texts[i]),
               "bytes_hex": hex_cell(analysis.table.token_bytes[i]), "verdict": LABELS[v.verdict[i]],
               "max_prob": _json_number(v.max_prob[i]), "taxonomy": TAXONOMY[code]}
              for i, code in zip(glitch, taxonomy)]
    data = {"model": analysis.model.name, "fingerprint": analysis.model.fingerprint,
            "usage": "transformers: model.generate(..., bad_words_ids=bad_words_ids); or set these ids' "
                     "logits to -inf; or reject inputs whose encoding contains any of them",
            "bad_words_ids": [[t["id"]] for t in tokens], "tokens": tokens}
    with atomic_write(Path(path), "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1, allow_nan=False)
    return len(tokens)
