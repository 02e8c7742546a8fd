"""Functions written for CVAT SDK's auto-annotation layer, run unchanged as autoannotate functions.

:func:`adapt` wraps a CVAT function (an object or module whose ``spec`` is one of
``cvat_sdk.auto_annotation``'s ``DetectionFunctionSpec``, ``TrackingFunctionSpec`` or
``InteractionFunctionSpec``) into the matching autoannotate protocol; anything else is returned
as it is. :func:`autoannotate.loading.load_function` and the entry points that take function
objects call it, so a CVAT module runs wherever ours do.

- **Detection**: ``detect`` gets a CVAT context (``frame_name``, ``conf_threshold``,
  ``conv_mask_to_poly``) and returns CVAT's request models. Every result goes through CVAT's own
  driver checks (``cvat_sdk.auto_annotation.driver``, the code ``annotate_task`` runs), so a
  function that breaks CVAT's rules fails with CVAT's reason (an id or source set, a frame other
  than 0, an unknown label, sublabel or attribute id, an attribute value its spec does not allow,
  a mask despite ``conv_mask_to_poly``, a skeleton missing keypoints ...), as
  :class:`~autoannotate.errors.BadFunctionError` recorded for that image; then autoannotate's own
  validation runs as for any function (point counts, mask size, scores).
- **Tracking**: ``preprocess_image`` (optional), ``init_tracking_state``, ``track`` with CVAT's
  ``TrackableShape`` (masks in CVAT's encoding); ``track`` must return a ``TrackableShape`` of the
  tracked shape's type, or ``None`` (lost).
- **Interaction**: ``preprocess_image`` (optional) is the encoding; ``detect`` gets CVAT prompts
  (``pos_points``, ``neg_points``, ``bounding_box``) checked against the function's
  ``InteractionFunctionSpec`` and returns ``InteractionResultShape``: masks (and polygons) become
  the object's mask, the ``CONFIDENCE`` attribute its score. Several boxes call ``detect`` once
  per box (CVAT prompts hold one).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import cvat_sdk.auto_annotation as cvataa
import numpy as np
import PIL.Image
from cvat_sdk.auto_annotation.driver import _AnnotationMapper

from .. import interface as aa
from ..errors import BadFunctionError, BadParameterError
from ..masks import polygon_to_mask
from . import convert

log = logging.getLogger(__name__)

_CVAT_SPECS = (cvataa.DetectionFunctionSpec, cvataa.TrackingFunctionSpec, cvataa.InteractionFunctionSpec)


def is_cvat_function(function: object) -> bool:
    """Whether ``function`` is written for CVAT SDK's auto-annotation layer (its ``spec`` is a
    ``cvat_sdk.auto_annotation`` spec)."""
    try:
        return isinstance(getattr(function, "spec", None), _CVAT_SPECS)
    except Exception:  # noqa: BLE001 - a spec property that raises is not a CVAT spec
        return False


def adapt(function: Any) -> Any:
    """``function`` as an autoannotate function when it is a CVAT one; otherwise unchanged."""
    if not is_cvat_function(function):
        return function
    spec = function.spec
    if isinstance(spec, cvataa.DetectionFunctionSpec):
        return CvatDetection(function)
    if isinstance(spec, cvataa.TrackingFunctionSpec):
        return CvatTracking(function)
    return CvatInteraction(function)


_name = aa.function_name


def cvat_error(e: Exception) -> BadFunctionError:
    """CVAT's BadFunctionError as ours, with CVAT's reason."""
    return BadFunctionError(f"the CVAT function breaks CVAT's rules: {e}")


# --------------------------------------------------------------------------------------------
# Detection


@attrs.frozen(kw_only=True)
class _DetectionContext(cvataa.DetectionFunctionContext):
    frame_name: str
    conf_threshold: float | None = None
    conv_mask_to_poly: bool = False


def _version(function: Any) -> str:
    """The function's ``model_version`` (the :class:`~autoannotate.interface.Versioned` capability),
    else ``cvat:<its name>``."""
    return str(function.model_version) if isinstance(function, aa.Versioned) else f"cvat:{_name(function)}"


class _Adapter:
    """What every adapter keeps of the CVAT ``function``: the function, its ``model_version``, and
    its ``preprocess_image`` if it has one (tracking and interaction functions may); the repr
    names the adapter and the function."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.model_version = _version(function)
        self._pre = function.preprocess_image if isinstance(function, aa.Preprocessing) else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_name(self.function)})"

    def _preprocessed(self, context: Any, image: PIL.Image.Image) -> Any:
        """``image`` through the function's ``preprocess_image`` (with CVAT's ``context``), or as it is."""
        return self._pre(context, image) if self._pre is not None else image


