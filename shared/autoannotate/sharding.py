"""Deterministic shards: which of ``n`` parallel workers handles an item.

An item's shard depends on its key and ``n`` only (a hash, not its position), so a re-run, a
resumed worker or a worker on another machine computes the same split, the shards are disjoint
and together cover every item, and items added later fall into a shard without moving the
others. Used by the FiftyOne sharded runs (keys: sample ids) and the Label Studio ``--shard``
and ``--workers`` options (keys: task ids). FiftyOne- and Label-Studio-free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, TypeVar

from .errors import BadParameterError

T = TypeVar("T", bound=Sequence[Any])


def check_shards(shards: Any, name: str = "shards") -> int:
    """``shards`` as an integer >= 1, else :class:`BadParameterError`."""
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise BadParameterError(f"{name} must be an integer >= 1, got {shards!r}")
    return shards


def shard_of(key: Hashable, shards: int) -> int:
    """The shard (``0 .. shards-1``) of the item with this key: the first 8 bytes of the SHA-256
    of ``str(key)``, modulo ``shards``."""
    digest = hashlib.sha256(str(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def select_shard(items: Iterable[T], index: int, shards: int) -> list[T]:
    """The ``(key, ...)`` items of shard ``index`` of ``shards``, in their order."""
    return [it for it in items if shard_of(it[0], shards) == index]


def check_shard(index: Any, count: Any) -> tuple[int, int]:
    """Shard ``index`` of ``count`` as ``(index, count)``: integers, ``count >= 1`` and
    ``0 <= index < count``, else :class:`BadParameterError`."""
    check_shards(count)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        raise BadParameterError(f"shard index must be an integer between 0 and {count - 1}, got {index!r}")
    return index, count


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (shard I of N, counted from 0) as ``(I, N)``; a clear error otherwise."""
    try:
        index_text, count_text = str(text).split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise BadParameterError(f"--shard takes I/N (shard I of N, I from 0 to N-1), got {text!r}") from None
    try:
        return check_shard(index, count)
    except BadParameterError:
        raise BadParameterError(f"--shard {text!r}: I must be between 0 and N-1 and N >= 1") from None
