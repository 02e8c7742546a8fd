"""Tiny Hugging Face checkpoints with random weights (fixed seed), saved with ``save_pretrained``:
what the ``transformers`` function's tests and ``bench/byom.py`` load. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABELS = {0: "cat", 1: "dog", 2: "car"}


def _labels() -> dict[str, Any]:
    return {"id2label": dict(LABELS), "label2id": {v: k for k, v in LABELS.items()}}


def _save(folder: Path, model: Any, processor: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def detector(folder: Path) -> Path:
    """YOLOS (a ViT detector, 64 px input): ``object-detection``."""
    import torch
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    torch.manual_seed(0)
    cfg = YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                      image_size=[64, 96], patch_size=16, num_detection_tokens=10, **_labels())  # fmt: skip
    model = YolosForObjectDetection(cfg)
    proc = YolosImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    return _save(folder, model, proc)


def semantic(folder: Path) -> Path:
    """SegFormer (64 px): ``semantic-segmentation``."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    torch.manual_seed(0)
    cfg = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                          num_attention_heads=[1, 2], patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2],
                          decoder_hidden_size=32, **_labels())  # fmt: skip
    model = SegformerForSemanticSegmentation(cfg)
    return _save(folder, model, SegformerImageProcessor(size={"height": 64, "width": 64}))


def universal(folder: Path) -> Path:
    """Mask2Former on a tiny Swin (64 px): ``panoptic-segmentation`` / ``instance-segmentation``."""
    import torch
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        SwinConfig,
    )

    torch.manual_seed(0)
    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=2, image_size=64,
                          out_features=["stage1", "stage2", "stage3", "stage4"])  # fmt: skip
    cfg = Mask2FormerConfig(backbone_config=backbone, hidden_dim=32, mask_feature_size=32, feature_size=32,
                            encoder_layers=1, decoder_layers=2, num_attention_heads=2, dim_feedforward=32,
                            encoder_feedforward_dim=32, num_queries=10, common_stride=4, **_labels())  # fmt: skip
    model = Mask2FormerForUniversalSegmentation(cfg)
    with torch.no_grad():  # confident queries: panoptic post-processing keeps a mask only where score x mask >= 0.5
        model.class_predictor.bias.copy_(torch.tensor([6.0, 5.0, 0.0, -6.0]))
    proc = Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}, size_divisor=32)
    return _save(folder, model, proc)


def classifier(folder: Path) -> Path:
    """ViT (32 px): ``image-classification``."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32,
                    patch_size=8, **_labels())  # fmt: skip
    return _save(folder, ViTForImageClassification(cfg), ViTImageProcessor(size={"height": 32, "width": 32}))


def zero_shot_classifier(folder: Path) -> Path:
    """CLIP (32 px, a character-level tokenizer): ``zero-shot-image-classification``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from autoannotate.functions.open_vocab import char_clip_tokenizer, clip_token_ids

    torch.manual_seed(0)
    tok = char_clip_tokenizer(64)
    cfg = CLIPConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "intermediate_size": 37, "max_position_embeddings": 64, **clip_token_ids(tok)},
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32), tokenizer=tok)
    return _save(folder, CLIPModel(cfg), proc)


def zero_shot_detector(folder: Path) -> Path:
    """OWLv2 (64 px): ``zero-shot-object-detection``."""
    import torch
    from transformers import Owlv2Config

    from autoannotate.functions.open_vocab import char_clip_tokenizer, clip_token_ids
    from autoannotate.functions.owlv2 import random_model

    torch.manual_seed(0)
    tok = char_clip_tokenizer(16)
    cfg = Owlv2Config(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "intermediate_size": 37, **clip_token_ids(tok)},
        vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37,
                       "image_size": 64, "patch_size": 16},
        projection_dim=32,
    )  # fmt: skip
    model, proc = random_model(cfg)
    return _save(folder, model, proc)


ALL = {
    "object-detection": detector,
    "semantic-segmentation": semantic,
    "panoptic-segmentation": universal,
    "image-classification": classifier,
    "zero-shot-image-classification": zero_shot_classifier,
    "zero-shot-object-detection": zero_shot_detector,
}
