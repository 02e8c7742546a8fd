"""EdgeTAM (SAM 2 distilled onto a RepViT image encoder, CPU-fast) as an interactive function.

The same function as ``sam2`` (:class:`autoannotate.functions.sam2.TransformersSamFunction`):
clicks, boxes, several objects at once, refinement from previous logits, multimask output with
the best mask kept. Weights: the ``edgetam`` entry of ``autoannotate weights list``.
"""

from __future__ import annotations

from typing import Unpack

from ..registry import AutoCandidate, transformers_record
from ..signatures import declare
from ..weights import availability, hf_weights
from .sam import InteractiveParameters, create_parameters
from .sam2 import EDGETAM, EDGETAM_WEIGHTS, TransformersSamFunction, build


@declare(create_parameters(multimask="auto"), InteractiveParameters)
def create(**params: Unpack[InteractiveParameters]) -> TransformersSamFunction:
    """EdgeTAM on transformers; the parameters of :func:`autoannotate.functions.sam2.create` without
    ``size`` (default weights: ``edgetam``, found in ``AUTOANNOTATE_MODELS``, the cache or the Hugging
    Face cache, else downloaded)."""
    return build(EDGETAM, params)


#: Whether its weights are already on this machine (no download).
weights_available = availability(EDGETAM_WEIGHTS)


#: This function in the registry (:mod:`autoannotate.registry`): ``auto``'s first choice on a CPU
#: (the fastest encoder), after every SAM 2.1 size on a GPU.
FUNCTION = transformers_record(
    "edgetam",
    "interactive",
    weights={EDGETAM_WEIGHTS: hf_weights(EDGETAM_WEIGHTS, "yonigozlan/EdgeTAM-hf", "Apache-2.0")},
    auto=(AutoCandidate({}, EDGETAM_WEIGHTS, cpu_rank=0, gpu_rank=4),),
)
