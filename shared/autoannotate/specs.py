"""The specs of the auto-annotation protocol: what a detection function finds (labels, their
shape types, keypoints, attributes) as frozen :class:`DetectionFunctionSpec` / :class:`LabelSpec` /
:class:`AttributeSpec`, validated when built (:class:`~autoannotate.errors.BadFunctionError` at
construction), and the helper factories (``label_spec``, ``keypoint_spec``, ...).
Importable from :mod:`autoannotate.interface` too, beside the contexts and Protocols.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BadFunctionError

#: The spec classes and their builders, which :mod:`autoannotate.interface` and the package
#: re-export (the type vocabularies below are importable by name, also from the interface).
__all__ = [
    "AttributeSpec",
    "DetectionFunctionSpec",
    "LabelSpec",
    "attribute_spec",
    "checkbox_attribute_spec",
    "keypoint_spec",
    "label_spec",
    "number_attribute_spec",
    "number_attribute_values",
    "radio_attribute_spec",
    "select_attribute_spec",
    "skeleton_label_spec",
    "text_attribute_spec",
]

#: Shape types a function may return.
SHAPE_TYPES = ("rectangle", "polygon", "polyline", "points", "mask", "skeleton", "tag")
#: Label types a spec may declare. ``any`` admits every shape type except ``skeleton``.
LABEL_TYPES = ("any",) + SHAPE_TYPES
ATTRIBUTE_INPUT_TYPES = ("checkbox", "number", "radio", "select", "text")


# --------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class AttributeSpec:
    """An attribute a label's shapes may carry. ``values`` are strings, as in CVAT:

    - ``checkbox``: ``()`` or one default, ``"true"`` or ``"false"``;
    - ``number``: exactly ``(min, max, step)`` (see :func:`number_attribute_values`);
    - ``radio`` / ``select``: the allowed values, at least one, no repeats;
    - ``text``: ``()`` or one default text.
    """

    name: str
    id: int
    input_type: str
    values: tuple[str, ...] = ()
    default_value: str | None = None
    mutable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))
        where = f"attribute {self.name!r} (id {self.id})"
        _check_name_and_id(self.name, self.id, "attribute")
        if self.input_type not in ATTRIBUTE_INPUT_TYPES:
            raise BadFunctionError(
                f"{where}: input_type {self.input_type!r} is not one of {list(ATTRIBUTE_INPUT_TYPES)}"
            )
        v = self.values
        if self.input_type == "checkbox":
            if len(v) > 1 or any(x not in ("true", "false") for x in v):
                raise BadFunctionError(f"{where}: checkbox values must be () or ('true',) / ('false',), got {v}")
        elif self.input_type == "number":
            if len(v) != 3:
                raise BadFunctionError(f"{where}: number values must be (min, max, step), got {v}")
            try:
                lo, hi, step = (float(x) for x in v)
            except ValueError:
                raise BadFunctionError(f"{where}: number values must be numbers, got {v}") from None
            if not all(math.isfinite(x) for x in (lo, hi, step)) or step <= 0 or lo > hi:
                raise BadFunctionError(f"{where}: number values need finite min <= max and step > 0, got {v}")
        elif self.input_type in ("radio", "select"):
            if not v:
                raise BadFunctionError(f"{where}: {self.input_type} attributes need at least one value")
            if len(set(v)) != len(v):
                raise BadFunctionError(f"{where}: repeated values in {v}")
        elif self.input_type == "text" and len(v) > 1:
            raise BadFunctionError(f"{where}: text attributes take at most one default value, got {v}")
        if self.default_value is not None and self.input_type in ("radio", "select"):
            if self.default_value not in v:
                raise BadFunctionError(f"{where}: default {self.default_value!r} is not among {v}")

    def accepts(self, value: str) -> bool:
        """Whether ``value`` is a legal value of this attribute."""
        if self.input_type == "checkbox":
            return value in ("true", "false")
        if self.input_type in ("radio", "select"):
            return value in self.values
        if self.input_type == "number":
            try:
                x = float(value)
            except (TypeError, ValueError):
                return False
            lo, hi, _ = (float(s) for s in self.values)
            return math.isfinite(x) and lo <= x <= hi
        return isinstance(value, str)


@dataclass(frozen=True)
class LabelSpec:
    """A label a function can produce. ``type`` restricts which shapes it may have.

    Skeleton labels carry their keypoints as ``sublabels`` (each of type ``points``).
    """

    name: str
    id: int
    type: str = "any"
    attributes: tuple[AttributeSpec, ...] = ()
    sublabels: tuple[LabelSpec, ...] = ()
    color: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "sublabels", tuple(self.sublabels))
        _check_name_and_id(self.name, self.id, "label")
        where = f"label {self.name!r} (id {self.id})"
        if self.type not in LABEL_TYPES:
            raise BadFunctionError(f"{where}: type {self.type!r} is not one of {list(LABEL_TYPES)}")
        for a in self.attributes:
            if not isinstance(a, AttributeSpec):
                raise BadFunctionError(f"{where}: attributes must be made with attribute_spec(), got {a!r}")
        _check_unique(self.attributes, f"attributes of {where}")
        if self.type == "skeleton":
            if not self.sublabels:
                raise BadFunctionError(f"{where}: a skeleton label needs at least one keypoint sublabel")
            for s in self.sublabels:
                if not isinstance(s, LabelSpec) or s.type != "points":
                    raise BadFunctionError(f"{where}: skeleton sublabels must be keypoint_spec(), got {s!r}")
            _check_unique(self.sublabels, f"sublabels of {where}")
        elif self.sublabels:
            raise BadFunctionError(f"{where}: only skeleton labels may have sublabels")

    def allows(self, shape_type: str) -> bool:
        """Whether a shape of ``shape_type`` may carry this label."""
        if self.type == "any":
            return shape_type != "skeleton"
        return self.type == shape_type

    def attribute(self, attribute_id: int) -> AttributeSpec | None:
        return next((a for a in self.attributes if a.id == attribute_id), None)

    def sublabel(self, sublabel_id: int) -> LabelSpec | None:
        return next((s for s in self.sublabels if s.id == sublabel_id), None)


@dataclass(frozen=True)
class DetectionFunctionSpec:
    """What a detection function can produce: its labels, with unique ids and unique names."""

    labels: tuple[LabelSpec, ...]

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        object.__setattr__(self, "labels", labels)
        for label in labels:
            if not isinstance(label, LabelSpec):
                raise BadFunctionError(f"spec labels must be made with label_spec(), got {label!r}")
        _check_unique(labels, "labels of the spec")
        object.__setattr__(self, "_by_id", {label.id: label for label in labels})

    def label(self, label_id: int) -> LabelSpec | None:
        """The label with this id, or None."""
        return self._by_id.get(label_id)  # type: ignore[attr-defined]

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]


def _check_name_and_id(name: Any, id_: Any, what: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise BadFunctionError(f"{what} names must be non-empty strings, got {name!r}")
    if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)):
        raise BadFunctionError(f"{what} {name!r}: id must be an integer, got {id_!r}")


def _check_unique(items: Sequence[Any], where: str) -> None:
    ids = [i.id for i in items]
    names = [i.name for i in items]
    dup_ids = sorted({i for i in ids if ids.count(i) > 1})
    dup_names = sorted({n for n in names if names.count(n) > 1})
    if dup_ids:
        raise BadFunctionError(f"duplicate ids in {where}: {dup_ids}")
    if dup_names:
        raise BadFunctionError(f"duplicate names in {where}: {dup_names}")


# Factories (the public, CVAT-like way to build specs)


def label_spec(
    name: str,
    id: int,
    *,
    type: str = "any",
    attributes: Iterable[AttributeSpec] = (),
    color: str | None = None,
) -> LabelSpec:
    """A label of the function's spec. ``type`` is ``any`` or one shape type."""
    return LabelSpec(name=name, id=id, type=type, attributes=tuple(attributes), color=color)


