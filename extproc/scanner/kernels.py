"""The numba kernels: the only code that touches every byte.

Owns the `@njit(nogil=True, cache=True)` loops over `uint8` arrays:

* `match_raw` walks the anchored DFA of the raw side over UTF-8 bytes;
* `fold_match` decodes UTF-8, folds each code point through the
  normalisation table (see `normalize`) and walks the DFA of the
  normalised side over the folded bytes in the same pass, so no folded
  copy of the text is ever materialised;
* `match_finish` closes both at end of text.

Matching keeps a list of live attempts (one per start position that is
still a viable prefix of some rule). Per symbol, `_step` reports every
accepting (start, end, rule) whose right context holds, advances each
attempt, drops dead ones and spawns a new attempt where the previous
symbol allows one. All state lives in caller-owned arrays, so a call can
stop anywhere and the next call continues as if the input had never been
split: this is the root of split invariance.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Indices into the persistent `state` array.
ST_NRUNS = 0
ST_PREV = 1  # previous symbol, 256 at start of text
ST_POS = 2  # absolute index of the next symbol
ST_CPS = 3  # code points seen so far
ST_LAST_END = 4  # code-point index just after the previous symbol
ST_SPACE = 5  # normalised side: the last folded byte was a space
ST_TAG = 6  # raw side: progress through a Unicode tag character (4 = just completed one)
STATE_LEN = 7
# Context index for "right after a Unicode tag character" (256 is start of text).
AFTER_TAG = 257

# Columns of a run row and of a candidate row.
R_START, R_START_CP, R_STATE = 0, 1, 2
C_START, C_END, C_START_CP, C_END_CP, C_RULE = 0, 1, 2, 3, 4
CAND_COLS = 5


@njit(nogil=True, cache=True, inline="always")
def _emit(out, nout, start, end, start_cp, end_cp, r):
    out[nout, 0] = start
    out[nout, 1] = end
    out[nout, 2] = start_cp
    out[nout, 3] = end_cp
    out[nout, 4] = r
    return nout + 1


@njit(nogil=True, cache=True, inline="always")
def _step(b, cur, folded, pos, last_end, prev, nruns, nout, trans, byte_class, start_state,
          acc_off, acc_rules, right_ok, rule_cap, forced, cap, runs, out):  # fmt: skip
    """Advance every live attempt over symbol `b` at `pos` (code point `cur`)."""
    cls = byte_class[b]
    w = 0
    cut = False
    for k in range(nruns):
        s = runs[k, 2]
        start = runs[k, 0]
        start_cp = runs[k, 1]
        length = (last_end - start_cp) if folded else (pos - start)
        for j in range(acc_off[s], acc_off[s + 1]):
            r = acc_rules[j]
            if length <= rule_cap[r]:
                if right_ok[r, b]:
                    nout = _emit(out, nout, start, pos, start_cp, last_end, r)
                elif forced[r] and length == rule_cap[r]:
                    # An unbounded rule still matching at its cap is reported up to
                    # the cap, so an over-long secret is cut into pieces, not missed.
                    nout = _emit(out, nout, start, pos, start_cp, last_end, r)
                    cut = True
        span = (cur + 1 - start_cp) if folded else (pos + 1 - start)
        if span > cap:
            continue
        s2 = trans[s, cls]
        if s2 == 0:
            continue
        if w != k:
            runs[w, 0] = start
            runs[w, 1] = start_cp
        runs[w, 2] = s2
        w += 1
    nruns = w
    # After a cut inside a tag run the next piece starts here, as after any character.
    s0 = start_state[0x80 if (cut and prev == AFTER_TAG) else prev]
    if s0 != 0:
        s2 = trans[s0, cls]
        if s2 != 0 and nruns < runs.shape[0]:
            runs[nruns, 0] = pos
            runs[nruns, 1] = cur
            runs[nruns, 2] = s2
            nruns += 1
    return nruns, nout


@njit(nogil=True, cache=True)
def match_raw(data, trans, byte_class, start_state, acc_off, acc_rules, right_ok, rule_cap,
              forced, cap, max_acc, runs, state, out):  # fmt: skip
    """Match UTF-8 `data`; return (bytes consumed, candidates written to `out`)."""
    nruns = state[ST_NRUNS]
    prev = state[ST_PREV]
    pos = state[ST_POS]
    cps = state[ST_CPS]
    last_end = state[ST_LAST_END]
    tag = state[ST_TAG]
    nout = 0
    n = data.shape[0]
    i = 0
    while i < n:
        if nout + 2 * (nruns + 1) * max_acc > out.shape[0]:
            break  # the caller drains (or grows) `out` and calls again
        b = data[i]
        if (b & 0xC0) != 0x80:
            cur = cps
            cps += 1
        else:
            cur = cps - 1
        ctx = AFTER_TAG if tag == 4 else prev
        # Track F3 A0 (80|81) xx, the UTF-8 of U+E0000..U+E007F, one byte at a time.
        if b == 0xF3:
            tag = 1
        elif tag == 1 and b == 0xA0:
            tag = 2
        elif tag == 2 and (b == 0x80 or b == 0x81):
            tag = 3
        elif tag == 3 and (b & 0xC0) == 0x80:
            tag = 4
        else:
            tag = 0
        if nruns == 0 and trans[start_state[ctx], byte_class[b]] == 0:
            # Fast path: nothing live and nothing can start here.
            prev = b
            pos += 1
            last_end = cur + 1
            i += 1
            continue
        nruns, nout = _step(b, cur, False, pos, last_end, ctx, nruns, nout, trans, byte_class,
                            start_state, acc_off, acc_rules, right_ok, rule_cap, forced, cap,
                            runs, out)  # fmt: skip
        prev = b
        pos += 1
        last_end = cur + 1
        i += 1
    state[ST_NRUNS] = nruns
    state[ST_PREV] = prev
    state[ST_POS] = pos
    state[ST_CPS] = cps
    state[ST_LAST_END] = last_end
    state[ST_TAG] = tag
    return i, nout


@njit(nogil=True, cache=True)
def fold_match(data, table, trans, byte_class, start_state, acc_off, acc_rules, right_ok,
               rule_cap, forced, cap, max_acc, runs, state, out):  # fmt: skip
    """Fold and match complete UTF-8 `data`; return (bytes consumed, candidates written).

    `table[cp]` holds up to three folded bytes (0 = none). Unicode tag
    characters decode to the ASCII they shadow; other plane-14 code points
    are invisible; anything else beyond the table folds to 0x80 ("other").
    Runs of whitespace collapse to one space, across calls too.
    """
    nruns = state[ST_NRUNS]
    prev = state[ST_PREV]
    pos = state[ST_POS]
    cps = state[ST_CPS]
    last_end = state[ST_LAST_END]
    last_space = state[ST_SPACE]
    table_size = table.shape[0]
    buf = np.zeros(3, dtype=np.uint8)
    nout = 0
    n = data.shape[0]
    i = 0
    while i < n:
        if nout + 6 * (nruns + 3) * max_acc > out.shape[0]:
            break
        b = data[i]
        cur = cps
        if b < 0x80:
            # ASCII: exactly one folded byte or none; the common case, kept short.
            i += 1
            cps += 1
            sym = table[b, 0]
            if sym == 0:
                continue
            if sym == 0x20:
                if last_space:
                    continue
                last_space = 1
            else:
                last_space = 0
            if nruns != 0 or trans[start_state[prev], byte_class[sym]] != 0:
                nruns, nout = _step(sym, cur, True, pos, last_end, prev, nruns, nout, trans,
                                    byte_class, start_state, acc_off, acc_rules, right_ok,
                                    rule_cap, forced, cap, runs, out)  # fmt: skip
            prev = sym
            pos += 1
            last_end = cur + 1
            continue
        if b >= 0xF0:
            cp = (np.int64(b & 0x07) << 18) | (np.int64(data[i + 1] & 0x3F) << 12)
            cp |= (np.int64(data[i + 2] & 0x3F) << 6) | np.int64(data[i + 3] & 0x3F)
            i += 4
        elif b >= 0xE0:
            cp = (np.int64(b & 0x0F) << 12) | (np.int64(data[i + 1] & 0x3F) << 6)
            cp |= np.int64(data[i + 2] & 0x3F)
            i += 3
        else:
            cp = (np.int64(b & 0x1F) << 6) | np.int64(data[i + 1] & 0x3F)
            i += 2
        cps += 1
        nf = 0
        if cp < table_size:
            for k in range(3):
                f = table[cp, k]
                if f == 0:
                    break
                buf[nf] = f
                nf += 1
        elif 0xE0020 <= cp <= 0xE007E:
            f = cp - 0xE0000
            if 0x41 <= f <= 0x5A:
                f += 0x20
            buf[0] = f
            nf = 1
        elif cp < 0xE0000 or cp > 0xE0FFF:
            buf[0] = 0x80
            nf = 1
        for k in range(nf):
            sym = buf[k]
            if sym == 0x20:
                if last_space:
                    continue
                last_space = 1
            else:
                last_space = 0
            if nruns != 0 or trans[start_state[prev], byte_class[sym]] != 0:
                nruns, nout = _step(sym, cur, True, pos, last_end, prev, nruns, nout, trans,
                                    byte_class, start_state, acc_off, acc_rules, right_ok,
                                    rule_cap, forced, cap, runs, out)  # fmt: skip
            prev = sym
            pos += 1
            last_end = cur + 1
    state[ST_NRUNS] = nruns
    state[ST_PREV] = prev
    state[ST_POS] = pos
    state[ST_CPS] = cps
    state[ST_LAST_END] = last_end
    state[ST_SPACE] = last_space
    return i, nout


@njit(nogil=True, cache=True)
def match_finish(acc_off, acc_rules, rule_cap, folded, runs, state, out):
    """End of text: every live attempt in an accepting state matches (no right context)."""
    nruns = state[ST_NRUNS]
    pos = state[ST_POS]
    last_end = state[ST_LAST_END]
    nout = 0
    for k in range(nruns):
        s = runs[k, 2]
        for j in range(acc_off[s], acc_off[s + 1]):
            r = acc_rules[j]
            length = (last_end - runs[k, 1]) if folded else (pos - runs[k, 0])
            if length <= rule_cap[r] and nout < out.shape[0]:
                nout = _emit(out, nout, runs[k, 0], pos, runs[k, 1], last_end, r)
    state[ST_NRUNS] = 0
    return nout
