"""Write results as a COCO dataset file and draw them over images for a person to look at.

COCO output: ``images`` (id, file_name, width, height, and ``tags`` for whole-image labels),
``annotations`` (id, image_id, category_id, bbox ``[x, y, w, h]``, area, score, iscrowd,
``segmentation`` as polygons (rotated boxes too, with their upright ``bbox``) or uncompressed
RLE, ``keypoints`` for skeletons) and ``categories``
(id, name; keypoint names for skeleton labels). Category ids are 1-based in label order.
"""

from __future__ import annotations

import colorsys
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageDraw

from .driver import ImageResult
from .interface import LabelSpec
from .masks import rle_encode
from .outputs import NATURAL_OUTPUT, box_corners, derived_box, polygon_area, to_output
from .shapes import Shape


def coco_categories(labels: Sequence[LabelSpec]) -> tuple[list[dict], dict[int, int]]:
    """COCO categories for ``labels`` and the label id -> category id map."""
    cats, ids = [], {}
    for k, label in enumerate(labels, start=1):
        cat: dict[str, Any] = {"id": k, "name": label.name, "supercategory": ""}
        if label.type == "skeleton":
            cat["keypoints"] = [s.name for s in label.sublabels]
            cat["skeleton"] = []
        cats.append(cat)
        ids[label.id] = k
    return cats, ids


def shape_to_coco(
    s: Shape, ann_id: int, image_id: int, category_id: int, size: tuple[int, int] | None = None
) -> dict[str, Any] | None:
    """One COCO annotation, or None for a tag or an empty shape.

    Each shape is written as its own output type (:data:`autoannotate.outputs.NATURAL_OUTPUT`)
    through the core's output stage; this only lays it out as COCO: ``bbox`` ``[x, y, w, h]`` is
    the core's derived box (upright; for a rotated rectangle the box around its corners), a
    polygon or a rotated rectangle (its four turned corners, :func:`autoannotate.outputs.box_corners`)
    is a polygon ``segmentation`` with its area, a mask uncompressed RLE, a skeleton COCO
    ``keypoints``. ``size``, the image's ``(width, height)``, clips upright boxes to the image
    as every front end does; None keeps them as they are."""
    if s.type == "tag":
        return None
    if size is not None:
        out = to_output(s, NATURAL_OUTPUT[s.type], size)
    else:
        out = s if s.type != "mask" or (s.bitmap is not None and s.bitmap.any()) else None
    box = derived_box(out) if out is not None else None
    if out is None or box is None:
        return None
    x1, y1, x2, y2 = box
    ann: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "area": (x2 - x1) * (y2 - y1),
        "iscrowd": 0,
        "score": s.score,
    }
    if out.type == "polygon" or (out.type == "rectangle" and out.rotation):
        pts = out.points if out.type == "polygon" else box_corners(out)
        ann["segmentation"] = [list(pts)]
        ann["area"] = polygon_area(pts)
        if out.type == "rectangle":  # the angle too, as CVAT's COCO export keeps it
            ann["attributes"] = {"rotation": out.rotation}
    elif out.type == "mask":
        ann["segmentation"] = rle_encode(out.bitmap)  # type: ignore[arg-type]
        ann["area"] = int(out.bitmap.sum())  # type: ignore[union-attr]
    elif out.type == "skeleton":
        kps: list[float] = []
        for e in out.elements:
            visibility = 0 if e.outside else (1 if e.occluded else 2)
            kps += [e.points[0], e.points[1], visibility]
        ann["keypoints"] = kps
        ann["num_keypoints"] = sum(1 for e in out.elements if not e.outside)
    elif out.type in ("polyline", "points"):
        ann["points"] = list(out.points)
        ann["shape_type"] = out.type
    return ann


class CocoBuilder:
    """Builds a COCO dict image by image (failed results are left out). Shapes carry label ids
    of ``labels``; ``file_name`` is relative to ``root`` when given."""

    def __init__(self, labels: Sequence[LabelSpec], *, root: str | Path | None = None) -> None:
        self.categories, self.cat_ids = coco_categories(labels)
        self.labels = {lbl.id: lbl for lbl in labels}
        # absolute but not resolved: a folder of symbolic links keeps the names it shows
        self.root = Path(os.path.abspath(root)) if root is not None else None
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, r: ImageResult) -> int:
        """Add one result; returns how many shapes it had (tags included)."""
        if not r.ok:
            return 0
        name = self.relative_name(r.key)
        image_id = len(self.images) + 1
        width, height = r.size or (0, 0)
        entry: dict[str, Any] = {"id": image_id, "file_name": name, "width": width, "height": height}
        tags = [{"category_id": self.cat_ids[s.label_id], "score": s.score} for s in r.shapes or [] if s.type == "tag"]
        if tags:
            entry["tags"] = tags
        self.images.append(entry)
        for s in r.shapes or []:
            ann = shape_to_coco(s, len(self.annotations) + 1, image_id, self.cat_ids[s.label_id], r.size)
            if ann is not None:
                if s.attributes:
                    ann["attributes"] = {**ann.get("attributes", {}), **self.attribute_values(s)}
                self.annotations.append(ann)
        return len(r.shapes or [])

    def attribute_values(self, s: Shape) -> dict[str, str]:
        """The shape's attributes by name (as CVAT writes them in COCO), ``{"color": "red"}``."""
        label = self.labels.get(s.label_id)
        spec = {a.id: a.name for a in label.attributes} if label is not None else {}
        return {spec.get(a.spec_id, str(a.spec_id)): a.value for a in s.attributes}

    def relative_name(self, key: Any) -> str:
        """``key`` (a path) relative to the root when it lies inside it, else as given."""
        if self.root is None:
            return str(key)
        try:
            return str(Path(os.path.abspath(str(key))).relative_to(self.root))
        except ValueError:
            return str(key)

    def coco(self) -> dict[str, Any]:
        return {"images": self.images, "annotations": self.annotations, "categories": self.categories}


