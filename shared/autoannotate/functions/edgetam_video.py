"""EdgeTAM video propagation (``EdgeTamVideoModel`` on ``transformers``) as a multi-object tracking
function: the same function as ``sam2_video`` (:class:`autoannotate.functions.sam2_video.VideoSamTracker`),
with EdgeTAM's RepViT image encoder and its compressed memory (fast on a CPU). Weights: the
``edgetam`` entry of ``autoannotate weights list``."""

from __future__ import annotations

from ..registry import transformers_record
from ..weights import availability
from .sam2 import EDGETAM, EDGETAM_WEIGHTS, load
from .sam2_video import VideoSamTracker


def create(
    checkpoint: str | None = None,
    pretrained: bool = True,
    device: str | None = None,
    min_score: float = 0.5,
    min_pixels: int = 16,
    dtype: str | None = None,
) -> VideoSamTracker:
    """EdgeTAM video propagation on transformers; the parameters of
    :func:`autoannotate.functions.sam2_video.create` without ``size`` (default weights: ``edgetam``)."""
    model, processor, version = load(EDGETAM, checkpoint, pretrained, device, dtype, video=True)
    return VideoSamTracker(model, processor, model_version=version, min_score=min_score, min_pixels=min_pixels)


#: Whether its weights are already on this machine (no download).
weights_available = availability(EDGETAM_WEIGHTS)


#: This function in the registry (:mod:`autoannotate.registry`); its weights are EdgeTAM's (``edgetam``).
FUNCTION = transformers_record(
    "edgetam_video",
    "tracking",
)
