"""SAM 2.1 (tiny, small, base-plus, large) and EdgeTAM as interactive functions, on ``transformers``.

Both models share one API in ``transformers`` (``Sam2Model`` / ``EdgeTamModel`` with
``Sam2Processor``), so one class serves both: :class:`TransformersSamFunction`. The library's own
processor normalises the prompts and post-processes the masks; nothing here re-derives
coordinates.

Encode once, prompt many times: :meth:`TransformersSamFunction.encode` runs the image encoder
(the expensive step) and returns a self-contained :class:`Sam2Encoding` that any number of
threads can prompt with :meth:`TransformersSamFunction.segment` (the decoder only).

Prompts (pixels of the upright image, see :class:`~autoannotate.interface.InteractivePrompt`):

- clicks only: one object from all positive and negative clicks;
- one box (+ optional clicks): one object;
- several boxes: one object per box; each box takes the clicks that fall inside it. Objects with
  the same number of clicks go through the decoder together (no padded points, so every object
  gets exactly the answer it would get alone);
- ``mask_input``: the ``logits`` of a previous result (1 x 256 x 256), for refinement clicks.

Multimask: ``"auto"`` asks for three candidate masks when the prompt is a single click with no box
(ambiguous) and keeps the best-scoring one; otherwise the model's single-mask output (SAM 2 falls
back to its best multimask candidate by itself when that output is unstable).

Weights: a saved Hugging Face model folder found by :func:`autoannotate.weights.resolve` (see
``autoannotate weights list``); ``pretrained=False`` builds the real-size architecture with random
weights (tests, benchmarks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

import numpy as np
import PIL.Image

from ..devices import place, to_cpu_float, to_model
from ..errors import BadParameterError
from ..interface import InteractiveFunctionContext, InteractivePrompt, SegmentationResult
from ..registry import AutoCandidate, transformers_record
from ..seeding import seeded_torch
from ..signatures import declare
from ..weights import hf_weights
from .sam import InteractiveParameters, LoadingParameters, best_masks, create_parameters, use_multimask

#: SAM 2.1 sizes -> the registry name of their weights (its record, :data:`FUNCTION`).
SAM2_SIZES: dict[str, str] = {
    "tiny": "sam2.1-hiera-tiny",
    "small": "sam2.1-hiera-small",
    "base-plus": "sam2.1-hiera-base-plus",
    "large": "sam2.1-hiera-large",
}
EDGETAM_WEIGHTS = "edgetam"

# The Hiera image encoder of each released SAM 2.1 checkpoint, as sam2/configs/sam2.1/sam2.1_hiera_<size>.yaml
# in facebookresearch/sam2 gives it: embed_dim, num_heads, stages, global_att_blocks,
# window_pos_embed_bkg_spatial_size, window_spec. Like Hiera, each stage doubles the width and the heads.
# Used only for random weights (transformers' defaults are the tiny one).
_HIERA: dict[str, tuple[int, int, list[int], list[int], int, list[int]]] = {
    "tiny": (96, 1, [1, 2, 7, 2], [5, 7, 9], 7, [8, 4, 14, 7]),
    "small": (96, 1, [1, 2, 11, 2], [7, 10, 13], 7, [8, 4, 14, 7]),
    "base-plus": (112, 2, [2, 3, 16, 3], [12, 16, 20], 14, [8, 4, 14, 7]),
    "large": (144, 2, [2, 6, 36, 4], [23, 33, 43], 7, [8, 4, 16, 8]),
}


@dataclass(frozen=True)
class Sam2Encoding:
    """An image's SAM 2 / EdgeTAM embedding.

    ``embeddings``: the feature pyramid, float tensors [1, 32, 256, 256], [1, 64, 128, 128] and
    [1, 256, 64, 64] (high-resolution features first, the image embedding last);
    ``original_size``: (H, W) of the image in pixels.
    """

    embeddings: tuple[Any, ...]
    original_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return int(sum(t.element_size() * t.nelement() for t in self.embeddings))


class TransformersSamFunction:
    """A ``transformers`` SAM 2-family model (``Sam2Model``, ``EdgeTamModel``) with its processor as
    an interactive function. ``multimask``: ``"auto"``, ``True`` or ``False`` (see the module doc).
    """

    def __init__(self, model: Any, processor: Any, *, model_version: str, multimask: bool | str = "auto") -> None:
        import torch

        if multimask not in ("auto", True, False):
            raise BadParameterError(f"multimask must be 'auto', True or False, got {multimask!r}")
        self.model = model.eval()
        self.processor = processor
        self.model_version = model_version
        self.multimask = multimask
        self._torch = torch
        # The processor keeps no per-call state, but its image processor may cache resize helpers
        # lazily; one lock keeps its first calls from racing. Model calls need no lock.
        self._lock = threading.Lock()

    @property
    def device(self) -> Any:
        return self.model.device

    def encode(self, context: InteractiveFunctionContext, image: PIL.Image.Image) -> Sam2Encoding:
        """Run the image encoder on an RGB image (the expensive step)."""
        torch = self._torch
        rgb = image.convert("RGB")
        with self._lock:
            inputs = self.processor(images=rgb, return_tensors="pt")
        pixel_values = to_model(inputs["pixel_values"], self.model)
        with torch.inference_mode():
            embeddings = self.model.get_image_embeddings(pixel_values)
        return Sam2Encoding(tuple(embeddings), (rgb.height, rgb.width))

    def predict(
        self,
        encoding: Sam2Encoding,
        points: Sequence[Sequence[tuple[float, float]]] | None,
        labels: Sequence[Sequence[int]] | None,
        boxes: Sequence[Sequence[float]] | None,
        mask_input: Any = None,
        multimask: bool = False,
    ) -> list[SegmentationResult]:
        """One decoder call for N objects of one image, in pixels of the image.

        ``points``: N lists of (x, y), all of the same length (or None); ``labels``: N lists of
        1 (positive) / 0 (negative); ``boxes``: N boxes (x1, y1, x2, y2) (or None); ``mask_input``:
        previous logits 1 x 256 x 256 (only with N = 1). Returns one result per object: the mask
        (bool H x W), its predicted IoU clamped to [0, 1] and its low-resolution logits
        (float32 1 x 256 x 256); with ``multimask`` the best-scoring of three candidates.
        """
        torch = self._torch
        size = [list(encoding.original_size)]
        kwargs: dict[str, Any] = {}
        if points is not None:
            kwargs["input_points"] = [[[list(map(float, p)) for p in obj] for obj in points]]
            kwargs["input_labels"] = [[[int(v) for v in obj] for obj in labels or []]]
        if boxes is not None:
            kwargs["input_boxes"] = [[list(map(float, b)) for b in boxes]]
        with self._lock:
            prompt = self.processor(original_sizes=size, return_tensors="pt", **kwargs)
        model_inputs = {k: prompt[k] for k in ("input_points", "input_labels", "input_boxes") if k in prompt}
        if mask_input is not None:
            mask_t = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32)
            model_inputs["input_masks"] = mask_t.reshape(-1, 1, *mask_t.shape[-2:])
        model_inputs = to_model(model_inputs, self.model)
        with torch.inference_mode():
            out = self.model(image_embeddings=list(encoding.embeddings), multimask_output=multimask, **model_inputs)
            pred_masks, iou_scores = to_cpu_float((out.pred_masks, out.iou_scores))
            masks = self.processor.post_process_masks(pred_masks, size)[0]  # N x M x H x W bool
        return best_masks(masks, iou_scores[0], pred_masks[0])  # N x M (x 256 x 256)

    def segment(
        self, context: InteractiveFunctionContext, encoding: Sam2Encoding, prompt: InteractivePrompt
    ) -> list[SegmentationResult]:
        """Masks for a prompt: one per box, or one for clicks alone (in the order of the boxes)."""
        pos, neg = list(prompt.positive_points), list(prompt.negative_points)
        if len(prompt.boxes) <= 1:
            pts, lbl = _clicks(pos, neg)
            boxes = [prompt.boxes[0]] if prompt.boxes else None
            return self.predict(
                encoding,
                None if pts is None else [pts],
                None if lbl is None else [lbl],
                boxes,
                prompt.mask_input,
                use_multimask(self.multimask, len(pts or ()), boxes is not None),
            )
        # Several boxes: each takes the clicks inside it; objects with as many clicks go together.
        objects = []
        for box in prompt.boxes:
            inside = lambda p, box=box: box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]  # noqa: E731
            objects.append((box, *_clicks([p for p in pos if inside(p)], [p for p in neg if inside(p)])))
        results: list[SegmentationResult | None] = [None] * len(objects)
        by_count: dict[int, list[int]] = {}
        for i, (_, pts, _) in enumerate(objects):
            by_count.setdefault(len(pts or ()), []).append(i)
        for n, idx in by_count.items():
            group = self.predict(
                encoding,
                [objects[i][1] or [] for i in idx] if n else None,
                [objects[i][2] or [] for i in idx] if n else None,
                [objects[i][0] for i in idx],
                None,
                use_multimask(self.multimask, n, True),
            )
            for i, r in zip(idx, group):
                results[i] = r
        return [r for r in results if r is not None]

    def segment_boxes(
        self, context: InteractiveFunctionContext, encoding: Sam2Encoding, boxes: Sequence[Sequence[float]]
    ) -> list[SegmentationResult]:
        """One mask per box ``[x1, y1, x2, y2]``, all boxes in one decoder call."""
        if len(boxes) == 0:
            return []
        return self.predict(encoding, None, None, [tuple(map(float, b)) for b in boxes], None, False)


def _clicks(
    pos: Sequence[tuple[float, float]], neg: Sequence[tuple[float, float]]
) -> tuple[list[tuple[float, float]] | None, list[int] | None]:
    if not pos and not neg:
        return None, None
    return [*pos, *neg], [1] * len(pos) + [0] * len(neg)


# --------------------------------------------------------------------------------------------
# Building


def sam2_config(size: str = "tiny") -> Any:
    """The ``Sam2Config`` of a released SAM 2.1 checkpoint's architecture (for random weights)."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VisionConfig

    dim, heads, blocks, global_blocks, background, windows = _HIERA[_size(size)]
    hiera = Sam2HieraDetConfig(
        hidden_size=dim,
        num_attention_heads=heads,
        blocks_per_stage=blocks,
        embed_dim_per_stage=[dim * 2**i for i in range(len(blocks))],
        num_attention_heads_per_stage=[heads * 2**i for i in range(len(blocks))],
        global_attention_blocks=global_blocks,
        window_size_per_stage=windows,
        window_positional_embedding_background_size=[background, background],
    )
    channels = list(reversed(hiera.embed_dim_per_stage or []))
    return Sam2Config(vision_config=Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=channels))


