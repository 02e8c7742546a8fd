"""OpenCV GrabCut as a weight-free interactive function: a box and/or clicks to a mask.

- A box: pixels outside it (in a margin around it) are background, inside are probably foreground.
- Positive clicks are certain foreground, negative clicks certain background (disks of
  ``click_radius`` pixels; default 1% of the image's short side, at least 3).
- Clicks alone: an implicit box around the clicks (reaching a quarter of the image's short side)
  is treated like a drawn box.

The result keeps the connected regions that contain a positive click (or, for a box, the regions
inside the box). Large regions of interest are downscaled to ``max_side`` pixels for speed.
GrabCut has no confidence, so results carry ``score=None``.

Never worse than the box: GrabCut often collapses (everything called background, or a sliver)
when the object's colours resemble its surroundings. With ``fallback`` (the default) a box
prompt whose result is degenerate (see :func:`is_degenerate`: empty, under ``min_fill`` of the
box, spanning under half of the box's width or height, or mostly outside the box) gets the
ellipse inscribed in the box instead (plus the positive clicks' disks, minus the negative ones);
on COCO instances that ellipse scores a higher IoU than the box filled as a mask (see
``bench/grabcut_quality.py``). A click prompt whose result is empty or misses every positive
click gets disks around its positive clicks. So a box prompt never returns an empty mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image

from ..interface import InteractiveFunctionContext, InteractivePrompt, SegmentationResult
from ..registry import FunctionRecord
from ..seeding import seed_opencv

#: A box prompt's mask covering less than this share of the box is a failure (a sliver).
MIN_FILL = 0.15


@dataclass(frozen=True)
class GrabCutEncoding:
    """The image as a BGR uint8 array H x W x 3 (GrabCut has no learned embedding)."""

    bgr: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.bgr.nbytes)


class GrabCutFunction:
    model_version = "grabcut-opencv"

    def __init__(
        self,
        iterations: int = 5,
        max_side: int = 512,
        click_radius: int | None = None,
        margin: float = 0.15,
        fallback: bool = True,
        min_fill: float = MIN_FILL,
    ) -> None:
        if iterations < 1 or max_side < 16 or margin < 0 or not 0 <= min_fill < 1:
            raise ValueError("iterations must be >= 1, max_side >= 16, margin >= 0 and 0 <= min_fill < 1")
        self.iterations = int(iterations)
        self.max_side = int(max_side)
        self.click_radius = click_radius
        self.margin = float(margin)
        self.fallback = bool(fallback)
        self.min_fill = float(min_fill)

    def encode(self, context: InteractiveFunctionContext, image: PIL.Image.Image) -> GrabCutEncoding:
        return GrabCutEncoding(np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1]))

    def segment(
        self, context: InteractiveFunctionContext, encoding: GrabCutEncoding, prompt: InteractivePrompt
    ) -> list[SegmentationResult]:
        if len(prompt.boxes) <= 1:
            return [SegmentationResult(self._one(encoding.bgr, prompt))]
        results = []
        for box in prompt.boxes:  # several objects: each box takes the clicks inside it
            inside = lambda p, box=box: box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]  # noqa: E731
            mine = InteractivePrompt(
                positive_points=tuple(p for p in prompt.positive_points if inside(p)),
                negative_points=tuple(p for p in prompt.negative_points if inside(p)),
                boxes=(box,),
            )
            results.append(SegmentationResult(self._one(encoding.bgr, mine)))
        return results

    def segment_boxes(
        self, context: InteractiveFunctionContext, encoding: GrabCutEncoding, boxes: Sequence[Sequence[float]]
    ) -> list[SegmentationResult]:
        prompts = [InteractivePrompt(boxes=((x1, y1, x2, y2),)) for x1, y1, x2, y2 in boxes]
        return [SegmentationResult(self._one(encoding.bgr, p)) for p in prompts]

    def _one(self, bgr: np.ndarray, prompt: InteractivePrompt) -> np.ndarray:
        """The mask of the one object ``prompt`` shows (one box at most), replaced by
        :func:`fallback_mask` when it failed (with ``fallback``)."""
        box = prompt.boxes[0] if prompt.boxes else None
        pos, neg = list(prompt.positive_points), list(prompt.negative_points)
        H, W = bgr.shape[:2]
        radius = self.click_radius or max(3, int(round(0.01 * min(H, W))))
        mask = self._grabcut(bgr, box, pos, neg, radius)
        if not self.fallback:
            return mask
        return fallback_mask(mask, box, pos, neg, radius=radius, min_fill=self.min_fill, bgr=bgr)

    def _grabcut(
        self,
        bgr: np.ndarray,
        box: Sequence[float] | None,
        pos: list[tuple[float, float]],
        neg: list[tuple[float, float]],
        radius: int,
    ) -> np.ndarray:
        import cv2

        H, W = bgr.shape[:2]
        if box is None:
            # Clicks alone: an implicit box around the clicks, reaching a quarter of the short side.
            reach = max(0.25 * min(H, W), 20.0)
            xs, ys = [p[0] for p in pos], [p[1] for p in pos]
            box = (
                max(0.0, min(xs) - reach),
                max(0.0, min(ys) - reach),
                min(W, max(xs) + reach),
                min(H, max(ys) + reach),
            )
        x1, y1, x2, y2 = box
        mx, my = max(10.0, (x2 - x1) * self.margin), max(10.0, (y2 - y1) * self.margin)
        rx1, ry1 = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
        rx2, ry2 = int(min(W, np.ceil(x2 + mx))), int(min(H, np.ceil(y2 + my)))
        full = np.zeros((H, W), dtype=bool)
        if rx2 - rx1 < 2 or ry2 - ry1 < 2:
            return full
        crop = bgr[ry1:ry2, rx1:rx2]
        scale = min(1.0, self.max_side / max(crop.shape[:2]))
        if scale < 1.0:
            crop = cv2.resize(
                crop,
                (max(2, int(crop.shape[1] * scale)), max(2, int(crop.shape[0] * scale))),
                interpolation=cv2.INTER_AREA,
            )
        ch, cw = crop.shape[:2]

        def to_crop(x: float, y: float) -> tuple[int, int]:
            return int(round((x - rx1) * scale)), int(round((y - ry1) * scale))

        bx1, by1 = to_crop(x1, y1)
        bx2, by2 = to_crop(x2, y2)
        bx1, by1, bx2, by2 = max(0, bx1), max(0, by1), min(cw, max(bx2, bx1 + 1)), min(ch, max(by2, by1 + 1))
        init = np.full((ch, cw), cv2.GC_BGD, dtype=np.uint8)
        init[by1:by2, bx1:bx2] = cv2.GC_PR_FGD
        if not (init == cv2.GC_BGD).any():  # the box covers the whole image: its frame is background
            init[[0, -1], :] = cv2.GC_PR_BGD
            init[:, [0, -1]] = cv2.GC_PR_BGD
        r = max(1, int(round(radius * scale)))
        for x, y in pos:
            cv2.circle(init, to_crop(x, y), r, int(cv2.GC_FGD), -1)
        for x, y in neg:
            cv2.circle(init, to_crop(x, y), r, int(cv2.GC_BGD), -1)
        has_fg = np.isin(init, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
        has_bg = np.isin(init, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
        if has_fg and has_bg:
            try:
                bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
                seed_opencv(crop, init)  # its k-means start depends on this crop and prompt only
                cv2.grabCut(crop, init, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]  # OpenCV's stubs reject None for rect
            except cv2.error:
                pass  # degenerate colour model: keep the initial labelling
        fg: np.ndarray = np.zeros((ch, cw), dtype=np.uint8)
        fg[by1:by2, bx1:bx2] = np.isin(init[by1:by2, bx1:bx2], (cv2.GC_FGD, cv2.GC_PR_FGD))
        if pos and fg.any():
            _, comp = cv2.connectedComponents(fg, connectivity=8)
            seeds = {
                int(comp[min(ch - 1, max(0, cy)), min(cw - 1, max(0, cx))]) for cx, cy in (to_crop(*p) for p in pos)
            }
            seeds.discard(0)
            if seeds:
                fg = np.isin(comp, list(seeds)).astype(np.uint8)
        if scale < 1.0:
            fg = cv2.resize(fg, (rx2 - rx1, ry2 - ry1), interpolation=cv2.INTER_NEAREST)
        full[ry1:ry2, rx1:rx2] = fg.astype(bool)
        return full


def _box_pixels(box: Sequence[float], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixel rows/columns a box covers, clipped to the image, at least one pixel wide."""
    H, W = shape
    x1, y1, x2, y2 = box
    bx1, by1 = min(W - 1, max(0, int(np.floor(x1)))), min(H - 1, max(0, int(np.floor(y1))))
    bx2, by2 = min(W, max(bx1 + 1, int(np.ceil(x2)))), min(H, max(by1 + 1, int(np.ceil(y2))))
    return bx1, by1, bx2, by2


