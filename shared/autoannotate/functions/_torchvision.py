"""Shared plumbing of the torchvision functions: build a model by name, load its weights offline.

Weights are looked up by their official file name (the basename of ``weights.url``) in
``AUTOANNOTATE_MODELS``, the autoannotate cache and torch's own hub cache, then downloaded with
hash checking. Files are read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import inspect
import os
import urllib.error
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import PIL.Image

from ..devices import autocast, place, resolve_dtype, to_cpu_float, to_model
from ..errors import BadParameterError, WeightsNotFoundError
from ..interface import DetectionFunctionContext, DetectionFunctionSpec
from ..seeding import seeded_torch
from ..signatures import class_create
from ..weights import MODELS_ENV, cache_dir, find_local, offline, search_dirs

_SKIP_CATEGORIES = {"N/A", "__background__"}

#: Builder options autoannotate sets itself: the weights come from ``weights_name`` / ``pretrained``.
_WEIGHTS_OPTIONS = ("weights", "progress", "weights_backbone")

#: The autoannotate function for each kind of torchvision model (:func:`model_kind`).
FUNCTION_FOR_KIND = {
    "classification": "torchvision_classification",
    "detection": "torchvision_detection",
    "instance segmentation": "torchvision_instance_segmentation",
    "keypoint detection": "torchvision_keypoint_detection",
}


def model_kind(model_name: str) -> str:
    """What kind of model torchvision's registry (``list_models(module=...)``) says ``model_name``
    is: ``classification`` (``torchvision.models`` and its quantized variants), ``detection``,
    ``instance segmentation`` (Mask R-CNN), ``keypoint detection`` (Keypoint R-CNN), or the name
    kind of its module's models (``semantic segmentation``, ``video``, ``optical flow``)."""
    import torchvision.models as tm

    if model_name in tm.list_models(module=tm) + tm.list_models(module=tm.quantization):
        return "classification"
    if model_name in tm.list_models(module=tm.detection):
        model_class = inspect.signature(tm.get_model_builder(model_name)).return_annotation
        if isinstance(model_class, type) and issubclass(model_class, tm.detection.KeypointRCNN):
            return "keypoint detection"
        if isinstance(model_class, type) and issubclass(model_class, tm.detection.MaskRCNN):
            return "instance segmentation"
        return "detection"
    module = tm.get_model_builder(model_name).__module__.split(".")[2]
    return {"segmentation": "semantic segmentation"}.get(module, module.replace("_", " "))


def model_options(model_name: str) -> dict[str, inspect.Parameter]:
    """The options torchvision's builder of ``model_name`` takes by name besides its weights, as
    torchvision declares them (default, annotation; they type untyped ``-p`` values): those of the
    model class it returns (its ``__init__``, and its bases' while an ``__init__`` passes
    ``**kwargs`` on; a detector's go to its ``GeneralizedRCNNTransform``), then the builder's."""
    import torchvision.models as tm
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    builder = tm.get_model_builder(model_name)
    model_class = inspect.signature(builder).return_annotation
    if model_name in tm.list_models(module=tm.detection):
        inits = [model_class.__init__, GeneralizedRCNNTransform.__init__]
    else:
        inits = [vars(k)["__init__"] for k in model_class.__mro__ if "__init__" in vars(k) and k is not object]
    declared: list[inspect.Parameter] = []
    for init in inits:
        declared += list(inspect.signature(init).parameters.values())[1:]
        if not any(p.kind is p.VAR_KEYWORD for p in declared):
            break
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    options: dict[str, inspect.Parameter] = {}
    for p in declared + list(inspect.signature(builder).parameters.values()):
        if p.kind in named and p.name not in _WEIGHTS_OPTIONS:
            options.setdefault(p.name, p)
    return options


def _kwargs_parameters(create: Callable[..., Any]) -> Callable[[dict[str, Any]], dict[str, inspect.Parameter]]:
    """``create.kwargs_parameters`` (:func:`autoannotate.loading.typed_params`): the options of the
    model the parameters name (none for a model torchvision does not have: ``create`` says so)."""
    default = inspect.signature(create).parameters["model_name"].default

    def kwargs_parameters(params: dict[str, Any]) -> dict[str, inspect.Parameter]:
        try:
            return model_options(str(params.get("model_name", default)))
        except (ValueError, TypeError):
            return {}

    return kwargs_parameters


