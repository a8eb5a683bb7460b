"""The token table: for every row of the embedding matrix, its raw piece, decoded text, exact
bytes, tokenizer flags and a script/shape category.

Built in one pass over the vocabulary with the Rust tokenizer's batch calls (decode and re-encode
all tokens at once), then kept in the analysis so it is never rebuilt. Flags follow Land & Bartolo
(2024): special tokens, byte tokens, partial UTF-8 pieces, and unreachable pieces (decoding the
token and encoding the text again does not give the token back)."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import regex

from ..child import run_in_children
from ..errors import GlitchViewError
from ..progress import CancelToken, ProgressFn, no_progress
from ..store.blobs import pack, pack_strings, unpack, unpack_strings
from ..store.files import atomic_write
from .sources import cache_root
from .token_structure import STRUCTURE

CATEGORIES: tuple[str, ...] = (
    "special", "byte_fragment", "whitespace", "digits", "punctuation", "emoji", "cjk",
    "code_identifier", "latin_word", "non_latin", "mixed", "no_token", "known_unused",
)  # appended only: analysis files store the index
KNOWN_UNUSED = CATEGORIES.index("known_unused")
FLAGS: tuple[str, ...] = ("special", "control", "byte", "partial_utf8", "unreachable", "whitespace", "no_token",
                          "nonfinite")

# Known unused: named as unused/reserved, or a single byte that never occurs in valid UTF-8. These are
# under-trained by construction (Gemma-3 has 6,242 `<unusedN>`), so they are shown apart from discoveries.
_UNUSED_NAME = regex.compile(r"[<\[]\|?(?:unused|reserved)[\w]*?\d+\|?[>\]]", regex.IGNORECASE)
NEVER_IN_UTF8 = frozenset([0xC0, 0xC1, *range(0xF5, 0x100)])
_BYTE_FALLBACK = regex.compile(r"<0x([0-9A-Fa-f]{2})>")
_CONTROL = regex.compile(r"[\p{Cc}\p{Cf}\p{Cs}\p{Co}]")
_DIGITS = regex.compile(r"\p{N}+")
_EMOJI = regex.compile(r"\p{Extended_Pictographic}")
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_IDENTIFIER = regex.compile(r"[\p{Latin}\d_]*(?:_|\d[\p{Latin}]|[\p{Latin}]\d|\p{Ll}\p{Lu})[\p{Latin}\d_]*")
_LATIN_WORD = regex.compile(r"\p{Latin}+(?:['’]\p{Latin}+)?")
_PUNCT = regex.compile(r"[\p{P}\p{S}]+")
_WORDPIECE_ANCHORS = ("0", "x", "q")
BATCH = 2048
MAX_TABLE_SHARES = 4  # child processes that build a table, each a share of the rows (at most one per core)
MIN_SHARE_ROWS = 32_768  # rows below which another share costs more (a process, a tokenizer read) than it saves
TABLE_CACHE_VERSION = 4  # 2: known_unused; 3: literal U+2581 outside SentencePiece, holes in the ids; 4: structure
# (which v4 tables written since no longer hold: `add_token_structure` adds it where it is used)


@dataclass
class TokenTable:
    """One row per embedding row. Strings are Python lists; flags and categories numpy arrays."""

    pieces: list[str]
    texts: list[str]
    token_bytes: list[bytes]
    flags: dict[str, np.ndarray]
    category: np.ndarray  # int8 index into CATEGORIES
    tokenizer_size: int = 0  # tokens the tokenizer knows (may differ from the matrix rows)
    structure: dict[str, np.ndarray] = field(default_factory=dict)  # token_structure.STRUCTURE columns, added
    # by `token_structure.add_token_structure` where the detector needs them (never on open: seconds for nothing)

    def __len__(self) -> int:
        return len(self.pieces)

    def category_names(self) -> np.ndarray:
        return np.asarray(CATEGORIES, dtype=object)[self.category]

    def flag_names(self, row: int) -> list[str]:
        return [name for name in FLAGS if self.flags[name][row]]


def byte_level_chars() -> dict[int, str]:
    """GPT-2's byte-to-unicode table: the printable stand-in character of each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def _byte_level_decoder() -> dict[str, int]:
    """The byte each stand-in character of `byte_level_chars` spells."""
    return {c: b for b, c in byte_level_chars().items()}


