"""A run's evaluation against ground truth: only the run's classes, each output type on its own.

A run labels some classes in some forms (boxes, masks, polygons, ...). Comparing its labels with
every ground-truth class would count every class it was never asked for as missed (a ``person,
car`` run on COCO reported recall 0.239 instead of 0.552); comparing only its boxes would leave
its polygons out. :func:`evaluate_run` evaluates each output type the run produced against the
ground truth of the matching kind, both sides restricted to that type's classes, and says what
it evaluated and what it could not:

- ``bbox``: the run's boxes against the ground-truth boxes (a Detections field);
- ``mask``: the run's masks against the ground-truth masks when the Detections ground truth has
  masks (``use_masks``), else by their boxes (stated);
- ``polygon`` / ``polyline``: against a Polylines ground truth; a Detections ground truth holds
  no polygons: not evaluated (stated);
- ``keypoint`` / ``tag``: not evaluated (FiftyOne's detection evaluation does not cover them).

Each evaluated type is a FiftyOne evaluation of its own (the App's Model Evaluation panel lists
it): the first under the run's evaluation key, the others under ``<key>_<type>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fiftyone import ViewField as F

from .classes import CONTAINER
from .convert import label_list_attr

__all__ = ["evaluate_run", "TYPE_ORDER"]

#: The order output types are evaluated in (the first evaluated one is the run's main evaluation).
TYPE_ORDER = ("bbox", "mask", "polygon", "polyline", "keypoint", "tag")


def evaluate_run(
    samples: Any, outputs: Mapping[str, str], fields: Mapping[str, str], gt_field: str, eval_key: str | None
) -> dict[str, Any]:
    """Evaluate a run's labels in ``samples`` against ``gt_field``.

    ``outputs``: class -> output type of the run (its plan); ``fields``: container -> label field.
    Returns ``{"gt_field", "classes", "evaluated", "not_evaluated", "precision", "recall",
    "mAP", "eval_key", "by_type", "eval_keys"}`` (``evaluated`` / ``not_evaluated``: sentences;
    the top-level metrics and key are those of the first evaluated type; ``by_type``: per type
    ``{"field", "classes", "method", "precision", "recall", "mAP", "eval_key"}``), plus
    ``"classes_without_ground_truth"`` when some of the run's classes have no ground-truth label
    here (their labels can only be false positives)."""
    dataset = samples._dataset
    gt_kind = label_list_attr(dataset, gt_field)
    gt_has_masks = gt_kind == "detections" and bool(
        samples.filter_labels(gt_field, F("mask") != None, only_matches=True).limit(1).count()  # noqa: E711 - a query
    )
    per_type: dict[str, list[str]] = {}
    for name, out in outputs.items():
        per_type.setdefault(out, []).append(name)
    by_type: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    gt_names = {
        "detections": "boxes and masks (Detections)" if gt_has_masks else "boxes (Detections)",
        "polylines": "polylines (Polylines)",
    }.get(gt_kind or "", f"{gt_kind} labels")
    for out in sorted(per_type, key=TYPE_ORDER.index):
        classes = sorted(per_type[out])
        field = fields.get(CONTAINER[out])
        what = f"{out} ({', '.join(classes)})"
        if field is None:
            continue
        method = None
        if out == "bbox" and gt_kind == "detections":
            method = "box IoU"
        elif out == "mask" and gt_kind == "detections":
            method = "mask IoU" if gt_has_masks else "box IoU (the ground truth has no masks)"
        elif out in ("polygon", "polyline") and gt_kind == "polylines":
            method = "polygon IoU"
        if method is None:
            reason = (
                "FiftyOne's detection evaluation does not cover them"
                if out in ("keypoint", "tag")
                else f"the ground truth {gt_field!r} holds {gt_names}, not {out}s"
                + ("; label them as masks to compare with its masks" if gt_has_masks and out == "polygon" else "")
            )
            skipped.append(f"{what}: {reason}")
            continue
        key = None
        if eval_key:
            key = eval_key if not by_type else f"{eval_key}_{out}"
            if dataset.has_evaluation(key):
                dataset.delete_evaluation(key)
        view = samples.filter_labels(field, F("label").is_in(classes), only_matches=False).filter_labels(
            gt_field, F("label").is_in(classes), only_matches=False
        )
        results = view.evaluate_detections(
            field,
            gt_field=gt_field,
            eval_key=key,
            classes=classes,
            compute_mAP=True,
            use_masks=method == "mask IoU",
            progress=False,
        )
        metrics = results.metrics()
        by_type[out] = {
            "field": field,
            "classes": classes,
            "method": method,
            "precision": round(float(metrics["precision"]), 4),
            "recall": round(float(metrics["recall"]), 4),
            "mAP": round(float(results.mAP()), 4),
            "eval_key": key,
        }
    out_dict: dict[str, Any] = {
        "gt_field": gt_field,
        "classes": sorted(outputs),
        "evaluated": "; ".join(f"{t} ({', '.join(e['classes'])}) by {e['method']}" for t, e in by_type.items())
        or "nothing",
        "not_evaluated": "; ".join(skipped) or None,
    }
    if by_type:
        first = next(iter(by_type.values()))
        out_dict.update({k: first[k] for k in ("precision", "recall", "mAP", "eval_key")})
    out_dict["by_type"] = by_type
    out_dict["eval_keys"] = [e["eval_key"] for e in by_type.values() if e["eval_key"]]
    present = set(samples.distinct(f"{gt_field}.{gt_kind}.label")) if gt_kind else set()
    missing = sorted(set(outputs) - present)
    if missing:
        out_dict["classes_without_ground_truth"] = missing
    return out_dict