def load_state_dict(weights: Any) -> dict:
    """The state dict of a torchvision weights enum member, from disk or its URL."""
    import torch

    filename = os.path.basename(weights.url)
    torch_hub = Path(torch.hub.get_dir()) / "checkpoints" / filename
    path = find_local(filename) or (torch_hub if torch_hub.is_file() else None)
    if path is not None:
        return torch.load(path, map_location="cpu", weights_only=True)
    if offline():
        reason = "downloads are disabled (AUTOANNOTATE_OFFLINE=1)"
    else:
        try:
            return torch.hub.load_state_dict_from_url(
                weights.url,
                model_dir=str(cache_dir()),
                progress=True,
                check_hash=True,
                weights_only=True,
                map_location="cpu",
            )
        except (urllib.error.URLError, OSError, RuntimeError) as e:
            reason = f"download failed: {e}"
    raise WeightsNotFoundError(
        f"torchvision weights {filename!r} are not on this machine and {reason}. Looked in: "
        f"{[str(d) for d in search_dirs()] + [str(torch_hub.parent)]}. Download {weights.url} on a machine "
        f"with internet access and put it in one of those folders (or set {MODELS_ENV}=/path/to/folder)."
    )


class TorchvisionFunctionBase:
    """Builds ``model_name`` with ``weights_name``'s metadata (label names, transforms).

    ``pretrained=False`` builds the same architecture with random weights (no download), which
    tests and benchmarks use. ``device`` / ``dtype``: see :mod:`autoannotate.devices`. Extra
    ``kwargs`` go to the model constructor.
    """

    #: Whether the weights take ``dtype`` (classifiers); detectors keep float32 weights and run under
    #: autocast (torchvision's ``roi_align`` / ``nms`` have no half-precision CPU kernels).
    cast_weights = False

    #: The kinds of models (:func:`model_kind`) the function takes.
    kinds: tuple[str, ...] = ("detection", "instance segmentation", "keypoint detection")

    def __init__(
        self,
        model_name: str,
        weights_name: str = "DEFAULT",
        pretrained: bool = True,
        device: str | None = None,
        dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
        import torch
        import torchvision.models

        try:
            builder = torchvision.models.get_model_builder(model_name)
            weights_enum = torchvision.models.get_model_weights(model_name)
        except ValueError:
            raise BadParameterError(
                f"torchvision has no model {model_name!r}; see torchvision.models.list_models()"
            ) from None
        try:
            self.weights = weights_enum[weights_name]
        except KeyError:
            raise BadParameterError(
                f"{model_name} has no weights {weights_name!r}; known: {['DEFAULT'] + [w.name for w in weights_enum]}"
            ) from None
        self._check_kind(model_name)
        kwargs = _check_options(model_name, kwargs)
        params = inspect.signature(builder).parameters
        build: dict[str, Any] = {"weights": None}
        if "weights_backbone" in params:
            build["weights_backbone"] = None
        meta = self.weights.meta
        if "num_classes" in params and "categories" in meta:
            build["num_classes"] = len(meta["categories"])
        if "num_keypoints" in params and "keypoint_names" in meta:
            build["num_keypoints"] = len(meta["keypoint_names"])
        build.update(kwargs)
        with seeded_torch(model_name):  # random weights: the same in any process
            try:
                self.model = builder(**build)
            except TypeError as e:  # an option the builder sets itself (backbone, layers, ...)
                raise BadParameterError(f"{model_name} cannot be built with {kwargs}: {e}") from None
        if pretrained:
            self.model.load_state_dict(load_state_dict(self.weights))
        place(self.model, device, dtype, cast=self.cast_weights)
        self.device = next(self.model.parameters()).device
        #: The precision the model computes in (its weights' or, for detectors, autocast's).
        self.dtype = resolve_dtype(dtype, self.device)
        self.transforms = self.weights.transforms()
        self.categories: list[str] = list(meta["categories"])
        self.model_version = f"{model_name}.{self.weights.name}" + ("" if pretrained else ".random")
        self._torch = torch
        self._spec = DetectionFunctionSpec(labels=tuple(self.make_labels()))

    def _check_kind(self, model_name: str) -> None:
        kind = model_kind(model_name)
        if kind in self.kinds:
            return
        import torchvision.models

        own = FUNCTION_FOR_KIND[self.kinds[0]]
        takes = [n for n in torchvision.models.list_models() if model_kind(n) in self.kinds]
        listed = ", ".join(takes) if len(takes) <= 20 else "torchvision.models.list_models(module=torchvision.models)"
        other = FUNCTION_FOR_KIND.get(kind)
        instead = f"use {other} for it" if other else "no autoannotate function takes it"
        raise BadParameterError(
            f"{model_name} is a torchvision {kind} model, which {own} does not take ({instead}); "
            f"{own} takes {' / '.join(self.kinds)} models: {listed}"
        )

    @property
    def spec(self) -> DetectionFunctionSpec:
        return self._spec

    def make_labels(self) -> list:
        raise NotImplementedError

    def label_ids(self) -> list[int]:
        """Category indexes that become labels (placeholders like 'N/A' are left out)."""
        return [i for i, c in enumerate(self.categories) if c not in _SKIP_CATEGORIES]

    def run_model(self, images: Sequence[PIL.Image.Image]) -> list[dict]:
        """Detection-style models: a list of per-image output dicts (tensors on the CPU)."""
        with self._torch.inference_mode(), autocast(self.device, self.dtype):
            tensors = to_model([self.transforms(im) for im in images], self.model)
            outputs = self.model(tensors)
        return to_cpu_float(outputs)

    def convert(self, context: DetectionFunctionContext, output: dict, size: tuple[int, int]) -> list:
        raise NotImplementedError

    def detect(self, context: DetectionFunctionContext, image: PIL.Image.Image) -> list:
        return self.convert(context, self.run_model([image])[0], image.size)

    def detect_batch(
        self, contexts: Sequence[DetectionFunctionContext], images: Sequence[PIL.Image.Image]
    ) -> list[list]:
        outputs = self.run_model(images)
        return [self.convert(c, o, im.size) for c, o, im in zip(contexts, outputs, images)]

    def keep(self, context: DetectionFunctionContext, scores: Any, labels: Any) -> list[int]:
        """Indexes of detections above the threshold whose label is in the spec."""
        t = context.conf_threshold
        ids = set(self.label_ids())
        return [
            i
            for i, (s, lbl) in enumerate(zip(scores.tolist(), labels.tolist()))
            if (t is None or s >= t) and int(lbl) in ids
        ]


P = ParamSpec("P")
T = TypeVar("T", bound=TorchvisionFunctionBase)


def torchvision_create(function_class: Callable[P, T]) -> Callable[P, T]:
    """The ``create`` of a torchvision function (:func:`autoannotate.signatures.class_create`):
    ``function_class``'s constructor with the parameters users see, ``model_name`` (with the
    constructor's default, if any), ``weights_name``, ``pretrained``, ``device``, then the class's
    own options (its keyword-only parameters), ``dtype`` and the model constructor's ``**kwargs``;
    documented by the class's docstring. Type checkers check callers against the constructor."""
    base = list(inspect.signature(TorchvisionFunctionBase.__init__).parameters.values())[1:]
    parameters = inspect.signature(function_class).parameters
    base[0] = parameters["model_name"]
    own = [p.replace(kind=p.POSITIONAL_OR_KEYWORD) for p in parameters.values() if p.kind is p.KEYWORD_ONLY]
    at = [p.name for p in base].index("dtype")
    create = class_create(function_class, inspect.Signature(base[:at] + own + base[at:]))
    create.kwargs_parameters = _kwargs_parameters(create)  # type: ignore[attr-defined]
    return create


def _check_options(model_name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for ``model_name``'s builder: :class:`BadParameterError` for an option it does not
    take (naming those it takes) or for weights other than ``weights_name``'s; ``weights_backbone``
    may only be none (``None`` or ``"none"``): the backbone's weights come with the model's."""
    options = model_options(model_name)
    out = dict(kwargs)
    backbone = out.pop("weights_backbone", None)
    if backbone is not None and str(backbone).strip().lower() not in ("none", ""):
        raise BadParameterError(
            f"weights_backbone={backbone!r}: autoannotate builds the backbone without weights of its own "
            "(pretrained=true loads the whole model's weights, weights_name); only weights_backbone=none is accepted"
        )
    for name in out:
        if name in ("weights", "progress"):
            raise BadParameterError(
                f"{name}: autoannotate loads the weights itself (choose them with weights_name, pretrained)"
            )
        if name not in options:
            raise BadParameterError(
                f"{model_name} takes no option {name!r}; the options torchvision declares for it: {', '.join(sorted(options))}"
            )
    return out
