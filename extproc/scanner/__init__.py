"""Weir's streaming multi-pattern scanner for secrets, PII and prompt injection.

Layers, one module each (see DESIGN.md):

    rules / packs  ->  syntax -> nfa -> dfa (compiler)  ->  kernels (numba)
                   ->  matcher (selection, validators)  ->  stream (hold-back, redaction)
                   ->  scanner (public API)  ->  cli (`weir scan`)

Public API::

    from extproc.scanner import Scanner, Finding, StreamScanner, warm_up
"""

from __future__ import annotations

from .matcher import Finding
from .rules import Rule, RuleError, deny_list
from .scanner import Scanner, warm_up
from .stream import StreamScanner

__all__ = ["Finding", "Rule", "RuleError", "Scanner", "StreamScanner", "deny_list", "warm_up"]
