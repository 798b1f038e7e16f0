"""The policy's token budgets: a workload's `budget` and the document's `budgetStore`.

```yaml
workloads:
  - name: payments-checkout
    budget: {tokens: 200000, window: 1d, per: workload}   # or per: user
budgetStore:
  onUnavailable: closed      # closed: refuse while the store is down; open: allow and record
```

Windows are fixed and aligned to UTC (a `1d` window runs from midnight to midnight
UTC; `30d` windows count from the Unix epoch), so every replica, and Redis, agree on
which window a token belongs to without talking to each other. Validated at load like
every other key: a policy `weir policy check` accepts never fails at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WINDOW_SECONDS = {"1m": 60, "1h": 3600, "1d": 86400, "30d": 30 * 86400}
PER_WORKLOAD, PER_USER = "workload", "user"
CLOSED, OPEN = "closed", "open"
# A budget above this is no budget: it is almost surely a typo (or a unit mistake).
MAX_BUDGET_TOKENS = 10**12


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BudgetDoc(_Strict):
    tokens: int
    window: Literal["1m", "1h", "1d", "30d"]
    per: Literal["workload", "user"] = "workload"


class BudgetStoreDoc(_Strict):
    on_unavailable: Literal["closed", "open"] = Field(default="closed", alias="onUnavailable")


@dataclass(frozen=True, slots=True)
class Budget:
    """So many tokens (input + output) per fixed UTC window, per workload or per end user."""

    tokens: int
    window: str
    per: str = PER_WORKLOAD

    @property
    def window_seconds(self) -> int:
        return WINDOW_SECONDS[self.window]

    def window_start(self, now: float) -> int:
        """The start (Unix seconds) of the window holding ``now``."""
        size = self.window_seconds
        return int(now // size) * size

    def resets_in(self, now: float) -> int:
        """Whole seconds until the window holding ``now`` ends (at least 1): `Retry-After`."""
        end = self.window_start(now) + self.window_seconds
        return max(1, int(-(-(end - now) // 1)))


@dataclass(frozen=True, slots=True)
class BudgetStoreRule:
    on_unavailable: str = CLOSED


def build_budget(
    doc: BudgetDoc | None, here: str, have_user_tokens: bool, fail: Any
) -> Budget | None:
    """The validated budget of one workload (``here`` is its path in the document)."""
    if doc is None:
        return None
    if doc.tokens <= 0:
        raise fail(f"{here}.budget.tokens", "must be a positive number of tokens")
    if doc.tokens > MAX_BUDGET_TOKENS:
        raise fail(f"{here}.budget.tokens", f"must be at most {MAX_BUDGET_TOKENS}")
    if doc.per == PER_USER and not have_user_tokens:
        raise fail(
            f"{here}.budget.per",
            "a budget per user needs a 'jwt' section: the end user comes from its token",
        )
    return Budget(tokens=doc.tokens, window=doc.window, per=doc.per)


def build_budget_store(doc: BudgetStoreDoc | None) -> BudgetStoreRule:
    return BudgetStoreRule() if doc is None else BudgetStoreRule(doc.on_unavailable)
