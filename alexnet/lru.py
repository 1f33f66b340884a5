"""A small thread-safe least-recently-used map: the one bounded in-memory cache of the project.

    models = LRU(maxsize=2)
    loaded = models.get_or_make(key, lambda: load(key))   # one load per key, even under concurrent requests

Used for the app's loaded models and recent forward passes, fitted UMAP maps and fc7 features.
`get_or_make` holds the lock while it makes a missing value, so two visitors asking for the
same expensive thing wait for one computation, not two (at the cost of serialising misses).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"an LRU cache holds at least one item, not {maxsize}")
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.RLock()        # re-entrant: a `make` may read the cache it fills

    def get(self, key: Hashable) -> V | None:
        """The value, marked as most recently used; None when absent."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: V) -> V:
        """Store `value`, evicting the least recently used items beyond `maxsize`."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                return self.get(key)
            return self.put(key, make())

    def pop_where(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop every item whose key satisfies `predicate` (e.g. all entries of one model)."""
        with self._lock:
            for k in [k for k in self._items if predicate(k)]:
                del self._items[k]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