def edgetam_config() -> Any:
    """The ``EdgeTamConfig`` of the released EdgeTAM checkpoint's architecture (for random weights).

    transformers' default EdgeTAM configuration misspells the timm key (``archirecture``) and so
    builds a ResNet-50 backbone; the released checkpoint uses RepViT-M1.
    """
    from transformers import EdgeTamConfig, EdgeTamVisionConfig, TimmWrapperConfig

    backbone = TimmWrapperConfig(
        architecture="repvit_m1.dist_in1k",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    return EdgeTamConfig(vision_config=EdgeTamVisionConfig(backbone_config=backbone))


def _size(size: str) -> str:
    s = str(size).lower().replace("_", "-")
    s = {"t": "tiny", "s": "small", "b+": "base-plus", "baseplus": "base-plus", "l": "large"}.get(s, s)
    if s not in SAM2_SIZES:
        raise BadParameterError(f"unknown SAM 2.1 size {size!r}; choose one of {list(SAM2_SIZES)}")
    return s


def multimask_setting(value: bool | str) -> bool | str:
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.lower(), value.lower())
    return value


@dataclass(frozen=True)
class Sam2Variant:
    """A released SAM 2-family checkpoint: its ``family`` (``sam2`` or ``edgetam``: the
    ``transformers`` classes that load it and the seed of its random weights), the registry name of
    its ``weights`` and the ``config`` of its image model (for random weights)."""

    family: str
    weights: str
    config: Callable[[], Any]


