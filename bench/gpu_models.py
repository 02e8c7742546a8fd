"""The models of bench/gpu.py: every torch family at real size with random weights, or (``quick``)
the tiny test configurations of tests/functions, on a device in a precision."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared"))

INTERACTIVE = ("sam_vit_b", "sam2_tiny", "sam2_large", "edgetam")
VIDEO = ("sam2_video", "edgetam_video")
DETECTORS = ("owlv2", "grounding_dino", "sam3", "torchvision_detection", "torchvision_classification")
FAMILIES = INTERACTIVE + VIDEO + DETECTORS
CLASSES = ["person", "car", "dog"]


# --------------------------------------------------------------------------------------------
# models


def build(name: str, device: str, dtype: str, quick: bool) -> Any:
    """The family's function at real size with random weights (``quick``: the tiny test models)."""
    import torch

    from autoannotate import devices

    if quick:
        return build_tiny(name, device, dtype)
    dev = devices.resolve_device(device)
    with torch.device(dev):  # random weights initialised on the device (seconds, not minutes)
        return build_real(name, device, dtype)


def build_real(name: str, device: str, dtype: str) -> Any:
    from autoannotate.functions import (
        edgetam,
        edgetam_video,
        grounding_dino,
        owlv2,
        sam,
        sam2,
        sam2_video,
        sam3,
        torchvision_classification,
        torchvision_detection,
    )

    kw: dict[str, Any] = {"pretrained": False, "device": device, "dtype": dtype}
    if name == "sam_vit_b":
        return sam.create("vit_b", **kw)
    if name == "sam2_tiny":
        return sam2.create("tiny", **kw)
    if name == "sam2_large":
        return sam2.create("large", **kw)
    if name == "edgetam":
        return edgetam.create(**kw)
    if name == "sam2_video":
        return sam2_video.create("tiny", min_score=0.0, min_pixels=0, **kw)
    if name == "edgetam_video":
        return edgetam_video.create(min_score=0.0, min_pixels=0, **kw)
    if name == "owlv2":
        return owlv2.create(CLASSES, **kw)
    if name == "grounding_dino":
        return grounding_dino.create(CLASSES, **kw)
    if name == "sam3":
        return sam3.create(CLASSES, **kw)
    if name == "torchvision_detection":
        return torchvision_detection.create("fasterrcnn_resnet50_fpn_v2", box_score_thresh=0.0, **kw)
    if name == "torchvision_classification":
        return torchvision_classification.create("resnet50", topk=5, **kw)
    raise SystemExit(f"unknown family {name!r}; known: {', '.join(FAMILIES)}")


def build_tiny(name: str, device: str, dtype: str) -> Any:
    import importlib

    import torch

    from autoannotate import devices
    from autoannotate.functions import (
        grounding_dino,
        owlv2,
        sam,
        sam2,
        sam3,
        torchvision_classification,
        torchvision_detection,
    )

    if name == "sam_vit_b":
        torch.manual_seed(0)
        model = importlib.import_module("segment_anything.build_sam")._build_sam(32, 2, 2, [1], None)
        devices.place(model, device, "float32")
        devices.place(model.image_encoder, device, dtype)
        return sam.SamFunction(model, model_version="tiny")
    if name in ("sam2_tiny", "sam2_large", "edgetam"):
        from tests.functions.test_sam2 import tiny_model, tiny_processor

        model = devices.place(tiny_model("edgetam" if name == "edgetam" else "sam2"), device, dtype)
        return sam2.TransformersSamFunction(model, tiny_processor(), model_version="tiny")
    if name in VIDEO:
        from tests.functions.sam2_video_tiny import tiny_video_tracker

        fn = tiny_video_tracker("sam2" if name == "sam2_video" else "edgetam")
        devices.place(fn.model, device, dtype)
        return fn
    if name in ("owlv2", "grounding_dino", "sam3"):
        from tests.functions.test_open_vocab import TINY

        if name == "grounding_dino":
            dtype = grounding_dino.float32_only(dtype)
        model, processor = TINY[name]()
        cls = {"owlv2": owlv2.Owlv2Function, "grounding_dino": grounding_dino.GroundingDinoFunction}.get(
            name, sam3.Sam3Function
        )
        return cls(devices.place(model, device, dtype), processor, CLASSES, model_version="tiny")
    kw = {"pretrained": False, "device": device, "dtype": dtype}
    if name == "torchvision_detection":
        return torchvision_detection.create(
            "fasterrcnn_mobilenet_v3_large_320_fpn", min_size=160, max_size=160, box_score_thresh=0.0, **kw
        )
    if name == "torchvision_classification":
        return torchvision_classification.create("resnet18", topk=5, **kw)
    raise SystemExit(f"unknown family {name!r}; known: {', '.join(FAMILIES)}")
