"""SAM 3 (promptable concept segmentation, Meta) on ``transformers``: class names in, instance
masks (with boxes and scores) out.

SAM 3 takes one text prompt per forward pass. Each image is encoded once (the expensive step);
the vision features are then shared by every prompt: (image, prompt) pairs go through the
detector and mask decoder together, ``pairs_per_pass`` at a time, and each prompt's text is
encoded once per batch. The library's ``post_process_instance_segmentation`` gives scores, boxes
and masks at the image's size. Detections of two prompts of the same class that overlap are
resolved by class-wise NMS on their boxes (the best-scoring wins).

Shapes are masks; ``conv_mask_to_poly`` (polygon outputs) converts them. Weights: ``sam3``
(facebook/sam3) from ``autoannotate weights list``. SAM 3 is a GPU model: about 40 s per image
on 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import numpy as np
import PIL.Image

from ..devices import to_cpu_float, to_model
from ..errors import BadParameterError
from ..registry import transformers_record
from ..weights import availability, hf_weights
from .open_vocab import (
    Detections,
    OpenVocabularyFunction,
    OpenVocabularyParameters,
    create_signature,
    random_clip_text,
)

DEFAULT_WEIGHTS = "sam3"


class Sam3Function(OpenVocabularyFunction):
    """A ``Sam3Model`` with its processor as a detection function returning masks.
    ``mask_threshold``: mask probability above which a pixel is in the mask."""

    # "any": the labels carry masks, or polygons when the caller asks (``conv_mask_to_poly``)
    label_type = "any"

    def __init__(
        self,
        model: Any,
        processor: Any,
        classes: Any,
        prompts: Any = None,
        *,
        mask_threshold: float = 0.5,
        pairs_per_pass: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, processor, classes, prompts, **kwargs)
        if int(pairs_per_pass) < 1:
            raise BadParameterError(f"pairs_per_pass must be >= 1, got {pairs_per_pass}")
        self.mask_threshold = float(mask_threshold)
        self.pairs_per_pass = int(pairs_per_pass)

    def predict(self, images: Sequence[PIL.Image.Image], threshold: float) -> list[Detections]:
        from transformers.modeling_outputs import BaseModelOutputWithPooling
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        torch = self._torch
        device = self.model.device
        with self._lock:
            pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
            text = self.processor(text=self.prompt_texts, return_tensors="pt")
        pairs = [(i, p) for i in range(len(images)) for p in range(len(self.prompt_texts))]
        found: list[list[tuple[int, dict]]] = [[] for _ in images]
        with torch.inference_mode():
            vision = self.model.get_vision_features(pixel_values=to_model(pixels, self.model))
            ids, attn = to_model((text["input_ids"], text["attention_mask"]), self.model)
            pooled = self.model.get_text_features(input_ids=ids, attention_mask=attn).pooler_output
            for start in range(0, len(pairs), self.pairs_per_pass):
                chunk = pairs[start : start + self.pairs_per_pass]
                img = torch.tensor([i for i, _ in chunk], device=device)
                pr = torch.tensor([p for _, p in chunk], device=device)
                embeds = Sam3VisionEncoderOutput(
                    last_hidden_state=vision.last_hidden_state[img],
                    fpn_hidden_states=tuple(t[img] for t in vision.fpn_hidden_states),
                    fpn_position_encoding=tuple(t[img] for t in vision.fpn_position_encoding),
                )
                out = self.model(
                    vision_embeds=embeds,
                    text_embeds=BaseModelOutputWithPooling(pooler_output=pooled[pr]),
                    attention_mask=attn[pr],
                )
                # what the post-processing reads, in float32 where it is (masks upsampled on the device)
                keys = ("pred_logits", "pred_boxes", "pred_masks", "presence_logits")
                out = type(out)(**to_cpu_float({k: out[k] for k in keys if out.get(k) is not None}, device=device))
                post = self.processor.post_process_instance_segmentation(
                    out,
                    threshold=threshold,
                    mask_threshold=self.mask_threshold,
                    target_sizes=[(images[i].height, images[i].width) for i, _ in chunk],
                )
                for (i, p), r in zip(chunk, post):
                    found[i].append((p, r))
        results = []
        for im, items in zip(images, found):
            n = [len(r["scores"]) for _, r in items]
            results.append(
                Detections(
                    boxes=np.concatenate([r["boxes"].float().cpu().numpy().reshape(-1, 4) for _, r in items]),
                    scores=np.concatenate([r["scores"].float().cpu().numpy() for _, r in items]),
                    prompts=np.repeat([p for p, _ in items], n).astype(np.int64),
                    masks=np.concatenate(
                        [r["masks"].cpu().numpy().astype(bool).reshape(-1, im.height, im.width) for _, r in items]
                    ),
                )
            )
        return results


def random_model(config: Any = None) -> tuple[Any, Any]:
    """``(model, processor)`` with random weights: ``config`` (default: the facebook/sam3
    architecture, 1008 px input) and a character-level tokenizer (see ``open_vocab``)."""
    from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    tokenizer, text_config = random_clip_text(
        32,
        hidden_size=1024,
        intermediate_size=4096,
        projection_dim=512,
        num_hidden_layers=24,
        num_attention_heads=16,
        max_position_embeddings=32,
        hidden_act="gelu",
    )
    if config is None:
        config = Sam3Config(text_config=text_config)
    side = config.vision_config.backbone_config.image_size
    processor = Sam3Processor(
        image_processor=Sam3ImageProcessor(size={"height": side, "width": side}), tokenizer=tokenizer
    )
    return Sam3Model(config), processor


class Sam3Parameters(OpenVocabularyParameters, total=False):
    """SAM 3's ``create`` parameters: the open-vocabulary ones and its own."""

    mask_threshold: float
    pairs_per_pass: int


SETTINGS = {
    "default_conf_threshold": 0.3,
    "mask_threshold": 0.5,
    "nms_threshold": 0.5,
    "max_detections": 100,
    "pairs_per_pass": 8,
}


@create_signature(DEFAULT_WEIGHTS, SETTINGS, Sam3Parameters)
def create(**params: Unpack[Sam3Parameters]) -> Sam3Function:
    """SAM 3 on transformers.

    ``mask_threshold``: mask probability cut; ``pairs_per_pass``: (image, prompt) pairs per
    decoder pass (memory).
    """
    from transformers import Sam3Model, Sam3Processor

    return Sam3Function.build(Sam3Model, Sam3Processor, random_model, DEFAULT_WEIGHTS, params)


#: Whether its weights are already on this machine (no download).
weights_available = availability(DEFAULT_WEIGHTS)


#: This function in the registry (:mod:`autoannotate.registry`).
FUNCTION = transformers_record(
    "sam3",
    weights={"sam3": hf_weights("sam3", "facebook/sam3", "SAM License")},
    license="SAM License (the weights; gated on Hugging Face)",
    open_vocabulary=True,
)
