"""Functions written against ``cvat_sdk.auto_annotation`` the way CVAT's documentation shows
(request models built with its helper factories, masks with ``cvat_sdk.masks.encode_mask``,
attributes with ``cvat_sdk.attributes.attribute_vals_from_dict``): no autoannotate import.

- :class:`Shapes`: every shape kind on a picture it reads (a red box, a green disc, ...).
- :class:`Template`: a tracking function (sum of squared differences around the last position).
- :class:`Bright`: an interaction function (the bright pixels joined to the positive clicks).
- :func:`create`: ``Shapes`` with a ``min_score`` parameter (``-p min_score=float:0.5``).
"""

from __future__ import annotations

import cvat_sdk.auto_annotation as cvataa
import numpy as np
import PIL.Image
from cvat_sdk import models
from cvat_sdk.attributes import attribute_vals_from_dict, number_attribute_values
from cvat_sdk.masks import encode_mask

#: The scene Shapes reads: a 96 x 64 picture, what it finds on it.
RED_BOX = (10, 8, 40, 30)  # x1, y1, x2, y2 (exclusive)
GREEN_DISC = ((70, 20), 10)  # centre, radius
SIZE = (96, 64)


def scene() -> PIL.Image.Image:
    a = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    x1, y1, x2, y2 = RED_BOX
    a[y1:y2, x1:x2] = (230, 20, 20)
    (cx, cy), r = GREEN_DISC
    yy, xx = np.mgrid[: SIZE[1], : SIZE[0]]
    a[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (20, 220, 20)
    return PIL.Image.fromarray(a)


class Shapes:
    """Every kind of CVAT annotation, with attributes, scores and conf_threshold/conv_mask_to_poly."""

    spec = cvataa.DetectionFunctionSpec(
        labels=[
            cvataa.label_spec(
                "car",
                0,
                type="rectangle",
                attributes=[
                    cvataa.select_attribute_spec("color", 0, ["red", "blue"]),
                    cvataa.checkbox_attribute_spec("parked", 1),
                    cvataa.number_attribute_spec("doors", 2, number_attribute_values(2, 5)),
                    cvataa.text_attribute_spec("plate", 3),
                ],
            ),
            cvataa.label_spec("road", 1, type="polygon"),
            cvataa.label_spec("lane", 2, type="polyline"),
            cvataa.label_spec("spot", 3, type="points"),
            cvataa.label_spec("blob", 4, type="mask"),
            cvataa.skeleton_label_spec(
                "person",
                5,
                [cvataa.keypoint_spec("head", 0), cvataa.keypoint_spec("left", 1), cvataa.keypoint_spec("right", 2)],
            ),
            cvataa.label_spec("scene", 6, type="tag"),
        ]
    )

    def __init__(self, min_score: float = 0.0) -> None:
        self.min_score = min_score

    def detect(self, context, image):
        rgb = np.asarray(image.convert("RGB")).astype(int)
        threshold = self.min_score if context.conf_threshold is None else context.conf_threshold
        out = []
        red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90)
        if red.any():
            ys, xs = np.nonzero(red)
            box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            attrs = attribute_vals_from_dict({0: "red", 1: True, 2: 4, 3: "AB-123"})
            out.append(cvataa.rectangle(0, [float(v) for v in box], rotation=30.0, score=0.9, attributes=attrs))
            out.append(cvataa.rectangle(0, [0.0, 0.0, 5.0, 5.0], score=0.3))  # a doubtful one
        green = (rgb[..., 1] > 150) & (rgb[..., 0] < 90)
        if green.any():
            ys, xs = np.nonzero(green)
            x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            if context.conv_mask_to_poly:
                out.append(cvataa.polygon(4, [x1, y1, x2, y1, x2, y2, x1, y2], score=0.8))
            else:
                out.append(cvataa.mask(4, encode_mask(green, [x1, y1, x2, y2]), score=0.8))
        out += [
            cvataa.polygon(1, [0.0, 60.0, 95.0, 60.0, 95.0, 63.0, 0.0, 63.0], score=0.7),
            cvataa.shape(2, type="polyline", points=[0.0, 50.0, 95.0, 50.0], score=0.6),
            cvataa.shape(3, type="points", points=[48.0, 32.0, 50.0, 34.0], score=0.65),
            cvataa.skeleton(
                5,
                [
                    cvataa.keypoint(0, [20.0, 10.0]),
                    cvataa.keypoint(1, [15.0, 20.0], occluded=True),
                    cvataa.keypoint(2, [0.0, 0.0], outside=True),
                ],
                score=0.75,
            ),
            cvataa.tag(6),
        ]
        return [a for a in out if a.get("score") is None or a.score >= threshold]


def create(min_score: float = 0.0) -> Shapes:
    return Shapes(min_score)


class Template:
    """Tracks rectangles by the sum of squared grey differences around the last position."""

    spec = cvataa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def preprocess_image(self, context, image):
        return np.asarray(image.convert("L"), dtype=np.float32)

    def init_tracking_state(self, context, pp_image, shape):
        x1, y1, x2, y2 = (int(round(v)) for v in shape.points)
        return {"template": pp_image[y1:y2, x1:x2].copy(), "at": (x1, y1)}

    def track(self, context, pp_image, state):
        t = state["template"]
        th, tw = t.shape
        x0, y0 = state["at"]
        best = None
        for dy in range(-8, 9):
            for dx in range(-8, 9):
                x, y = x0 + dx, y0 + dy
                if x < 0 or y < 0 or y + th > pp_image.shape[0] or x + tw > pp_image.shape[1]:
                    continue
                d = float(((pp_image[y : y + th, x : x + tw] - t) ** 2).mean())
                if best is None or d < best[0]:
                    best = (d, x, y)
        if best is None:
            return None
        state["at"] = (best[1], best[2])
        return cvataa.TrackableShape(type="rectangle", points=[best[1], best[2], best[1] + tw, best[2] + th])


class Bright:
    """Interaction: the pixels brighter than the clicked ones' half, joined to the positive clicks,
    minus those near a negative click, within the box when one is given."""

    spec = cvataa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)

    def preprocess_image(self, context, image):
        return np.asarray(image.convert("L"), dtype=np.float32)

    def detect(self, context, pp_image, prompts):
        from scipy import ndimage

        grey = pp_image
        level = min(grey[int(y), int(x)] for x, y in prompts.pos_points) / 2
        bright = grey > level
        if prompts.bounding_box is not None:
            (x1, y1), (x2, y2) = prompts.bounding_box
            inside = np.zeros_like(bright)
            inside[int(y1) : int(y2), int(x1) : int(x2)] = True
            bright &= inside
        regions, _ = ndimage.label(bright)
        keep = {regions[int(y), int(x)] for x, y in prompts.pos_points} - {0}
        drop = {regions[int(y), int(x)] for x, y in prompts.neg_points}
        mask = np.isin(regions, sorted(keep - drop))
        return [
            cvataa.InteractionResultShape(
                type="mask",
                points=encode_mask(mask),
                attributes=[
                    models.AttributeValRequest(spec_id=cvataa.InteractionResultAttributes.CONFIDENCE, value="0.75")
                ],
            )
        ]
