"""Map a function's labels onto a target's labels by name.

Each function label is matched, in order, by

1. its exact name;
2. synonyms: those the user gives (``{"car": "vehicle"}`` or ``{"car": ["vehicle", "auto"]}``)
   and those a target label declares for itself (Label Studio's ``predicted_values``);
3. its name compared case-insensitively (``Person`` == ``person``).

Sublabels (skeleton keypoints) and attributes match by name the same way. Anything of the function
without a counterpart raises :class:`LabelMappingError` listing all of them, unless
``allow_unmatched`` is set, in which case shapes (or keypoints, attributes) that use them are
dropped. The mapping is built before any inference; ``map_shapes`` never edits its input.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

from .errors import BadFunctionError, LabelMappingError
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
    sublabels: tuple["TargetLabel", ...] = ()
    synonyms: tuple[str, ...] = ()

    def allows(self, shape_type: str) -> bool:
        if self.type == "any":
            return shape_type != "skeleton"
        return self.type == shape_type


def target_labels_from_names(names: Iterable[str], type: str = "any") -> list[TargetLabel]:
    """Target labels for plain class names; ids are positions in ``names``."""
    return [TargetLabel(name=n, id=i, type=type) for i, n in enumerate(names)]


def target_labels_from_spec(spec: DetectionFunctionSpec) -> list[TargetLabel]:
    """The function's own labels as a target (identity mapping)."""

    def conv(label: LabelSpec) -> TargetLabel:
        return TargetLabel(
            name=label.name,
            id=label.id,
            type=label.type,
            attributes=tuple(TargetAttribute(a.name, a.id, a.input_type) for a in label.attributes),
            sublabels=tuple(conv(s) for s in label.sublabels),
        )

    return [conv(label) for label in spec.labels]


