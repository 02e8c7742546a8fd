"""Tiny Ultralytics YOLO11 models, one per task, built from their YAML with random weights (fixed
seed) and saved as ``.pt`` files, the way a user's trained weights arrive: what the ``ultralytics``
function's tests and ``bench/byom.py`` load. Nothing is downloaded (``YOLO_OFFLINE=1``)."""

from __future__ import annotations

import os
from pathlib import Path

TASKS = {"detect": "yolo11n", "segment": "yolo11n-seg", "pose": "yolo11n-pose", "obb": "yolo11n-obb", "classify": "yolo11n-cls"}  # fmt: skip


def build(folder: Path, tasks: tuple[str, ...] = tuple(TASKS)) -> dict[str, Path]:
    """``{task: path of the saved model}`` in ``folder``."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics import YOLO

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for task in tasks:
        name = TASKS[task]
        torch.manual_seed(0)
        model = YOLO(f"{name}.yaml", verbose=False)
        assert model.task == task
        if task == "segment":  # positive mask coefficients: random masks that are not empty
            with torch.no_grad():
                for head in model.model.model[-1].cv4:
                    head[-1].bias.fill_(1.0)
        if len(model.names) == 80:  # named classes, as trained weights have
            from autoannotate.functions._coco import COCO_CLASSES

            model.model.names = dict(enumerate(COCO_CLASSES))
        model.save(str(folder / f"{name}.pt"))
        out[task] = folder / f"{name}.pt"
    return out