def _piece_bytes(pieces: list[str], special: np.ndarray, tokenizer_kind: str, byte_level: bool,
                 metaspace: bool) -> list[bytes]:
    """The exact bytes each piece stands for, from the tokenizer's own piece spelling. `▁` (U+2581)
    stands for a space only where the decoder says so (SentencePiece's Metaspace or Replace); in any
    other vocabulary it is a literal character of the token."""
    table = _byte_level_decoder() if byte_level else {}
    out: list[bytes] = []
    for piece, is_special in zip(pieces, special.tolist()):
        if is_special or not piece:
            out.append(piece.encode("utf-8", "surrogatepass"))
        elif byte_level and all(c in table for c in piece):
            out.append(bytes(table[c] for c in piece))
        elif piece.startswith("<0x") and (m := _BYTE_FALLBACK.fullmatch(piece)) is not None:
            out.append(bytes([int(m.group(1), 16)]))
        elif tokenizer_kind == "WordPiece" and piece.startswith("##"):
            out.append(piece[2:].encode("utf-8"))
        else:
            out.append((piece.replace("▁", " ") if metaspace else piece).encode("utf-8", "surrogatepass"))
    return out


def unused_name_mask(pieces: list[str]) -> np.ndarray:
    """Tokens named as unused or reserved: `<unused12>`, `[unused3]`, `<|reserved_special_token_7|>`."""
    return np.fromiter((p.startswith(("<", "[")) and _UNUSED_NAME.fullmatch(p) is not None for p in pieces),
                       dtype=bool, count=len(pieces))


def invalid_byte_mask(token_bytes: list[bytes], byte_flag: np.ndarray) -> np.ndarray:
    """Single-byte tokens for bytes that never occur in valid UTF-8 (0xC0, 0xC1, 0xF5-0xFF)."""
    single = np.fromiter((len(b) == 1 and b[0] in NEVER_IN_UTF8 for b in token_bytes), dtype=bool,
                         count=len(token_bytes))
    return single & byte_flag


def _categorise(texts: list[str], flags: dict[str, np.ndarray], unused: np.ndarray) -> np.ndarray:
    """Each token's category: the flag-given ones by masks, in order of precedence, then the rest
    by their text (one regex pass each; 262k tokens on Gemma-3)."""
    category = np.full(len(texts), -1, dtype=np.int8)
    for index, mask in ((CATEGORIES.index("no_token"), flags["no_token"]), (KNOWN_UNUSED, unused),
                        (CATEGORIES.index("special"), flags["special"]),
                        (CATEGORIES.index("byte_fragment"), flags["byte"] | flags["partial_utf8"])):
        category[(category < 0) & mask] = index
    rest = np.flatnonzero(category < 0)
    category[rest] = np.fromiter((_text_category(texts[i]) for i in rest), dtype=np.int8, count=len(rest))
    return category


# The text categories in order of precedence, as one pattern whose first alternative matching the whole
# stripped text names the category: one regex call per token instead of up to eight. `contains`
# alternatives match when the pattern occurs anywhere; `non_latin` is a text with a letter and no
# Latin-script character; whatever matches none is `mixed`.
_TEXT_CATEGORY = regex.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in (
    ("digits", _DIGITS.pattern),
    ("emoji", rf"(?s:.*?){_EMOJI.pattern}(?s:.*)"),
    ("cjk", rf"(?s:.*?){_CJK.pattern}(?s:.*)"),
    ("code_identifier", _IDENTIFIER.pattern),
    ("latin_word", _LATIN_WORD.pattern),
    ("punctuation", _PUNCT.pattern),
    ("non_latin", r"(?=(?s:.*?)\p{L})\P{Latin}+"),
)))
_CATEGORY_INDEX = {name: CATEGORIES.index(name) for name in (*_TEXT_CATEGORY.groupindex, "whitespace", "mixed")}


