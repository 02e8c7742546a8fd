"""EdgeTAM video propagation (``EdgeTamVideoModel`` on ``transformers``) as a multi-object tracking
function: the same function as ``sam2_video`` (:class:`autoannotate.functions.sam2_video.VideoSamTracker`),
with EdgeTAM's RepViT image encoder and its compressed memory (fast on a CPU). Weights: the
``edgetam`` entry of ``autoannotate weights list``."""

from __future__ import annotations

from ..registry import FunctionRecord
from .sam2_video import VideoSamTracker, create_edgetam


def create(
    checkpoint: str | None = None,
    pretrained: bool = True,
    device: str | None = None,
    min_score: float = 0.5,
    min_pixels: int = 16,
    dtype: str | None = None,
) -> VideoSamTracker:
    """EdgeTAM video propagation. ``checkpoint``: a saved Hugging Face model folder, a repo id or a
    registry name (default: ``edgetam``). ``pretrained=False`` builds the architecture with random
    weights. ``device``: auto, cpu, cuda or cuda:N; ``dtype``: float32, bfloat16 or float16 (see
    :mod:`autoannotate.devices`). An object is lost when its object score (0..1) falls
    below ``min_score`` or its mask has fewer than ``min_pixels`` pixels."""
    return create_edgetam(
        checkpoint=checkpoint,
        pretrained=pretrained,
        device=device,
        min_score=min_score,
        min_pixels=min_pixels,
        dtype=dtype,
    )


def weights_available() -> bool:
    """Whether the EdgeTAM weights are already on this machine (no download)."""
    from ..weights import is_present

    return is_present("edgetam")


#: This function in the registry (:mod:`autoannotate.registry`); its weights are EdgeTAM's (``edgetam``).
FUNCTION = FunctionRecord(
    name="edgetam_video",
    kind="tracking",
    extras=("transformers",),
    requires=("transformers", "torch"),
    license="Apache-2.0",
)
