"""OpenCV GrabCut as a weight-free interactive function: a box and/or clicks to a mask.

- A box: pixels outside it (in a margin around it) are background, inside are probably foreground.
- Positive clicks are certain foreground, negative clicks certain background (disks of
  ``click_radius`` pixels; default 1% of the image's short side, at least 3).
- Clicks alone: an implicit box around the clicks (reaching a quarter of the image's short side)
  is treated like a drawn box.

The result keeps the connected regions that contain a positive click (or, for a box, the regions
inside the box). Large regions of interest are downscaled to ``max_side`` pixels for speed.
GrabCut has no confidence, so results carry ``score=None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image

from ..interface import InteractiveFunctionContext, InteractivePrompt, SegmentationResult


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
        self, iterations: int = 5, max_side: int = 512, click_radius: int | None = None, margin: float = 0.15
    ) -> None:
        if iterations < 1 or max_side < 16 or margin < 0:
            raise ValueError("iterations must be >= 1, max_side >= 16 and margin >= 0")
        self.iterations = int(iterations)
        self.max_side = int(max_side)
        self.click_radius = click_radius
        self.margin = float(margin)

    def encode(self, context: InteractiveFunctionContext, image: PIL.Image.Image) -> GrabCutEncoding:
        return GrabCutEncoding(np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1]))

    def segment(
        self, context: InteractiveFunctionContext, encoding: GrabCutEncoding, prompt: InteractivePrompt
    ) -> list[SegmentationResult]:
        pos, neg = list(prompt.positive_points), list(prompt.negative_points)
        if not prompt.boxes:
            return [SegmentationResult(self._one(encoding.bgr, None, pos, neg))]
        results = []
        for box in prompt.boxes:
            inside = lambda p, box=box: box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]  # noqa: E731
            mine_pos = [p for p in pos if inside(p)] if len(prompt.boxes) > 1 else pos
            mine_neg = [p for p in neg if inside(p)] if len(prompt.boxes) > 1 else neg
            results.append(SegmentationResult(self._one(encoding.bgr, box, mine_pos, mine_neg)))
        return results

    def segment_boxes(
        self, context: InteractiveFunctionContext, encoding: GrabCutEncoding, boxes: Sequence[Sequence[float]]
    ) -> list[SegmentationResult]:
        return [SegmentationResult(self._one(encoding.bgr, tuple(b), [], [])) for b in boxes]

    def _one(
        self,
        bgr: np.ndarray,
        box: Sequence[float] | None,
        pos: list[tuple[float, float]],
        neg: list[tuple[float, float]],
    ) -> np.ndarray:
        import cv2

        H, W = bgr.shape[:2]
        radius = self.click_radius or max(3, int(round(0.01 * min(H, W))))
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


def create(iterations: int = 5, max_side: int = 512, click_radius: int = 0, margin: float = 0.15) -> GrabCutFunction:
    """GrabCut: ``iterations`` of the algorithm, regions downscaled to ``max_side`` pixels,
    ``click_radius`` pixels per click (0: 1% of the image's short side), ``margin`` of background
    around a box as a fraction of its size."""
    return GrabCutFunction(iterations=iterations, max_side=max_side, click_radius=click_radius or None, margin=margin)
