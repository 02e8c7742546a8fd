"""Score detections against COCO ground truth with pycocotools (used by accuracy tests)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path


def evaluate_boxes(gt_json: Path, detections: list[dict]) -> dict[str, float]:
    """``detections``: COCO result dicts (image_id, category_id, bbox [x, y, w, h], score).
    Returns ``{"map": mAP@[.5:.95], "map50": mAP@.5}``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        if not detections:
            return {"map": 0.0, "map50": 0.0}
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": float(ev.stats[0]), "map50": float(ev.stats[1])}


def load_gt(gt_json: Path) -> dict:
    return json.loads(Path(gt_json).read_text())
