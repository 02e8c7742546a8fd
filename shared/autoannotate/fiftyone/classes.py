"""The labels a FiftyOne run will produce (the label :class:`Plan`), decided before any inference.

- :class:`ClassSpec` / :func:`parse_classes`: which classes to store and in what form; classes
  come as tuples ``("person", "polygon")``, dicts ``{"name": ..., "output_type": ...}``,
  ``ClassSpec`` objects, or plain names (output inferred from the function's label type).
- review thresholds (:mod:`autoannotate.routing`): ``(lower, upper)`` or ``{class: (lower, upper)}``
  (``"*"`` is the fallback for classes not listed).
- :func:`make_plan`: resolves names against the function (exact, ``label_map`` synonyms,
  case-insensitive), checks each output type is reachable from the function's label type, picks
  the label field of each container type, and says which labels need box refinement.

Nothing here imports FiftyOne; :mod:`autoannotate.fiftyone.plan` checks it against the dataset
as part of the run's one plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadParameterError
from ..interface import DetectionFunctionSpec, LabelSpec
from ..loading import split_list
from ..mapping import Synonyms, TargetAttribute, TargetLabel, match_name, normalize_synonyms, resolve_names
from ..outputs import NATURAL_OUTPUT
from ..routing import ReviewThresholds, Router, parse_review, thresholds_per_class

__all__ = [
    "OUTPUT_TYPES",
    "CORE_OUTPUT",
    "CONTAINER",
    "REACHABLE",
    "DEFAULT_OUTPUT",
    "ClassSpec",
    "parse_classes",
    "class_names",
    "ReviewThresholds",
    "parse_review",
    "Plan",
    "make_plan",
]

#: FiftyOne's output types: the core output type each one is (:data:`autoannotate.outputs.OUTPUT_TYPES`)
#: and the FiftyOne container its labels are stored in.
_OUTPUTS = {
    "bbox": ("box", "detections"),
    "polygon": ("polygon", "polylines"),
    "polyline": ("polyline", "polylines"),
    "keypoint": ("keypoints", "keypoints"),
    "mask": ("mask", "detections"),
    "tag": ("tag", "classifications"),
}

OUTPUT_TYPES = tuple(_OUTPUTS)

#: FiftyOne's output type names -> the core's.
CORE_OUTPUT = {output: core for output, (core, _) in _OUTPUTS.items()}
_FIFTYONE_NAME = {core: output for output, core in CORE_OUTPUT.items()}

#: The FiftyOne container each output type is stored in.
CONTAINER = {output: container for output, (_, container) in _OUTPUTS.items()}

#: Output types reachable from each label type (rectangles reach masks/polygons by refinement).
REACHABLE = {
    "rectangle": {"bbox", "mask", "polygon", "polyline"},  # polyline: a (rotated) box's outline
    "mask": {"bbox", "mask", "polygon"},
    "polygon": {"bbox", "mask", "polygon", "polyline"},
    "polyline": {"bbox", "polyline"},
    "points": {"bbox", "keypoint"},
    "skeleton": {"bbox", "keypoint"},
    "tag": {"tag"},
    "any": {"bbox", "mask", "polygon", "polyline", "keypoint"},
}

#: The output type of a class that names none, by its label type: the core's natural one
#: (:data:`autoannotate.outputs.NATURAL_OUTPUT`) in FiftyOne's name; a mask for an ``any`` label.
DEFAULT_OUTPUT = {label_type: _FIFTYONE_NAME[core] for label_type, core in NATURAL_OUTPUT.items()} | {"any": "mask"}


@dataclass(frozen=True)
class ClassSpec:
    """One class to produce: its ``name`` (as stored in the dataset) and ``output_type``
    (bbox, polygon, polyline, keypoint, mask or tag; ``None``: from the function's label type)."""

    name: str
    output_type: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise BadParameterError(f"class names must be non-empty strings, got {self.name!r}")
        if self.output_type is not None and self.output_type not in OUTPUT_TYPES:
            raise BadParameterError(
                f"class {self.name!r}: unknown output type {self.output_type!r}; choose one of {list(OUTPUT_TYPES)}"
            )


def parse_classes(classes: Iterable[Any] | str | None) -> list[ClassSpec] | None:
    """Normalize the three accepted shapes (plus plain names and ``"name:type"`` strings). A
    string may list several classes, comma- or newline-separated, as typed in the plugin's form:
    ``"person:polygon, car:bbox"``."""
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = split_list(classes)
    elif isinstance(classes, Mapping):
        classes = [classes]
    out = []
    for c in classes:
        if isinstance(c, ClassSpec):
            out.append(c)
        elif isinstance(c, Mapping):
            unknown = set(c) - {"name", "output_type"}
            if unknown or "name" not in c:
                raise BadParameterError(f"a class dict takes 'name' and 'output_type', got {dict(c)}")
            out.append(ClassSpec(c["name"], c.get("output_type")))
        elif isinstance(c, (tuple, list)) and len(c) == 2:
            out.append(ClassSpec(c[0], c[1]))
        elif isinstance(c, str):
            name, _, kind = c.partition(":")
            out.append(ClassSpec(name.strip(), kind.strip() or None))
        else:
            raise BadParameterError(f"cannot read class {c!r}: use ('name', 'output_type'), a dict or ClassSpec")
    names = [c.name for c in out]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise BadParameterError(f"classes listed twice: {dups}")
    if not out:
        raise BadParameterError("classes is empty: give at least one class, or None for all the function's labels")
    return out


def class_names(classes: Iterable[Any] | str | None, dataset_classes: Sequence[str] | None) -> list[str] | None:
    """The class names a run asks for: those of ``classes`` (any form :func:`parse_classes`
    reads), else the dataset's classes, else None. Open-vocabulary functions are built to find
    exactly these (:func:`autoannotate.loading.with_classes`)."""
    specs = parse_classes(classes)
    if specs:
        return [c.name for c in specs]
    return list(dataset_classes) if dataset_classes else None


@dataclass
class Plan:
    """Everything decided before inference.

    ``targets``: dataset classes as mapping targets; ``outputs``: class -> output type;
    ``fields``: container -> label field; ``refine``: function label name -> mask/polygon for
    rectangle labels that must be refined; ``review``: class -> thresholds (or empty).
    """

    targets: list[TargetLabel]
    outputs: dict[str, str]
    fields: dict[str, str]
    refine: dict[str, str] = field(default_factory=dict)
    review: dict[str, ReviewThresholds] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)

    @property
    def primary_field(self) -> str:
        return next(iter(self.fields.values()))

    def field_for(self, class_name: str) -> str:
        return self.fields[CONTAINER[self.outputs[class_name]]]

    def router(self) -> Router:
        """Review routing by target label id (the ids the mapping gives shapes)."""
        return Router({t.id: self.review[t.name] for t in self.targets if t.name in self.review})


