"""Specs and shapes between CVAT SDK's auto-annotation layer (``cvat_sdk.auto_annotation``, API
request models) and autoannotate's (:mod:`autoannotate.interface`, :mod:`autoannotate.shapes`).

Both sides use the same ids, names, shape types, attribute kinds and pixel coordinates (rotation
in degrees clockwise about the box's centre); masks differ in encoding: CVAT's run-length list
ending with the box ``[x1, y1, x2, y2]`` (inclusive corners, :mod:`cvat_sdk.masks`) against a
boolean H x W bitmap. What one side cannot hold (CVAT's ellipses and cuboids) is a
:class:`~autoannotate.errors.BadFunctionError` that says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cvat_sdk.auto_annotation as cvataa
import numpy as np
from cvat_sdk import models
from cvat_sdk.masks import decode_mask, encode_mask

from .. import interface as aa
from .. import shapes as sh
from ..errors import BadFunctionError
from ..masks import mask_bbox, polygon_to_mask

# --------------------------------------------------------------------------------------------
# Specs


def _value(v: Any) -> Any:
    """An API enum (``ShapeType``, ``InputTypeEnum``) as its string; anything else as is."""
    return getattr(v, "value", v)


def attribute_from_cvat(attr: Any) -> aa.AttributeSpec:
    default = attr.get("default_value") if hasattr(attr, "get") else None
    return aa.AttributeSpec(
        name=attr.name,
        id=attr.id,
        input_type=str(_value(attr.input_type)),
        values=tuple(str(v) for v in getattr(attr, "values", []) or []),
        default_value=default or None,
    )


def label_from_cvat(label: Any, *, sublabel: bool = False) -> aa.LabelSpec:
    label_type = str(_value(label.get("type") or "any"))
    if label_type not in aa.LABEL_TYPES:
        raise BadFunctionError(
            f"label {label.name!r} has type {label_type!r}, which autoannotate cannot represent "
            f"(its label types: {list(aa.LABEL_TYPES)})"
        )
    return aa.LabelSpec(
        name=label.name,
        id=label.id,
        type=label_type,
        attributes=tuple(attribute_from_cvat(a) for a in label.get("attributes") or []),
        sublabels=() if sublabel else tuple(label_from_cvat(s, sublabel=True) for s in label.get("sublabels") or []),
        color=label.get("color") or None,
    )


def spec_from_cvat(spec: cvataa.DetectionFunctionSpec) -> aa.DetectionFunctionSpec:
    """autoannotate's spec for a CVAT detection spec (same ids, names, types and attributes)."""
    return aa.DetectionFunctionSpec(labels=tuple(label_from_cvat(label) for label in spec.labels))


def _attribute_to_cvat(a: aa.AttributeSpec) -> models.AttributeRequest:
    kwargs = {"default_value": a.default_value} if a.default_value is not None else {}
    return cvataa.attribute_spec(a.name, a.id, a.input_type, list(a.values), **kwargs)


def spec_to_cvat(spec: aa.DetectionFunctionSpec) -> cvataa.DetectionFunctionSpec:
    """CVAT's spec for an autoannotate detection spec; built with CVAT's own factories, so CVAT
    validates it as it does any function's."""
    labels = []
    for label in spec.labels:
        kwargs: dict[str, Any] = {"attributes": [_attribute_to_cvat(a) for a in label.attributes]}
        if label.color:
            kwargs["color"] = label.color
        if label.type == "skeleton":
            subs = [
                cvataa.keypoint_spec(s.name, s.id, attributes=[_attribute_to_cvat(a) for a in s.attributes])
                for s in label.sublabels
            ]
            labels.append(cvataa.skeleton_label_spec(label.name, label.id, subs, **kwargs))
        else:
            labels.append(cvataa.label_spec(label.name, label.id, type=label.type, **kwargs))
    return cvataa.DetectionFunctionSpec(labels=labels)


# --------------------------------------------------------------------------------------------
# Masks


def decode(points: Sequence[float], size: tuple[int, int], where: str) -> np.ndarray:
    """A CVAT-encoded mask as a boolean bitmap of a ``size = (width, height)`` image."""
    try:
        return decode_mask(list(points), image_width=size[0], image_height=size[1])
    except (ValueError, TypeError) as e:
        raise BadFunctionError(
            f"{where}: a mask that is not in CVAT's encoding for a {size[0]}x{size[1]} image: {e}"
        ) from None


def encode(bitmap: np.ndarray) -> list[float]:
    """A boolean bitmap in CVAT's mask encoding (limited to its set pixels; an empty mask is one
    unset pixel at the origin, as :func:`cvat_sdk.masks.encode_mask` makes it)."""
    box = mask_bbox(bitmap)
    return encode_mask(np.asarray(bitmap, dtype=bool), box)


