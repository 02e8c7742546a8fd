"""Segment Anything (``segment-anything`` package; vit_b, vit_l, vit_h) as an interactive function.

Encode once, prompt many times: :meth:`SamFunction.encode` runs the image encoder (seconds on a
CPU) and returns a self-contained :class:`SamEncoding` that any number of threads can prompt
concurrently with :meth:`SamFunction.segment` (tens of milliseconds). Nothing about the current
image is kept in the function, so a cache can hold encodings of many images.

Prompts (all in pixels of the upright image, see :class:`~autoannotate.interface.InteractivePrompt`):

- clicks only: one object from all positive and negative clicks;
- one box (+ optional clicks): one object;
- several boxes: one object per box; each box takes the clicks that fall inside it.

It also refines detector boxes into masks (:meth:`SamFunction.segment_boxes`, batched).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import numpy as np
import PIL.Image

from ..devices import place, to_cpu_float, to_model
from ..errors import BadParameterError
from ..interface import InteractiveFunctionContext, InteractivePrompt, SegmentationResult
from ..registry import AutoCandidate, FunctionRecord
from ..seeding import seeded_torch
from ..signatures import declare
from ..weights import WeightsEntry, resolve

MODEL_TYPES = ("vit_b", "vit_l", "vit_h")


@dataclass(frozen=True)
class SamEncoding:
    """An image's SAM embedding.

    ``features``: float tensor [1, 256, 64, 64] in the image encoder's precision; ``original_size``: (H, W) of the image;
    ``input_size``: (h, w) of the image resized so its long side is 1024.
    """

    features: Any
    original_size: tuple[int, int]
    input_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return int(self.features.element_size() * self.features.nelement())


class SamFunction:
    """SAM as an interactive function. ``multimask``: ``"auto"`` asks SAM for three candidate masks
    when the prompt is a single click (ambiguous) and keeps the best; ``True``/``False`` force it."""

    def __init__(self, model: Any, *, model_version: str, multimask: bool | str = "auto") -> None:
        import torch
        from segment_anything.utils.transforms import ResizeLongestSide

        self.model = model.eval()
        self.model_version = model_version
        self.multimask = multimask
        self.transform = ResizeLongestSide(model.image_encoder.img_size)
        self._torch = torch

    @property
    def device(self) -> Any:
        return self.model.device

    def encode(self, context: InteractiveFunctionContext, image: PIL.Image.Image) -> SamEncoding:
        """Run the image encoder on an RGB image (the expensive step)."""
        torch = self._torch
        arr = np.asarray(image.convert("RGB"))
        if self.model.image_format != "RGB":
            arr = arr[..., ::-1]
        resized = self.transform.apply_image(arr)
        tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        with torch.inference_mode():
            pixels = to_model(self.model.preprocess(tensor.float()), self.model.image_encoder)
            features = self.model.image_encoder(pixels)
        return SamEncoding(features, (arr.shape[0], arr.shape[1]), tuple(tensor.shape[-2:]))

    def _predict(
        self,
        enc: SamEncoding,
        coords: np.ndarray | None,
        labels: np.ndarray | None,
        boxes: np.ndarray | None,
        mask_input: Any,
        multimask: bool,
    ) -> list[SegmentationResult]:
        """One decoder call. ``coords`` B x N x 2, ``labels`` B x N, ``boxes`` B x 4 (pixels)."""
        torch = self._torch
        points = None
        if coords is not None:
            c = self.transform.apply_coords(coords.astype(np.float64), enc.original_size)
            points = (torch.as_tensor(c, dtype=torch.float), torch.as_tensor(labels, dtype=torch.int))
        box_t = None
        if boxes is not None:
            b = self.transform.apply_boxes(boxes.astype(np.float64), enc.original_size)
            box_t = torch.as_tensor(b, dtype=torch.float)
        mask_t = None
        if mask_input is not None:
            mask_t = torch.as_tensor(np.asarray(mask_input), dtype=torch.float)
            mask_t = mask_t.reshape(-1, 1, *mask_t.shape[-2:])
        decoder = self.model.mask_decoder
        points, box_t, mask_t, features = to_model((points, box_t, mask_t, enc.features), decoder)
        with torch.inference_mode():
            sparse, dense = self.model.prompt_encoder(points=points, boxes=box_t, masks=mask_t)
            low_res, iou = decoder(
                image_embeddings=features,
                image_pe=self.model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
            low_res, iou = to_cpu_float((low_res, iou), device=self.device)  # upsampled in float32
            masks = self.model.postprocess_masks(low_res, enc.input_size, enc.original_size)
            masks = masks > self.model.mask_threshold
        return best_masks(masks, iou, low_res)

    def segment(
        self, context: InteractiveFunctionContext, encoding: SamEncoding, prompt: InteractivePrompt
    ) -> list[SegmentationResult]:
        """Masks for a prompt: one per box, or one for clicks alone."""
        pos = np.asarray(prompt.positive_points, dtype=np.float64).reshape(-1, 2)
        neg = np.asarray(prompt.negative_points, dtype=np.float64).reshape(-1, 2)
        if len(prompt.boxes) <= 1:
            box = np.asarray(prompt.boxes, dtype=np.float64).reshape(-1, 4) if prompt.boxes else None
            coords, labels = _points(pos, neg)
            return self._predict(
                encoding,
                None if coords is None else coords[None],
                None if labels is None else labels[None],
                box,
                prompt.mask_input,
                use_multimask(self.multimask, 0 if coords is None else len(coords), box is not None),
            )
        results = []
        for one_box in prompt.boxes:
            inside = lambda p, box=one_box: (
                (p[:, 0] >= box[0]) & (p[:, 0] <= box[2]) & (p[:, 1] >= box[1]) & (p[:, 1] <= box[3])
            )  # noqa: E731
            coords, labels = _points(pos[inside(pos)], neg[inside(neg)])
            results += self._predict(
                encoding,
                None if coords is None else coords[None],
                None if labels is None else labels[None],
                np.asarray([one_box], dtype=np.float64),
                None,
                False,
            )
        return results

    def segment_boxes(
        self, context: InteractiveFunctionContext, encoding: SamEncoding, boxes: Sequence[Sequence[float]]
    ) -> list[SegmentationResult]:
        """One mask per box ``[x1, y1, x2, y2]``, all boxes in one decoder call."""
        if len(boxes) == 0:
            return []
        return self._predict(encoding, None, None, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), None, False)


def _points(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    if len(pos) + len(neg) == 0:
        return None, None
    coords = np.concatenate([pos, neg]).astype(np.float64)
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int64)
    return coords, labels


class LoadingParameters(TypedDict, total=False):
    """The parameters with which every SAM-family ``create`` loads its model (their order and
    defaults: :func:`create_parameters`)."""

    checkpoint: str | None
    pretrained: bool
    device: str | None
    dtype: str | None


class InteractiveParameters(LoadingParameters, total=False):
    """The parameters of a SAM-family interactive function's ``create``."""

    multimask: str


