"""Autoannotate functions as FiftyOne models (the other way: :mod:`autoannotate.fiftyone.models`).

:func:`as_model`: any autoannotate detection function as a FiftyOne model that
``dataset.apply_model()`` runs, batched (``predict_all`` is one ``detect_batch`` call), giving the
labels ``annotate_dataset`` gives with the same ``classes``, ``label_map``, threshold and review
thresholds: the same plan, validation, mapping and label conversion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import fiftyone.core.models as fom
import numpy as np
import PIL.Image

from ..driver import check_threshold, iter_annotations
from ..errors import AutoAnnotateError, BadParameterError
from ..loading import with_classes
from ..mapping import LabelMapping
from ..refine import refined
from .classes import class_names, make_plan, parse_classes
from .convert import RUN_ATTRIBUTE, LabelBuilder
from .models import resolve_function
from .plan import resolve_label_map

__all__ = ["FunctionModel", "as_model"]


class _Config:
    """What ``apply_model`` reads and sets on a model's config: ``confidence_thresh``."""

    def __init__(self, confidence_thresh: float | None) -> None:
        self.confidence_thresh = confidence_thresh


#: The placeholder label field of an ``as_model`` plan (containers are returned, not written).
_FIELD = "label_field"


class FunctionModel(fom.Model):
    """An autoannotate detection function as a FiftyOne image model (see :func:`as_model`)."""

    def __init__(
        self,
        function: Any,
        *,
        classes: Iterable[Any] | str | None = None,
        label_map: Mapping[str, Any] | str | None = None,
        conf_threshold: float | None = None,
        review: Any = None,
        refine_with: Any = None,
        function_params: Mapping[str, Any] | None = None,
    ) -> None:
        # an open-vocabulary function given by name is built to find the classes, as annotate_dataset does
        function_params = with_classes(function, function_params, class_names(classes, None))
        fn, self.function_name, self.function_params = resolve_function(function, function_params, "detection")
        label_map = resolve_label_map(label_map)
        self.plan = make_plan(
            fn.spec,
            label_field=_FIELD,
            classes=parse_classes(classes),
            label_map=label_map,
            dataset_classes=None,
            review=review,
        )
        self.function = fn = refined(fn, self.plan.refine, refine_with)
        self.mapping = LabelMapping.build(
            fn.spec, self.plan.targets, label_map=label_map, allow_unmatched=True, target_name="the model's classes"
        )
        self.router = self.plan.router()
        attribute_names = {(t.id, a.id): a.name for t in self.plan.targets for a in t.attributes}
        self.builder = LabelBuilder(self.plan, "", attribute_names)
        self.config = _Config(check_threshold(conf_threshold))
        self._preprocess = True

    @property
    def media_type(self) -> str:
        return "image"

    @property
    def ragged_batches(self) -> bool:
        return False  # images of any size go to detect_batch as a list

    @property
    def transforms(self) -> None:
        return None

    @property
    def preprocess(self) -> bool:
        return self._preprocess

    @preprocess.setter
    def preprocess(self, value: bool) -> None:
        self._preprocess = value

    @property
    def classes(self) -> list[str]:
        """The classes its labels carry (the dataset's names, after ``label_map``)."""
        return list(self.plan.outputs)

    def label_fields(self, label_field: str) -> dict[str, str]:
        """``{kind: field}``: the fields ``annotate_dataset(label_field=...)`` would write. Pass it as
        ``apply_model``'s ``label_field`` when the run stores several kinds (``predict`` then returns
        ``{kind: labels}``, which ``apply_model`` otherwise stores in ``<label_field>_<kind>``)."""
        return {kind: label_field + field[len(_FIELD) :] for kind, field in self.plan.fields.items()}

    def predict(self, arg: Any) -> Any:
        return self.predict_all([arg])[0]

    def predict_all(self, args: Any) -> list[Any]:
        """One result per image (uint8 HWC arrays or PIL images): a label list, or ``{kind: list}``
        when the run stores several kinds. An image the function fails on raises (``apply_model``
        skips the batch and logs why, or raises with ``skip_failures=False``)."""
        images = [_to_pil(a) for a in args]
        results = iter_annotations(
            self.function,
            images,
            mapping=self.mapping,
            conf_threshold=check_threshold(self.config.confidence_thresh),
            batch_size=max(1, len(images)),
            num_workers=0,
            progress=False,
        )
        out = []
        for r in results:
            if r.error is not None:
                raise AutoAnnotateError(f"{self.function_name}: {r.error}")
            r.route(self.router)
            containers, _ = self.builder.containers(r.shapes or [], r.reviews, r.size)  # type: ignore[arg-type]
            by_kind = {kind: _unstamped(containers[field]) for kind, field in self.plan.fields.items()}
            out.append(next(iter(by_kind.values())) if len(by_kind) == 1 else by_kind)
        return out


def _unstamped(container: Any) -> Any:
    """A label list without the run-key stamps (``apply_model`` makes no autoannotate run)."""
    delattr(container, RUN_ATTRIBUTE)
    for label in container[container._LABEL_LIST_FIELD]:
        delattr(label, RUN_ATTRIBUTE)
    return container


def _to_pil(arg: Any) -> PIL.Image.Image:
    if isinstance(arg, PIL.Image.Image):
        return arg
    arr = np.asarray(arg)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3, 4):
        raise BadParameterError("as_model takes uint8 HWC images (apply_model's); got a CHW tensor")
    if arr.dtype != np.uint8:
        raise BadParameterError(f"as_model takes uint8 images, got {arr.dtype}")
    return PIL.Image.fromarray(arr)


def as_model(function: Any, **options: Any) -> FunctionModel:
    """An autoannotate detection function (an object, or a name with ``function_params``) as a
    FiftyOne model: ``dataset.apply_model(as_model("yolox"), label_field="auto", batch_size=8)``.

    ``options`` are :class:`FunctionModel`'s: ``classes``, ``label_map``, ``conf_threshold``,
    ``review``, ``refine_with`` and ``function_params`` mean what they
    mean for :func:`~autoannotate.fiftyone.annotate_dataset` (``classes=None``: every label of the
    function), and the labels are the ones it stores, without its run stamps. ``apply_model``'s
    ``confidence_thresh`` sets ``conf_threshold``."""
    return FunctionModel(function, **options)
