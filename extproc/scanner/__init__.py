"""Weir's streaming multi-pattern scanner for secrets, PII and prompt injection.

Layers, one module each (see DESIGN.md):

    rules / packs  ->  syntax -> nfa -> dfa (compiler)  ->  kernels (numba)
                   ->  matcher (selection, validators)  ->  stream (hold-back, redaction)
                   ->  scanner (public API)  ->  cli (`weir scan`)

Public API::

    from extproc.scanner import Scanner, Finding, StreamScanner, Release, warm_up

`StreamScanner.feed` takes bytes and returns the released (redacted) bytes;
`StreamScanner.advance` takes the bytes (or a uint8 array) a caller already holds and
returns a `Release`: the release point in the caller's input, the findings, and the
output text only when it differs from that input.
"""

from __future__ import annotations

from .matcher import Finding
from .rules import Rule, RuleError, deny_list
from .scanner import Scanner, warm_up
from .stream import Release, StreamScanner

__all__ = ["Finding", "Release", "Rule", "RuleError", "Scanner", "StreamScanner", "deny_list",
           "warm_up"]