class SamParameters(InteractiveParameters, total=False):
    """The parameters of :func:`create`."""

    model_type: str


def create_parameters(**settings: Any) -> dict[str, Any]:
    """The order and defaults of a SAM-family ``create``'s parameters after the choice of model:
    ``checkpoint``, ``pretrained``, ``device``, the function's own ``settings``, then ``dtype``
    (for :func:`autoannotate.signatures.declare`)."""
    return {"checkpoint": None, "pretrained": True, "device": None, **settings, "dtype": None}


@declare({"model_type": "vit_b", **create_parameters(multimask="auto")}, SamParameters)
def create(**params: Unpack[SamParameters]) -> SamFunction:
    """Segment Anything.

    ``model_type``: vit_b, vit_l or vit_h. ``checkpoint``: a weights file (default: the official
    ``sam_<model_type>_*.pth`` found in ``AUTOANNOTATE_MODELS``, the cache, or downloaded).
    ``pretrained=False`` builds the architecture with random weights (tests, benchmarks).
    ``device``: auto, cpu, cuda or cuda:N; ``dtype``: float32, bfloat16 or float16 (default
    ``AUTOANNOTATE_DEVICE`` / ``AUTOANNOTATE_DTYPE``, else auto / float32; see
    :mod:`autoannotate.devices`). ``multimask``: auto, true or false.
    """
    import torch
    from segment_anything import sam_model_registry

    model_type, multimask = params["model_type"], params["multimask"]
    if model_type not in MODEL_TYPES:
        raise BadParameterError(f"unknown SAM model_type {model_type!r}; choose one of {list(MODEL_TYPES)}")
    if isinstance(multimask, str) and multimask.lower() in ("true", "false"):
        multimask = multimask.lower() == "true"  # type: ignore[assignment]
    with seeded_torch(model_type):  # random weights (replaced when pretrained): the same in any process
        model = sam_model_registry[model_type](checkpoint=None)
    version = f"sam_{model_type}"
    if params["pretrained"]:
        path = resolve(params["checkpoint"] or f"sam_{model_type}")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        version = path.stem
    else:
        version += ".random"
    # Only the image encoder (nearly all the compute) takes ``dtype``: segment-anything's prompt
    # encoder casts points to float32 itself, so it and the small mask decoder stay in float32.
    place(model, params["device"], "float32")
    place(model.image_encoder, params["device"], params["dtype"])
    return SamFunction(model, model_version=version, multimask=multimask)


