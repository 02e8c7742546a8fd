"""SAM 2.1 and EdgeTAM video propagation (``Sam2VideoModel`` / ``EdgeTamVideoModel`` on
``transformers``) as a multi-object tracking function.

All objects of a video share one :class:`VideoSession` (one ``transformers`` inference session):
every frame is encoded once, whatever the number of objects, and each object is followed with the
model's memory of earlier frames (the memory attention and the mask decoder still run once per
object). The session is driven by :class:`autoannotate.tracking.Tracker` through the optional
multi-object protocol (``video_session()``, see :mod:`autoannotate.tracking`); the per-object
``init_tracking_state`` / ``track`` also work (each object then gets a session of its own, so each
frame is encoded once per object).

Prompts: a rectangle is a box prompt, a polygon or a mask a mask prompt. What comes back has the
type of the prompt: the mask's bounding box, its largest polygon, or the mask.

Lost objects: an object whose object score (the sigmoid of the model's object-score logit) falls
below ``min_score``, or whose mask has fewer than ``min_pixels`` pixels, is lost: its track ends
(``detect_and_track`` may start a new one from a detection on a later key frame) and it leaves the
session, so it costs nothing on later frames.

Memory is bounded: frames are streamed (``transformers``' streaming mode: one frame's pixels at a
time); after each frame the session drops the frame's pixels, the full-resolution masks it kept for
the memory encoder, and every per-frame output older than the model's memory window
(``max(num_maskmem, max_object_pointers_in_encoder)`` frames), so a long video costs what a short
one does. Each prompt's conditioning output is kept while the object is followed.

A detection matched to a live track on a key frame (``detect_and_track``) does not re-prompt the
model (its memory follows the object better than a fresh box); the track's box on that frame is
the detection's.

Weights: the SAM 2.1 checkpoints (``sam2.1-hiera-<size>``) and EdgeTAM (``edgetam``) hold the
video model too; found as for the ``sam2`` / ``edgetam`` interactive functions
(``autoannotate weights list``). ``pretrained=False`` builds the real-size architecture with random
weights (tests, benchmarks).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Unpack

import numpy as np
import PIL.Image

from ..devices import model_dtype, to_cpu_float, to_model
from ..errors import BadParameterError
from ..interface import (
    TrackableShape,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
)
from ..masks import mask_bbox, mask_to_polygon
from ..registry import transformers_record
from ..signatures import declare
from .sam import LoadingParameters, create_parameters
from .sam2 import Sam2Variant, load, variant
from .sam2 import weights_available as sam2_weights_available


@dataclass(frozen=True)
class VideoFrame:
    """A preprocessed frame: the model's input (3 x S x S float tensor) and the frame's (H, W)."""

    pixel_values: Any
    original_size: tuple[int, int]


class VideoSession:
    """One video's propagation state for many objects (a ``transformers`` inference session).

    :meth:`add` prompts objects on a frame; :meth:`propagate` runs a frame for every object
    (first the prompts waiting on the previous frame) and returns each object's mask and score;
    :meth:`remove` stops following objects. ``masks``: tracked rectangles carry their mask. Frame indexes must increase by one from call to call
    (a backward pass gives its frames increasing indexes too)."""

    def __init__(self, function: VideoSamTracker, masks: bool = False) -> None:
        self.function = function
        self.masks = masks
        self.session = function.processor.init_video_session(
            inference_device=function.device, dtype=model_dtype(function.model)
        )
        self.kinds: dict[int, str] = {}
        self._pending: dict[int, TrackableShape] = {}
        self._pending_frame: tuple[int, VideoFrame] | None = None
        config = function.model.config
        self.window = max(int(config.num_maskmem), int(config.max_object_pointers_in_encoder))

    @property
    def object_ids(self) -> list[int]:
        return list(self.session.obj_ids)

    def add(self, obj_id: int, frame_index: int, frame: VideoFrame, shape: TrackableShape) -> None:
        """Prompt ``obj_id`` with ``shape`` (pixels) on ``frame``; it runs with the next
        :meth:`propagate` (or :meth:`flush`). An object already followed is left as it is."""
        if obj_id in self.session.obj_ids or obj_id in self._pending:
            return
        if shape.type == "rectangle":
            box = shape.box()
            if box is None or box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
                raise ValueError("cannot prompt with an empty box")
        else:
            mask = _shape_mask(shape, frame.original_size)
            if not mask.any():
                raise ValueError("cannot prompt with an empty mask")
        if self._pending_frame is not None and self._pending_frame[0] != frame_index:
            self.flush()
        self._pending_frame = (frame_index, frame)
        self._pending[obj_id] = shape
        self.kinds[obj_id] = shape.type

    def flush(self) -> dict[int, tuple[np.ndarray, float]]:
        """Run the waiting prompts on their frame (every object runs on it: ``transformers``'
        session runs all its objects on a frame)."""
        if not self._pending or self._pending_frame is None:
            return {}
        index, frame = self._pending_frame
        processor, s = self.function.processor, self.session
        boxes = {k: v for k, v in self._pending.items() if v.type == "rectangle"}
        masks = {k: v for k, v in self._pending.items() if v.type != "rectangle"}
        if boxes:
            processor.add_inputs_to_inference_session(
                s,
                frame_idx=index,
                obj_ids=list(boxes),
                input_boxes=[[list(v.box() or ()) for v in boxes.values()]],
                original_size=frame.original_size,
            )
        if masks:
            s.video_height, s.video_width = frame.original_size
            processor.add_inputs_to_inference_session(
                s,
                frame_idx=index,
                obj_ids=list(masks),
                input_masks=[_shape_mask(v, frame.original_size) for v in masks.values()],
            )
        s.obj_with_new_inputs = list(self._pending)
        self._pending.clear()
        self._pending_frame = None
        return self._run(index, frame)

    def propagate(self, frame_index: int, frame: VideoFrame) -> dict[int, tuple[np.ndarray, float]]:
        """Every followed object on ``frame``: ``{obj_id: (bool H x W mask, object score)}``."""
        self.flush()
        if not self.session.obj_ids:
            return {}
        return self._run(frame_index, frame)

    def remove(self, obj_ids: Iterable[int]) -> None:
        """Stop following ``obj_ids``: they leave the session (no more cost per frame)."""
        drop = set(obj_ids)
        for k in drop:
            self._pending.pop(k, None)
            self.kinds.pop(k, None)
        s = self.session
        if not drop & set(s.obj_ids):
            return
        keep = [i for i in range(len(s.obj_ids)) if s.obj_idx_to_id(i) not in drop]
        ids = [s.obj_idx_to_id(i) for i in keep]
        for attr in ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj", "frames_tracked_per_obj"):
            old = getattr(s, attr)
            setattr(s, attr, {new: old[i] for new, i in enumerate(keep)})
        s._obj_id_to_idx = OrderedDict((obj_id, new) for new, obj_id in enumerate(ids))
        s._obj_idx_to_id = OrderedDict(enumerate(ids))
        s.obj_ids = list(ids)
        s.obj_with_new_inputs = [k for k in s.obj_with_new_inputs if k not in drop]

    def _run(self, index: int, frame: VideoFrame) -> dict[int, tuple[np.ndarray, float]]:
        fn, torch = self.function, self.function._torch
        with torch.inference_mode():
            out = fn.model(inference_session=self.session, frame=frame.pixel_values, frame_idx=index)
            pred_masks, logits = to_cpu_float((out.pred_masks, out.object_score_logits))
            masks = fn.processor.post_process_masks([pred_masks], original_sizes=[list(frame.original_size)])[0]
            scores = torch.sigmoid(logits.reshape(-1))
        self._bound(index)
        return {
            int(obj_id): (masks[i, 0].numpy().astype(bool), float(scores[i])) for i, obj_id in enumerate(out.object_ids)
        }

    def _bound(self, index: int) -> None:
        """Keep only what the next frames need (see the module doc)."""
        s = self.session
        if s.processed_frames:
            s.processed_frames.clear()
        for outputs in s.output_dict_per_obj.values():
            for kind in ("cond_frame_outputs", "non_cond_frame_outputs"):
                for f, stored in list(outputs[kind].items()):
                    stored.pop("high_res_masks", None)
                    if kind == "non_cond_frame_outputs" and abs(f - index) > self.window:
                        del outputs[kind][f]
        for tracked in s.frames_tracked_per_obj.values():
            for f in [f for f in tracked if abs(f - index) > self.window]:
                del tracked[f]

    def shape(self, obj_id: int, mask: np.ndarray, score: float) -> TrackableShape | None:
        """The object's shape of its prompt's type, or ``None`` when it is lost."""
        fn = self.function
        if score < fn.min_score or int(mask.sum()) < max(fn.min_pixels, 1):
            return None
        kind = self.kinds.get(obj_id, "rectangle")
        if kind == "rectangle":
            box = mask_bbox(mask)
            if box is None:
                return None
            return TrackableShape("rectangle", box, bitmap=mask if self.masks else None)
        if kind == "polygon":
            poly = mask_to_polygon(mask)
            return TrackableShape("polygon", tuple(poly)) if poly else None
        return TrackableShape("mask", bitmap=mask)

    def track(self, frame_index: int, frame: VideoFrame) -> dict[int, TrackableShape | None]:
        """Every followed object's shape on ``frame`` (``None``: lost, and removed)."""
        shapes = {k: self.shape(k, m, s) for k, (m, s) in self.propagate(frame_index, frame).items()}
        self.remove(k for k, v in shapes.items() if v is None)
        return shapes


