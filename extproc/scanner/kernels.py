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


# Slots of the `ctl` array `stream_step` reads and writes: one per stream, two sides
# (0 raw, 1 normalised); the caller keeps the inputs in step with its own state.
K_TOTAL = 0  # in/out: code points fed so far
K_CURSOR = 1  # in: side's cursor (the smaller of its two lanes'), 1 + side
K_EXT_MAX = 3  # in: side's longest left extension (0: none), 3 + side
K_TAIL = 5  # in/out: trailing run of the side's extension characters (capped), 5 + side
K_FOUND = 7  # out: candidates the side's kernel wrote to its `out`, 7 + side
K_USED = 9  # out: bytes the side's kernel consumed, 9 + side
CTL_LEN = 11
# `stream_step` answers other than a release point.
STEP_INVALID = -1  # not complete strict UTF-8: nothing was touched
STEP_PYTHON = -2  # candidates, a kernel stopped early, or a frontier that needs the text


@njit(nogil=True, cache=True)
def utf8_chars(data):
    """Code points in `data` if it is complete, strict UTF-8 (as `bytes.decode`), else -1."""
    n = data.shape[0]
    i = 0
    cps = 0
    while i < n:
        c = data[i]
        if c < 0x80:
            i += 1
            cps += 1
            continue
        if 0xC2 <= c <= 0xDF:
            m = 2
            lo, hi = 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            m = 3
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            m = 4
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return -1
        if i + m > n:
            return -1
        b1 = data[i + 1]
        if b1 < lo or b1 > hi:
            return -1
        for k in range(2, m):
            if (data[i + k] & 0xC0) != 0x80:
                return -1
        i += m
        cps += 1
    return cps


# Slots of a side's `meta` array for `stream_step` (see `step_tables`).
M_CAP, M_MAX_ACC, M_CLASSES, M_STARTS, M_ACC_OFF, M_ACC_RULES = range(6)
M_RULE_CAP = 6  # the rule caps from here on


def step_tables(
    trans: np.ndarray,
    byte_class: np.ndarray,
    start_state: np.ndarray,
    acc_off: np.ndarray,
    acc_rules: np.ndarray,
    right_ok: np.ndarray,
    rule_cap: np.ndarray,
    forced: np.ndarray,
    cap: int,
    max_acc: int,
    ext_mask: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """A side's kernel tables as `stream_step` takes them: fewer arrays, a cheaper call.

    A numba call costs per argument; the one-dimensional int32 tables (and the
    extension characters) go in one array, the sizes, limits and rule caps in another,
    and `_unpacked` takes them apart again as views.
    """
    i32 = np.concatenate([byte_class, start_state, acc_off, acc_rules,
                          ext_mask.astype(np.int32)]).astype(np.int32)  # fmt: skip
    sizes = [cap, max_acc, len(byte_class), len(start_state), len(acc_off), len(acc_rules)]
    meta = np.concatenate([np.array(sizes, dtype=np.int64), rule_cap.astype(np.int64)])
    return trans, right_ok, forced, i32, meta


@njit(nogil=True, cache=True, inline="always")
def _unpacked(i32, meta):
    a = meta[M_CLASSES]
    b = a + meta[M_STARTS]
    c = b + meta[M_ACC_OFF]
    d = c + meta[M_ACC_RULES]
    return (i32[:a], i32[a:b], i32[b:c], i32[c:d], i32[d : d + 128], meta[M_RULE_CAP:],
            meta[M_CAP], meta[M_MAX_ACC])  # fmt: skip


@njit(nogil=True, cache=True, inline="always")
def _side_frontier(runs, state, total, cursor, ext_max, tail):
    """`MatchState._known` for a side with nothing pending, or -1 where it needs text."""
    nruns = state[ST_NRUNS]
    best = total
    k = 0
    while k < nruns and runs[k, R_START_CP] < cursor:
        k += 1  # attempts inside an accepted match (starts are in order)
    if k < nruns:
        if ext_max:
            return -1  # how far a live attempt may grow leftwards needs the text
        best = runs[k, R_START_CP]
    if ext_max:
        best = min(best, max(cursor, total - tail))
    return best


@njit(nogil=True, cache=True)
def stream_step(data, r_trans, r_right_ok, r_forced, r_i32, r_meta, r_runs, r_state, r_out,
                table, f_trans, f_right_ok, f_forced, f_i32, f_meta, f_runs, f_state, f_out,
                ctl):  # fmt: skip
    """One stream call over both sides: the release point, or `STEP_INVALID`/`STEP_PYTHON`.

    `STEP_INVALID`: `data` is not complete strict UTF-8, and nothing was touched.
    Otherwise both kernels ran as `MatchState.feed` would start them (`ctl` says how far
    and with how many candidates). A release point (>= 0) means neither found a
    candidate nor stopped early and the frontier needed no text: the caller only moves
    its release point. `STEP_PYTHON` leaves candidates, the rest of `data` and the
    frontier to the Python code.
    """
    cps = utf8_chars(data)
    if cps < 0:
        return STEP_INVALID
    n = data.shape[0]
    (r_byte_class, r_start_state, r_acc_off, r_acc_rules, r_ext, r_rule_cap, r_cap,
     r_max_acc) = _unpacked(r_i32, r_meta)  # fmt: skip
    (f_byte_class, f_start_state, f_acc_off, f_acc_rules, f_ext, f_rule_cap, f_cap,
     f_max_acc) = _unpacked(f_i32, f_meta)  # fmt: skip
    used0, found0 = match_raw(data, r_trans, r_byte_class, r_start_state, r_acc_off,
                              r_acc_rules, r_right_ok, r_rule_cap, r_forced, r_cap, r_max_acc,
                              r_runs, r_state, r_out)  # fmt: skip
    used1, found1 = fold_match(data, table, f_trans, f_byte_class, f_start_state, f_acc_off,
                               f_acc_rules, f_right_ok, f_rule_cap, f_forced, f_cap, f_max_acc,
                               f_runs, f_state, f_out)  # fmt: skip
    ctl[K_USED] = used0
    ctl[K_USED + 1] = used1
    ctl[K_FOUND] = found0
    ctl[K_FOUND + 1] = found1
    total = ctl[K_TOTAL] + cps
    ctl[K_TOTAL] = total
    ext0 = ctl[K_EXT_MAX]
    ext1 = ctl[K_EXT_MAX + 1]
    tail0 = ctl[K_TAIL]
    tail1 = ctl[K_TAIL + 1]
    if ext0 or ext1:
        # Extension characters are ASCII: any other byte ends a run.
        for i in range(n):
            b = data[i]
            tail0 = min(tail0 + 1, ext0) if b < 0x80 and r_ext[b] else 0
            tail1 = min(tail1 + 1, ext1) if b < 0x80 and f_ext[b] else 0
    ctl[K_TAIL] = tail0
    ctl[K_TAIL + 1] = tail1
    if found0 or found1 or used0 < n or used1 < n:
        return STEP_PYTHON
    front0 = _side_frontier(r_runs, r_state, total, ctl[K_CURSOR], ext0, tail0)
    front1 = _side_frontier(f_runs, f_state, total, ctl[K_CURSOR + 1], ext1, tail1)
    if front0 < 0 or front1 < 0:
        return STEP_PYTHON
    return min(total, front0, front1)
