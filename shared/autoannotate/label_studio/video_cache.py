"""Videos of Label Studio tasks, fetched once and kept on disk within a byte budget.

Tracking a drawn box, then another, then pre-annotating the same task would otherwise download
the video each time and hold it whole in memory. :class:`VideoCache` stores each task's video in
a file named by the hash of its reference (URL, path or data URI) in a folder of its own; the
least recently used files are removed when the folder would grow past ``max_bytes``. A file in use
(inside :meth:`VideoCache.path`) is never removed; a video larger than the whole budget is used
from a temporary file and removed afterwards. Concurrent requests for one video fetch it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def temporary_video(data: bytes, directory: str | Path | None = None) -> Iterator[str]:
    """``data`` in a temporary ``.mp4`` file (in ``directory``; default: the system's temporary
    folder), removed on exit."""
    fd, path = tempfile.mkstemp(prefix="autoannotate-video-", suffix=".mp4", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


@dataclass
class _Entry:
    path: Path
    size: int
    used: float
    pins: int = 0


class VideoCache:
    """``max_bytes`` of videos in ``directory`` (default: a new temporary folder, removed with the
    process's temporary files); ``max_bytes=0`` keeps nothing (every use fetches)."""

    def __init__(self, max_bytes: int, directory: str | Path | None = None) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = int(max_bytes)
        self._directory = Path(directory) if directory is not None else None
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        #: One gate per video being fetched, with how many requests hold or wait on it; a gate is
        #: dropped when its last user leaves, so the dict holds only videos in flight.
        self._fetching: dict[str, tuple[threading.Lock, int]] = {}
        #: How many times a video was fetched (the misses).
        self.fetches = 0

    @property
    def directory(self) -> Path:
        """The cache's folder (a temporary one is made on first use when none was given)."""
        with self._lock:
            if self._directory is None:
                self._directory = Path(tempfile.mkdtemp(prefix="autoannotate-videos-"))
            self._directory.mkdir(parents=True, exist_ok=True)
            return self._directory

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(e.size for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    @contextlib.contextmanager
    def path(self, fetcher: Any, ref: str, max_bytes: int) -> Iterator[str]:
        """The local file of the video at ``ref`` (fetched with ``fetcher.fetch(ref,
        max_bytes=...)`` unless cached); it stays while the ``with`` block runs."""
        key = hashlib.sha256(ref.encode()).hexdigest()
        with self._lock:
            gate, users = self._fetching.get(key, (None, 0))
            gate = gate or threading.Lock()
            self._fetching[key] = (gate, users + 1)
        try:
            with gate:  # one fetch per video, however many requests ask for it at once
                entry = self._pin(key)
                if entry is None:
                    data = fetcher.fetch(ref, max_bytes=max_bytes)
                    with self._lock:
                        self.fetches += 1
                    entry = self._store(key, data)
        finally:
            with self._lock:
                _, users = self._fetching[key]
                if users > 1:
                    self._fetching[key] = (gate, users - 1)
                else:
                    del self._fetching[key]
        if entry is None:  # larger than the whole budget: a temporary file for this use only
            with temporary_video(data, self.directory) as tmp:
                yield tmp
            return
        try:
            yield str(entry.path)
        finally:
            with self._lock:
                entry.pins -= 1
                entry.used = time.monotonic()
                self._evict()

    def _pin(self, key: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.path.is_file():
                entry.pins += 1
                entry.used = time.monotonic()
                return entry
            self._entries.pop(key, None)
            return None

    def _store(self, key: str, data: bytes) -> _Entry | None:
        if len(data) > self.max_bytes:
            return None
        path = self.directory / f"{key}.video"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        with self._lock:
            entry = _Entry(path, len(data), time.monotonic(), pins=1)
            self._entries[key] = entry
            self._evict()
        return entry

    def _evict(self) -> None:
        """Remove least recently used unpinned files until the total fits (lock held)."""
        total = sum(e.size for e in self._entries.values())
        for key, e in sorted(self._entries.items(), key=lambda kv: kv[1].used):
            if total <= self.max_bytes:
                break
            if e.pins:
                continue
            with contextlib.suppress(OSError):
                e.path.unlink()
            del self._entries[key]
            total -= e.size

    def clear(self) -> None:
        """Remove every unpinned file."""
        with self._lock:
            budget, self.max_bytes = self.max_bytes, 0
            self._evict()
            self.max_bytes = budget
