"""Two models that share a tokenizer, token by token: which tokens did training (or fine-tuning)
leave behind in one and not in the other?

Both analyses must hold the same vocabulary (the same pieces at the same ids); otherwise a per-token
difference means nothing and the comparison is refused, saying how many ids differ. For every
indicator both have, the delta is B - A; verdicts are set side by side. A token counts as
*under-trained* in a model when its verification says glitch, or, unverified, when it is among the
suspicious `share` of the deciding indicator (the recommended score when the analysis has one, else
`unembedding_cosine`, the strongest single published signal; Magikarp verifies its bottom ~2%)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import VocabularyMismatch
from ..store.text import escape_text
from ..verify.verdicts import Verdict, is_glitch

if TYPE_CHECKING:
    from ..analysis import Analysis
    from ..model.vocab import TokenTable

DECIDING = ("glitch_score", "unembedding_cosine")  # the first both analyses have decides "under-trained"
SHARE = 0.02


@dataclass(frozen=True)
class Comparison:
    name_a: str
    name_b: str
    indicator: str  # decides "under-trained" for unverified tokens
    share: float
    deltas: dict[str, np.ndarray]  # indicator -> B - A
    scores_b: dict[str, np.ndarray]
    verdict_a: np.ndarray  # int8 Verdict codes
    verdict_b: np.ndarray
    undertrained_a: np.ndarray  # bool
    undertrained_b: np.ndarray

    @property
    def only_a(self) -> np.ndarray:
        return self.undertrained_a & ~self.undertrained_b

    @property
    def only_b(self) -> np.ndarray:
        return self.undertrained_b & ~self.undertrained_a

    def summary(self) -> str:
        return (f"A = {self.name_a}, B = {self.name_b}: under-trained (verified glitch, or unverified in the "
                f"suspicious {self.share:.0%} of {self.indicator}) in A only: {int(self.only_a.sum()):,}, "
                f"in B only: {int(self.only_b.sum()):,}, in both: "
                f"{int((self.undertrained_a & self.undertrained_b).sum()):,}")


def differing_ids(a: TokenTable, b: TokenTable) -> int:
    """How many ids do not hold the same token in both tables (ids only one of them has count too)."""
    n = min(len(a), len(b))
    same = ((np.asarray(a.pieces[:n], dtype=object) == np.asarray(b.pieces[:n], dtype=object))
            & (np.asarray(a.token_bytes[:n], dtype=object) == np.asarray(b.token_bytes[:n], dtype=object)))
    return max(len(a), len(b)) - int(same.sum())


def check_same_vocabulary(a: Analysis, b: Analysis) -> None:
    differ = differing_ids(a.table, b.table)
    if differ:
        n = min(len(a), len(b))
        first = next((i for i in range(n) if a.table.pieces[i] != b.table.pieces[i]), n)
        where = (f"first at id {first}: '{escape_text(a.table.texts[first])}' vs "
                 f"'{escape_text(b.table.texts[first])}'" if first < n else f"ids {n} and above exist in one only")
        raise VocabularyMismatch(
            f"the models do not share a vocabulary: {differ:,} of {max(len(a), len(b)):,} ids hold different "
            f"tokens ({len(a):,} tokens in {a.model.title}, {len(b):,} in {b.model.title}; {where}); only models "
            f"with the same tokenizer can be compared token by token")


def undertrained(analysis: Analysis, indicator: str, share: float) -> np.ndarray:
    """Verified glitch tokens, plus the unverified ones in the suspicious `share` of `indicator`."""
    n = len(analysis)
    mask = np.zeros(n, dtype=bool)
    mask[analysis.top(indicator, max(1, round(share * n)))] = True
    if analysis.verdicts is not None:
        verified = analysis.verdicts.verdict != Verdict.UNVERIFIED
        mask = np.where(verified, is_glitch(analysis.verdicts.verdict), mask)
    return mask


def compare(a: Analysis, b: Analysis, indicator: str | None = None, share: float = SHARE) -> Comparison:
    """Per-token deltas (B - A) of every shared indicator, both verdicts and the under-trained calls."""
    check_same_vocabulary(a, b)
    if not 0 < share < 1:
        raise ValueError(f"the share of suspects must be between 0 and 1, not {share}")
    shared = [name for name in a.scores if name in b.scores]
    if indicator is None:
        indicator = next((name for name in DECIDING if name in shared), shared[0] if shared else "")
    if indicator not in shared:
        raise ValueError(f"both analyses need the indicator '{indicator}' (they share {', '.join(shared)})")
    empty = np.zeros(len(a), dtype=np.int8)
    return Comparison(
        a.model.title, b.model.title, indicator, share,
        {name: b.scores[name] - a.scores[name] for name in shared}, {name: b.scores[name] for name in shared},
        a.verdicts.verdict.copy() if a.verdicts is not None else empty,
        b.verdicts.verdict.copy() if b.verdicts is not None else empty,
        undertrained(a, indicator, share), undertrained(b, indicator, share))
