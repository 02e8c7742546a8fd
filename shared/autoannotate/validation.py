"""Check what a detection function returned against its spec (the protocol's rules), and what an
interactive function returned against the image and the prompt (:func:`validate_segmentation`).

Every broken rule raises :class:`BadFunctionError` whose message names what the function
returned and what its spec (or the image) says.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from .errors import BadFunctionError
from .interface import AttributeSpec, DetectionFunctionSpec, LabelSpec, SegmentationResult
from .shapes import Shape

#: (minimum number of coordinates, must be even) per point-based shape type.
_POINT_RULES = {"rectangle": 4, "polygon": 6, "polyline": 4, "points": 2}

#: What a label declares: its keypoints (sublabels) and its attributes.
_Declared = TypeVar("_Declared", LabelSpec, AttributeSpec)


def validate_shapes(
    spec: DetectionFunctionSpec, shapes: Any, image_size: tuple[int, int], *, frame_name: str = ""
) -> list[Shape]:
    """Validate a ``detect`` result; returns it as a list. ``image_size`` is ``(width, height)``."""
    where = f" on {frame_name!r}" if frame_name else ""
    if isinstance(shapes, (str, bytes)) or not hasattr(shapes, "__iter__"):
        raise BadFunctionError(f"detect() must return a list of shapes{where}, got {type(shapes).__name__}")
    result = list(shapes)
    for i, s in enumerate(result):
        validate_shape(spec, s, image_size, where=f"shape #{i}{where}")
    return result


def validate_shape(spec: DetectionFunctionSpec, s: Any, image_size: tuple[int, int], *, where: str = "shape") -> None:
    if not isinstance(s, Shape):
        raise BadFunctionError(
            f"{where}: the function returned a {type(s).__name__}; shapes must be made with "
            "autoannotate's rectangle(), polygon(), mask(), skeleton(), tag() ..."
        )
    label = spec.label(s.label_id)
    if label is None:
        raise BadFunctionError(
            f"{where}: the function returned label id {s.label_id}, which its spec does not have "
            f"(spec ids: {sorted(lbl.id for lbl in spec.labels)})"
        )
    if not label.allows(s.type):
        raise BadFunctionError(
            f"{where}: the function returned a {s.type!r} for label {label.name!r}, "
            f"whose type in the spec is {label.type!r}"
        )
    _check_score(s, where)
    _check_attributes(label, s, where)
    _check_rotation(s, where)
    if s.type == "skeleton":
        _check_skeleton(label, s, where)
    elif s.type == "mask":
        _check_mask(s, image_size, where)
    elif s.type == "tag":
        if s.points:
            raise BadFunctionError(f"{where}: a tag has no points, got {len(s.points)} coordinates")
    elif s.type in _POINT_RULES:
        _check_points(s, where)
    else:
        raise BadFunctionError(f"{where}: unknown shape type {s.type!r}")


def _check_score(s: Shape, where: str) -> None:
    if s.score is None:
        return
    if not isinstance(s.score, (int, float)) or not math.isfinite(s.score) or not 0.0 <= s.score <= 1.0:
        raise BadFunctionError(f"{where}: score must be a number in [0, 1], the function returned {s.score!r}")


def _check_rotation(s: Shape, where: str) -> None:
    r = s.rotation
    if not r:
        return
    if s.type != "rectangle":
        raise BadFunctionError(f"{where}: only a rectangle can be rotated, the function returned a rotated {s.type!r}")
    if not isinstance(r, (int, float)) or not math.isfinite(r) or not 0.0 <= r < 360.0:
        raise BadFunctionError(
            f"{where}: rotation must be a number of degrees in [0, 360), the function returned {r!r}"
        )


def _check_points(s: Shape, where: str) -> None:
    check_points(s.type, s.points, where)


def check_points(kind: str, pts: tuple[float, ...], where: str) -> None:
    """The rules for a point-based shape of ``kind``: coordinate count, finiteness, and ordered
    rectangle corners. Used for function outputs and for tracked shapes alike."""
    n = len(pts)
    minimum = _POINT_RULES[kind]
    if kind == "rectangle" and n != 4:
        raise BadFunctionError(f"{where}: a rectangle needs 4 coordinates (x1, y1, x2, y2), got {n} coordinates")
    if n < minimum or n % 2:
        raise BadFunctionError(
            f"{where}: a {kind} needs an even number of coordinates, at least {minimum}; got {n} coordinates"
        )
    if not all(math.isfinite(v) for v in pts):
        raise BadFunctionError(f"{where}: {kind} coordinates must be finite, got non-finite values in {list(pts)}")
    if kind == "rectangle":
        x1, y1, x2, y2 = pts
        if x2 < x1 or y2 < y1:
            raise BadFunctionError(
                f"{where}: inverted rectangle, corners must satisfy x1 <= x2 and y1 <= y2, got {pts}"
            )


def _check_mask(s: Shape, image_size: tuple[int, int], where: str) -> None:
    width, height = image_size
    b = s.bitmap
    if b is None or getattr(b, "ndim", 0) != 2:
        shape = None if b is None else getattr(b, "shape", None)
        raise BadFunctionError(f"{where}: a mask needs a 2-D boolean bitmap, got shape {shape}")
    if b.shape != (height, width):
        raise BadFunctionError(
            f"{where}: the function returned a mask of {b.shape[1]}x{b.shape[0]} pixels (WxH) "
            f"for an image of {width}x{height}"
        )
    if s.points:
        raise BadFunctionError(f"{where}: a mask carries its bitmap, not points")


def _check_skeleton(label: LabelSpec, s: Shape, where: str) -> None:
    if s.points:
        raise BadFunctionError(f"{where}: a skeleton has no points of its own, only elements")
    seen: set[int] = set()
    for e in s.elements:
        if not isinstance(e, Shape) or e.type != "points":
            raise BadFunctionError(f"{where}: skeleton elements must be keypoint() shapes, got {e!r}")
        sub = _declared_once("keypoint", e.label_id, label.sublabels, f"skeleton {label.name!r}", seen, where)
        if len(e.points) != 2 or not all(math.isfinite(v) for v in e.points):
            raise BadFunctionError(f"{where}: keypoint {sub.name!r} needs 2 finite coordinates, got {e.points}")
        _check_score(e, f"{where}, keypoint {sub.name!r}")
        _check_attributes(sub, e, f"{where}, keypoint {sub.name!r}")
    missing = [k.name for k in label.sublabels if k.id not in seen]
    if missing:
        raise BadFunctionError(
            f"{where}: skeleton {label.name!r} is incomplete: the function left out keypoints {missing} "
            "(mark absent keypoints outside=True instead)"
        )


def _check_attributes(label: LabelSpec, s: Shape, where: str) -> None:
    seen: set[int] = set()
    for a in s.attributes:
        spec = _declared_once("attribute", a.spec_id, label.attributes, f"label {label.name!r}", seen, where)
        if not spec.accepts(a.value):
            raise BadFunctionError(
                f"{where}: attribute {spec.name!r} ({spec.input_type}) got value {a.value!r}, "
                f"which the spec does not allow (values: {list(spec.values)})"
            )


def _declared_once(
    kind: str, id_: int, declared: Sequence[_Declared], owner: str, seen: set[int], where: str
) -> _Declared:
    """The one of ``declared`` (the keypoints or attributes ``owner`` has) that a returned
    ``kind`` id names, added to ``seen`` (those already in the shape): an error if ``owner`` has
    no such id, or if the shape has it already."""
    spec = next((d for d in declared if d.id == id_), None)
    if spec is None:
        raise BadFunctionError(
            f"{where}: the function returned {kind} id {id_}, which {owner} does not have "
            f"(its {kind}s: {[(d.id, d.name) for d in declared]})"
        )
    if id_ in seen:
        raise BadFunctionError(f"{where}: {kind} {spec.name!r} appears twice in one shape")
    seen.add(id_)
    return spec


def validate_segmentation(
    results: Any, image_size: tuple[int, int], *, expected: int, what: str = "segment()", frame_name: str = ""
) -> list[SegmentationResult]:
    """Validate what an interactive function returned (``segment`` for one prompt: one result
    per box, or one for clicks alone; ``segment_boxes``: one per box); returns it as a list.

    Each result must be a :class:`~autoannotate.interface.SegmentationResult` whose ``mask`` is
    a 2-D boolean array of the image's size (``image_size`` is ``(width, height)``, the mask
    height x width) and whose ``score`` is None or a number in [0, 1]; there must be
    ``expected`` of them. A break raises :class:`BadFunctionError` naming what was returned."""
    where = f"{what}{f' on {frame_name!r}' if frame_name else ''}"
    if isinstance(results, (str, bytes)) or not hasattr(results, "__iter__"):
        raise BadFunctionError(f"{where} must return a list of SegmentationResult, got {type(results).__name__}")
    out = list(results)
    if len(out) != expected:
        raise BadFunctionError(
            f"{where} returned {len(out)} results for {expected} object(s) (one per box, or one for clicks alone)"
        )
    width, height = image_size
    for i, r in enumerate(out):
        at = f"{where}, result #{i}"
        if not isinstance(r, SegmentationResult):
            raise BadFunctionError(f"{at}: the function returned a {type(r).__name__}, not a SegmentationResult")
        m = r.mask
        if not isinstance(m, np.ndarray) or m.ndim != 2 or m.dtype != bool:
            got = (
                f"a {m.ndim}-D {m.dtype} array of shape {m.shape}"
                if isinstance(m, np.ndarray)
                else f"a {type(m).__name__}"
            )
            raise BadFunctionError(
                f"{at}: a mask must be a 2-D boolean array (height x width), the function returned {got}"
            )
        if m.shape != (height, width):
            raise BadFunctionError(
                f"{at}: the function returned a mask of {m.shape[1]}x{m.shape[0]} pixels (WxH) "
                f"for an image of {width}x{height}"
            )
        s = r.score
        if s is not None and (
            isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(s) or not 0.0 <= s <= 1.0
        ):
            raise BadFunctionError(f"{at}: score must be None or a number in [0, 1], the function returned {s!r}")
    return out
