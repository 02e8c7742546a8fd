"""Ultralytics YOLO models (your own ``.pt`` weights, a model YAML or an exported format): boxes, masks or polygons, skeletons, rotated boxes or tags, by the model's task.

The model's task decides the shapes: ``detect`` rectangles, ``segment`` masks (polygons, from
Ultralytics' own mask contours, when the caller asks for polygons), ``pose`` skeletons (keypoint
names from the model, from ``keypoints=``, else COCO's 17), ``obb`` rotated rectangles
(Ultralytics' ``xywhr``, radians, turned into degrees clockwise about the centre: the same
corners as its ``xyxyxyxy``) and ``classify`` tags (the ``topk`` best classes). Labels are the
model's ``names``. Ultralytics does the pre- and post-processing (letterbox, NMS, mask
upsampling at the image's own size); several images go through one ``predict`` call.

Usage: ``autoannotate annotate photos/ --function ultralytics -p model=str:best.pt``.
License: Ultralytics is AGPL-3.0 (``pip install 'autoannotate[ultralytics]'``); so are the
weights it publishes.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from ..errors import BadParameterError, WeightsNotFoundError
from ..interface import DetectionFunctionContext, DetectionFunctionSpec, keypoint_spec, label_spec, skeleton_label_spec
from ..loading import split_list
from ..registry import FunctionRecord
from ..shapes import Shape, mask, polygon, rectangle, skeleton, tag
from ..signatures import class_create
from ._batching import BatchedDetection
from ._coco import COCO_KEYPOINTS

TASKS = ("detect", "segment", "pose", "obb", "classify")


def keypoint_names(given: Any, count: int, model_names: Any = None) -> list[str]:
    """The names of a pose model's ``count`` keypoints: ``given`` (a list, a comma-separated text
    or a file with one name per line), else the model's own (``kpt_names``, the first class's), else
    COCO's 17 when there are 17, else ``"0"``, ``"1"``, ..."""
    names: list[str] | None = None
    if given:
        if isinstance(given, str) and "," not in given and Path(given).expanduser().is_file():
            lines = Path(given).expanduser().read_text().splitlines()
            names = [line.strip() for line in lines if line.strip()]
        else:
            names = split_list(given) if isinstance(given, str) else [str(n) for n in given]
        if len(names) != count:
            raise BadParameterError(f"keypoints: the model has {count} keypoints, {len(names)} names were given")
    elif isinstance(model_names, dict) and model_names:
        first = model_names[sorted(model_names)[0]]
        if len(first) == count:
            names = [str(n) for n in first]
    if names is None:
        names = list(COCO_KEYPOINTS) if count == len(COCO_KEYPOINTS) else [str(i) for i in range(count)]
    if len(set(names)) != len(names):
        raise BadParameterError(f"keypoint names must be unique, got {names}")
    return names


def obb_rectangle(label_id: int, xywhr: Sequence[float], **kwargs: Any) -> Shape:
    """A rotated rectangle from Ultralytics' ``(cx, cy, w, h, r)``: ``r`` in radians turns the box
    clockwise (y down) about its centre, as :attr:`Shape.rotation` does in degrees."""
    cx, cy, w, h, r = (float(v) for v in xywhr)
    box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    return rectangle(label_id, box, rotation=math.degrees(r) % 360.0, **kwargs)


