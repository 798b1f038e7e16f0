"""Compiler: rule sets become the numpy tables the kernels run on.

Owns the split of a rule set into its two sides (raw UTF-8 bytes, and the
normalised text of the injection-style rules), the per-rule context and
length tables, and the caches of compiled rule sets keyed by
`rules.ruleset_hash`: a bounded one in memory (`MEMORY_CACHE_SIZE` rule sets)
and a bounded one on disk (`DISK_CACHE_FILES` files). Compiling is pure Python
and takes up to a second for the built-in packs or a large deny-list; it
happens once per distinct rule set while it stays cached.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import dfa as dfa_mod
from .lru import Lru
from .nfa import NFA
from .rules import ANY, Rule, RuleError, ruleset_hash
from .syntax import ALL_BYTES, Bytes, max_length, parse
from .validators import VALIDATORS, Validator


@dataclass(frozen=True)
class Side:
    """One matcher: the rules it holds and every table its kernel needs."""

    rules: tuple[Rule, ...]
    normalized: bool
    tables: dfa_mod.DFATables
    right_ok: np.ndarray  # bool[n_rules, 256]
    rule_cap: np.ndarray  # int64[n_rules]
    forced: np.ndarray  # bool[n_rules]: unbounded rule, report at its cap
    cap: int
    validators: tuple[Validator | None, ...]
    left_ok: np.ndarray  # bool[n_rules, 258]: for rules that extend left, checked in Python
    extend: np.ndarray  # bool[n_rules, 128]: ASCII a match may extend left over
    # What the matcher derives from these tables once (its kernel arguments), kept
    # here so that it lives exactly as long as the side does.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def max_runs(self) -> int:
        # Attempts start at distinct symbols within the last `cap` units; a code
        # point folds to at most three symbols.
        return (3 if self.normalized else 1) * self.cap + 2


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[Rule, ...]
    digest: str
    raw: Side | None
    folded: Side | None


def context_mask(spec: str) -> int:
    """The byte set of a left/right context written as one pattern class."""
    if spec == ANY:
        return ALL_BYTES
    node = parse(spec)
    if not isinstance(node, Bytes):
        raise RuleError(f"context {spec!r} must be a single byte class")
    return node.mask


def _forced(rule: Rule) -> bool:
    """Unbounded raw rules are reported at their cap instead of being dropped there."""
    return not rule.normalized and max_length(parse(rule.pattern, rule.ignore_case)) is None


def _mask_to_bool(mask: int) -> np.ndarray:
    return np.array([bool(mask >> b & 1) for b in range(256)], dtype=np.bool_)


def _compile_side(rules: Sequence[Rule], normalized: bool) -> Side | None:
    if not rules:
        return None
    nfa = NFA()
    left_ok: list[np.ndarray] = []
    dfa_left: list[np.ndarray] = []
    right_ok = np.zeros((len(rules), 256), dtype=np.bool_)
    caps = np.zeros(len(rules), dtype=np.int64)
    forced = np.zeros(len(rules), dtype=np.bool_)
    for i, rule in enumerate(rules):
        rule.check()
        tree = parse(rule.pattern, rule.ignore_case)
        nfa.add_rule(tree)
        lok = np.ones(258, dtype=np.bool_)
        lok[:256] = _mask_to_bool(context_mask(rule.left))
        lok[257] = rule.after_tag and lok[0x80]
        left_ok.append(lok)
        if rule.extend is not None:
            # The automaton starts at the anchor, which must follow an extension byte.
            anchor = np.zeros(258, dtype=np.bool_)
            anchor[:256] = _mask_to_bool(context_mask(rule.extend))
            dfa_left.append(anchor)
        else:
            dfa_left.append(lok)
        right_ok[i] = _mask_to_bool(context_mask(rule.right))
        caps[i] = rule.cap
        forced[i] = _forced(rule)
    try:
        tables = dfa_mod.build(nfa, dfa_left)
    except dfa_mod.AutomatonTooLarge as exc:
        raise RuleError(str(exc)) from exc
    return Side(
        rules=tuple(rules),
        normalized=normalized,
        tables=tables,
        right_ok=right_ok,
        rule_cap=caps,
        forced=forced,
        cap=int(caps.max()),
        validators=tuple(VALIDATORS[r.validator] if r.validator else None for r in rules),
        left_ok=np.array(left_ok, dtype=np.bool_),
        extend=_extend_table(rules),
    )


def _extend_table(rules: Sequence[Rule]) -> np.ndarray:
    table = np.zeros((len(rules), 128), dtype=np.bool_)
    for i, rule in enumerate(rules):
        if rule.extend is not None:
            table[i] = _mask_to_bool(context_mask(rule.extend))[:128]
    return table


# Rule sets a process keeps compiled: the built-in pack combinations, plus the
# deny-lists of the policy in force and of a few before it. A plan holds its
# tables directly, so eviction never takes them from a policy in force.
MEMORY_CACHE_SIZE = 32
DISK_CACHE_FILES = 64
_cache: Lru[str, CompiledRules] = Lru(MEMORY_CACHE_SIZE)
# Each side is also cached on its own: a new deny-list (normalised) beside the
# secrets pack (raw) recompiles only the normalised side.
_sides: Lru[str, Side] = Lru(MEMORY_CACHE_SIZE)
_lock = threading.Lock()

# Compiled tables are also kept on disk (plain .npz, no pickle), so a fresh
# `weir scan` process skips the subset construction. The key covers the rule
# set and the source of every module that shapes the tables.
_SOURCES = ("syntax.py", "nfa.py", "dfa.py", "compiler.py", "rules.py")
_CODE_HASH = hashlib.sha256(
    b"".join((Path(__file__).parent / name).read_bytes() for name in _SOURCES)
).hexdigest()[:16]


def _cache_dir() -> Path | None:
    if os.environ.get("WEIR_SCANNER_CACHE", "") == "off":
        return None
    explicit = os.environ.get("WEIR_SCANNER_CACHE")
    if explicit:
        return Path(explicit)
    try:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory to speak of
        return None
    return root / "weir" / "scanner"


_FIELDS = ("byte_class", "trans", "start_state", "acc_off", "acc_rules")


def _side_arrays(side: Side | None, tag: str) -> dict[str, np.ndarray]:
    if side is None:
        return {}
    out = {f"{tag}.{f}": getattr(side.tables, f) for f in _FIELDS}
    out[f"{tag}.right_ok"] = side.right_ok
    out[f"{tag}.left_ok"] = side.left_ok
    return out


def _side_from_arrays(
    arrays: dict[str, np.ndarray], tag: str, rules: Sequence[Rule], normalized: bool
) -> Side | None:
    if not rules:
        return None
    tables = dfa_mod.DFATables(**{f: arrays[f"{tag}.{f}"] for f in _FIELDS})
    caps = np.array([r.cap for r in rules], dtype=np.int64)
    return Side(
        rules=tuple(rules),
        normalized=normalized,
        tables=tables,
        right_ok=arrays[f"{tag}.right_ok"],
        rule_cap=caps,
        forced=np.array([_forced(r) for r in rules], np.bool_),
        cap=int(caps.max()),
        validators=tuple(VALIDATORS[r.validator] if r.validator else None for r in rules),
        left_ok=arrays[f"{tag}.left_ok"],
        extend=_extend_table(rules),
    )


def _load(digest: str, rules: tuple[Rule, ...]) -> CompiledRules | None:
    d = _cache_dir()
    if d is None:
        return None
    path = d / f"{digest[:32]}-{_CODE_HASH}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        os.utime(path)  # recently used: pruned last
        raw = [r for r in rules if not r.normalized]
        folded = [r for r in rules if r.normalized]
        return CompiledRules(
            rules=rules,
            digest=digest,
            raw=_side_from_arrays(arrays, "raw", raw, False),
            folded=_side_from_arrays(arrays, "folded", folded, True),
        )
    except (OSError, KeyError, ValueError):
        return None


def _store(compiled: CompiledRules) -> None:
    d = _cache_dir()
    if d is None:
        return
    try:
        d.mkdir(parents=True, exist_ok=True)
        arrays = {**_side_arrays(compiled.raw, "raw"), **_side_arrays(compiled.folded, "folded")}
        # Write then rename, so a concurrent reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, d / f"{compiled.digest[:32]}-{_CODE_HASH}.npz")
        _prune(d)
    except OSError:
        pass


def _prune(d: Path) -> None:
    """Keep the `DISK_CACHE_FILES` most recently used files (tables of old code included)."""
    entries = []
    for path in d.glob("*.npz"):
        try:
            entries.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue  # removed by a concurrent prune
    entries.sort(reverse=True)
    for _, path in entries[DISK_CACHE_FILES:]:
        path.unlink(missing_ok=True)


def _side(rules: Sequence[Rule], normalized: bool) -> Side | None:
    if not rules:
        return None
    key = ruleset_hash(rules)
    hit = _sides.get(key)
    if hit is not None:
        return hit
    side = _compile_side(rules, normalized)
    assert side is not None
    return _sides.put(key, side)


def compile_rules(rules: Sequence[Rule]) -> CompiledRules:
    """Compile (or fetch from the cache) the tables for a rule set."""
    rules = tuple(rules)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise RuleError(f"duplicate rule ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    digest = ruleset_hash(rules)
    with _lock:
        hit = _cache.get(digest)
        if hit is not None:
            return hit
        # Each rule is checked where its side is compiled; tables on disk were stored
        # from checked rules of the same digest.
        compiled = _load(digest, rules)
        if compiled is None:
            compiled = CompiledRules(
                rules=rules,
                digest=digest,
                raw=_side([r for r in rules if not r.normalized], normalized=False),
                folded=_side([r for r in rules if r.normalized], normalized=True),
            )
            _store(compiled)
        return _cache.put(digest, compiled)
