"""Interactive functions' image encodings: computed once per image, kept within a byte budget,
and computed ahead in the background when a front end knows which image comes next.

:class:`EncodingCache`, a thread-safe cache of per-image encodings with a byte budget and a
time-to-live:

- many images, least recently used evicted first once ``max_bytes`` is exceeded;
- entries older than ``ttl`` seconds are recomputed;
- single flight: when several requests ask for the same missing key at once, one computes and
  the others wait for its result (one encoding per image, however many clicks arrive together);
- a failed computation is not cached; its waiters get the same error.

Values should expose ``nbytes`` (encodings of interactive functions do); others count as 0.

:class:`Encoder`, an interactive function with such a cache: :meth:`Encoder.encoding` gives an
image's :class:`Encoded` (the encoding and the image size), :meth:`Encoder.encode_later` queues
one in a background thread (encode-ahead), so the first click costs only the decoder. Nothing
here knows a front end: Label Studio's backend (``label_studio/interactive.py``) says which
images to encode and when.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import PIL.Image

from .interface import InteractiveFunction, InteractiveFunctionContext, model_version

log = logging.getLogger(__name__)

#: Encodings queued ahead at most; more are dropped (the click then encodes, as without encode-ahead).
MAX_ENCODE_AHEAD = 16


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
    """Per-image encodings within ``max_bytes`` bytes, each kept ``ttl`` seconds (see the module)."""

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


@dataclass
class Encoded:
    """An image's ``encoding`` by an interactive function, and the image's ``size`` (width, height)."""

    encoding: Any
    size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return int(getattr(self.encoding, "nbytes", 0) or 0)


class Encoder:
    """``interactive``'s encodings, from ``cache`` or computed once per image (keyed by the
    caller's image key and the function's model version), and computed ahead in one background
    thread: at most ``max_ahead`` jobs queued, more are dropped (the click then encodes, as
    without encode-ahead); a job's failure is only logged."""

    def __init__(
        self, interactive: InteractiveFunction, cache: EncodingCache, max_ahead: int = MAX_ENCODE_AHEAD
    ) -> None:
        self.interactive = interactive
        self.cache = cache
        self.max_ahead = max_ahead
        self._lock = threading.Lock()
        self._ahead: ThreadPoolExecutor | None = None
        self._pending = 0

    def encoding(
        self,
        key: Hashable,
        load: Callable[[], PIL.Image.Image],
        context: InteractiveFunctionContext,
    ) -> Encoded:
        """The encoding of the image ``key`` names, from the cache or computed once from
        ``load()`` (concurrent callers wait for the one computation)."""

        def encode() -> Encoded:
            image = load()
            return Encoded(self.interactive.encode(context, image), image.size)

        return self.cache.get_or_compute((key, model_version(self.interactive)), encode)

    def encode_later(
        self,
        key: Hashable,
        load: Callable[[], PIL.Image.Image],
        context: InteractiveFunctionContext,
        what: str = "an image",
    ) -> None:
        """Queue :meth:`encoding` in the background thread (``what`` names the image in the log
        when it fails: the click will try again and report it)."""

        def job() -> None:
            try:
                self.encoding(key, load, context)
            except Exception as e:  # noqa: BLE001 - the click will try again and report it
                log.info("encode-ahead of %s failed: %s", what, e)

        self.submit(job)

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the background thread unless ``max_ahead`` jobs are queued (then it is
        dropped). Never raises."""
        with self._lock:
            if self._pending >= self.max_ahead:
                return
            if self._ahead is None:
                self._ahead = ThreadPoolExecutor(1, thread_name_prefix="autoannotate-encode-ahead")
            self._pending += 1
            executor = self._ahead

        def counted() -> None:
            try:
                job()
            finally:
                with self._lock:
                    self._pending = max(0, self._pending - 1)

        try:
            executor.submit(counted)
        except RuntimeError as e:  # shut down (the server is stopping)
            with self._lock:
                self._pending -= 1
            log.info("encode-ahead not queued: %s", e)

    def close(self) -> None:
        """Drop queued jobs and stop the background thread."""
        with self._lock:
            executor, self._ahead = self._ahead, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._pending = 0  # cancelled jobs never count themselves down

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until queued jobs are done (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending == 0:
                    return True
            time.sleep(0.01)
        return False
