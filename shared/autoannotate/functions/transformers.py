"""Any Hugging Face ``transformers`` checkpoint (a hub id or a saved folder): detectors, instance / panoptic / semantic segmenters, classifiers, zero-shot classifiers and zero-shot detectors.

``task`` is read from the checkpoint's config when not given (its architecture): the object
detectors (DETR and its descendants, RT-DETR, D-FINE, YOLOS, ...) give rectangles; the
segmenters (Mask2Former, OneFormer, MaskFormer, EoMT: ``panoptic-segmentation`` by default,
``instance-segmentation`` on request; SegFormer, UperNet, DPT, ...: ``semantic-segmentation``)
masks, or polygons when the caller asks; the classifiers tags (``topk``). The zero-shot ones
(CLIP, SigLIP; OWLv2, Grounding DINO) find the class names they are given, like the
open-vocabulary functions. The library's own processor and post-processing make every box, mask
and score; labels come from the config's ``id2label``. Images go through the model together
where the processor makes them the same size (so padding never changes a result).

Usage: ``autoannotate annotate photos/ --function transformers -p model=str:PekingU/rtdetr_v2_r18vd``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from ..devices import place, to_cpu_float, to_model
from ..errors import BadParameterError, WeightsNotFoundError
from ..interface import DetectionFunctionContext, DetectionFunctionSpec, label_spec
from ..registry import transformers_record
from ..shapes import Shape, mask, rectangle, tag
from ._batching import BatchedDetection
from .open_vocab import class_prompts

#: Tasks and, for each, the auto-model mapping whose architectures it serves (first match wins).
TASKS = {
    "zero-shot-object-detection": "MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES",
    "object-detection": "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",
    "instance-segmentation": "MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES",
    "panoptic-segmentation": "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES",
    "semantic-segmentation": "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES",
    "zero-shot-image-classification": "MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "image-classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
}
#: The auto class that loads each task's models.
AUTO_CLASSES = {
    "zero-shot-object-detection": "AutoModelForZeroShotObjectDetection",
    "object-detection": "AutoModelForObjectDetection",
    "instance-segmentation": "AutoModelForUniversalSegmentation",
    "panoptic-segmentation": "AutoModelForUniversalSegmentation",
    "semantic-segmentation": "AutoModelForSemanticSegmentation",
    "zero-shot-image-classification": "AutoModelForZeroShotImageClassification",
    "image-classification": "AutoModelForImageClassification",
}
#: Threshold when the caller gives none: the transformers pipelines' defaults.
DEFAULT_THRESHOLDS = {
    "object-detection": 0.5,
    "instance-segmentation": 0.9,
    "panoptic-segmentation": 0.9,
    "zero-shot-object-detection": 0.1,
}


def infer_task(config: Any) -> str:
    """The task of a checkpoint from its config's architecture (``BadParameterError`` when none fits)."""
    from transformers.models.auto import modeling_auto

    archs = list(getattr(config, "architectures", None) or [])
    for task, mapping in TASKS.items():
        served = set(getattr(modeling_auto, mapping).values())
        if any(a in served for a in archs):
            return task
    raise BadParameterError(
        f"cannot tell the task of a {getattr(config, 'model_type', '?')} checkpoint (architectures {archs}); "
        f"give task= one of {list(TASKS)}"
    )


def checkpoint_folder(model: str) -> Path:
    """The saved folder of ``model``: a folder path, or a hub id found in ``AUTOANNOTATE_MODELS``,
    the cache or the Hugging Face cache, else downloaded (never when offline)."""
    from ..registry import hf_weights
    from ..weights import MODELS_ENV, is_model_folder, offline, resolve

    path = Path(model).expanduser()
    if is_model_folder(path):
        return path
    if path.exists():
        raise WeightsNotFoundError(f"{model!r} is not a saved Hugging Face model (no config.json in it)")
    if model.count("/") > 1 or model.startswith((".", "/", "~")):
        raise WeightsNotFoundError(f"model folder {model!r} does not exist")
    try:
        return resolve(hf_weights(model.split("/")[-1], model, ""))
    except WeightsNotFoundError:
        why = "downloads are disabled (AUTOANNOTATE_OFFLINE=1)" if offline() else "it could not be downloaded"
        raise WeightsNotFoundError(
            f"Hugging Face model {model!r} is not on this machine and {why}. On a machine with internet access "
            f"run `hf download {model} --local-dir {model.split('/')[-1]}` (or save model and processor with "
            "save_pretrained), copy that folder here and pass its path: -p model=str:/path/to/"
            f"{model.split('/')[-1]} (or put it in a folder of {MODELS_ENV})"
        ) from None


