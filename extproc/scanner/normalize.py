"""Normalisation for the injection rules: what "the same text" means to them.

Owns the folding table used by `kernels.fold_chunk`. For every code point
below `TABLE_SIZE` it stores at most three ASCII bytes, computed once:

1. NFKC compatibility mapping (full-width forms, mathematical letters,
   ligatures, circled letters ...), taken as NFKD so that combining marks
   can then be dropped: "ìgnöre" reads "ignore";
2. zero-width, format and other invisible characters (ZWSP, ZWJ, BOM,
   soft hyphen, bidi controls, variation selectors, Hangul fillers) are
   dropped entirely;
3. case folding;
4. homoglyph folding of Cyrillic and Greek look-alikes and typographic
   punctuation to their ASCII twins;
5. every kind of whitespace becomes one space, and runs of it collapse.

Code points that fold to nothing readable become 0x80 ("other"), so a
phrase can never match across them. Unicode tag characters (U+E0020 to
U+E007E) are decoded by the kernel to the ASCII they shadow.

Letter-spaced words ("i g n o r e") are not undone here: the injection
patterns allow a separator between letters (see `packs.injection`), which
keeps this step a pure per-character map with exact offsets.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np

TABLE_SIZE = 0x20000
OTHER = 0x80

# Look-alikes that NFKC leaves alone. Lower case only: case folding runs first.
HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ԍ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ь": "b",
    "г": "r", "п": "n", "и": "u", "л": "n", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s", "σ": "o",
    "μ": "u", "ζ": "z", "ϲ": "c", "ϳ": "j",
    # Latin look-alikes and IPA
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i", "ʏ": "y", "ɴ": "n", "ʀ": "r", "ᴀ": "a",
    "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k",
    "ʟ": "l", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v",
    "ᴡ": "w", "ᴢ": "z", "ø": "o", "ð": "d", "ł": "l", "đ": "d", "ħ": "h",
    # Typographic punctuation
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"',
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-", "⁄": "/",
    "‹": "<", "›": ">", "«": '"', "»": '"', "〈": "<", "〉": ">", "⟨": "<", "⟩": ">",
    "｜": "|", "│": "|", "∣": "|", "ǀ": "|",
}  # fmt: skip

# Invisible code points that are not in category Cf/Mn but still render as nothing.
INVISIBLE_EXTRA = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x180E, 0x034F}


def _fold_char(ch: str) -> bytes | None:
    """The folded bytes of one code point; b"" when it is invisible, None for "other"."""
    cp = ord(ch)
    if cp in INVISIBLE_EXTRA:
        return b""
    cat = unicodedata.category(ch)
    if ch.isspace():
        return b" "
    if cat in ("Cf", "Mn", "Me", "Cc"):
        return b""
    if 0xD800 <= cp <= 0xDFFF:
        return None
    decomposed = unicodedata.normalize("NFKD", ch)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))
    folded = "".join(HOMOGLYPHS.get(c, c) for c in kept.casefold())
    folded = "".join(HOMOGLYPHS.get(c, c) for c in folded)
    if folded and all(c.isspace() for c in folded):
        return b" "
    if not folded or len(folded) > 3 or not folded.isascii():
        return None
    return folded.encode("ascii")


@functools.cache
def fold_table() -> np.ndarray:
    """The `uint8[TABLE_SIZE, 3]` folding table (built once per process, ~0.2 s)."""
    table = np.zeros((TABLE_SIZE, 3), dtype=np.uint8)
    for cp in range(TABLE_SIZE):
        if cp < 0x80:
            c = chr(cp)
            if c.isspace():
                table[cp, 0] = 0x20
            elif cp < 0x20 or cp == 0x7F:
                continue
            else:
                table[cp, 0] = ord(c.lower())
            continue
        folded = _fold_char(chr(cp))
        if folded is None:
            table[cp, 0] = OTHER
        else:
            for k, byte in enumerate(folded):
                table[cp, k] = byte
    return table


def _folded(ch: str) -> str:
    """What one code point folds to, as a string of folded bytes (see `fold_table`)."""
    cp = ord(ch)
    if cp < TABLE_SIZE:
        return "".join(chr(b) for b in fold_table()[cp] if b)
    if 0xE0020 <= cp <= 0xE007E:
        return chr(cp - 0xE0000).lower()
    if 0xE0000 <= cp <= 0xE0FFF:
        return ""
    return chr(OTHER)


_FOLDED: dict[str, str] = {}  # bounded by the code points there are
_SPACE_RUN = re.compile(" {2,}")


def fold_text(text: str) -> str:
    """Reference (pure Python) folding of a string, as the kernel folds it.

    Used for tests and for deny-list terms, which a policy may hold a megabyte
    of: so each distinct code point is folded once, and whitespace runs collapse
    in one pass over the result (invisible characters between two spaces vanish
    first, so the spaces still collapse into one).
    """
    cache = _FOLDED
    pieces = []
    for ch in text:
        piece = cache.get(ch)
        if piece is None:
            piece = cache[ch] = _folded(ch)
        pieces.append(piece)
    return _SPACE_RUN.sub(" ", "".join(pieces))
