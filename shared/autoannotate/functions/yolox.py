"""YOLOX object detectors (ONNX, COCO 80 classes) through onnxruntime; rectangles with scores.

Pre-processing: BGR, 0-255, not normalized; aspect-preserving resize to the model's input size,
padded bottom/right with 114 (letterbox). Post-processing: grid decoding over strides 8/16/32,
score = objectness x best class probability, class-aware NMS, boxes scaled back to the image.

Usage: ``autoannotate annotate photos/ --function yolox -p model=str:yolox_nano``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL.Image

from ..interface import DetectionFunctionContext, DetectionFunctionSpec, label_spec
from ..masks import batched_nms
from ..registry import FunctionRecord
from ..shapes import Shape, rectangle
from ..weights import WeightsEntry, resolve, sha256_of
from ._coco import COCO_CLASSES

STRIDES = (8, 16, 32)


class YoloxFunction:
    """A detection function over a YOLOX ONNX model. Thread-safe (onnxruntime sessions are)."""

    def __init__(
        self,
        weights_path: str | Path,
        *,
        default_conf_threshold: float = 0.25,
        nms_threshold: float = 0.45,
        max_detections: int = 100,
        num_threads: int = 0,
        providers: Sequence[str] | None = None,
        labels: Sequence[str] = COCO_CLASSES,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads)
        options.log_severity_level = 3
        self.weights_path = Path(weights_path)
        self.session = ort.InferenceSession(
            str(weights_path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_h, self.input_w = int(inp.shape[2]), int(inp.shape[3])
        self.dynamic_batch = not isinstance(inp.shape[0], int)
        self.default_conf_threshold = float(default_conf_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        self._spec = DetectionFunctionSpec(
            labels=tuple(label_spec(name, i, type="rectangle") for i, name in enumerate(labels))
        )
        self.model_version = f"{self.weights_path.stem}@{sha256_of(self.weights_path)[:12]}"
        self._grid = self._make_grid()

    @property
    def spec(self) -> DetectionFunctionSpec:
        return self._spec

    def _make_grid(self) -> tuple[np.ndarray, np.ndarray]:
        grids, strides = [], []
        for s in STRIDES:
            h, w = self.input_h // s, self.input_w // s
            ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
            strides.append(np.full((h * w, 1), s))
        return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)

    def preprocess(self, image: PIL.Image.Image) -> tuple[np.ndarray, float]:
        """RGB PIL image -> (float32 [3, H, W] BGR 0-255 letterboxed tensor, resize ratio)."""
        import cv2

        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        h, w = rgb.shape[:2]
        r = min(self.input_h / h, self.input_w / w)
        nh, nw = max(1, int(round(h * r))), max(1, int(round(w * r)))
        resized = cv2.resize(rgb[:, :, ::-1], (nw, nh), interpolation=cv2.INTER_LINEAR)
        padded = np.full((self.input_h, self.input_w, 3), 114, dtype=np.uint8)
        padded[:nh, :nw] = resized
        return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r

    def decode(self, output: np.ndarray, ratio: float, size: tuple[int, int], conf_threshold: float) -> list[Shape]:
        """Raw [N, 85] output for one image -> rectangles in image pixels."""
        grid, stride = self._grid
        xy = (output[:, :2] + grid) * stride
        wh = np.exp(np.clip(output[:, 2:4], -20, 20)) * stride
        cls = output[:, 5:].argmax(axis=1)
        score = output[:, 4] * output[np.arange(len(output)), 5 + cls]
        keep = score >= conf_threshold
        if not keep.any():
            return []
        xy, wh, cls, score = xy[keep], wh[keep], cls[keep], score[keep]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1) / ratio
        width, height = size
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        order = batched_nms(boxes, score, cls, self.nms_threshold)[: self.max_detections]
        return [rectangle(int(cls[i]), boxes[i].tolist(), score=float(min(max(score[i], 0.0), 1.0))) for i in order]

    def _threshold(self, context: DetectionFunctionContext) -> float:
        t = context.conf_threshold
        return self.default_conf_threshold if t is None else float(t)

    def detect(self, context: DetectionFunctionContext, image: PIL.Image.Image) -> list[Shape]:
        tensor, ratio = self.preprocess(image)
        out = self.session.run(None, {self.input_name: tensor[None]})[0][0]
        return self.decode(out, ratio, image.size, self._threshold(context))

    def detect_batch(
        self, contexts: Sequence[DetectionFunctionContext], images: Sequence[PIL.Image.Image]
    ) -> list[list[Shape]]:
        """Several images: one model call when the ONNX batch axis is dynamic, else one each."""
        if not self.dynamic_batch:
            return [self.detect(c, im) for c, im in zip(contexts, images)]
        pre = [self.preprocess(im) for im in images]
        out = self.session.run(None, {self.input_name: np.stack([t for t, _ in pre])})[0]
        return [self.decode(o, r, im.size, self._threshold(c)) for o, (_, r), im, c in zip(out, pre, images, contexts)]


def create(
    model: str = "yolox_nano",
    weights_path: str | None = None,
    default_conf_threshold: float = 0.25,
    nms_threshold: float = 0.45,
    max_detections: int = 100,
    num_threads: int = 0,
) -> YoloxFunction:
    """YOLOX through onnxruntime.

    ``model``: one of yolox_nano, yolox_tiny, yolox_s, yolox_m, yolox_l, yolox_x (found in
    ``AUTOANNOTATE_MODELS``, the cache, or downloaded); ``weights_path`` overrides it with a file.
    ``default_conf_threshold`` applies when the caller gives none. ``num_threads``: onnxruntime
    intra-op threads (0 = all cores).
    """
    if weights_path is None and model not in FUNCTION.weights:
        raise ValueError(f"unknown YOLOX model {model!r}; known: {list(FUNCTION.weights)}")
    path = resolve(weights_path or model)
    return YoloxFunction(
        path,
        default_conf_threshold=default_conf_threshold,
        nms_threshold=nms_threshold,
        max_detections=max_detections,
        num_threads=num_threads,
    )


_RELEASES = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/"
#: This function in the registry (:mod:`autoannotate.registry`).
FUNCTION = FunctionRecord(
    name="yolox",
    kind="detection",
    extras=("onnx",),
    requires=("onnxruntime", "cv2"),
    weights={
        name: WeightsEntry(f"{name}.onnx", f"{_RELEASES}{name}.onnx", None, "Apache-2.0")
        for name in ("yolox_nano", "yolox_tiny", "yolox_s", "yolox_m", "yolox_l", "yolox_x")
    },
    license="Apache-2.0 (YOLOX and its weights)",
)
