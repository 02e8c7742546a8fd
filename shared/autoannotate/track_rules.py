"""The rules that end one track: a tracked shape checked against the protocol
(:func:`validate_tracked`), a rectangle clipped to the frame, too small to follow
(:func:`degenerate`), gone out of the frame (:func:`left_frame`) or stuck at its edge while the
picture under it changes (:class:`StuckAtEdge`). :class:`autoannotate.tracking.Tracker` applies
them; each gives the sentence that becomes the track's ``end_reason``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import PIL.Image

from .errors import BadFunctionError
from .interface import TrackableShape
from .validation import check_points

#: A rectangle narrower or lower than this (pixels, after clipping to the frame) is not tracked.
MIN_BOX_SIZE = 2.0
#: A tracked rectangle with less than this fraction of its area inside the frame has left it.
MIN_INSIDE = 0.5
#: A rectangle at the frame's edge that moves at most STILL_PX px for STILL_FRAMES frames while the
#: picture under it changes (correlation below STILL_SIMILARITY) is stuck there: its track ends.
STILL_PX = 1.0
STILL_FRAMES = 3
STILL_SIMILARITY = 0.5


def validate_tracked(original_type: str, shape: Any, size: tuple[int, int], *, where: str = "track()") -> None:
    """Raise :class:`BadFunctionError` unless ``shape`` is a sane TrackableShape of ``original_type``."""
    if not isinstance(shape, TrackableShape):
        raise BadFunctionError(
            f"{where} must return a TrackableShape or None, the function returned {type(shape).__name__}"
        )
    if shape.type != original_type:
        raise BadFunctionError(f"{where} returned a {shape.type!r} for a tracked {original_type!r}")
    if shape.type == "mask":
        w, h = size
        if shape.bitmap is None or getattr(shape.bitmap, "shape", None) != (h, w):
            got = None if shape.bitmap is None else getattr(shape.bitmap, "shape", None)
            raise BadFunctionError(f"{where} returned a mask of shape {got} for a {w}x{h} frame")
        return
    check_points(shape.type, shape.points, where)


def px(v: float) -> str:
    return f"{round(float(v), 1):g}"


def short_error(e: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters (OpenCV errors are long)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip_rectangle(shape: TrackableShape, size: tuple[int, int]) -> TrackableShape:
    """``shape`` (a rectangle) clipped to the frame ``[0, W] x [0, H]``; other shapes unchanged."""
    if shape.type != "rectangle" or len(shape.points) != 4:
        return shape
    w, h = size
    x1, y1, x2, y2 = shape.points
    clipped = (min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h))
    return shape if clipped == shape.points else TrackableShape("rectangle", clipped)


def left_frame(shape: TrackableShape, size: tuple[int, int]) -> str | None:
    """Why a tracked rectangle has left the frame (less than MIN_INSIDE of it inside), or ``None``."""
    if shape.type != "rectangle" or len(shape.points) != 4:
        return None
    x1, y1, x2, y2 = shape.points
    area = (x2 - x1) * (y2 - y1)
    w, h = size
    inside = max(0.0, min(x2, w) - max(x1, 0.0)) * max(0.0, min(y2, h) - max(y1, 0.0))
    if area <= 0 or inside >= MIN_INSIDE * area:
        return None
    return (
        f"the object left the frame (its box [{', '.join(px(v) for v in shape.points)}] is "
        f"{inside / area:.0%} inside the {w}x{h} frame)"
    )


class StuckAtEdge:
    """Finds tracks whose rectangle stays put against the frame's edge (within STILL_PX, for
    STILL_FRAMES frames) while the picture under it changes (the grey patch's correlation with the
    one on the first of those frames falls below STILL_SIMILARITY): a tracker that keeps a box
    clamped at the edge after its object walked out, or while the camera pans past it."""

    def __init__(self) -> None:
        #: track id -> (first frame the box stood still on, its grey patch then)
        self.still: dict[int, tuple[int, np.ndarray]] = {}

    def check(self, live: Iterable[Any], frame_index: int, image: PIL.Image.Image) -> list[tuple[Any, str]]:
        """The tracks of ``live`` (:class:`autoannotate.tracking.Track`) stuck on ``frame_index``,
        each with the reason its track ends there."""
        stuck: list[tuple[Any, str]] = []
        w, h = image.size
        for t in live:
            shape, prev = t.shapes.get(frame_index), t.shapes.get(frame_index - 1)
            if shape is None or prev is None or shape.type != "rectangle" or prev.type != "rectangle":
                self.still.pop(t.track_id, None)
                continue
            x1, y1, x2, y2 = shape.points
            at_edge = x1 <= 1 or y1 <= 1 or x2 >= w - 1 or y2 >= h - 1
            if not at_edge or max(abs(a - b) for a, b in zip(shape.points, prev.points)) > STILL_PX:
                self.still.pop(t.track_id, None)
                continue
            patch = grey_patch(image, shape.points)
            since, first = self.still.setdefault(t.track_id, (frame_index, patch))
            if frame_index - since + 1 < STILL_FRAMES:
                continue
            similarity = float((first * patch).sum())
            if similarity < STILL_SIMILARITY:
                self.still.pop(t.track_id, None)
                stuck.append(
                    (
                        t,
                        f"ended on frame {frame_index}: the box stayed at the frame's edge "
                        f"([{', '.join(px(v) for v in shape.points)}]) from frame {since} on while the picture "
                        f"under it changed (similarity {similarity:.2f})",
                    )
                )
        return stuck


def grey_patch(image: PIL.Image.Image, box: tuple[float, ...]) -> np.ndarray:
    """The frame under ``box`` as a zero-mean, unit-norm 16x16 grey patch."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    p = np.asarray(image.crop((x1, y1, x2, y2)).convert("L").resize((16, 16)), dtype=np.float32)
    p = p - p.mean()
    n = float(np.linalg.norm(p))
    return p / n if n > 1e-6 else p


def degenerate(shape: TrackableShape, size: tuple[int, int]) -> str | None:
    """Why a clipped rectangle cannot be tracked, or ``None`` when it can."""
    if shape.type != "rectangle":
        return None
    x1, y1, x2, y2 = shape.points
    bw, bh = x2 - x1, y2 - y1
    if bw < MIN_BOX_SIZE or bh < MIN_BOX_SIZE:
        return (
            f"the box is {px(bw)}x{px(bh)} px after clipping to the {size[0]}x{size[1]} frame "
            f"(at least {px(MIN_BOX_SIZE)}x{px(MIN_BOX_SIZE)} px are needed)"
        )
    return None
