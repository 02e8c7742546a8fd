"""FiftyOne models as autoannotate functions (the other way: :mod:`autoannotate.fiftyone.function_model`).

:func:`from_model`: any :class:`fiftyone.core.models.Model` (a zoo model, an integration's model,
one of your own) as a detection function. Its FiftyOne labels become shapes in pixels of the
image: a ``Detection`` a rectangle, or a mask when it has one (placed in its box's pixels,
:func:`detection_bitmap`); a ``Polyline`` a polygon (closed or filled) or a polyline, one shape
per part; a ``Keypoint`` points (or a skeleton, keypoints without coordinates ``outside``); a
``Classification`` a tag. Label names must be the model's classes (``model.classes``, else
``model.config.classes``) or those given with ``classes=``, which then also filter what the model
returns (as ``apply_model(classes=...)`` does). Batches go through ``predict_all`` unless the
model says its batches are ragged. ``annotate_dataset(ds, model)`` wraps a model here
(:func:`resolve_function`).

Not supported, with an error saying so: video models, models that need sample fields
(``SamplesMixin`` with ``needs_fields``), and labels that are no shapes (``Segmentation``,
``Heatmap``, ...).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import fiftyone.core.labels as fol
import fiftyone.core.models as fom
import numpy as np
import PIL.Image

from ..errors import BadFunctionError, BadParameterError
from ..interface import (
    DetectionFunctionContext,
    DetectionFunctionSpec,
    function_name,
    keypoint_spec,
    label_spec,
    skeleton_label_spec,
)
from ..loading import adapt_function, check_kind, load_function, split_list
from ..shapes import Shape, keypoint, mask, points, polygon, polyline, rectangle, skeleton, tag
from .convert import abs_box

__all__ = [
    "ModelFunction",
    "from_model",
    "is_model",
    "resolve_function",
    "model_label_type",
    "detection_bitmap",
    "TAG_TYPES",
]

#: Label type of a model by what it outputs: fragments of its output processor's class name
#: (FiftyOne's torch, transformers and Ultralytics models), first match wins; None: no shapes.
_PROCESSOR_TYPES: tuple[tuple[str, str | None], ...] = (
    ("SemanticSegment", None),
    ("Depth", None),
    ("Classif", "tag"),
    ("InstanceSegment", "mask"),
    ("UniversalSegment", "mask"),
    ("Segmentation", "mask"),
    ("OBB", "polygon"),
    ("Keypoint", "any"),
    ("Pose", "any"),
    ("Detect", "rectangle"),
)

#: Label type by FiftyOne zoo tag (``fiftyone zoo models list``), in order of precedence.
#: Keypoint models return boxes and keypoints of the same class: ``any``.
TAG_TYPES = {"instances": "mask", "detection": "rectangle", "keypoints": "any", "classification": "tag"}

_NO_SHAPES = (fol.Segmentation, fol.Heatmap, fol.GeoLocation, fol.GeoLocations, fol.TemporalDetection)


def is_model(obj: object) -> bool:
    """Whether ``obj`` is a FiftyOne model (:class:`fiftyone.core.models.Model`)."""
    return isinstance(obj, fom.Model)


def model_label_type(model: Any) -> str | None:
    """The shape type a FiftyOne model's labels have, read from its output processor (torch,
    transformers and Ultralytics models); None when it cannot be told."""
    processor = getattr(model, "_output_processor", None)
    if processor is None:
        return None
    names = [cls.__name__ for cls in type(processor).__mro__]
    for fragment, kind in _PROCESSOR_TYPES:
        if any(fragment in n for n in names):
            if kind is None:
                raise BadFunctionError(
                    f"{type(model).__name__} gives {type(processor).__name__} outputs (per-pixel maps, not "
                    "objects): autoannotate cannot take them as shapes; use dataset.apply_model() for it"
                )
            return kind
    return None


def _model_classes(model: Any) -> list[str] | None:
    for owner in (model, getattr(model, "config", None)):
        try:
            found = getattr(owner, "classes", None)
        except Exception:  # noqa: BLE001 - a property that cannot answer is no classes
            found = None
        if found:
            return [str(c) for c in found]
    return None


def check_runnable(model: Any) -> None:
    """Refuse, with the reason, a FiftyOne model autoannotate cannot run on images alone."""
    if not is_model(model):
        raise BadFunctionError(f"expected a fiftyone.core.models.Model, got {type(model).__name__}")
    media = getattr(model, "media_type", None)
    if media != "image":
        raise BadFunctionError(
            f"{type(model).__name__} is a {media!r} model; autoannotate runs image models (on video datasets, "
            "image models label key frames). Use dataset.apply_model() for it"
        )
    needs = getattr(model, "needs_fields", None) if isinstance(model, fom.SamplesMixin) else None
    if needs:
        raise BadFunctionError(
            f"{type(model).__name__} needs sample fields {dict(needs)} (e.g. prompts) besides the image; "
            "autoannotate gives models images only. Use dataset.apply_model() for it"
        )


class ModelFunction:
    """A FiftyOne image model as a detection function (with ``detect_batch`` and ``model_version``).

    ``spec``: one label per class, all of ``label_type``: the one given, else the model's (see
    :func:`model_label_type`), else ``rectangle``, and then any label that is not a plain box is an
    error saying which ``label_type`` to declare."""

    def __init__(
        self,
        model: Any,
        *,
        classes: Sequence[str] | str | None = None,
        label_type: str | None = None,
        name: str | None = None,
    ) -> None:
        check_runnable(model)
        self.model = model
        given = split_list(classes) if isinstance(classes, str) else list(classes or [])
        names = given or _model_classes(model)
        if not names:
            raise BadFunctionError(
                f"{type(model).__name__} declares no classes (model.classes): say which labels it gives, "
                "from_model(model, classes=[...]) in Python or -p classes=a,b for fiftyone_zoo"
            )
        self.filter = bool(given)  # given classes filter the model's labels; its own must all be known
        declared = label_type or model_label_type(model)
        self.guessed = declared is None  # a model that does not say: boxes, and a clear error otherwise
        self.label_type = declared or "rectangle"
        names = list(dict.fromkeys(n for n in names if n and n.strip()))
        self.ids = {n: i for i, n in enumerate(names)}
        self.keypoint_names = self._keypoint_names() if self.label_type == "skeleton" else []
        self.spec = DetectionFunctionSpec(labels=tuple(self._label(n, i) for n, i in self.ids.items()))
        self.model_version = name or f"fiftyone:{type(model).__module__}.{type(model).__name__}"
        self._lock = threading.Lock()

    def _keypoint_names(self) -> list[str]:
        labels = getattr(getattr(self.model, "skeleton", None), "labels", None)
        if not labels:
            raise BadFunctionError(
                f"label_type='skeleton' needs the model's keypoint names (model.skeleton.labels); "
                f"{type(self.model).__name__} has none: use label_type='points'"
            )
        return [str(n) for n in labels]

    def _label(self, name: str, i: int) -> Any:
        if self.label_type == "skeleton":
            return skeleton_label_spec(name, i, [keypoint_spec(k, j) for j, k in enumerate(self.keypoint_names)])
        return label_spec(name, i, type=self.label_type)

    def detect(self, context: DetectionFunctionContext, image: PIL.Image.Image) -> list[Shape]:
        return self.detect_batch([context], [image])[0]

    def detect_batch(
        self, contexts: Sequence[DetectionFunctionContext], images: Sequence[PIL.Image.Image]
    ) -> list[list[Shape]]:
        arrays = [np.asarray(img.convert("RGB")) for img in images]
        with self._lock, self.model:
            if len(arrays) > 1 and not _ragged(self.model):
                outputs = list(self.model.predict_all(arrays))
            else:
                outputs = [self.model.predict(a) for a in arrays]
        if len(outputs) != len(arrays):
            raise BadFunctionError(f"predict_all() returned {len(outputs)} results for {len(arrays)} images")
        return [self.shapes(out, img.size) for out, img in zip(outputs, images)]

    def shapes(self, labels: Any, size: tuple[int, int]) -> list[Shape]:
        """The shapes of one image's FiftyOne labels (a label, a label list, or a dict of them)."""
        out: list[Shape] = []
        for label in _walk(labels):
            if isinstance(label, _NO_SHAPES) or not isinstance(label, fol.Label):
                raise BadFunctionError(
                    f"the model returned a {type(label).__name__}, which has no shape in autoannotate "
                    "(detections, polylines, keypoints and classifications do)"
                )
            name = getattr(label, "label", None)
            if name not in self.ids:
                if self.filter:
                    continue
                raise BadFunctionError(
                    f"the model returned label {name!r}, which is not one of its classes {list(self.ids)}"
                )
            out.extend(self._convert(label, self.ids[name], size))
        return out

    def _convert(self, label: Any, label_id: int, size: tuple[int, int]) -> list[Shape]:
        w, h = size
        if self.guessed and not (isinstance(label, fol.Detection) and not label.has_mask):
            kind = _natural_type(label)
            raise BadFunctionError(
                f"the model returned a {type(label).__name__}{' with a mask' if kind == 'mask' else ''}, but it does "
                "not say what shapes it gives, so its labels were taken as boxes: declare them, "
                f"from_model(model, label_type={kind!r}) (-p label_type={kind} for fiftyone_zoo)"
            )
        if isinstance(label, fol.Classification):
            return [tag(label_id, score=label.confidence)]
        if isinstance(label, fol.Detection):
            box = abs_box(label.bounding_box, w, h)
            if label.has_mask and self.label_type != "rectangle":
                return [mask(label_id, detection_bitmap(label, w, h), score=label.confidence)]
            return [rectangle(label_id, box, score=label.confidence)]
        if isinstance(label, fol.Polyline):
            closed = bool(label.closed or label.filled)
            make, least = (polygon, 3) if closed else (polyline, 2)
            return [
                make(label_id, [v for x, y in part for v in (x * w, y * h)], score=label.confidence)
                for part in label.points
                if len(part) >= least
            ]
        if isinstance(label, fol.Keypoint):
            return self._keypoints(label, label_id, w, h)
        raise BadFunctionError(f"the model returned a {type(label).__name__}, which has no shape in autoannotate")

    def _keypoints(self, label: Any, label_id: int, w: int, h: int) -> list[Shape]:
        pts = [(x, y) for x, y in label.points]
        conf = label.confidence
        finite = [c for c in (conf or []) if c is not None and np.isfinite(c)]
        score = float(np.mean(finite)) if finite else None
        if self.label_type == "skeleton":
            if len(pts) != len(self.keypoint_names):
                raise BadFunctionError(
                    f"a {label.label!r} keypoint has {len(pts)} points; the model's skeleton has "
                    f"{len(self.keypoint_names)} ({self.keypoint_names})"
                )
            occluded = getattr(label, "occluded", None) or [False] * len(pts)  # as autoannotate writes it
            elements = [
                keypoint(j, [0.0, 0.0], outside=True)
                if _missing(x, y)
                else keypoint(j, [x * w, y * h], occluded=bool(occluded[j]) if j < len(occluded) else False)
                for j, (x, y) in enumerate(pts)
            ]
            return [skeleton(label_id, elements, score=score)]
        flat = [v for x, y in pts if not _missing(x, y) for v in (x * w, y * h)]
        return [points(label_id, flat, score=score)] if flat else []