def _text_category(text: str) -> int:
    core = text.strip()
    if not core:
        return _CATEGORY_INDEX["whitespace"]
    if core.isascii():  # the common cases without the regex: digits, and letters with no lower-to-upper step
        if core.isdecimal():
            return _CATEGORY_INDEX["digits"]
        if core.isalpha() and (core.islower() or core.isupper() or core.istitle()):
            return _CATEGORY_INDEX["latin_word"]
    match = _TEXT_CATEGORY.fullmatch(core)
    return _CATEGORY_INDEX[match.lastgroup if match is not None else "mixed"]


def _reachable(tokenizer: Any, texts: list[str], ids: list[int], pieces: list[str], wordpiece: bool) -> np.ndarray:
    """Whether encoding each token's decoded text yields exactly that token (vectorised by the Rust
    batch encoder). WordPiece continuation pieces (`##x`) are tried glued to a short anchor word."""
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # without offsets, where it exists
    encodings = _chunked(lambda chunk: encode(chunk, add_special_tokens=False), texts)
    ok = np.fromiter((e.ids == [i] for e, i in zip(encodings, ids)), dtype=bool, count=len(ids))
    if wordpiece:
        retry = [k for k in np.flatnonzero(~ok) if pieces[k].startswith("##")]
        for anchor in _WORDPIECE_ANCHORS:
            if not retry:
                break
            found = tokenizer.encode_batch([anchor + pieces[k][2:] for k in retry], add_special_tokens=False)
            hits = {k for k, e in zip(retry, found) if ids[k] in e.ids[1:]}
            ok[list(hits)] = True
            retry = [k for k in retry if k not in hits]
    return ok


def _chunked(call, items: list, size: int = BATCH) -> list:
    """Run a Rust batch call in chunks: it holds the GIL while it runs, and the GUI thread needs it."""
    out: list = []
    for start in range(0, len(items), size):
        out.extend(call(items[start:start + size]))
    return out


def build_token_table(tokenizer: Any, n_rows: int, rows: range | None = None) -> TokenTable:
    """Build the token table for an embedding matrix of `n_rows` rows (or its `rows` only: a share
    built beside others, see `cached_token_table`). Rows without a token (past the vocabulary, or
    holes in its ids) are flagged `no_token`. The re-encoding (Rust, which lets go of the GIL) runs
    on a thread beside the flags and categories (Python)."""
    rows = rows if rows is not None else range(n_rows)
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    # one past the highest id; not `get_vocab_size`, which counts tokens: with a hole in the ids (a vocabulary
    # that is not contiguous) the count is smaller than the highest id
    vocab_size = max(vocab.values(), default=-1) + 1
    first, n = rows.start, len(rows)
    n_tok = max(0, min(vocab_size, rows.stop) - first)  # rows of this share that the vocabulary reaches
    known: list[str | None] = [None] * n_tok
    for piece, token_id in vocab.items():
        if 0 <= token_id - first < n_tok:
            known[token_id - first] = piece
    special = np.zeros(n, dtype=bool)
    for token_id, added in tokenizer.get_added_tokens_decoder().items():
        if added.special and token_id in rows:
            special[token_id - first] = True
    no_token = np.ones(n, dtype=bool)
    no_token[:n_tok] = np.fromiter((piece is None for piece in known), dtype=bool, count=n_tok)
    pieces = [piece or "" for piece in known] + [""] * (n - n_tok)
    texts = _chunked(lambda chunk: tokenizer.decode_batch(chunk, skip_special_tokens=False),
                     [[first + i] for i in range(n_tok)]) + [""] * (n - n_tok)
    kind = type(tokenizer.model).__name__
    encodable = np.flatnonzero(~special & ~no_token)
    with ThreadPoolExecutor(1) as pool:
        reaching = pool.submit(_reachable, tokenizer, [texts[i] for i in encodable], (encodable + first).tolist(),
                               [pieces[i] for i in encodable], kind == "WordPiece")
        byte_level = "ByteLevel" in repr(tokenizer.decoder)
        token_bytes = _piece_bytes(pieces, special, kind, byte_level, "▁" in repr(tokenizer.decoder))
        flags = {"special": special, "no_token": no_token, **_piece_flags(pieces, token_bytes, byte_level)}
        flags["byte"] &= ~special
        unused = unused_name_mask(pieces) | invalid_byte_mask(token_bytes, flags["byte"])
        flags |= _text_flags(texts)
        category = _categorise(texts, flags, unused)
        flags["unreachable"] = np.zeros(n, dtype=bool)
        flags["unreachable"][encodable[~reaching.result()]] = True
    flags["unreachable"] &= ~flags["partial_utf8"] & ~flags["byte"]  # asked of whole, non-byte pieces only
    flags["nonfinite"] = np.zeros(n, dtype=bool)  # set from the matrix by the analysis
    return TokenTable(pieces, texts, token_bytes, {name: flags[name] for name in FLAGS}, category, vocab_size)


