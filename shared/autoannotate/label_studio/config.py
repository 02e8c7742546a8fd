"""A Label Studio labeling config, read with ``label_studio_sdk``'s ``LabelInterface``, and the
mapping of a function's labels onto each control tag.

Each supported control tag (RectangleLabels, PolygonLabels, BrushLabels, KeyPointLabels,
Choices, Labels) that points at an Image gets its own :class:`LabelMapping`, matched by
:func:`autoannotate.mapping.match_name` (exact name, then the label's ``predicted_values``
synonyms, then case-insensitive). A config where nothing maps is an error that names the
function's labels and the project's labels; an ambiguous name on a control is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import AutoAnnotateError, LabelMappingError, NoLabelsMatchError
from ..interface import SHAPE_TYPES, DetectionFunction, DetectionFunctionSpec, OpenVocabulary
from ..mapping import LabelMapping, Synonyms, TargetLabel, match_name

#: Control tags we write, and the shape types each can represent.
CONTROL_SHAPES = {
    "RectangleLabels": {"rectangle"},
    "Labels": {"rectangle"},
    "PolygonLabels": {"polygon", "mask"},
    "BrushLabels": {"mask", "polygon"},
    "KeyPointLabels": {"points", "skeleton"},
    "Choices": {"tag"},
    "VideoRectangle": {"rectangle"},
}
OBJECT_TAGS = ("Image", "Video")


class LabelConfigError(AutoAnnotateError):
    """The labeling config cannot be used with this function (a message says how to fix it)."""


class ControlConflictError(LabelConfigError):
    """A control's labels conflict with the function's (e.g. a function label matching several of
    the control's labels case-insensitively): the config must be fixed, even when other controls
    could be used."""


@dataclass
class Control:
    """One control tag: ``name`` (``from_name``), ``tag`` (e.g. ``RectangleLabels``),
    ``to_name`` (the object tag), ``value_key`` (the task data key of the image, ``image`` for
    ``$image``), and its labels with their ``predicted_values`` synonyms."""

    name: str
    tag: str
    to_name: str
    value_key: str
    labels: list[TargetLabel]
    mapping: LabelMapping | None = None
    unmatched: list[str] = field(default_factory=list)
    object_tag: str = "Image"
    frame_rate: float = 24.0  # <Video framerate="..."> (Label Studio's default is 24)

    @property
    def label_names(self) -> list[str]:
        return [t.name for t in self.labels]

    def accepts(self, shape_type: str) -> bool:
        return shape_type in CONTROL_SHAPES[self.tag]

    def label_named(self, name: str | None, synonyms: Synonyms | None = None) -> TargetLabel | None:
        """The control's label for a name, or None: matched like every label of the package
        (:func:`~autoannotate.mapping.match_name`: exact, then ``synonyms`` and the labels'
        ``predicted_values``, then case-insensitively). A name that matches several labels
        case-insensitively raises :class:`~autoannotate.errors.LabelMappingError`."""
        if not name:
            return None
        return match_name(name, self.labels, synonyms, what="label", target_name=f"control {self.name!r}")


def _shape_types(label_type: str) -> set[str]:
    return set(SHAPE_TYPES) - {"skeleton"} if label_type == "any" else {label_type}


def _synonyms(attrs: Any) -> tuple[str, ...]:
    """``predicted_values="a,b"`` of a <Label> (the SDK gives an object with ``attr`` or a dict)."""
    attrs = getattr(attrs, "attr", attrs)
    raw = attrs.get("predicted_values") if isinstance(attrs, dict) else None
    return tuple(s.strip() for s in str(raw).split(",") if s.strip()) if raw else ()


def _check_duplicate_labels(label_config: str) -> None:
    """Label Studio's parser silently merges repeated <Label>/<Choice> values; refuse them."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(label_config)
    except ET.ParseError:
        return  # the SDK's parser reports syntax errors
    for control in root.iter():
        values = [
            child.get("value", "") for child in control if child.tag in ("Label", "Choice") and child.get("value")
        ]
        dups = sorted({v for v in values if values.count(v) > 1})
        if dups:
            raise LabelConfigError(
                f"control {control.get('name')!r} lists labels more than once: {dups}; remove the repeats"
            )


def warm_up() -> None:
    """Import the SDK's config parser now: its first import takes seconds, and Label Studio gives
    ``/setup`` only 3 s (the first "Validate and Save" timed out)."""
    from label_studio_sdk.label_interface import LabelInterface  # noqa: F401


def parse_config(label_config: str) -> list[Control]:
    """The supported control tags of a labeling config (others are ignored)."""
    from label_studio_sdk.label_interface import LabelInterface

    if not isinstance(label_config, str) or not label_config.strip():
        raise LabelConfigError("the labeling config is empty")
    try:
        li = LabelInterface(label_config)
    except Exception as e:  # noqa: BLE001 - the SDK raises many types for bad XML
        raise LabelConfigError(f"cannot parse the labeling config: {type(e).__name__}: {e}") from None
    _check_duplicate_labels(label_config)
    objects = {o.name: o for o in li.objects}
    # VideoRectangle has no labels of its own: they come from <Labels> on the same video
    video_labels: dict[str, Any] = {}
    for c in li.controls:
        for o in c.to_name or []:
            if c.tag == "Labels" and o in objects and objects[o].tag == "Video":
                video_labels.setdefault(o, c)
    controls = []
    for c in li.controls:
        if c.tag not in CONTROL_SHAPES:
            continue
        targets = [o for o in (c.to_name or []) if o in objects and objects[o].tag in OBJECT_TAGS]
        if not targets:
            continue
        obj = objects[targets[0]]
        if (obj.tag == "Video") != (c.tag == "VideoRectangle"):
            continue  # Labels on a video only name VideoRectangle regions; video needs VideoRectangle
        value_key = str(obj.value or "").lstrip("$")
        source = video_labels.get(obj.name, c) if c.tag == "VideoRectangle" else c
        attrs = getattr(source, "labels_attrs", {}) or {}
        names = list(source.labels or [])
        labels = [TargetLabel(n, i, synonyms=_synonyms(attrs.get(n))) for i, n in enumerate(names)]
        control = Control(c.name, c.tag, obj.name, value_key, labels, object_tag=obj.tag)
        if obj.tag == "Video":
            try:
                control.frame_rate = float((getattr(obj, "attr", None) or {}).get("framerate") or 24.0)
            except ValueError:
                raise LabelConfigError(f"<Video name={obj.name!r}> has a framerate that is not a number") from None
        controls.append(control)
    return controls


def _usable_labels(spec: DetectionFunctionSpec, control: Control) -> list:
    """The function labels whose shapes ``control`` can show. Skeleton labels never map: Label
    Studio labels are flat (no keypoint sublabels)."""
    shows = CONTROL_SHAPES[control.tag] - {"skeleton"}
    return [lbl for lbl in spec.labels if lbl.type != "skeleton" and _shape_types(lbl.type) & shows]


def map_controls(
    spec: DetectionFunctionSpec | None,
    controls: list[Control],
    *,
    interactive: bool = False,
    synonyms: Synonyms | None = None,
) -> list[Control]:
    """The controls the function can fill, as new :class:`Control` objects carrying their
    ``mapping`` (``controls`` are never modified).

    A detection function maps onto each control whose tag can show some of its label types; only
    those labels take part. A control onto which none of them maps is left out; when no control
    is left, :class:`LabelConfigError` names both sides and why each control was left out. A
    conflict on a control (a function label matching several of its labels case-insensitively)
    is a :class:`ControlConflictError` naming the control: it is never silently dropped.
    Interactive segmentation needs a BrushLabels or PolygonLabels control and no mapping.
    """
    if interactive:
        usable = [c for c in controls if c.tag in ("BrushLabels", "PolygonLabels")]
        if not usable:
            raise LabelConfigError(
                "interactive segmentation needs a BrushLabels or PolygonLabels control tag pointing at an Image; "
                f"the config has {[f'{c.tag} {c.name!r}' for c in controls] or 'none'}"
            )
        return [replace(c, mapping=None, unmatched=[]) for c in usable]
    if spec is None:
        raise TypeError("map_controls needs the detection function's spec")
    mapped: list[Control] = []
    skipped: list[str] = []
    for c in controls:
        labels = _usable_labels(spec, c)
        if not labels:
            types = sorted({lbl.type for lbl in spec.labels})
            skipped.append(f"{c.tag} {c.name!r}: {c.label_names} (cannot show the function's {types} shapes)")
            continue
        part = spec if len(labels) == len(spec.labels) else DetectionFunctionSpec(labels=tuple(labels))
        try:
            mapping = LabelMapping.build(
                part, c.labels, label_map=synonyms, allow_unmatched=True, target_name=f"control {c.name!r}"
            )
        except NoLabelsMatchError:
            skipped.append(f"{c.tag} {c.name!r}: {c.label_names}")
            continue
        except LabelMappingError as e:
            raise ControlConflictError(f"{c.tag} {c.name!r}: {e}") from e
        mapped.append(replace(c, mapping=mapping, unmatched=list(mapping.unmatched)))
    if not mapped:
        # the project's side and the fix first: Label Studio may show only the start of a long message
        raise LabelConfigError(
            "none of the function's labels maps onto the labeling config. Project labels: "
            + ("; ".join(skipped) or "no control tag")
            + f". Rename labels, or name a function label in a Label's predicted_values (e.g. "
            f'predicted_values="{spec.label_names[0] if spec.label_names else "person"}"). Function labels: '
            f"{spec.label_names[:40]}{' ...' if len(spec.label_names) > 40 else ''}."
        )
    return mapped


#: Control tags whose labels an open-vocabulary function searches for (image regions).
PROMPTED_TAGS = ("RectangleLabels", "PolygonLabels", "BrushLabels", "Labels")


def config_classes(controls: list[Control]) -> tuple[list[str], dict[str, list[str]]]:
    """The classes an open-vocabulary function should find for a labeling config: the labels of
    its image region controls (RectangleLabels, PolygonLabels, BrushLabels) and of its
    VideoRectangle (the labels of a ``<Labels>`` on the same video), each once, and their
    prompts: a ``<Label>``'s ``predicted_values`` (comma-separated) when it has them, else the
    label's name (see :func:`autoannotate.functions.open_vocab.prompt_for`)."""
    names: list[str] = []
    prompts: dict[str, list[str]] = {}
    for c in controls:
        image_region = c.tag in PROMPTED_TAGS and c.object_tag == "Image"
        if not (image_region or c.tag == "VideoRectangle"):
            continue
        for t in c.labels:
            if t.name not in names:
                names.append(t.name)
                if t.synonyms:
                    prompts[t.name] = list(t.synonyms)
    return names, prompts


def config_vocabulary(controls: list[Control], prompts: Any = None) -> tuple[list[str], dict[str, list[str]]]:
    """:func:`config_classes` with the user's own ``prompts`` (the function's ``prompts``
    parameter: a dict or ``"class=prompt|prompt, ..."``) for the config's labels they name; a
    ``<Label>``'s ``predicted_values`` win over them, prompts for labels the config lacks are
    unused."""
    from ..functions.open_vocab import parse_prompts

    names, found = config_classes(controls)
    given = {k: v for k, v in parse_prompts(prompts).items() if k in names}
    return names, {**given, **found}


def for_config(
    function: DetectionFunction | None, controls: list[Control], prompts: Any = None
) -> DetectionFunction | None:
    """``function`` for a labeling config: an open-vocabulary function (:class:`OpenVocabulary`) made to find the config's labels (:func:`config_vocabulary`, with the user's
    ``prompts``); any other function as it is. A config with no region labels leaves it as it is."""
    if not isinstance(function, OpenVocabulary):
        return function
    names, merged = config_vocabulary(controls, prompts)
    return function.for_classes(names, merged) if names else function


def fetch_label_config(url: str, api_key: str, project_id: int) -> str:
    """The labeling config of a Label Studio project (for open-vocabulary functions, which are
    built to find its labels before the project is annotated)."""
    from label_studio_sdk import LabelStudio

    try:
        project = LabelStudio(base_url=url, api_key=api_key, timeout=60).projects.get(id=project_id)
    except Exception as e:  # noqa: BLE001 - connection errors, 401, 404 from the SDK
        raise AutoAnnotateError(f"cannot read project {project_id} from {url}: {type(e).__name__}: {e}") from None
    return str(getattr(project, "label_config", "") or "")