def _normalize_synonyms(synonyms: Synonyms | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in (synonyms or {}).items():
        out[str(k)] = [v] if isinstance(v, str) else [str(x) for x in v]
    return out


def _match(
    name: str, candidates: Sequence[TargetLabel] | Sequence[TargetAttribute], synonyms: dict[str, list[str]]
):
    """Find ``name`` among ``candidates``: exact, then synonyms, then case-insensitive."""
    for c in candidates:
        if c.name == name:
            return c
    wanted = synonyms.get(name, [])
    for c in candidates:
        if c.name in wanted or name in getattr(c, "synonyms", ()):
            return c
    folded = name.casefold()
    hits = [
        c
        for c in candidates
        if c.name.casefold() == folded
        or folded in (s.casefold() for s in getattr(c, "synonyms", ()))
        or any(w.casefold() == c.name.casefold() for w in wanted)
    ]
    if len(hits) > 1:
        raise LabelMappingError(
            f"function label {name!r} matches several target labels case-insensitively: "
            f"{[h.name for h in hits]}; name one with a synonym",
            [name],
        )
    return hits[0] if hits else None


@dataclass
class _LabelMatch:
    target: TargetLabel
    attributes: dict[int, TargetAttribute] = field(default_factory=dict)
    sublabels: dict[int, "_LabelMatch"] = field(default_factory=dict)


class LabelMapping:
    """Function label ids -> target labels; build with :meth:`build`."""

    def __init__(self, spec: DetectionFunctionSpec, matches: dict[int, _LabelMatch], unmatched: list[str]):
        self.spec = spec
        self._matches = matches
        #: Names of function labels / sublabels / attributes that have no target (allowed).
        self.unmatched = unmatched

    @classmethod
    def build(
        cls,
        spec: DetectionFunctionSpec,
        targets: Sequence[TargetLabel] | None = None,
        *,
        synonyms: Synonyms | None = None,
        allow_unmatched: bool = False,
        target_name: str = "the target",
    ) -> "LabelMapping":
        """Match ``spec`` onto ``targets`` (``None``: the spec's own labels, an identity mapping).

        Raises :class:`LabelMappingError` listing every unmatched name unless ``allow_unmatched``,
        and :class:`BadFunctionError` when a matched label's type is incompatible.
        """
        if targets is None:
            targets = target_labels_from_spec(spec)
        syn = _normalize_synonyms(synonyms)
        matches: dict[int, _LabelMatch] = {}
        unmatched: list[str] = []
        for label in spec.labels:
            target = _match(label.name, targets, syn)
            if target is None:
                unmatched.append(label.name)
                continue
            _check_types(label, target, target_name)
            m = _LabelMatch(target)
            for a in label.attributes:
                ta = _match(a.name, target.attributes, {})
                if ta is None:
                    unmatched.append(f"{label.name}.{a.name} (attribute)")
                    continue
                if ta.input_type is not None and ta.input_type != a.input_type:
                    raise BadFunctionError(
                        f"attribute {label.name}.{a.name} is {a.input_type!r} in the function, "
                        f"{ta.input_type!r} in {target_name}"
                    )
                m.attributes[a.id] = ta
            for sub in label.sublabels:
                ts = _match(sub.name, target.sublabels, {})
                if ts is None:
                    unmatched.append(f"{label.name}.{sub.name} (keypoint)")
                    continue
                sm = _LabelMatch(ts)
                for a in sub.attributes:
                    ta = _match(a.name, ts.attributes, {})
                    if ta is None:
                        unmatched.append(f"{label.name}.{sub.name}.{a.name} (attribute)")
                    else:
                        sm.attributes[a.id] = ta
                m.sublabels[sub.id] = sm
            matches[label.id] = m
        if unmatched and not allow_unmatched:
            raise LabelMappingError(
                f"function labels with no match in {target_name}: {unmatched}. "
                f"Labels of {target_name}: {[t.name for t in targets]}. "
                "Add synonyms (e.g. {'car': 'vehicle'}) or allow unmatched labels to drop them.",
                unmatched,
            )
        if not matches:
            raise LabelMappingError(
                f"none of the function's labels {spec.label_names} matches a label of {target_name} "
                f"{[t.name for t in targets]}",
                spec.label_names,
            )
        return cls(spec, matches, unmatched)

    @property
    def matched_targets(self) -> dict[str, TargetLabel]:
        """Function label name -> target label, for every matched function label."""
        return {self.spec.label(fid).name: m.target for fid, m in self._matches.items()}  # type: ignore[union-attr]

    def target_for(self, function_label_id: int) -> TargetLabel | None:
        m = self._matches.get(function_label_id)
        return m.target if m else None

    def map_shapes(self, shapes: Iterable[Shape], *, target_name: str = "the target") -> list[Shape]:
        """New shapes with target ids; shapes of unmatched labels are dropped."""
        out: list[Shape] = []
        for s in shapes:
            m = self._matches.get(s.label_id)
            if m is None:
                continue
            if not m.target.allows(s.type):
                fn_label = self.spec.label(s.label_id)
                raise BadFunctionError(
                    f"the function returned a {s.type!r} for {fn_label.name!r}; {target_name} takes "  # type: ignore[union-attr]
                    f"{m.target.type!r} for {m.target.name!r}"
                )
            elements = tuple(
                replace(e, label_id=m.sublabels[e.label_id].target.id, attributes=_map_attrs(e.attributes, m.sublabels[e.label_id]))
                for e in s.elements
                if e.label_id in m.sublabels
            )
            out.append(replace(s, label_id=m.target.id, attributes=_map_attrs(s.attributes, m), elements=elements))
        return out


def _map_attrs(attrs: tuple[AttributeValue, ...], m: _LabelMatch) -> tuple[AttributeValue, ...]:
    return tuple(AttributeValue(m.attributes[a.spec_id].id, a.value) for a in attrs if a.spec_id in m.attributes)


def _check_types(label: LabelSpec, target: TargetLabel, target_name: str) -> None:
    if label.type == "skeleton" or target.type == "skeleton":
        if label.type != target.type:
            raise BadFunctionError(
                f"label {label.name!r} is {label.type!r} in the function, {target.type!r} in {target_name}"
            )
        return
    if "any" not in (label.type, target.type) and label.type != target.type:
        raise BadFunctionError(
            f"label {label.name!r} is {label.type!r} in the function, {target.type!r} in {target_name}"
        )


def resolve_names(
    spec: DetectionFunctionSpec, names: Sequence[str] | None, synonyms: Synonyms | None = None
) -> dict[str, str]:
    """Function label name -> the name it takes among ``names`` (exact, synonyms, case-insensitive);
    labels without a match are left out. ``names=None``: the function's own names, renamed by
    ``synonyms`` (its first synonym when a label has several)."""
    syn = _normalize_synonyms(synonyms)
    if names is None:
        return {label.name: (syn.get(label.name) or [label.name])[0] for label in spec.labels}
    candidates = [TargetLabel(n, i) for i, n in enumerate(names)]
    out = {}
    for label in spec.labels:
        hit = _match(label.name, candidates, syn)
        if hit is not None:
            out[label.name] = hit.name
    return out
