"""Random draws that depend only on the inputs, never on what ran before.

OpenCV's GrabCut (k-means initialisation of its colour models) draws from ``cv::theRNG()``, one
generator per thread that every OpenCV call shares: left alone, a polygon would depend on which
images the same thread saw before (another shard, another batch order). :func:`seed_opencv` seeds that generator from the call's own inputs right before the
call, so the same image and prompt give the same result in any order, batch, shard or process.

A model built with random weights (``pretrained=False``) draws them from torch's global
generator: :func:`seeded_torch` draws them from a generator seeded by the model's name instead
(and leaves the global one as it was), so every process builds the same model.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


def content_seed(*parts: Any) -> int:
    """A 31-bit seed from the bytes of ``parts`` (arrays, bytes, or anything with a stable ``repr``)."""
    crc = 0
    for part in parts:
        if isinstance(part, np.ndarray):
            crc = zlib.crc32(np.ascontiguousarray(part).view(np.uint8).reshape(-1).data, crc)
            crc = zlib.crc32(repr((part.shape, part.dtype.str)).encode(), crc)
        elif isinstance(part, (bytes, bytearray, memoryview)):
            crc = zlib.crc32(part, crc)
        else:
            crc = zlib.crc32(repr(part).encode(), crc)
    return crc & 0x7FFFFFFF


def seed_opencv(*parts: Any) -> None:
    """Seed the calling thread's OpenCV generator from ``parts`` (see :func:`content_seed`)."""
    import cv2

    cv2.setRNGSeed(content_seed(*parts))


@contextmanager
def seeded_torch(*parts: Any) -> Iterator[None]:
    """Inside the block torch's CPU generator is seeded from ``parts``; after it, the global
    generator is as it was before (nothing else in the process sees the change)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(content_seed(*parts))
        yield