def is_degenerate(mask: np.ndarray, box: Sequence[float], *, min_fill: float = 0.15) -> bool:
    """Whether ``mask`` (bool H x W) is a failed answer to the box ``(x1, y1, x2, y2)`` (pixels):
    empty, mostly (over half its pixels) outside the box, covering less than ``min_fill`` of the
    box, or spanning less than half of the box's width or height (a sliver)."""
    total = int(mask.sum())
    if total == 0:
        return True
    bx1, by1, bx2, by2 = _box_pixels(box, mask.shape[:2])
    inside = mask[by1:by2, bx1:bx2]
    n_inside = int(inside.sum())
    if n_inside * 2 < total or n_inside < min_fill * inside.size:
        return True
    cols, rows = np.flatnonzero(inside.any(axis=0)), np.flatnonzero(inside.any(axis=1))
    return bool(cols[-1] + 1 - cols[0] < 0.5 * inside.shape[1] or rows[-1] + 1 - rows[0] < 0.5 * inside.shape[0])


def box_estimate(
    box: Sequence[float],
    shape: tuple[int, int],
    pos: Sequence[tuple[float, float]] = (),
    neg: Sequence[tuple[float, float]] = (),
    radius: int = 3,
    *,
    bgr: np.ndarray | None = None,
) -> np.ndarray:
    """The ellipse inscribed in ``box`` (sub-pixel: pixel centres inside it) as a bool mask of
    ``shape`` (H, W), with disks of ``radius`` added at positive clicks inside the box and removed
    at negative ones (with the image ``bgr``, also the region of similar colour connected to each
    click, :func:`click_region`); the whole box when that leaves nothing. Never empty for a box on
    the image."""
    H, W = shape
    x1, y1, x2, y2 = box
    bx1, by1, bx2, by2 = _box_pixels(box, shape)
    yy, xx = np.mgrid[by1:by2, bx1:bx2]
    a, b = max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
    inside = ((xx + 0.5 - (x1 + x2) / 2) / a) ** 2 + ((yy + 0.5 - (y1 + y2) / 2) / b) ** 2 <= 1.0
    out = np.zeros((H, W), bool)
    out[by1:by2, bx1:bx2] = inside
    clip = np.zeros((H, W), bool)
    clip[by1:by2, bx1:bx2] = True
    added = _disks(np.zeros((H, W), bool), pos, radius, True)
    removed = _disks(np.zeros((H, W), bool), neg, radius, True)
    if bgr is not None:
        for p in pos:
            added |= click_region(bgr, p, (bx1, by1, bx2, by2))
        for p in neg:
            removed |= click_region(bgr, p, (bx1, by1, bx2, by2))
    out = (out | (added & clip)) & ~removed
    if not out.any():
        out = clip
    return out