class CvatDetection(_Adapter):
    """A CVAT detection function as an autoannotate :class:`~autoannotate.interface.DetectionFunction`."""

    def __init__(self, function: Any) -> None:
        super().__init__(function)
        self.cvat_spec: cvataa.DetectionFunctionSpec = function.spec
        self.spec = convert.spec_from_cvat(self.cvat_spec)
        self._mask_labels = {label.id for label in self.spec.labels if label.type == "mask"}
        self._mappers: dict[bool, _AnnotationMapper] = {}

    def _mapper(self, conv_mask_to_poly: bool) -> _AnnotationMapper:
        """CVAT's driver checks, against a dataset holding exactly the function's labels (so ids
        map to themselves and every rule about the output is CVAT's)."""
        if conv_mask_to_poly not in self._mappers:
            try:
                self._mappers[conv_mask_to_poly] = _AnnotationMapper(
                    log,
                    self.cvat_spec.labels,
                    [_dataset_label(label) for label in self.cvat_spec.labels],
                    allow_unmatched_labels=False,
                    conv_mask_to_poly=conv_mask_to_poly,
                )
            except cvataa.BadFunctionError as e:
                raise cvat_error(e) from None
        return self._mappers[conv_mask_to_poly]

    def detect(self, context: aa.DetectionFunctionContext, image: PIL.Image.Image) -> list:
        conv = bool(context.conv_mask_to_poly)
        ctx = _DetectionContext(
            frame_name=context.frame_name, conf_threshold=context.conf_threshold, conv_mask_to_poly=conv
        )
        try:
            out = self.function.detect(ctx, image)
        except cvataa.BadFunctionError as e:
            raise cvat_error(e) from None
        if isinstance(out, (str, bytes)) or not hasattr(out, "__iter__"):
            raise BadFunctionError(f"detect() must return a list of CVAT annotations, got {type(out).__name__}")
        annotations = list(out)
        try:
            self._mapper(conv).validate_and_remap(annotations, 0)
        except cvataa.BadFunctionError as e:
            raise cvat_error(e) from None
        return [
            convert.shape_from_cvat(
                a,
                image.size,
                mask_label=conv and a.label_id in self._mask_labels,
                where=f"annotation #{i} on {context.frame_name!r}",
            )
            for i, a in enumerate(annotations)
        ]


def _dataset_label(label: Any) -> Any:
    """A dataset label mirroring a spec label, of type ``any`` so that the expected output type
    is the function's own (CVAT's mapper derives it, with ``conv_mask_to_poly``)."""
    subs = [
        _DatasetLabel(s.name, s.id, "points", list(s.get("attributes") or []), []) for s in label.get("sublabels") or []
    ]
    return _DatasetLabel(label.name, label.id, "any", list(label.get("attributes") or []), subs)


@attrs.frozen
class _DatasetLabel:
    name: str
    id: int
    type: str
    attributes: list
    sublabels: list


# --------------------------------------------------------------------------------------------
# Tracking


class _TrackingContext(cvataa.TrackingFunctionContext):
    pass


@attrs.frozen(kw_only=True)
class _TrackingShapeContext(cvataa.TrackingFunctionShapeContext):
    original_shape_type: str


@attrs.frozen
class _Frame:
    """A preprocessed frame and the size of its image (for masks in CVAT's encoding)."""

    value: Any
    size: tuple[int, int]


@attrs.define
class _State:
    value: Any
    size: tuple[int, int]


class CvatTracking(_Adapter):
    """A CVAT tracking function as an autoannotate :class:`~autoannotate.interface.TrackingFunction`."""

    def __init__(self, function: Any) -> None:
        super().__init__(function)
        types = tuple(t for t in aa.TRACKABLE_SHAPE_TYPES if t in set(function.spec.supported_shape_types))
        if not types:
            raise BadFunctionError(
                f"the CVAT tracking function {_name(function)} tracks {sorted(function.spec.supported_shape_types)}; "
                f"autoannotate tracks {list(aa.TRACKABLE_SHAPE_TYPES)}"
            )
        self.spec = aa.TrackingFunctionSpec(supported_shape_types=types)

    def preprocess_image(self, context: aa.TrackingFunctionContext, image: PIL.Image.Image) -> _Frame:
        return _Frame(self._preprocessed(_TrackingContext(), image), image.size)

    def init_tracking_state(
        self, context: aa.TrackingFunctionShapeContext, pp_image: Any, shape: aa.TrackableShape
    ) -> _State:
        frame = (
            pp_image if isinstance(pp_image, _Frame) else self.preprocess_image(aa.TrackingFunctionContext(), pp_image)
        )
        ctx = _TrackingShapeContext(original_shape_type=context.original_shape_type)
        try:
            state = self.function.init_tracking_state(ctx, frame.value, convert.trackable_to_cvat(shape))
        except cvataa.BadFunctionError as e:
            raise cvat_error(e) from None
        return _State(state, frame.size)

    def track(self, context: aa.TrackingFunctionShapeContext, pp_image: Any, state: _State) -> aa.TrackableShape | None:
        frame = (
            pp_image if isinstance(pp_image, _Frame) else self.preprocess_image(aa.TrackingFunctionContext(), pp_image)
        )
        ctx = _TrackingShapeContext(original_shape_type=context.original_shape_type)
        try:
            out = self.function.track(ctx, frame.value, state.value)
        except cvataa.BadFunctionError as e:
            raise cvat_error(e) from None
        if out is None:
            return None
        if not isinstance(out, cvataa.TrackableShape):
            raise BadFunctionError(
                f"track() of a CVAT function must return a cvat_sdk.auto_annotation.TrackableShape or None, "
                f"got {type(out).__name__}"
            )
        if str(out.type) != context.original_shape_type:
            raise BadFunctionError(
                f"track() returned a {out.type!r} for a tracked {context.original_shape_type!r} "
                "(CVAT's rule: the same type as the shape the state was created from)"
            )
        return convert.trackable_from_cvat(out, frame.size, "track()")


