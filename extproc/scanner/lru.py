"""A small thread-safe LRU mapping: the bound on every process-wide scanner cache.

Compiled rule sets and scanners are cached by the digest of their rules, so
that every workload, direction and reload with the same rules shares one. A
server that reloads policies with ever new deny-lists would otherwise keep
every rule set it ever compiled; with a bound, memory stays flat. A plan in
use holds its scanner directly, so evicting an entry never takes it away from
a policy in force; at worst the same rules compile again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be positive")
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        """Store `value` (or keep the one already there); return what is cached."""
        with self._lock:
            current = self._items.get(key)
            if current is not None:
                self._items.move_to_end(key)
                return current
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The cached value, or `make()`'s, stored; `make` runs outside the lock."""
        hit = self.get(key)
        return hit if hit is not None else self.put(key, make())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