class UltralyticsFunction(BatchedDetection):
    """An Ultralytics model as a detection function; its parameters are :func:`create`'s. Thread-safe
    (one prediction at a time: Ultralytics' predictor keeps state between calls)."""

    def __init__(
        self,
        model: str | None = None,
        task: str | None = None,
        keypoints: Any = None,
        device: str | None = None,
        dtype: str | None = None,
        imgsz: int | None = None,
        iou: float | None = None,
        max_det: int = 300,
        topk: int = 1,
        keypoint_threshold: float = 0.5,
    ) -> None:
        if not model:
            raise BadParameterError(
                "the ultralytics function needs model=: the path of your weights, e.g. -p model=str:runs/detect/train/"
                "weights/best.pt (or a model YAML, or an exported model)"
            )
        yolo = load_yolo(str(model), task)
        self.yolo = yolo
        self.task = str(yolo.task)
        if self.task not in TASKS:
            raise BadParameterError(f"Ultralytics task {self.task!r} is not supported; supported: {list(TASKS)}")
        if int(topk) < 1:
            raise BadParameterError(f"topk must be >= 1, got {topk}")
        self.names: dict[int, str] = {int(k): str(v) for k, v in dict(yolo.names).items()}
        self.topk = int(topk)
        self.keypoint_threshold = float(keypoint_threshold)
        self.predict_args: dict[str, Any] = {"verbose": False, "max_det": int(max_det), "device": _device(device)}
        if _half(dtype):
            self.predict_args["half"] = True
        if imgsz is not None:
            self.predict_args["imgsz"] = int(imgsz)
        if iou is not None:
            self.predict_args["iou"] = float(iou)
        if self.task == "segment":
            self.predict_args["retina_masks"] = True  # masks at the image's own size
        path = Path(str(model))
        self.model_version = path.name
        if path.is_file():
            from ..weights import sha256_of

            self.model_version = f"{path.stem}@{sha256_of(path)[:12]}"
        self._lock = threading.Lock()
        self.keypoint_names: list[str] = []
        if self.task == "pose":
            count = int(_kpt_shape(yolo)[0])
            self.keypoint_names = keypoint_names(keypoints, count, getattr(yolo.model, "kpt_names", None))
        self._spec = DetectionFunctionSpec(labels=tuple(self._labels()))

    @property
    def spec(self) -> DetectionFunctionSpec:
        return self._spec

    def _labels(self) -> list:
        if self.task == "pose":
            kps = [keypoint_spec(n, k) for k, n in enumerate(self.keypoint_names)]
            return [skeleton_label_spec(name, i, kps) for i, name in sorted(self.names.items())]
        kind = {"detect": "rectangle", "obb": "rectangle", "segment": "any", "classify": "tag"}[self.task]
        return [label_spec(name, i, type=kind) for i, name in sorted(self.names.items())]

    def predict(self, images: Sequence[PIL.Image.Image], conf: float | None) -> list[Any]:
        """Ultralytics' ``Results`` for RGB ``images`` (one ``predict`` call), at threshold ``conf``
        (None: Ultralytics' default)."""
        args = dict(self.predict_args)
        if conf is not None:
            args["conf"] = float(conf)
        with self._lock:
            return list(self.yolo.predict(list(images), **args))

    def detect_rgb(
        self, contexts: Sequence[DetectionFunctionContext], rgb: Sequence[PIL.Image.Image]
    ) -> list[list[Shape]]:
        given = [c.conf_threshold for c in contexts]
        conf = None if any(t is None for t in given) else min(float(t) for t in given if t is not None)
        results = self.predict(rgb, conf)
        return [self.to_shapes(r, c) for r, c in zip(results, contexts)]

    def to_shapes(self, result: Any, context: DetectionFunctionContext) -> list[Shape]:
        """One image's ``Results`` as shapes, those under the context's threshold left out."""
        t = context.conf_threshold
        if self.task == "classify":
            probs = result.probs.data.float().cpu().numpy()
            order = np.argsort(-probs, kind="stable")[: self.topk]
            return [tag(int(i), score=float(probs[i])) for i in order if t is None or probs[i] >= t]
        if self.task == "obb":
            data = result.obb
            return [
                obb_rectangle(int(c), box, score=float(s))
                for box, s, c in zip(_np(data.xywhr), _np(data.conf), _np(data.cls))
                if t is None or s >= t
            ]
        boxes = result.boxes
        scores, classes = _np(boxes.conf), _np(boxes.cls)
        keep = [i for i, s in enumerate(scores) if t is None or s >= t]
        if self.task == "detect":
            xyxy = _np(boxes.xyxy)
            return [rectangle(int(classes[i]), xyxy[i], score=float(scores[i])) for i in keep]
        if self.task == "segment":
            return self._segments(result, keep, scores, classes, context.conv_mask_to_poly)
        kp = _np(result.keypoints.data)
        if kp.shape[-1] == 2:  # no visibility: every keypoint visible
            kp = np.concatenate([kp, np.ones(kp.shape[:-1] + (1,))], axis=-1)
        out = []
        for i in keep:
            # Shape built directly (what keypoint() returns): a hundred skeletons of 17 points per
            # image made through the factory's array conversion cost 6 % of a YOLO11n-pose image
            elements = [
                Shape(type="points", label_id=k, points=(x, y), occluded=v < self.keypoint_threshold)
                for k, (x, y, v) in enumerate(kp[i].tolist())
            ]
            out.append(skeleton(int(classes[i]), elements, score=float(scores[i])))
        return out

    def _segments(self, result: Any, keep: list[int], scores: Any, classes: Any, polygons: bool) -> list[Shape]:
        if result.masks is None:
            return []
        out: list[Shape] = []
        if polygons:
            xy = result.masks.xy
            for i in keep:
                if len(xy[i]) >= 3:
                    out.append(polygon(int(classes[i]), np.asarray(xy[i]).reshape(-1).tolist(), score=float(scores[i])))
            return out
        bitmaps = result.masks.data.cpu().numpy() > 0.5
        for i in keep:
            if bitmaps[i].any():  # an empty mask is no detection
                out.append(mask(int(classes[i]), bitmaps[i], score=float(scores[i])))
        return out