def variant(size: str) -> Sam2Variant:
    """The SAM 2.1 checkpoint of ``size`` (tiny, small, base-plus or large; short forms too)."""
    s = _size(size)
    return Sam2Variant("sam2", SAM2_SIZES[s], lambda: sam2_config(s))


#: The released EdgeTAM checkpoint (:mod:`autoannotate.functions.edgetam`).
EDGETAM = Sam2Variant("edgetam", EDGETAM_WEIGHTS, edgetam_config)


def load(variant: Sam2Variant, params: LoadingParameters, *, video: bool) -> tuple[Any, Any, str]:
    """Load (or, with ``pretrained=False``, build with random weights) a SAM 2-family model: the
    model, its processor and its version. ``video``: the video model (``Sam2VideoModel`` /
    ``EdgeTamVideoModel`` with ``Sam2VideoProcessor``; its version ends in ``-video``), else the
    image model (``Sam2Model`` / ``EdgeTamModel`` with ``Sam2Processor``).

    ``params``: ``checkpoint`` (a registry name, a Hugging Face repo id or a saved model folder;
    default the variant's weights), ``pretrained``, ``device`` and ``dtype`` (see
    :func:`autoannotate.devices.place`).
    """
    from transformers import (
        EdgeTamModel,
        EdgeTamVideoConfig,
        EdgeTamVideoModel,
        Sam2Model,
        Sam2Processor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
    )

    from ..weights import registry, resolve

    checkpoint, device, dtype = params["checkpoint"], params["device"], params["dtype"]
    image_class, video_class, video_config = {
        "sam2": (Sam2Model, Sam2VideoModel, Sam2VideoConfig),
        "edgetam": (EdgeTamModel, EdgeTamVideoModel, EdgeTamVideoConfig),
    }[variant.family]
    model_class: Any = video_class if video else image_class
    suffix = "-video" if video else ""
    if params["pretrained"]:
        name = checkpoint or variant.weights
        folder = resolve(name)
        model = model_class.from_pretrained(str(folder))
        # a folder holding only the model: the default processing
        no_processor = (OSError, ValueError, TypeError) if video else (OSError, ValueError)
        try:
            processor = (Sam2VideoProcessor if video else Sam2Processor).from_pretrained(str(folder))
        except no_processor:
            processor = default_processor(video)
        # a registry name, not the folder's name (a Hugging Face cache snapshot is a commit hash)
        version = f"{name if name in registry() else folder.name}{suffix}"
    else:
        config = variant.config()
        if video:
            config = video_config(vision_config=config.vision_config)
        with seeded_torch(variant.family, config.to_json_string()):  # the same random weights in any process
            model = model_class(config)
        processor = default_processor(video)
        version = f"{checkpoint or variant.weights}{suffix}.random"
    place(model, device, dtype)
    return model, processor, version


