"""Map a function's labels onto a target's labels by name.

Each function label is matched, in order, by

1. its exact name;
2. synonyms: those the user gives (``{"car": "vehicle"}`` or ``{"car": ["vehicle", "auto"]}``)
   and those a target label declares for itself (Label Studio's ``predicted_values``);
3. its name compared case-insensitively (``Person`` == ``person``).

Sublabels (skeleton keypoints) and attributes match by name the same way. Anything of the function
without a counterpart raises :class:`LabelMappingError` listing all of them, unless
``allow_unmatched`` is set, in which case shapes (or keypoints, attributes) that use them are
dropped; nothing matching at all raises :class:`NoLabelsMatchError`. A name matching several
target labels case-insensitively, or a label (attribute) whose type differs on the two sides, is a
:class:`LabelMappingError` too: a conflict between the function and the target, not a broken
function. The mapping is built before any inference; ``map_shapes`` never edits its input.
:func:`match_name` is the one name matcher of the package.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .errors import LabelMappingError, NoLabelsMatchError
from .interface import DetectionFunctionSpec, LabelSpec
from .shapes import AttributeValue, Shape

Synonyms = Mapping[str, "str | Sequence[str]"]


@dataclass(frozen=True)
class TargetAttribute:
    """An attribute on the target's side. ``input_type`` None means any input type."""

    name: str
    id: int
    input_type: str | None = None


@dataclass(frozen=True)
class TargetLabel:
    """A label on the target's side (a dataset class, a Label Studio label, ...).

    ``type`` is ``any`` or the one shape type the target accepts for it; ``synonyms`` are names the
    target itself says this label stands for (Label Studio's ``predicted_values``).
    """

    name: str
    id: int
    type: str = "any"
    attributes: tuple[TargetAttribute, ...] = ()
    sublabels: tuple[TargetLabel, ...] = ()
    synonyms: tuple[str, ...] = ()

    def allows(self, shape_type: str) -> bool:
        if self.type == "any":
            return shape_type != "skeleton"
        return self.type == shape_type


def target_labels_from_names(names: Iterable[str], type: str = "any") -> list[TargetLabel]:
    """Target labels for plain class names; ids are positions in ``names``."""
    return [TargetLabel(name=n, id=i, type=type) for i, n in enumerate(names)]


def target_labels_from_spec(spec: DetectionFunctionSpec, *, conv_mask_to_poly: bool = False) -> list[TargetLabel]:
    """The function's own labels as a target (identity mapping); with ``conv_mask_to_poly`` its
    mask labels take the polygons the driver makes of their masks."""

    def conv(label: LabelSpec) -> TargetLabel:
        return TargetLabel(
            name=label.name,
            id=label.id,
            type="any" if conv_mask_to_poly and label.type == "mask" else label.type,
            attributes=tuple(TargetAttribute(a.name, a.id, a.input_type) for a in label.attributes),
            sublabels=tuple(conv(s) for s in label.sublabels),
        )

    return [conv(label) for label in spec.labels]


def normalize_synonyms(synonyms: Synonyms | None) -> dict[str, list[str]]:
    """``{"car": "vehicle"}`` / ``{"car": ["vehicle", "auto"]}`` -> ``{"car": ["vehicle"]}`` etc."""
    out: dict[str, list[str]] = {}
    for k, v in (synonyms or {}).items():
        out[str(k)] = [v] if isinstance(v, str) else [str(x) for x in v]
    return out


Candidate = TypeVar("Candidate", TargetLabel, TargetAttribute)


def match_name(
    name: str,
    candidates: Sequence[Candidate],
    synonyms: Synonyms | None = None,
    *,
    what: str = "function label",
    target_name: str = "the target",
) -> Candidate | None:
    """The candidate ``name`` stands for, or None: its exact name first, then synonyms (the
    user's ``synonyms[name]`` and the candidates' own ``synonyms``, e.g. Label Studio's
    ``predicted_values``), then case-insensitively. The one matcher of the package: label
    mappings, dataset class names and Label Studio controls all use it.

    Raises :class:`LabelMappingError` when ``name`` is a synonym declared by several candidates
    or matches several candidates case-insensitively (``what`` and ``target_name`` word the
    message)."""
    syn = normalize_synonyms(synonyms)
    for c in candidates:
        if c.name == name:
            return c
    wanted = syn.get(name, [])
    for w in wanted:  # the user's synonyms, in the order given
        for c in candidates:
            if c.name == w:
                return c
    declared = [c for c in candidates if name in getattr(c, "synonyms", ())]
    if len(declared) > 1:
        raise LabelMappingError(
            f"{what} {name!r} is declared as a synonym by several target labels in {target_name}: "
            f"{[c.name for c in declared]}; keep it on one of them (Label Studio: predicted_values)",
            [name],
        )
    if declared:
        return declared[0]
    folded = name.casefold()
    wanted_folded = {w.casefold() for w in wanted}
    hits = [
        c
        for c in candidates
        if c.name.casefold() == folded
        or folded in (s.casefold() for s in getattr(c, "synonyms", ()))
        or c.name.casefold() in wanted_folded
    ]
    if len(hits) > 1:
        raise LabelMappingError(
            f"{what} {name!r} matches several target labels case-insensitively in {target_name}: "
            f"{[h.name for h in hits]}; name one with a synonym (Label Studio: predicted_values)",
            [name],
        )
    return hits[0] if hits else None


