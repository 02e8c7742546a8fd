"""EdgeTAM video propagation (``EdgeTamVideoModel`` on ``transformers``) as a multi-object tracking
function: the same function as ``sam2_video`` (:class:`autoannotate.functions.sam2_video.VideoSamTracker`),
with EdgeTAM's RepViT image encoder and its compressed memory (fast on a CPU). Weights: the
``edgetam`` entry of ``autoannotate weights list``."""

from __future__ import annotations

from typing import Unpack

from ..registry import transformers_record
from ..signatures import declare
from ..weights import availability
from .sam import create_parameters
from .sam2 import EDGETAM, EDGETAM_WEIGHTS
from .sam2_video import VideoParameters, VideoSamTracker, build


@declare(create_parameters(min_score=0.5, min_pixels=16), VideoParameters)
def create(**params: Unpack[VideoParameters]) -> VideoSamTracker:
    """EdgeTAM video propagation on transformers; the parameters of
    :func:`autoannotate.functions.sam2_video.create` without ``size`` (default weights: ``edgetam``)."""
    return build(EDGETAM, params)


#: Whether its weights are already on this machine (no download).
weights_available = availability(EDGETAM_WEIGHTS)


#: This function in the registry (:mod:`autoannotate.registry`); its weights are EdgeTAM's (``edgetam``).
FUNCTION = transformers_record(
    "edgetam_video",
    "tracking",
)
