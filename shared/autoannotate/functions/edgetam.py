"""EdgeTAM (SAM 2 distilled onto a RepViT image encoder, CPU-fast) as an interactive function.

The same function as ``sam2`` (:class:`autoannotate.functions.sam2.TransformersSamFunction`):
clicks, boxes, several objects at once, refinement from previous logits, multimask output with
the best mask kept. Weights: the ``edgetam`` entry of ``autoannotate weights list``.
"""

from __future__ import annotations

from ..registry import AutoCandidate, FunctionRecord
from ..weights import hf_weights
from .sam2 import EDGETAM_WEIGHTS, TransformersSamFunction, create_edgetam


def create(
    checkpoint: str | None = None,
    pretrained: bool = True,
    device: str | None = None,
    multimask: str = "auto",
    dtype: str | None = None,
) -> TransformersSamFunction:
    """EdgeTAM on transformers. ``checkpoint``: a saved Hugging Face model folder, a repo id or a
    registry name (default: ``edgetam`` found in ``AUTOANNOTATE_MODELS``, the cache or the Hugging
    Face cache, else downloaded). ``pretrained=False`` builds the architecture with random weights.
    ``device``: auto, cpu, cuda or cuda:N; ``dtype``: float32, bfloat16 or float16 (see
    :mod:`autoannotate.devices`). ``multimask``: auto, true or false."""
    return create_edgetam(checkpoint=checkpoint, pretrained=pretrained, device=device, multimask=multimask, dtype=dtype)


def weights_available() -> bool:
    """Whether the EdgeTAM weights are already on this machine (no download)."""
    from ..weights import is_present

    return is_present("edgetam")


#: This function in the registry (:mod:`autoannotate.registry`): ``auto``'s first choice on a CPU
#: (the fastest encoder), after every SAM 2.1 size on a GPU.
FUNCTION = FunctionRecord(
    name="edgetam",
    kind="interactive",
    extras=("transformers",),
    requires=("transformers", "torch"),
    weights={EDGETAM_WEIGHTS: hf_weights(EDGETAM_WEIGHTS, "yonigozlan/EdgeTAM-hf", "Apache-2.0")},
    auto=(AutoCandidate({}, EDGETAM_WEIGHTS, cpu_rank=0, gpu_rank=4),),
    license="Apache-2.0",
)