class TransformersFunction(BatchedDetection):
    """A checkpoint's model and processor as a detection function (not zero-shot detection: that
    uses the open-vocabulary functions' classes). Thread-safe."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        task: str,
        *,
        classes: Any = None,
        prompts: Any = None,
        hypothesis_template: str = "This is a photo of {}.",
        default_conf_threshold: float | None = None,
        topk: int = 1,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
        model_version: str = "",
    ) -> None:
        import torch

        self.model = model.eval()
        self.processor = processor
        self.task = task
        self.topk = int(topk)
        if self.topk < 1:
            raise BadParameterError(f"topk must be >= 1, got {topk}")
        self.hypothesis_template = hypothesis_template
        self.default_conf_threshold = (
            DEFAULT_THRESHOLDS.get(task) if default_conf_threshold is None else float(default_conf_threshold)
        )
        self.model_version = model_version
        #: Instance / panoptic post-processing's own knobs (passed where the processor takes them).
        self.mask_args = {
            "mask_threshold": float(mask_threshold),
            "overlap_mask_area_threshold": float(overlap_mask_area_threshold),
        }
        self._torch = torch
        self._lock = threading.Lock()
        self.zero_shot = task == "zero-shot-image-classification"
        if self.zero_shot:
            self._set_classes(classes, prompts)
        else:
            id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
            kind = "rectangle" if task == "object-detection" else "tag" if task == "image-classification" else "any"
            self._spec = DetectionFunctionSpec(
                labels=tuple(label_spec(n, i, type=kind) for i, n in sorted(id2label.items()))
            )

    @property
    def spec(self) -> DetectionFunctionSpec:
        return self._spec

    def _set_classes(self, classes: Any, prompts: Any) -> None:
        self.classes = class_prompts(classes, prompts)
        self.prompt_texts = [self.hypothesis_template.format(p) for c in self.classes for p in c.prompts]
        self.prompt_class = np.asarray([i for i, c in enumerate(self.classes) for _ in c.prompts], dtype=np.int64)
        self._spec = DetectionFunctionSpec(
            labels=tuple(label_spec(c.name, i, type="tag") for i, c in enumerate(self.classes))
        )

    # -- inference -------------------------------------------------------------------------

    def _inputs(self, image: PIL.Image.Image) -> Mapping[str, Any]:
        kwargs: dict[str, Any] = {"return_tensors": "pt"}
        if self.model.config.model_type == "oneformer":
            kwargs["task_inputs"] = [self.task.split("-")[0]]
        if self.zero_shot:
            text: dict[str, Any] = {"padding": True}
            if "siglip" in self.model.config.model_type:
                text = {"padding": "max_length", "max_length": 64, "truncation": True}
            return self.processor(images=[image], text=self.prompt_texts, **text, **kwargs)
        return self.processor(images=[image], **kwargs)

    def run(self, images: Sequence[PIL.Image.Image]) -> list[Any]:
        """The model's outputs (float32, on the CPU) for each image, as batches of one image each
        after post-processing: images the processor makes the same size share a forward pass."""
        torch = self._torch
        with self._lock:
            prepared = [dict(self._inputs(im)) for im in images]
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prepared):
            groups.setdefault(tuple(p["pixel_values"].shape), []).append(i)
        per_image: list[Any] = [None] * len(images)
        for members in groups.values():
            batch = {}
            for key, value in prepared[members[0]].items():
                if self.zero_shot and key != "pixel_values":
                    batch[key] = value  # the prompts: the same for every image
                else:
                    batch[key] = torch.cat([prepared[i][key] for i in members])
            with torch.inference_mode():
                out = to_cpu_float(self.model(**to_model(batch, self.model)))
            for row, i in enumerate(members):
                per_image[i] = (out, row)
        return per_image

    def detect_rgb(
        self, contexts: Sequence[DetectionFunctionContext], rgb: Sequence[PIL.Image.Image]
    ) -> list[list[Shape]]:
        outputs = self.run(rgb)
        return [self.to_shapes(out, row, c, im.size) for (out, row), c, im in zip(outputs, contexts, rgb)]

    def _threshold(self, context: DetectionFunctionContext) -> float | None:
        t = context.conf_threshold
        return self.default_conf_threshold if t is None else float(t)

    def to_shapes(self, out: Any, row: int, context: DetectionFunctionContext, size: tuple[int, int]) -> list[Shape]:
        """Row ``row`` of a batch's outputs ``out`` as shapes of an image of ``size`` (w, h)."""
        t = self._threshold(context)
        target = [(size[1], size[0])]
        one = _row(out, row)
        proc = getattr(self.processor, "image_processor", self.processor)
        if self.task in ("image-classification", "zero-shot-image-classification"):
            return self._tags(one, t)
        if self.task == "object-detection":
            r = proc.post_process_object_detection(one, threshold=0.0 if t is None else t, target_sizes=target)[0]
            return [
                rectangle(int(lbl), box, score=float(s))
                for s, lbl, box in zip(r["scores"].tolist(), r["labels"].tolist(), r["boxes"].tolist())
            ]
        if self.task == "semantic-segmentation":
            seg = proc.post_process_semantic_segmentation(one, target_sizes=target)[0].cpu().numpy()
            return [mask(int(lbl), seg == lbl) for lbl in np.unique(seg)]
        post = getattr(proc, f"post_process_{self.task.split('-')[0]}_segmentation")
        accepted = inspect.signature(post).parameters
        extra = {k: v for k, v in self.mask_args.items() if k in accepted}
        if self.task == "instance-segmentation" and "return_binary_maps" in accepted:
            extra["return_binary_maps"] = True  # each instance whole, where instances overlap too
        r = post(one, threshold=0.0 if t is None else t, target_sizes=target, **extra)[0]
        seg = r["segmentation"].cpu().numpy()
        out = []
        for s in r["segments_info"]:
            bitmap = seg[s["id"]] > 0 if seg.ndim == 3 else seg == s["id"]
            if bitmap.any():  # an empty mask is no detection
                out.append(mask(int(s["label_id"]), bitmap, score=float(s["score"])))
        return out

    def _tags(self, out: Any, t: float | None) -> list[Shape]:
        torch = self._torch
        if self.zero_shot:
            logits = out["logits_per_image"][0]
            probs = torch.sigmoid(logits) if "siglip" in self.model.config.model_type else logits.softmax(-1)
            per_class = np.zeros(len(self.classes))
            np.maximum.at(per_class, self.prompt_class, probs.numpy().astype(np.float64))
        else:
            logits = out["logits"][0]
            cfg = self.model.config
            sigmoid = cfg.problem_type == "multi_label_classification" or cfg.num_labels == 1
            per_class = (torch.sigmoid(logits) if sigmoid else logits.softmax(-1)).numpy().astype(np.float64)
        order = np.argsort(-per_class, kind="stable")[: self.topk]
        return [tag(int(i), score=float(per_class[i])) for i in order if t is None or per_class[i] >= t]