def default_processor(video: bool = False) -> Any:
    """SAM 2's default processing: ``Sam2Processor``, or with ``video`` ``Sam2VideoProcessor``."""
    from transformers import Sam2ImageProcessor, Sam2Processor, Sam2VideoProcessor, Sam2VideoVideoProcessor

    if video:
        return Sam2VideoProcessor(image_processor=Sam2ImageProcessor(), video_processor=Sam2VideoVideoProcessor())
    return Sam2Processor(image_processor=Sam2ImageProcessor())


class Sam2Parameters(InteractiveParameters, total=False):
    """The parameters of :func:`create`."""

    size: str


def build(variant: Sam2Variant, params: InteractiveParameters) -> TransformersSamFunction:
    """The interactive function of a SAM 2-family checkpoint (``params``: see :func:`create`)."""
    model, processor, version = load(variant, params, video=False)
    return TransformersSamFunction(
        model, processor, model_version=version, multimask=multimask_setting(params["multimask"])
    )


@declare({"size": "tiny", **create_parameters(multimask="auto")}, Sam2Parameters)
def create(**params: Unpack[Sam2Parameters]) -> TransformersSamFunction:
    """SAM 2.1 on transformers.

    ``size``: tiny, small, base-plus or large. ``checkpoint``: a saved Hugging Face model folder, a
    repo id or a registry name (default: ``sam2.1-hiera-<size>`` found in ``AUTOANNOTATE_MODELS``,
    the cache or the Hugging Face cache, else downloaded). ``pretrained=False`` builds the
    architecture with random weights (tests, benchmarks). ``device``: auto, cpu, cuda or cuda:N;
    ``dtype``: float32, bfloat16 or float16 (default ``AUTOANNOTATE_DEVICE`` / ``AUTOANNOTATE_DTYPE``,
    else auto / float32; see :mod:`autoannotate.devices`). ``multimask``: auto, true or false.
    """
    return build(variant(params["size"]), params)


def weights_available(size: str = "tiny") -> bool:
    """Whether the SAM 2.1 ``size`` weights are already on this machine (no download)."""
    from ..weights import is_present

    return is_present(SAM2_SIZES[_size(size)])


#: This function in the registry (:mod:`autoannotate.registry`). ``auto`` prefers SAM 2.1 to the
#: original SAM: on a CPU the smallest first (an annotator waits on the encoder), on a GPU the largest.
FUNCTION = transformers_record(
    "sam2",
    "interactive",
    weights={w: hf_weights(w, f"facebook/{w}", "Apache-2.0") for w in SAM2_SIZES.values()},
    auto=tuple(
        AutoCandidate({"size": size}, w, cpu_rank=1 + i, gpu_rank=3 - i)
        for i, (size, w) in enumerate(SAM2_SIZES.items())
    ),
)