def joined_arrays(shares: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The `table_arrays` of consecutive row shares as one table's (string columns joined as blobs)."""
    joined: dict[str, np.ndarray] = {}
    for name in shares[0]:
        if name == "tokenizer_size":
            joined[name] = shares[0][name]
        elif name.endswith("_offsets"):
            starts = np.cumsum([0] + [int(share[name][-1]) for share in shares[:-1]])
            joined[name] = np.concatenate([shares[0][name][:1]] + [share[name][1:] + start
                                                                   for share, start in zip(shares, starts)])
        else:
            joined[name] = np.concatenate([share[name] for share in shares])
    return joined


def _piece_flags(pieces: list[str], token_bytes: list[bytes], byte_level: bool) -> dict[str, np.ndarray]:
    """The flags that follow from a token's piece and bytes alone (the cheap test first in each)."""
    n = len(pieces)
    return {
        "partial_utf8": np.fromiter((not (b.isascii() or _valid_utf8(b)) for b in token_bytes), dtype=bool,
                                    count=n),
        "byte": np.fromiter(((p.startswith("<0x") and _BYTE_FALLBACK.fullmatch(p) is not None)
                             or (byte_level and len(b) == 1 and b[0] >= 0x80)
                             for p, b in zip(pieces, token_bytes)), dtype=bool, count=n),
    }


def _text_flags(texts: list[str]) -> dict[str, np.ndarray]:
    """The flags that follow from a token's decoded text (a printable text has no Cc, Cf, Cs or Co)."""
    n = len(texts)
    return {
        "control": np.fromiter((not t.isprintable() and _CONTROL.search(t) is not None for t in texts),
                               dtype=bool, count=n),
        "whitespace": np.fromiter((bool(t) and not t.strip() for t in texts), dtype=bool, count=n),
    }


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def table_arrays(table: TokenTable) -> dict[str, np.ndarray]:
    """The table as named arrays for an `.npz` file (strings as blobs + offsets, no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    for name, items in (("pieces", table.pieces), ("texts", table.texts)):
        arrays[f"{name}_blob"], arrays[f"{name}_offsets"] = pack_strings(items)
    arrays["bytes_blob"], arrays["bytes_offsets"] = pack(table.token_bytes)
    for name, mask in table.flags.items():
        arrays[f"flag_{name}"] = mask
    arrays["category"] = table.category
    arrays["tokenizer_size"] = np.array([table.tokenizer_size])
    for name, values in table.structure.items():
        arrays[f"structure_{name}"] = values
    return arrays


def table_from_arrays(arrays: Mapping[str, np.ndarray]) -> TokenTable:
    size = arrays["tokenizer_size"] if "tokenizer_size" in arrays else np.array([0])
    return TokenTable(
        pieces=unpack_strings(arrays["pieces_blob"], arrays["pieces_offsets"]),
        texts=unpack_strings(arrays["texts_blob"], arrays["texts_offsets"]),
        token_bytes=unpack(arrays["bytes_blob"], arrays["bytes_offsets"]),
        flags={name: _flag(arrays, name, len(arrays["pieces_offsets"]) - 1) for name in FLAGS},
        category=arrays["category"],
        tokenizer_size=int(size[0]),
        structure={name: arrays[f"structure_{name}"] for name in STRUCTURE if f"structure_{name}" in arrays},
    )  # a file written before the structure columns has none: the detector goes without them


def _flag(arrays: Mapping[str, np.ndarray], name: str, n: int) -> np.ndarray:
    """A flag column; one that files written before the flag existed lack is all False."""
    return arrays[f"flag_{name}"] if f"flag_{name}" in arrays else np.zeros(n, dtype=bool)


def _build_share(folder: Path, n_rows: int, rows: range, path: Path, progress: Callable[[float, str], None]) -> None:
    """Child-process side of `cached_token_table`: one share of the rows, written to `path`."""
    from .loading import read_tokenizer

    progress(0.2, "reading the tokenizer")
    table = build_token_table(read_tokenizer(folder), n_rows, rows)
    with atomic_write(path) as handle:
        np.savez(handle, allow_pickle=False, **table_arrays(table))


def table_cache_path(fingerprint: str, n_rows: int) -> Path:
    return cache_root() / "tables" / f"{fingerprint}-{n_rows}-v{TABLE_CACHE_VERSION}.npz"


def cached_token_table(folder: Path, fingerprint: str, n_rows: int, progress: ProgressFn = no_progress,
                       cancel: CancelToken | None = None) -> TokenTable:
    """The token table of a model, from the cache when it was built before (keyed by the model's
    fingerprint), else built in child processes (the Rust tokenizer holds the GIL for seconds on
    large vocabularies), each a share of the rows on its own core, and cached; a cached open never
    loads the tokenizer."""
    path = table_cache_path(fingerprint, n_rows)
    if path.exists():
        try:
            return table_from_arrays(_read_arrays(path))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
    try:
        return table_from_arrays(_build_in_shares(folder, n_rows, path, progress, cancel))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise GlitchViewError(f"the token table cache {path} could not be written or read back ({exc})") from None


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _build_in_shares(folder: Path, n_rows: int, path: Path, progress: ProgressFn, cancel: CancelToken | None
                     ) -> dict[str, np.ndarray]:
    """Build the table in one child per share of the rows (each reads the tokenizer, 0.8 s on Gemma-3, but
    the per-token Python work, GIL-bound, runs on every core), join the shares into the cache file at `path`,
    and return its arrays."""
    n_shares = max(1, min(MAX_TABLE_SHARES, os.cpu_count() or 1, n_rows // MIN_SHARE_ROWS))
    bounds = np.linspace(0, n_rows, n_shares + 1).astype(int).tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".shares-") as folder_for_shares:
        shares = [Path(folder_for_shares) / f"{k}.npz" for k in range(n_shares)]
        run_in_children(_build_share, [(folder, n_rows, range(a, b), share)
                                       for a, b, share in zip(bounds, bounds[1:], shares)],
                        "building the token table", progress, cancel)
        arrays = joined_arrays([_read_arrays(share) for share in shares])
    with atomic_write(path) as handle:
        np.savez(handle, allow_pickle=False, **arrays)
    return arrays
