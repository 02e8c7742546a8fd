"""OWLv2 (open-vocabulary box detector, Google) on ``transformers``: class names in, boxes out.

One forward pass per group of images covers every prompt of every class (OWLv2 scores each of its
box proposals against all text queries at once; a box takes its best-scoring query, so where
several prompts of a class compete the best one wins). The library's processor and
``post_process_grounded_object_detection`` do the work; OWLv2 pads each image to a square at its
bottom/right before resizing, so boxes are scaled by the padded square's side and clipped to the
image. Prompts longer than the text encoder's 16 tokens are cut. OWLv2 keeps overlapping proposals: class-wise NMS (``nms_threshold``) removes duplicates.

Usage: ``autoannotate annotate photos/ --function owlv2 --classes "stop sign:bbox,yield:bbox"``.
Weights: ``owlv2-base`` (google/owlv2-base-patch16-ensemble) from ``autoannotate weights list``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import numpy as np
import PIL.Image

from ..devices import to_cpu_float, to_model
from ..registry import transformers_record
from ..weights import availability, hf_weights
from .open_vocab import (
    Detections,
    OpenVocabularyFunction,
    OpenVocabularyParameters,
    create_signature,
    random_clip_text,
)

DEFAULT_WEIGHTS = "owlv2-base"


class Owlv2Function(OpenVocabularyFunction):
    """An ``Owlv2ForObjectDetection`` model with its processor as a detection function."""

    label_type = "rectangle"

    def predict(self, images: Sequence[PIL.Image.Image], threshold: float) -> list[Detections]:
        torch = self._torch
        with self._lock:
            inputs = self.processor(
                images=list(images), text=[self.prompt_texts] * len(images), truncation=True, return_tensors="pt"
            )
        inputs = to_model(inputs, self.model)
        with torch.inference_mode():
            out = to_cpu_float(self.model(**inputs))
            sides = [(max(im.size), max(im.size)) for im in images]  # the padded square, (h, w)
            post = self.processor.post_process_grounded_object_detection(out, threshold=threshold, target_sizes=sides)
        return [
            Detections(
                boxes=r["boxes"].float().cpu().numpy().astype(np.float64),
                scores=r["scores"].float().cpu().numpy().astype(np.float64),
                prompts=r["labels"].cpu().numpy().astype(np.int64),
            )
            for r in post
        ]


def random_model(config: Any = None) -> tuple[Any, Any]:
    """``(model, processor)`` with random weights: ``config`` (default: the owlv2-base-patch16
    architecture, 960 px input) and a character-level tokenizer (see ``open_vocab``)."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tokenizer, text_config = random_clip_text(16)
    if config is None:
        config = Owlv2Config(
            text_config=text_config,
            vision_config={"image_size": 960, "patch_size": 16},
        )
    side = config.vision_config.image_size
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": side, "width": side}), tokenizer=tokenizer
    )
    return Owlv2ForObjectDetection(config), processor


@create_signature(DEFAULT_WEIGHTS, {"default_conf_threshold": 0.1, "nms_threshold": 0.3, "max_detections": 100})
def create(**params: Unpack[OpenVocabularyParameters]) -> Owlv2Function:
    """OWLv2 on transformers."""
    from transformers import Owlv2ForObjectDetection, Owlv2Processor

    return Owlv2Function.build(Owlv2ForObjectDetection, Owlv2Processor, random_model, DEFAULT_WEIGHTS, params)


#: Whether its weights are already on this machine (no download).
weights_available = availability(DEFAULT_WEIGHTS)


__all__ = ["Owlv2Function", "create", "random_model", "weights_available"]


#: This function in the registry (:mod:`autoannotate.registry`).
FUNCTION = transformers_record(
    "owlv2",
    weights={"owlv2-base": hf_weights("owlv2-base", "google/owlv2-base-patch16-ensemble", "Apache-2.0")},
    open_vocabulary=True,
)