def _np(values: Any) -> np.ndarray:
    return np.asarray(values.float().cpu().numpy() if hasattr(values, "cpu") else values, dtype=np.float64)


def _kpt_shape(yolo: Any) -> tuple[int, int]:
    shape = getattr(yolo.model, "kpt_shape", None) or (getattr(yolo.model, "yaml", None) or {}).get("kpt_shape")
    if not shape:
        raise BadParameterError("this pose model does not say how many keypoints it has (no kpt_shape)")
    return int(shape[0]), int(shape[1])


def _device(device: str | None) -> str:
    """Ultralytics' device argument from ours (:mod:`autoannotate.devices`)."""
    from ..devices import resolve_device

    dev = resolve_device(device)
    return "cpu" if dev.type == "cpu" else f"cuda:{dev.index or 0}" if dev.type == "cuda" else str(dev)


def _half(dtype: str | None) -> bool:
    """Whether to run in float16 (Ultralytics' ``half``); bfloat16 is not one of its precisions."""
    from ..settings import default_dtype, dtype_name

    name = default_dtype() if dtype is None else dtype_name(dtype)
    if name == "bfloat16":
        raise BadParameterError("Ultralytics runs in float32 or float16 (dtype=float16): bfloat16 is not supported")
    return name == "float16"


@contextlib.contextmanager
def _process_wide_patches_undone() -> Iterator[None]:
    """Importing Ultralytics replaces ``PIL.Image.open`` (to install a HEIF plugin with pip when
    Pillow does not recognise a file) and OpenCV's ``imread``/``imwrite``/``imshow`` for the whole
    process; this function hands Ultralytics decoded images only, so the process keeps its own."""
    import cv2

    saved = (PIL.Image.open, cv2.imread, cv2.imwrite, cv2.imshow)
    try:
        yield
    finally:
        PIL.Image.open, cv2.imread, cv2.imwrite, cv2.imshow = saved


def load_yolo(model: str, task: str | None = None) -> Any:
    """``ultralytics.YOLO(model)`` offline: a ``.pt`` file, a model YAML (random weights) or an
    exported model (ONNX, TorchScript, OpenVINO folder, ...); a missing file is a clear error."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never fetch weights, fonts or version checks behind the user's back
    try:
        with _process_wide_patches_undone():
            from ultralytics import YOLO
    except ImportError:
        raise BadParameterError(
            "the ultralytics function needs Ultralytics: pip install 'autoannotate[ultralytics]'"
        ) from None
    path = Path(model).expanduser()
    is_yaml = path.suffix in (".yaml", ".yml")
    if not path.exists() and not is_yaml:
        raise WeightsNotFoundError(
            f"Ultralytics model {model!r} does not exist. Give the path of your weights (a .pt file, a model "
            "YAML, or an exported model such as model.onnx or model_openvino_model/): nothing is downloaded"
        )
    if task is not None and task not in TASKS:
        raise BadParameterError(f"task must be one of {list(TASKS)}, got {task!r}")
    try:
        return YOLO(str(path), task=task, verbose=False)
    except FileNotFoundError as e:
        raise WeightsNotFoundError(f"Ultralytics cannot load {model!r}: {e}") from None


create = class_create(
    UltralyticsFunction,
    doc="""An Ultralytics model as a detection function.

    ``model``: a ``.pt`` file, a model YAML (random weights) or an exported model Ultralytics can
    load; ``task`` (``detect``, ``segment``, ``pose``, ``obb``, ``classify``): only for exported
    models that do not record it. ``keypoints``: pose keypoint names (a list, ``"nose,left_eye,..."``
    or a file with one per line; default the model's, else COCO's 17). ``device`` / ``dtype``
    (float32 or float16): see :mod:`autoannotate.devices`. ``imgsz``, ``iou`` (NMS), ``max_det``:
    Ultralytics' own (its defaults when unset). ``topk``: tags per image (classify);
    ``keypoint_threshold``: keypoints less visible than this are marked occluded. With no
    threshold from the caller, Ultralytics' default (0.25) applies.
    """,
)


__all__ = ["TASKS", "UltralyticsFunction", "create", "keypoint_names", "load_yolo", "obb_rectangle"]


#: This function in the registry (:mod:`autoannotate.registry`): weights are the user's own files.
FUNCTION = FunctionRecord(
    name="ultralytics",
    kind="detection",
    extras=("ultralytics",),
    requires=("ultralytics", "torch"),
    license="AGPL-3.0 (Ultralytics and the weights it publishes; Ultralytics offers an Enterprise license otherwise)",
)