# --------------------------------------------------------------------------------------------
# Interaction


class _InteractionContext(cvataa.InteractionFunctionContext):
    pass


@attrs.frozen(kw_only=True)
class _Prompts(cvataa.InteractionPrompts):
    pos_points: list
    neg_points: list
    bounding_box: tuple[tuple[float, float], tuple[float, float]] | None = None


@attrs.frozen
class _Encoding:
    """A preprocessed image (``preprocess_image``'s result, or the image) and its size."""

    value: Any
    size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        v = self.value
        if isinstance(v, PIL.Image.Image):
            return v.width * v.height * len(v.getbands())
        n = getattr(v, "nbytes", None)
        return int(n) if isinstance(n, (int, np.integer)) else self.size[0] * self.size[1] * 3


class CvatInteraction(_Adapter):
    """A CVAT interaction function as an autoannotate :class:`~autoannotate.interface.InteractiveFunction`."""

    def __init__(self, function: Any) -> None:
        super().__init__(function)
        self.cvat_spec: cvataa.InteractionFunctionSpec = function.spec

    def encode(self, context: aa.InteractiveFunctionContext, image: PIL.Image.Image) -> _Encoding:
        return _Encoding(self._preprocessed(_InteractionContext(), image), image.size)

    def check_prompt(self, prompt: aa.InteractivePrompt) -> None:
        """The prompt against the function's ``InteractionFunctionSpec`` (as CVAT's UI enforces
        it): :class:`~autoannotate.errors.BadParameterError` saying what is missing or not taken."""
        spec = self.cvat_spec
        pos, neg = len(prompt.positive_points), len(prompt.negative_points)
        if pos < spec.min_pos_points:
            raise BadParameterError(f"this function needs at least {spec.min_pos_points} positive point(s), got {pos}")
        if spec.min_neg_points is None and neg:
            raise BadParameterError("this function takes no negative points")
        if spec.min_neg_points is not None and neg < spec.min_neg_points:
            raise BadParameterError(f"this function needs at least {spec.min_neg_points} negative point(s), got {neg}")
        if spec.min_bounding_boxes is None and prompt.boxes:
            raise BadParameterError("this function takes no box")
        if spec.min_bounding_boxes == 1 and not prompt.boxes:
            raise BadParameterError("this function needs a box")

    def segment(
        self, context: aa.InteractiveFunctionContext, encoding: Any, prompt: aa.InteractivePrompt
    ) -> list[aa.SegmentationResult]:
        if not isinstance(encoding, _Encoding):
            encoding = self.encode(context, encoding)
        self.check_prompt(prompt)
        pos = [tuple(p) for p in prompt.positive_points]
        neg = [tuple(p) for p in prompt.negative_points]
        boxes: list[Any] = [((b[0], b[1]), (b[2], b[3])) for b in prompt.boxes] or [None]
        return [self._detect(encoding, _Prompts(pos_points=pos, neg_points=neg, bounding_box=b)) for b in boxes]

    def _detect(self, encoding: _Encoding, prompts: _Prompts) -> aa.SegmentationResult:
        try:
            out = self.function.detect(_InteractionContext(), encoding.value, prompts)
        except cvataa.BadFunctionError as e:
            raise cvat_error(e) from None
        if isinstance(out, (str, bytes)) or not hasattr(out, "__iter__"):
            raise BadFunctionError(f"detect() must return a list of InteractionResultShape, got {type(out).__name__}")
        mask = np.zeros((encoding.size[1], encoding.size[0]), dtype=bool)
        scores: list[float] = []
        for i, r in enumerate(out):
            where = f"result #{i}"
            if not isinstance(r, cvataa.InteractionResultShape):
                raise BadFunctionError(
                    f"{where}: detect() returned a {type(r).__name__}; CVAT interaction functions return "
                    "cvat_sdk.auto_annotation.InteractionResultShape"
                )
            if r.type == "mask":
                mask |= convert.decode(r.points, encoding.size, where)
            elif r.type == "polygon":
                mask |= polygon_to_mask(r.points, encoding.size)
            else:
                continue  # CVAT's UI ignores other result types too
            for a in r.attributes:
                if a.spec_id == cvataa.InteractionResultAttributes.CONFIDENCE:
                    scores.append(_confidence(a.value, where))
        return aa.SegmentationResult(mask=mask, score=min(scores) if scores else None)


def _confidence(value: Any, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not 0.0 <= v <= 1.0:
        raise BadFunctionError(f"{where}: CONFIDENCE must be a number in [0, 1], got {value!r}")
    return v
