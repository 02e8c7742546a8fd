"""Grounding DINO (open-set box detector, IDEA Research) on ``transformers``: class names in,
boxes out.

The prompts are joined into one caption, ``"stop sign. yield sign."`` (lower case, dots in a
prompt become spaces), so one forward pass covers every class of a group of images; captions
longer than the model's text length (256 tokens) are split into several. The library's processor
and ``post_process_grounded_object_detection`` give the boxes and scores (a box's score is its
best token's probability); the box's class is the prompt holding its best-scoring token.

Usage: ``autoannotate annotate photos/ --function grounding_dino --classes "forklift,pallet"``.
Weights: ``grounding-dino-tiny`` (IDEA-Research/grounding-dino-tiny) from ``autoannotate weights list``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Unpack

import numpy as np
import PIL.Image

from ..devices import to_cpu_float, to_model
from ..errors import BadParameterError
from ..registry import transformers_record
from ..settings import DTYPE_ENV, default_dtype, dtype_name
from ..weights import availability, hf_weights
from .open_vocab import (
    Detections,
    OpenVocabularyFunction,
    OpenVocabularyParameters,
    char_bert_tokenizer,
    create_signature,
)

DEFAULT_WEIGHTS = "grounding-dino-tiny"
log = logging.getLogger(__name__)


def float32_only(dtype: str | None) -> str:
    """Grounding DINO runs in float32: in bfloat16 (weights cast or under autocast) its scores and
    boxes move far from float32's (tests/functions/test_devices.py: 40 % of a tiny model's queries
    off by more than 0.05 or 4 px, scores up to 0.88 apart). A half precision asked for by the
    caller is refused; one from ``AUTOANNOTATE_DTYPE`` (meant for the other models) is logged."""
    if dtype is not None and dtype_name(dtype) != "float32":
        raise BadParameterError(
            f"grounding_dino runs in float32 only (dtype={dtype!r}): its scores and boxes in half precision "
            "are far from float32's; leave dtype unset or use float32"
        )
    if dtype is None and default_dtype() != "float32":
        log.warning("grounding_dino runs in float32 only: %s=%s is not used for it", DTYPE_ENV, default_dtype())
    return "float32"


def caption_prompt(prompt: str) -> str:
    """A prompt as it goes into the caption: lower case, no dots (they separate prompts)."""
    return " ".join(prompt.replace(".", " ").lower().split()) or "object"


class GroundingDinoFunction(OpenVocabularyFunction):
    """A ``GroundingDinoForObjectDetection`` model with its processor as a detection function.
    ``text_threshold`` is passed to the library's post-processing (it only names phrases there)."""

    label_type = "rectangle"

    def _set_classes(self, classes: Any, prompts: Any) -> None:
        super()._set_classes(classes, prompts)
        # the captions follow the prompts (built here, on creation and in for_classes())
        self.captions = self._captions(int(getattr(self.model.config, "max_text_len", 256)))

    def _captions(self, max_tokens: int) -> list[tuple[str, list[int]]]:
        """Groups of prompts whose caption fits ``max_tokens``: ``(caption, prompt indices)``."""
        tok = self.processor.tokenizer
        groups: list[tuple[str, list[int]]] = []
        texts: list[str] = []
        idx: list[int] = []
        for i, p in enumerate(self.prompt_texts):
            candidate = texts + [caption_prompt(p)]
            if texts and len(tok(". ".join(candidate) + ".")["input_ids"]) > max_tokens:
                groups.append((". ".join(texts) + ".", idx))
                texts, idx = [caption_prompt(p)], [i]
            else:
                texts, idx = candidate, idx + [i]
        groups.append((". ".join(texts) + ".", idx))
        return groups

    def _token_prompts(self, input_ids: Any, prompt_idx: list[int]) -> np.ndarray:
        """For each token position, the prompt index it belongs to (-1: special tokens and dots)."""
        tok = self.processor.tokenizer
        dot = tok.convert_tokens_to_ids(".")
        specials = set(tok.all_special_ids)
        out = np.full(len(input_ids), -1, dtype=np.int64)
        k = 0
        for pos, t in enumerate(input_ids.tolist()):
            if t == dot:
                k += 1
            elif t not in specials and k < len(prompt_idx):
                out[pos] = prompt_idx[k]
        return out

    def predict(self, images: Sequence[PIL.Image.Image], threshold: float) -> list[Detections]:
        torch = self._torch
        parts: list[list[Detections]] = [[] for _ in images]
        for caption, prompt_idx in self.captions:
            with self._lock:
                inputs = self.processor(images=list(images), text=[caption] * len(images), return_tensors="pt")
            inputs = to_model(inputs, self.model)
            with torch.inference_mode():
                out = to_cpu_float(self.model(**inputs))
                post = self.processor.post_process_grounded_object_detection(
                    out,
                    inputs["input_ids"],
                    threshold=threshold,
                    text_threshold=threshold,
                    target_sizes=[(im.height, im.width) for im in images],
                )
            probs = out.logits.sigmoid().float().cpu()
            for i, r in enumerate(post):
                tokens = self._token_prompts(inputs["input_ids"][i].cpu(), prompt_idx)
                keep = probs[i].max(dim=-1).values > threshold  # the queries the post-processing kept
                p = probs[i][keep][:, : len(tokens)].numpy()
                p = np.where(tokens[None, :] >= 0, p, -1.0)
                best = tokens[p.argmax(axis=1)] if len(p) else np.zeros(0, dtype=np.int64)
                parts[i].append(
                    Detections(
                        boxes=r["boxes"].float().cpu().numpy().astype(np.float64),
                        scores=r["scores"].float().cpu().numpy().astype(np.float64),
                        prompts=best.astype(np.int64),
                    )
                )
        return [
            Detections(
                boxes=np.concatenate([d.boxes.reshape(-1, 4) for d in ds]),
                scores=np.concatenate([d.scores for d in ds]),
                prompts=np.concatenate([d.prompts for d in ds]),
            )
            for ds in parts
        ]


def random_model(config: Any = None) -> tuple[Any, Any]:
    """``(model, processor)`` with random weights: ``config`` (default: grounding-dino-tiny's
    architecture, Swin-T + BERT-base) and a character-level tokenizer (see ``open_vocab``)."""
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    tokenizer = char_bert_tokenizer()
    if config is None:
        config = GroundingDinoConfig(text_config={"model_type": "bert", "vocab_size": len(tokenizer)})
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer)
    return GroundingDinoForObjectDetection(config), processor


@create_signature(DEFAULT_WEIGHTS, {"default_conf_threshold": 0.3, "nms_threshold": 0.5, "max_detections": 100})
def create(**params: Unpack[OpenVocabularyParameters]) -> GroundingDinoFunction:
    """Grounding DINO on transformers.

    ``dtype``: float32 only (see :func:`float32_only`).
    """
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

    params["dtype"] = float32_only(params.get("dtype"))
    return GroundingDinoFunction.build(
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
        random_model,
        DEFAULT_WEIGHTS,
        params,
    )


#: Whether its weights are already on this machine (no download).
weights_available = availability(DEFAULT_WEIGHTS)


#: This function in the registry (:mod:`autoannotate.registry`).
FUNCTION = transformers_record(
    "grounding_dino",
    weights={
        "grounding-dino-tiny": hf_weights("grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny", "Apache-2.0")
    },
    open_vocabulary=True,
)
