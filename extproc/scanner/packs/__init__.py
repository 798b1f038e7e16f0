"""Built-in rule packs, one module per scanner family.

Owns the mapping from a scanner name (as used by policies and by
`weir scan --scanners`) to its tuple of rules.
"""

from __future__ import annotations

from ..rules import Rule
from .exfiltration import EXFILTRATION
from .injection import INJECTION
from .pii import PII
from .secrets import SECRETS

PACKS: dict[str, tuple[Rule, ...]] = {
    "secrets": SECRETS,
    "pii": PII,
    "prompt-injection": INJECTION,
    "exfiltration": EXFILTRATION,
}

__all__ = ["PACKS"]