@dataclass
class _LabelMatch:
    target: TargetLabel
    attributes: dict[int, TargetAttribute] = field(default_factory=dict)
    sublabels: dict[int, _LabelMatch] = field(default_factory=dict)


class LabelMapping:
    """Function label ids -> target labels; build with :meth:`build`."""

    def __init__(
        self,
        spec: DetectionFunctionSpec,
        matches: dict[int, _LabelMatch],
        unmatched: list[str],
        target_name: str = "the target",
    ):
        self.spec = spec
        self._matches = matches
        #: Names of function labels / sublabels / attributes that have no target (allowed).
        self.unmatched = unmatched
        #: How messages name the target (e.g. "control 'box'").
        self.target_name = target_name

    @classmethod
    def build(
        cls,
        spec: DetectionFunctionSpec,
        targets: Sequence[TargetLabel] | None = None,
        *,
        label_map: Synonyms | None = None,
        allow_unmatched: bool = False,
        target_name: str = "the target",
    ) -> LabelMapping:
        """Match ``spec`` onto ``targets`` (``None``: the spec's own labels, an identity mapping).

        ``label_map`` gives synonyms from function label names to target names (``{"car":
        "vehicle"}`` or ``{"car": ["vehicle", "auto"]}``).

        Raises :class:`NoLabelsMatchError` when no label matches at all (even with
        ``allow_unmatched``), :class:`LabelMappingError` listing every unmatched name unless
        ``allow_unmatched``, and :class:`LabelMappingError` when a name matches several target
        labels or a matched label's type (an attribute's input type) differs on the two sides.
        """
        if targets is None:
            targets = target_labels_from_spec(spec)
        syn = normalize_synonyms(label_map)
        matches: dict[int, _LabelMatch] = {}
        unmatched: list[str] = []
        for label in spec.labels:
            target = match_name(label.name, targets, syn, target_name=target_name)
            if target is None:
                unmatched.append(label.name)
                continue
            _check_types(label, target, target_name)
            m = _LabelMatch(target)
            for a in label.attributes:
                ta = match_name(a.name, target.attributes, what=f"attribute of {label.name!r}", target_name=target_name)
                if ta is None:
                    unmatched.append(f"{label.name}.{a.name} (attribute)")
                    continue
                if ta.input_type is not None and ta.input_type != a.input_type:
                    raise LabelMappingError(
                        f"attribute {label.name}.{a.name} is {a.input_type!r} in the function, "
                        f"{ta.input_type!r} in {target_name}",
                        [f"{label.name}.{a.name}"],
                    )
                m.attributes[a.id] = ta
            for sub in label.sublabels:
                ts = match_name(sub.name, target.sublabels, what=f"keypoint of {label.name!r}", target_name=target_name)
                if ts is None:
                    unmatched.append(f"{label.name}.{sub.name} (keypoint)")
                    continue
                sm = _LabelMatch(ts)
                for a in sub.attributes:
                    ta = match_name(
                        a.name, ts.attributes, what=f"attribute of {label.name}.{sub.name}", target_name=target_name
                    )
                    if ta is None:
                        unmatched.append(f"{label.name}.{sub.name}.{a.name} (attribute)")
                    else:
                        sm.attributes[a.id] = ta
                m.sublabels[sub.id] = sm
            matches[label.id] = m
        if not matches:
            raise NoLabelsMatchError(
                f"none of the function's labels {spec.label_names} matches a label of {target_name} "
                f"{[t.name for t in targets]}. Add synonyms (e.g. {{'car': 'vehicle'}}) or rename labels.",
                spec.label_names,
            )
        if unmatched and not allow_unmatched:
            raise LabelMappingError(
                f"function labels with no match in {target_name}: {unmatched}. "
                f"Labels of {target_name}: {[t.name for t in targets]}. "
                "Add synonyms (e.g. {'car': 'vehicle'}) or allow unmatched labels to drop them.",
                unmatched,
            )
        return cls(spec, matches, unmatched, target_name)

    @property
    def matched_targets(self) -> dict[str, TargetLabel]:
        """Function label name -> target label, for every matched function label."""
        return {self.spec.label(fid).name: m.target for fid, m in self._matches.items()}  # type: ignore[union-attr]

    def target_for(self, function_label_id: int) -> TargetLabel | None:
        m = self._matches.get(function_label_id)
        return m.target if m else None

    def map_shapes(self, shapes: Iterable[Shape], *, target_name: str | None = None) -> list[Shape]:
        """New shapes with target ids; shapes of unmatched labels are dropped. A shape type the
        matched target label does not take raises :class:`LabelMappingError` (naming the target
        as ``target_name``, default the name it was built with)."""
        target_name = self.target_name if target_name is None else target_name
        out: list[Shape] = []
        for s in shapes:
            m = self._matches.get(s.label_id)
            if m is None:
                continue
            if not m.target.allows(s.type):
                fn_label = self.spec.label(s.label_id)
                raise LabelMappingError(
                    f"the function returned a {s.type!r} for {fn_label.name!r}; {target_name} takes "  # type: ignore[union-attr]
                    f"{m.target.type!r} for {m.target.name!r}",
                    [fn_label.name],  # type: ignore[union-attr]
                )
            elements = tuple(
                replace(
                    e,
                    label_id=m.sublabels[e.label_id].target.id,
                    attributes=_map_attrs(e.attributes, m.sublabels[e.label_id]),
                )
                for e in s.elements
                if e.label_id in m.sublabels
            )
            out.append(replace(s, label_id=m.target.id, attributes=_map_attrs(s.attributes, m), elements=elements))
        return out