class ZeroShotClassification(TransformersFunction):
    """A zero-shot image classifier (CLIP, SigLIP, ...): tags among the classes it is given."""

    def for_classes(self, classes: Any, prompts: Any = None) -> ZeroShotClassification:
        """The same model (shared, not copied) finding other classes (the ``OpenVocabulary``
        capability: a Label Studio backend's labels)."""
        import copy

        other = copy.copy(self)
        other._set_classes(classes, prompts)
        return other


def _row(out: Any, row: int) -> Any:
    """Row ``row`` of a batched ``ModelOutput`` as a batch of one (tensors sliced, others kept)."""
    import torch

    def cut(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return v[row : row + 1]
        if isinstance(v, (list, tuple)) and v and all(isinstance(x, torch.Tensor) for x in v):
            return type(v)(cut(x) for x in v)
        return v

    copy = type(out)(**{k: cut(v) for k, v in out.items()})
    if "logits_per_image" in out:  # zero-shot classification: one image's row, every prompt
        copy["logits_per_image"] = out["logits_per_image"][row : row + 1]
    return copy


def create(
    model: str | None = None,
    task: str | None = None,
    classes: Any = None,
    prompts: Any = None,
    device: str | None = None,
    dtype: str | None = None,
    default_conf_threshold: float | None = None,
    topk: int = 1,
    hypothesis_template: str = "This is a photo of {}.",
    mask_threshold: float = 0.5,
    overlap_mask_area_threshold: float = 0.8,
    nms_threshold: float | None = None,
    max_detections: int = 100,
) -> Any:
    """A Hugging Face checkpoint as a detection function.

    ``model``: a saved folder (model and processor) or a hub id (found in the Hugging Face cache or
    ``AUTOANNOTATE_MODELS``, else downloaded unless offline). ``task``: one of :data:`TASKS`
    (default: read from the config). ``classes`` / ``prompts``: what the zero-shot tasks find
    (front ends pass their own class names). ``device`` / ``dtype``: see :mod:`autoannotate.devices`.
    ``default_conf_threshold``: when the caller gives none (default: the pipelines' own, e.g. 0.5
    for detection). ``topk``: tags per image; ``hypothesis_template``: the zero-shot classifiers'
    prompt (the pipeline's). ``mask_threshold``, ``overlap_mask_area_threshold``: instance and
    panoptic post-processing's (the library's defaults). ``nms_threshold``, ``max_detections``: zero-shot detection (see
    ``owlv2``).
    """
    if not model:
        raise BadParameterError(
            "the transformers function needs model=: a Hugging Face hub id or a saved folder, e.g. "
            "-p model=str:PekingU/rtdetr_v2_r18vd"
        )
    import transformers
    from transformers import AutoConfig

    folder = checkpoint_folder(str(model))
    config = AutoConfig.from_pretrained(str(folder))
    task = task or infer_task(config)
    if task not in TASKS:
        raise BadParameterError(f"task must be one of {list(TASKS)}, got {task!r}")
    if task.startswith("zero-shot"):
        class_prompts(classes, prompts)  # wrong classes fail before the model is loaded
    archs = [a for a in (config.architectures or []) if hasattr(transformers, a)]
    model_class = getattr(transformers, archs[0]) if archs else getattr(transformers, AUTO_CLASSES[task])
    version = str(model) if not Path(str(model)).expanduser().exists() else folder.name
    if task == "zero-shot-object-detection":
        return _zero_shot_detector(folder, model_class, config, classes, prompts, device, dtype, version,
                                   default_conf_threshold, nms_threshold, max_detections)  # fmt: skip
    net = place(model_class.from_pretrained(str(folder)), device, dtype)
    try:
        auto = (
            transformers.AutoProcessor if task == "zero-shot-image-classification" else transformers.AutoImageProcessor
        )
        if config.model_type == "oneformer":
            auto = transformers.AutoProcessor
        processor = auto.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as e:
        raise BadParameterError(
            f"{folder} holds a model but not its processor: {e}. Save it with processor.save_pretrained(folder)"
        ) from None
    cls = ZeroShotClassification if task == "zero-shot-image-classification" else TransformersFunction
    return cls(
        net,
        processor,
        task,
        classes=classes,
        prompts=prompts,
        hypothesis_template=hypothesis_template,
        default_conf_threshold=default_conf_threshold,
        topk=topk,
        mask_threshold=mask_threshold,
        overlap_mask_area_threshold=overlap_mask_area_threshold,
        model_version=version,
    )


def _zero_shot_detector(
    folder: Path, model_class: Any, config: Any, classes: Any, prompts: Any, device: Any, dtype: Any,
    version: str, threshold: float | None, nms: float | None, max_detections: int,
) -> Any:  # fmt: skip
    """OWLv2 and Grounding DINO checkpoints: the open-vocabulary functions over this checkpoint."""
    from .open_vocab import load_pretrained

    kind = config.model_type
    kwargs: dict[str, Any] = {"model_version": version, "max_detections": int(max_detections)}
    if kind == "owlv2":
        from transformers import Owlv2Processor

        from .owlv2 import Owlv2Function as cls

        processor_class: Any = Owlv2Processor
        kwargs.update(
            default_conf_threshold=0.1 if threshold is None else threshold, nms_threshold=0.3 if nms is None else nms
        )
    elif kind in ("grounding-dino", "mm-grounding-dino"):
        from transformers import AutoProcessor

        from .grounding_dino import GroundingDinoFunction as cls  # type: ignore[assignment]
        from .grounding_dino import float32_only

        dtype = float32_only(dtype)
        processor_class = AutoProcessor
        kwargs.update(
            default_conf_threshold=0.3 if threshold is None else threshold, nms_threshold=0.5 if nms is None else nms
        )
    else:
        raise BadParameterError(
            f"zero-shot object detection supports OWLv2 and (MM) Grounding DINO checkpoints; {folder} is a {kind!r}"
        )
    net, processor, _ = load_pretrained(model_class, processor_class, str(folder))
    return cls(place(net, device, dtype), processor, classes, prompts, **kwargs)


__all__ = ["TASKS", "TransformersFunction", "checkpoint_folder", "create", "infer_task"]


#: This function in the registry (:mod:`autoannotate.registry`): the checkpoint is the user's.
FUNCTION = transformers_record(
    "transformers",
    license="Apache-2.0 (transformers); each checkpoint has its own license (see its model card)",
    open_vocabulary=True,
)