def results_to_coco(
    results: Iterable[ImageResult], labels: Sequence[LabelSpec], *, root: str | Path | None = None
) -> dict[str, Any]:
    """A COCO dict from driver results (failed images are left out). Shapes carry label ids of
    ``labels``; ``file_name`` is relative to ``root`` when given."""
    builder = CocoBuilder(labels, root=root)
    for r in results:
        builder.add(r)
    return builder.coco()


class CocoSink:
    """The run engine's sink for a COCO file (and, optionally, overlay PNGs to look at).

    The file is rewritten atomically at every write, so an interrupted run keeps what it did;
    results are converted when they arrive, so masks are not held until the end."""

    def __init__(
        self,
        path: str | Path,
        labels: Sequence[LabelSpec],
        *,
        root: str | Path | None = None,
        info: dict[str, Any] | None = None,
        overlays: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.builder = CocoBuilder(labels, root=root)
        self.info = dict(info or {})
        self.overlays = Path(overlays) if overlays is not None else None
        self.names = {lbl.id: lbl.name for lbl in labels}
        self.buffered = 0

    def done_keys(self, run_key: str | None) -> set:
        return set()

    def begin(self, run_key: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.overlays is not None:
            self.overlays.mkdir(parents=True, exist_ok=True)

    def add(self, r: ImageResult) -> list[str | None]:
        n = self.builder.add(r)
        if self.overlays is not None:
            self._overlay(r)
        self.buffered += 1
        return [None] * n

    def _overlay(self, r: ImageResult) -> None:
        from .images import load_image

        # named after the path inside the folder, so photos with the same name never collide
        rel = Path(self.builder.relative_name(r.key)).with_suffix("")
        out = self.overlays / ("__".join(p for p in rel.parts if p not in ("/", "..")) + ".png")  # type: ignore[operator]
        draw_overlay(load_image(r.key), r.shapes or [], self.names).save(out)  # type: ignore[arg-type]

    def pending(self) -> int:
        return self.buffered

    def flush(self) -> None:
        tmp = self.path.with_name(self.path.name + ".partial")
        tmp.write_text(json.dumps(dict(self.builder.coco(), info=self.info)))
        os.replace(tmp, self.path)
        self.buffered = 0

    def finish(self, report: Any) -> None:
        if not self.path.exists():  # a run with no image annotated still leaves a valid file
            self.flush()
        report.extra["output"] = str(self.path)


def label_color(index: int) -> tuple[int, int, int]:
    """A distinct, stable colour per label index."""
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_overlay(image: PIL.Image.Image, shapes: Iterable[Shape], names: dict[int, str]) -> PIL.Image.Image:
    """A copy of ``image`` with every shape drawn and captioned ``name score``."""
    base = image.convert("RGBA")
    layer = PIL.Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = PIL.ImageDraw.Draw(layer)
    width = max(2, round(min(base.size) / 200))
    tags = []
    for s in shapes:
        color = label_color(s.label_id)
        caption = names.get(s.label_id, str(s.label_id)) + ("" if s.score is None else f" {s.score:.2f}")
        if s.type == "tag":
            tags.append(caption)
            continue
        if s.type == "mask" and s.bitmap is not None:
            alpha = PIL.Image.fromarray((s.bitmap * 110).astype(np.uint8), mode="L")
            layer.paste(PIL.Image.new("RGBA", base.size, color + (255,)), (0, 0), alpha)
        elif s.type == "polygon":
            xy = list(zip(s.points[0::2], s.points[1::2]))
            draw.polygon(xy, outline=color + (255,), fill=color + (70,))
        elif s.type == "polyline":
            draw.line(list(zip(s.points[0::2], s.points[1::2])), fill=color + (255,), width=width)
        elif s.type == "rectangle":  # as drawn: a rotated one turned about its centre
            corners = box_corners(s)
            draw.polygon(list(zip(corners[0::2], corners[1::2])), outline=color + (255,), width=width)
        pts = (
            [e.points for e in s.elements if not e.outside]
            if s.type == "skeleton"
            else ([s.points[i : i + 2] for i in range(0, len(s.points), 2)] if s.type == "points" else [])
        )
        for x, y in pts:
            draw.ellipse([x - width * 2, y - width * 2, x + width * 2, y + width * 2], fill=color + (255,))
        box = s.bbox()
        if box:
            tx, ty = box[0], max(0, box[1] - 12)
            tw = draw.textlength(caption)
            draw.rectangle([tx, ty, tx + tw + 4, ty + 12], fill=color + (200,))
            draw.text((tx + 2, ty), caption, fill=(0, 0, 0, 255))
    for k, caption in enumerate(tags):
        draw.text((6, 6 + 14 * k), caption, fill=(255, 255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0, 255))
    return PIL.Image.alpha_composite(base, layer).convert("RGB")