def skeleton_label_spec(
    name: str,
    id: int,
    sublabels: Iterable[LabelSpec],
    *,
    attributes: Iterable[AttributeSpec] = (),
    color: str | None = None,
) -> LabelSpec:
    """A skeleton label; ``sublabels`` are its keypoints, made with :func:`keypoint_spec`."""
    return LabelSpec(
        name=name, id=id, type="skeleton", attributes=tuple(attributes), sublabels=tuple(sublabels), color=color
    )


def keypoint_spec(name: str, id: int, *, attributes: Iterable[AttributeSpec] = ()) -> LabelSpec:
    """One keypoint (sublabel) of a skeleton label."""
    return LabelSpec(name=name, id=id, type="points", attributes=tuple(attributes))


def attribute_spec(
    name: str, id: int, input_type: str, values: Sequence[str] = (), default_value: str | None = None
) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type=input_type, values=tuple(values), default_value=default_value)


def checkbox_attribute_spec(name: str, id: int, default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="checkbox", values=(), default_value=default_value)


def number_attribute_values(min_value: float, max_value: float, step: float = 1) -> list[str]:
    """The ``values`` of a number attribute: ``[min, max, step]`` as strings."""
    return [_num(min_value), _num(max_value), _num(step)]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(float(x))


def number_attribute_spec(name: str, id: int, values: Sequence[str], default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="number", values=tuple(values), default_value=default_value)


def radio_attribute_spec(name: str, id: int, values: Sequence[str], default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="radio", values=tuple(values), default_value=default_value)


def select_attribute_spec(name: str, id: int, values: Sequence[str], default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="select", values=tuple(values), default_value=default_value)


def text_attribute_spec(name: str, id: int, default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="text", values=(), default_value=default_value)
