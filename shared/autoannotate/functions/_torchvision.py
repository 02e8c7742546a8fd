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
            self.model = builder(**build)
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
    return class_create(function_class, inspect.Signature(base[:at] + own + base[at:]))