def weights_available(model_type: str = "vit_b") -> bool:
    """Whether the official checkpoint for ``model_type`` is already on this machine."""
    from ..weights import find_local

    return find_local(FUNCTION.weights[f"sam_{model_type}"].filename) is not None


def best_masks(masks: Any, scores: Any, logits: Any) -> list[SegmentationResult]:
    """One result per object from a SAM-family decoder's candidates (float32 tensors, on any device):
    ``masks`` N x M x H x W (bool), ``scores`` N x M (predicted IoU), ``logits`` N x M x 256 x 256.
    Each object keeps its best-scoring candidate: the mask, the score clamped to [0, 1] and its
    logits (1 x 256 x 256)."""
    results = []
    for k in range(scores.shape[0]):
        best = int(scores[k].argmax())
        results.append(
            SegmentationResult(
                mask=masks[k, best].cpu().numpy().astype(bool),
                score=float(min(max(float(scores[k, best]), 0.0), 1.0)),
                logits=logits[k, best : best + 1].cpu().numpy(),
            )
        )
    return results


def use_multimask(setting: bool | str, n_points: int, has_box: bool) -> bool:
    """Whether to ask a SAM-family decoder for three masks and keep the best: ``"auto"`` does for a
    single click without a box (an ambiguous prompt), else the setting itself."""
    if setting == "auto":
        return n_points == 1 and not has_box
    return bool(setting)


_SAM = "https://dl.fbaipublicfiles.com/segment_anything/"
_FILES = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}
#: This function in the registry (:mod:`autoannotate.registry`). ``auto`` tries the original SAM
#: after SAM 2.1 (slower to encode), smallest first on a CPU, largest first on a GPU.
FUNCTION = FunctionRecord(
    name="sam",
    kind="interactive",
    extras=("sam",),
    requires=("segment_anything", "torch"),
    weights={f"sam_{t}": WeightsEntry(f, _SAM + f, None, "Apache-2.0") for t, f in _FILES.items()},
    auto=tuple(
        AutoCandidate({"model_type": t}, f"sam_{t}", cpu_rank=5 + i, gpu_rank=7 - i) for i, t in enumerate(MODEL_TYPES)
    ),
    license="Apache-2.0",
)