def _shape_mask(shape: TrackableShape, size: tuple[int, int]) -> np.ndarray:
    """A polygon or mask prompt as a bool H x W mask (``size`` is (H, W))."""
    if shape.type == "mask":
        if shape.bitmap is None or shape.bitmap.shape != tuple(size):
            raise ValueError(f"the mask prompt must be {size[1]}x{size[0]} like the frame")
        return np.asarray(shape.bitmap, dtype=bool)
    if shape.type == "polygon":
        import cv2

        h, w = size
        mask = np.zeros((h, w), np.uint8)
        pts = np.round(np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
        return mask.astype(bool)
    raise ValueError(f"cannot prompt with a {shape.type!r}")


@dataclass
class _OwnSession:
    """Per-object state of the per-object protocol: a session of its own."""

    session: VideoSession
    frame_index: int


class VideoSamTracker:
    """A ``transformers`` SAM 2 video model (``Sam2VideoModel``, ``EdgeTamVideoModel``) with its
    processor as a tracking function (see the module doc)."""

    spec = TrackingFunctionSpec(supported_shape_types=("rectangle", "polygon", "mask"))

    def __init__(
        self, model: Any, processor: Any, *, model_version: str, min_score: float = 0.5, min_pixels: int = 16
    ) -> None:
        import torch

        if not 0.0 <= float(min_score) <= 1.0:
            raise BadParameterError(f"min_score must be within [0, 1], got {min_score!r}")
        self.model = model.eval()
        self.processor = processor
        self.model_version = model_version
        self.min_score = float(min_score)
        self.min_pixels = int(min_pixels)
        self._torch = torch

    @property
    def device(self) -> Any:
        return self.model.device

    def preprocess_image(self, context: TrackingFunctionContext, image: PIL.Image.Image) -> VideoFrame:
        rgb = image.convert("RGB")
        inputs = self.processor(images=rgb, return_tensors="pt")
        pixel_values = to_model(inputs["pixel_values"][0], self.model)
        return VideoFrame(pixel_values, (rgb.height, rgb.width))

    def video_session(self, masks: bool = False) -> VideoSession:
        """A session for all the objects of one video (the multi-object tracking protocol); with
        ``masks``, tracked rectangles carry the object's mask (``bitmap``)."""
        return VideoSession(self, masks)

    # the per-object protocol: one session per object
    def init_tracking_state(
        self, context: TrackingFunctionShapeContext, pp_image: VideoFrame, shape: TrackableShape
    ) -> _OwnSession:
        session = VideoSession(self)
        session.add(0, context.frame_index, pp_image, shape)
        return _OwnSession(session, context.frame_index)

    def track(
        self, context: TrackingFunctionShapeContext, pp_image: VideoFrame, state: _OwnSession
    ) -> TrackableShape | None:
        state.frame_index += 1
        return state.session.track(state.frame_index, pp_image).get(0)


# --------------------------------------------------------------------------------------------
# Building


class VideoParameters(LoadingParameters, total=False):
    """The parameters of a SAM 2-family video function's ``create``."""

    min_score: float
    min_pixels: int


class Sam2VideoParameters(VideoParameters, total=False):
    """The parameters of :func:`create`."""

    size: str


def build(variant: Sam2Variant, params: VideoParameters) -> VideoSamTracker:
    """The tracking function of a SAM 2-family checkpoint's video model (``params``: see :func:`create`)."""
    model, processor, version = load(variant, params, video=True)
    min_score, min_pixels = params["min_score"], params["min_pixels"]
    return VideoSamTracker(model, processor, model_version=version, min_score=min_score, min_pixels=min_pixels)


@declare({"size": "tiny", **create_parameters(min_score=0.5, min_pixels=16)}, Sam2VideoParameters)
def create(**params: Unpack[Sam2VideoParameters]) -> VideoSamTracker:
    """SAM 2.1 video propagation on transformers.

    ``size``: tiny, small, base-plus or large. ``checkpoint``: a saved Hugging Face model folder, a
    repo id or a registry name (default ``sam2.1-hiera-<size>``, found in ``AUTOANNOTATE_MODELS``,
    the cache or the Hugging Face cache, else downloaded). ``pretrained=False``: random weights.
    ``device``: auto, cpu, cuda or cuda:N; ``dtype``: float32, bfloat16 or float16 (default
    ``AUTOANNOTATE_DEVICE`` / ``AUTOANNOTATE_DTYPE``, else auto / float32; see
    :mod:`autoannotate.devices`). An object is lost when its object score (0..1) falls below
    ``min_score`` or its mask has fewer than ``min_pixels`` pixels."""
    return build(variant(params["size"]), params)


#: The video model reads the weights of the image model: the same check.
weights_available = sam2_weights_available


#: This function in the registry (:mod:`autoannotate.registry`); its weights are SAM 2.1's (``sam2``).
FUNCTION = transformers_record(
    "sam2_video",
    "tracking",
)