class TargetMappings:
    """One :class:`LabelMapping` per target, for targets that take a function's shapes several
    times over (each control tag of a Label Studio labeling config has its own labels): the
    driver maps every shape onto each target, in the order of ``mappings``, and each result
    says which target each mapped shape is for (:meth:`autoannotate.driver.ImageResult.by_target`)."""

    def __init__(self, mappings: Mapping[Hashable, LabelMapping]) -> None:
        self.mappings = dict(mappings)

    def map_shapes(self, shapes: Iterable[Shape]) -> tuple[list[Shape], list[Hashable]]:
        """The shapes mapped onto every target, target after target, and the target of each."""
        shapes = list(shapes)
        out: list[Shape] = []
        targets: list[Hashable] = []
        for name, mapping in self.mappings.items():
            mapped = mapping.map_shapes(shapes)
            out += mapped
            targets += [name] * len(mapped)
        return out, targets


def _map_attrs(attrs: tuple[AttributeValue, ...], m: _LabelMatch) -> tuple[AttributeValue, ...]:
    return tuple(AttributeValue(m.attributes[a.spec_id].id, a.value) for a in attrs if a.spec_id in m.attributes)


def types_conflict(label_type: str, target_type: str) -> bool:
    """Whether a function label of ``label_type`` cannot map onto a target label of
    ``target_type`` (``any`` meets every type but ``skeleton``)."""
    if "skeleton" in (label_type, target_type):
        return label_type != target_type
    return "any" not in (label_type, target_type) and label_type != target_type


def _check_types(label: LabelSpec, target: TargetLabel, target_name: str) -> None:
    if types_conflict(label.type, target.type):
        raise LabelMappingError(
            f"label {label.name!r} is {label.type!r} in the function, {target.type!r} in {target_name}",
            [label.name],
        )


def resolve_names(
    spec: DetectionFunctionSpec, names: Sequence[str] | None, synonyms: Synonyms | None = None
) -> dict[str, str]:
    """Function label name -> the name it takes among ``names`` (exact, synonyms, case-insensitive);
    labels without a match are left out. ``names=None``: the function's own names, renamed by
    ``synonyms`` (its first synonym when a label has several)."""
    syn = normalize_synonyms(synonyms)
    if names is None:
        return {label.name: (syn.get(label.name) or [label.name])[0] for label in spec.labels}
    candidates = [TargetLabel(n, i) for i, n in enumerate(names)]
    out = {}
    for label in spec.labels:
        hit = match_name(label.name, candidates, syn)
        if hit is not None:
            out[label.name] = hit.name
    return out