def detection_bitmap(detection: Any, w: int, h: int) -> np.ndarray:
    """A FiftyOne detection's mask on the whole ``w`` x ``h`` image (boolean, H x W).

    The mask covers the detection's box, whose corners are rounded to pixels (as autoannotate
    crops masks when it writes them); a mask of another size is resized to the box (nearest
    neighbour). Not FiftyOne's ``to_segmentation``, which truncates the corners and resizes every
    mask, so that a mask written and read back would move by a pixel."""
    x, y, bw, bh = detection.bounding_box
    x0, y0, x1, y1 = round(x * w), round(y * h), round((x + bw) * w), round((y + bh) * h)
    out = np.zeros((h, w), dtype=bool)
    if x1 <= x0 or y1 <= y0:
        return out
    m = np.asarray(detection.get_mask())
    if m.ndim == 3:
        m = m[..., 0]
    m = m > 0
    if m.shape != (y1 - y0, x1 - x0):
        resized = PIL.Image.fromarray(m.astype(np.uint8)).resize((x1 - x0, y1 - y0), PIL.Image.Resampling.NEAREST)
        m = np.asarray(resized) > 0
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 > cx0 and cy1 > cy0:
        out[cy0:cy1, cx0:cx1] = m[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return out


def _natural_type(label: Any) -> str:
    if isinstance(label, fol.Detection):
        return "mask" if label.has_mask else "rectangle"
    if isinstance(label, fol.Polyline):
        return "polygon" if label.closed or label.filled else "polyline"
    return "points" if isinstance(label, fol.Keypoint) else "tag"


def _missing(x: Any, y: Any) -> bool:
    return x is None or y is None or not (np.isfinite(x) and np.isfinite(y))


def _ragged(model: Any) -> bool:
    try:
        return bool(model.ragged_batches)
    except NotImplementedError:
        return True


def _walk(labels: Any) -> Iterator[Any]:
    if labels is None:
        return
    if isinstance(labels, Mapping):
        for value in labels.values():
            yield from _walk(value)
    elif isinstance(labels, fol.Detections):
        yield from labels.detections
    elif isinstance(labels, fol.Polylines):
        yield from labels.polylines
    elif isinstance(labels, fol.Keypoints):
        yield from labels.keypoints
    elif isinstance(labels, fol.Classifications):
        yield from labels.classifications
    else:
        yield labels


def from_model(
    model: Any,
    *,
    classes: Sequence[str] | str | None = None,
    label_type: str | None = None,
    name: str | None = None,
) -> ModelFunction:
    """A FiftyOne model as a detection function.

    ``classes``: its labels when the model declares none (``model.classes``); given for a model
    that has classes, they replace them and its other labels are dropped. ``label_type``: the shape
    type of its labels (``rectangle``, ``mask``, ``polygon``, ``polyline``, ``points``, ``skeleton``,
    ``tag`` or ``any``), by default read from the model (:func:`model_label_type`), else
    ``rectangle`` (a label of another kind is then an error naming the ``label_type`` to give).
    ``name``: its ``model_version`` in run records."""
    return ModelFunction(model, classes=classes, label_type=label_type, name=name)


def resolve_function(
    function: Any, function_params: Mapping[str, Any] | None, kind: str | None = None
) -> tuple[Any, str, dict]:
    """``(function object, its name for records, its parameters)`` from a name, a function object
    (one written for CVAT runs as it is) or a FiftyOne model (:func:`from_model`). ``kind``: the
    kind the caller's role needs (``detection``, ``tracking``); one of another kind is refused
    before any work (:func:`autoannotate.loading.load_function`, :func:`~autoannotate.loading.check_kind`)."""
    params = dict(function_params or {})
    if isinstance(function, str):
        return load_function(function, kind, **params), function, params
    if params:
        raise BadParameterError("function_params apply only when function is given by name")
    if is_model(function):  # a FiftyOne model is wrapped here, the one place
        return check_kind(from_model(function), kind), f"fiftyone:{function_name(function)}", {}
    return check_kind(adapt_function(function), kind), function_name(function), {}