# --------------------------------------------------------------------------------------------
# Shapes, CVAT -> autoannotate


def _attrs_from_cvat(annotation: Any) -> tuple[sh.AttributeValue, ...]:
    return tuple(sh.AttributeValue(int(a.spec_id), str(a.value)) for a in annotation.get("attributes") or [])


def shape_from_cvat(
    annotation: Any, size: tuple[int, int], *, mask_label: bool = False, where: str = "shape"
) -> sh.Shape:
    """One annotation a CVAT function returned (already checked by CVAT's rules) as a Shape.
    ``mask_label``: the label is of type ``mask``, so a polygon (what ``conv_mask_to_poly`` asks
    of a CVAT function) is drawn back into a mask, which the driver turns into the polygon."""
    attributes = _attrs_from_cvat(annotation)
    if isinstance(annotation, models.LabeledImageRequest):
        return sh.tag(annotation.label_id, attributes=attributes)
    kind = str(_value(annotation.type))
    score = annotation.get("score")
    common: dict[str, Any] = {"score": score, "attributes": attributes, "occluded": bool(annotation.get("occluded"))}
    points = list(annotation.get("points") or [])
    if kind == "mask" or (kind == "polygon" and mask_label):
        bitmap = decode(points, size, where) if kind == "mask" else polygon_to_mask(points, size)
        return sh.mask(annotation.label_id, bitmap, **common)
    if kind == "skeleton":
        elements = [
            sh.keypoint(
                e.label_id,
                list(e.get("points") or []),
                occluded=bool(e.get("occluded")),
                outside=bool(e.get("outside")),
                score=e.get("score"),
                attributes=_attrs_from_cvat(e),
            )
            for e in annotation.get("elements") or []
        ]
        return sh.skeleton(annotation.label_id, elements, score=score, attributes=attributes)
    if kind == "rectangle":
        return sh.rectangle(annotation.label_id, points, rotation=float(annotation.get("rotation") or 0.0), **common)
    if kind in ("polygon", "polyline", "points"):
        return sh.shape(kind, annotation.label_id, points, **common)
    raise BadFunctionError(f"{where}: the function returned a {kind!r}, a shape autoannotate has no equivalent for")


# --------------------------------------------------------------------------------------------
# Shapes, autoannotate -> CVAT


def _attrs_to_cvat(values: Iterable[sh.AttributeValue]) -> list[models.AttributeValRequest]:
    return [models.AttributeValRequest(spec_id=a.spec_id, value=a.value) for a in values]


def shape_to_cvat(s: sh.Shape) -> models.LabeledImageRequest | models.LabeledShapeRequest:
    """A validated Shape as the request CVAT's ``detect`` returns (frame 0, no id nor source)."""
    attributes = _attrs_to_cvat(s.attributes)
    if s.type == "tag":
        return cvataa.tag(s.label_id, attributes=attributes)
    extra: dict[str, Any] = {"attributes": attributes}
    if s.score is not None:
        extra["score"] = float(s.score)
    if s.occluded:
        extra["occluded"] = True
    if s.type == "skeleton":
        elements = []
        for e in s.elements:
            kw: dict[str, Any] = {
                "occluded": e.occluded,
                "outside": e.outside,
                "attributes": _attrs_to_cvat(e.attributes),
            }
            if e.score is not None:
                kw["score"] = float(e.score)
            elements.append(cvataa.keypoint(e.label_id, list(e.points), **kw))
        return cvataa.skeleton(s.label_id, elements, **extra)
    if s.type == "mask":
        return cvataa.mask(s.label_id, encode(s.bitmap), **extra)  # type: ignore[arg-type]
    if s.type == "rectangle" and s.rotation:
        extra["rotation"] = float(s.rotation)
    return cvataa.shape(s.label_id, type=s.type, points=list(s.points), **extra)


# --------------------------------------------------------------------------------------------
# Tracked shapes


def trackable_from_cvat(shape: Any, size: tuple[int, int], where: str) -> aa.TrackableShape:
    kind = str(_value(shape.type))
    if kind == "mask":
        return aa.TrackableShape("mask", bitmap=decode(shape.points, size, where))
    return aa.TrackableShape(kind, tuple(shape.points))


def trackable_to_cvat(shape: aa.TrackableShape) -> cvataa.TrackableShape:
    if shape.type == "mask":
        return cvataa.TrackableShape(type="mask", points=encode(shape.bitmap))  # type: ignore[arg-type]
    return cvataa.TrackableShape(type=shape.type, points=list(shape.points))