def make_plan(
    spec: DetectionFunctionSpec,
    *,
    label_field: str,
    classes: Sequence[ClassSpec] | None,
    label_map: Synonyms | None,
    dataset_classes: Sequence[str] | None,
    review: Any,
) -> Plan:
    """Resolve classes against the function; raises :class:`BadParameterError` before any work."""
    syn = normalize_synonyms(label_map)
    wanted = [c.name for c in classes] if classes else (list(dataset_classes) if dataset_classes else None)
    if wanted is not None and not classes:  # the dataset's classes, plus what label_map names
        wanted += [t[0] for t in syn.values() if not any(match_name(n, _candidates(wanted)) for n in t)]
    names = resolve_names(spec, wanted, label_map)
    if wanted is not None:  # label_map always applies, also where the target has the function's own name
        for label in spec.labels:
            if label.name in syn:
                hit = next((m for t in syn[label.name] if (m := match_name(t, _candidates(wanted)))), None)
                if hit is not None:
                    names[label.name] = hit.name
                else:  # mapped to a class the run does not produce: not silently stored as itself
                    names.pop(label.name, None)
    by_class: dict[str, list[LabelSpec]] = {}
    for label in spec.labels:
        if label.name in names:
            by_class.setdefault(names[label.name], []).append(label)
    if classes:
        missing = [c.name for c in classes if c.name not in by_class]
        if missing:
            raise BadParameterError(
                f"unknown classes {missing}: the function's labels are {spec.label_names}"
                + (f" (with label_map {dict(label_map)})" if label_map else "")
            )
    if not by_class:
        raise BadParameterError(
            f"none of the function's labels {spec.label_names} matches the dataset's classes {list(wanted or [])}; "
            "pass classes= or label_map="
        )
    requested = {c.name: c.output_type for c in classes} if classes else {}
    outputs: dict[str, str] = {}
    refine: dict[str, str] = {}
    for name, labels in by_class.items():
        out = requested.get(name) or DEFAULT_OUTPUT[labels[0].type]
        for lbl in labels:
            if out not in REACHABLE[lbl.type]:
                raise BadParameterError(
                    f"class {name!r}: the function's label {lbl.name!r} gives {lbl.type!r} shapes, "
                    f"which cannot become {out!r}; possible: {sorted(REACHABLE[lbl.type])}"
                )
            if lbl.type == "rectangle" and out in ("mask", "polygon"):
                refine[lbl.name] = out
        outputs[name] = out
    containers = list(dict.fromkeys(CONTAINER[o] for o in outputs.values()))
    fields = {kind: label_field if i == 0 else f"{label_field}_{kind}" for i, kind in enumerate(containers)}
    targets = [_target(name, i, by_class[name]) for i, name in enumerate(by_class)]
    if callable(getattr(review, "review", None)):  # a Calibration: classes the run lacks are ignored
        review = review.review(list(outputs))
    routing = thresholds_per_class(review, list(outputs))
    unmatched = [lbl.name for lbl in spec.labels if lbl.name not in names]
    return Plan(targets, outputs, fields, refine, routing, unmatched)


def _candidates(names: Sequence[str]) -> list[TargetLabel]:
    return [TargetLabel(n, i) for i, n in enumerate(names)]


def _target(name: str, index: int, labels: list[LabelSpec]) -> TargetLabel:
    """A mapping target for one dataset class, accepting every attribute/keypoint of its labels."""
    attrs = list(dict.fromkeys(a.name for lbl in labels for a in lbl.attributes))
    if all(lbl.type == "skeleton" for lbl in labels):
        subs = list(dict.fromkeys(s.name for lbl in labels for s in lbl.sublabels))
        return TargetLabel(
            name,
            index,
            type="skeleton",
            attributes=tuple(TargetAttribute(a, k) for k, a in enumerate(attrs)),
            sublabels=tuple(TargetLabel(s, k) for k, s in enumerate(subs)),
        )
    return TargetLabel(name, index, attributes=tuple(TargetAttribute(a, k) for k, a in enumerate(attrs)))
