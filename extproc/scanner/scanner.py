"""The public face of the package: `Scanner`, built from rules, scanning text.

Owns rule-set selection (`for_scanners`), the bounded per-rule-set instance cache,
the offline `scan` / `redact` entry points and `warm_up`. The offline path
is the streaming path fed with one chunk, so both give identical results
by construction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from .compiler import MEMORY_CACHE_SIZE, CompiledRules, compile_rules
from .lru import Lru
from .matcher import Finding
from .normalize import fold_table
from .packs import PACKS
from .rules import SCANNERS, Rule, RuleError
from .stream import StreamScanner


class Scanner:
    """A compiled rule set. Immutable and thread-safe; make streams from it."""

    # Bounded like the compiled tables beneath them (see `lru`).
    _instances: ClassVar[Lru[str, Scanner]] = Lru(MEMORY_CACHE_SIZE)

    def __init__(self, compiled: CompiledRules) -> None:
        self._compiled = compiled

    @classmethod
    def from_rules(cls, rules: Sequence[Rule]) -> Scanner:
        """Compile `rules` (or reuse the scanner already built for the same rule set)."""
        compiled = compile_rules(rules)
        return cls._instances.get_or_make(compiled.digest, lambda: cls(compiled))

    @classmethod
    def for_scanners(cls, names: Iterable[str], extra: Sequence[Rule] = ()) -> Scanner:
        """The built-in packs for the named scanners ("secrets", "pii", "prompt-injection"),
        plus `extra` rules (a policy's deny-list), in one automaton."""
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in PACKS]
        if unknown:
            raise RuleError(f"unknown scanner(s) {unknown}; choose from {list(SCANNERS)}")
        if not wanted and not extra:
            raise RuleError("no scanner selected")
        # Pack order is fixed so that the same set in any order hits the same cache entry.
        rules = [r for name in SCANNERS if name in wanted for r in PACKS[name]]
        return cls.from_rules([*rules, *extra])

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._compiled.rules

    @property
    def digest(self) -> str:
        """The rule-set hash this scanner is cached under."""
        return self._compiled.digest

    def stream(
        self, actions: Mapping[str, str] | None = None, *, redact: bool = True
    ) -> StreamScanner:
        """A fresh streaming state for one text stream.

        `redact=False` releases the original text and only reports findings.

        `actions` (scanner name -> "block" | "redact" | "audit"), when given,
        limits redaction to the scanners whose action is "redact" or "block";
        every finding is still reported.
        """
        return StreamScanner(self._compiled, redact=redact, actions=actions)

    def scan(self, text: str) -> list[Finding]:
        """All findings in `text`, ordered by start; offsets are `str` indices."""
        s = StreamScanner(self._compiled, redact=False)
        return s.push_text(text, final=True)[1]

    def redact(self, text: str) -> str:
        """`text` with every finding replaced by `[REDACTED:<rule-id>]`."""
        return self.scan_and_redact(text)[0]

    def scan_and_redact(self, text: str) -> tuple[str, list[Finding]]:
        """Both at once, in one pass."""
        return StreamScanner(self._compiled).push_text(text, final=True)


_warm_lock = threading.Lock()
_warmed = False


def warm_up() -> None:
    """Compile the built-in packs and JIT every kernel, before the server reports ready.

    Numba's on-disk cache (`cache=True`) makes this fast after the first
    run on a machine; the rule tables are rebuilt in-process (about a second).
    """
    global _warmed
    with _warm_lock:
        if _warmed:
            return
        fold_table()
        sample = "warm up: AKIA ghp_ a@b.co +1 415 555 0100 ignore previous instructions\U000e0041"
        for names in (SCANNERS, *((n,) for n in SCANNERS)):
            sc = Scanner.for_scanners(names)
            sc.scan(sample)
            st = sc.stream()
            st.feed(sample.encode())
            st.finish()
            st = sc.stream()  # `advance` runs both sides in one compiled step
            st.advance(b"warm up")
            st.advance(sample.encode())
            st.advance(b"", final=True)
        _warmed = True
