"""A thread-safe cache of per-image encodings with a byte budget and a time-to-live.

- many images, least recently used evicted first once ``max_bytes`` is exceeded;
- entries older than ``ttl`` seconds are recomputed;
- single flight: when several requests ask for the same missing key at once, one computes and
  the others wait for its result (one encoding per image, however many clicks arrive together);
- a failed computation is not cached; its waiters get the same error.

Values should expose ``nbytes`` (encodings of interactive functions do); others count as 0.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    computed: int = 0
    evicted: int = 0
    expired: int = 0
    waited: int = 0


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class EncodingCache:
    def __init__(self, max_bytes: int = 2 << 30, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        if max_bytes < 0 or ttl <= 0:
            raise ValueError("max_bytes must be >= 0 and ttl > 0")
        self.max_bytes = int(max_bytes)
        self.ttl = float(ttl)
        self.clock = clock
        self._items: OrderedDict[Hashable, tuple[Any, int, float]] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._lock = threading.Lock()
        self._bytes = 0
        self.stats = CacheStats()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._get(key)
            if hit is not None:
                self.stats.hits += 1
                return hit[0]
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                owner = True
                self.stats.misses += 1
            else:
                owner = False
                self.stats.waited += 1
        if not owner:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            value = compute()
        except BaseException as e:
            flight.error = e
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()
            raise
        flight.value = value
        with self._lock:
            self.stats.computed += 1
            self._put(key, value)
            self._flights.pop(key, None)
        flight.done.set()
        return value

    def _get(self, key: Hashable) -> tuple[Any, int, float] | None:
        item = self._items.get(key)
        if item is None:
            return None
        if self.clock() - item[2] > self.ttl:
            self._drop(key)
            self.stats.expired += 1
            return None
        self._items.move_to_end(key)
        return item

    def _put(self, key: Hashable, value: Any) -> None:
        size = int(getattr(value, "nbytes", 0) or 0)
        if key in self._items:
            self._drop(key)
        if size > self.max_bytes:
            return  # larger than the whole budget: used once, never stored
        self._items[key] = (value, size, self.clock())
        self._bytes += size
        while self._bytes > self.max_bytes and self._items:
            oldest = next(iter(self._items))
            self._drop(oldest)
            self.stats.evicted += 1

    def _drop(self, key: Hashable) -> None:
        _, size, _ = self._items.pop(key)
        self._bytes -= size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