def fallback_mask(
    mask: np.ndarray,
    box: Sequence[float] | None,
    pos: Sequence[tuple[float, float]] = (),
    neg: Sequence[tuple[float, float]] = (),
    *,
    radius: int = 3,
    min_fill: float = MIN_FILL,
    bgr: np.ndarray | None = None,
) -> np.ndarray:
    """``mask`` (GrabCut's answer to a prompt, bool H x W), or a better estimate when it failed: for
    a box, :func:`box_estimate` when :func:`is_degenerate`; for clicks alone (``box`` None), disks
    around the positive clicks when the mask is empty or misses all of them. With the image
    (``bgr``, uint8 H x W x 3) a click in a box also takes the region of similar colour around it."""
    H, W = mask.shape
    if box is not None:
        if not is_degenerate(mask, box, min_fill=min_fill):
            return mask
        return box_estimate(box, (H, W), pos, neg, radius, bgr=bgr)
    if not mask.any() or not any(_at(mask, p) for p in pos):
        return _disks(np.zeros((H, W), bool), pos, max(radius, int(round(0.05 * min(H, W)))), True)
    return mask


def click_region(
    bgr: np.ndarray, point: tuple[float, float], rect: tuple[int, int, int, int], tolerance: int = 20
) -> np.ndarray:
    """The pixels of ``rect`` (x1, y1, x2, y2 pixel bounds) connected to ``point`` (x, y) whose colour,
    after a 5x5 Gaussian blur, is within ``tolerance`` of the clicked pixel's (bool H x W)."""
    import cv2

    H, W = bgr.shape[:2]
    out = np.zeros((H, W), bool)
    x1, y1, x2, y2 = rect
    x, y = int(point[0]), int(point[1])
    if not (x1 <= x < x2 and y1 <= y < y2):
        return out
    crop = cv2.GaussianBlur(np.ascontiguousarray(bgr[y1:y2, x1:x2]), (5, 5), 0)
    flood = np.zeros((y2 - y1 + 2, x2 - x1 + 2), np.uint8)
    flags = 8 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    cv2.floodFill(crop, flood, (x - x1, y - y1), (0, 0, 0), (tolerance,) * 3, (tolerance,) * 3, flags)
    out[y1:y2, x1:x2] = flood[1:-1, 1:-1].astype(bool)
    return out


def _disks(mask: np.ndarray, points: Sequence[tuple[float, float]], radius: int, value: bool) -> np.ndarray:
    """``mask`` with disks of ``radius`` pixels set to ``value`` at ``points`` (x, y)."""
    if not points:
        return mask
    H, W = mask.shape
    yy, xx = np.ogrid[:H, :W]
    out = mask.copy()
    for x, y in points:
        out[(xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= radius * radius] = value
    return out


def _at(mask: np.ndarray, p: tuple[float, float]) -> bool:
    H, W = mask.shape
    return bool(mask[min(H - 1, max(0, int(p[1]))), min(W - 1, max(0, int(p[0])))])


def create(
    iterations: int = 5,
    max_side: int = 512,
    click_radius: int = 0,
    margin: float = 0.15,
    fallback: bool = True,
    min_fill: float = MIN_FILL,
) -> GrabCutFunction:
    """GrabCut: ``iterations`` of the algorithm, regions downscaled to ``max_side`` pixels,
    ``click_radius`` pixels per click (0: 1% of the image's short side), ``margin`` of background
    around a box as a fraction of its size. ``fallback``: replace a degenerate result (empty, a
    sliver, under ``min_fill`` of its box, mostly outside it) by the ellipse inscribed in the box
    (click prompts: disks around the clicks)."""
    return GrabCutFunction(
        iterations=iterations,
        max_side=max_side,
        click_radius=click_radius or None,
        margin=margin,
        fallback=fallback,
        min_fill=min_fill,
    )


#: This function in the registry (:mod:`autoannotate.registry`); ``auto`` falls back to it.
FUNCTION = FunctionRecord(
    name="grabcut", kind="interactive", extras=("opencv",), requires=("cv2",), license="Apache-2.0 (OpenCV)"
)
