"""Checks of the ``auto_label`` operator's form while a person types (the plugin's
``resolve_input``): the same checks a run makes before any work, worded per form field, with the
nearest names suggested (``stop_sign`` -> "did you mean 'stop sign'?").

Nothing here writes to the dataset. A function is built once per (name, parameters) to read its
labels; only its :class:`~autoannotate.interface.DetectionFunctionSpec` is kept.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fiftyone import ViewField as F

from ..errors import AutoAnnotateError
from ..interface import DetectionFunctionSpec
from ..loading import is_open_vocabulary, load_function, parse_label_map, parse_params, split_list
from ..mapping import resolve_names
from .classes import parse_classes
from .convert import RUN_ATTRIBUTE
from .plan import check_field, plan_labels, typed_function_params

__all__ = ["FormCheck", "check_form", "suggest"]


@dataclass
class FormCheck:
    """What the form shows: an error per form field (the run would refuse it) and warnings."""

    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)


def suggest(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """The candidates closest to ``name``: equal up to case, ``_``/``-``/spaces first, then
    :func:`difflib.get_close_matches`."""

    def norm(s: str) -> str:
        return " ".join(s.replace("_", " ").replace("-", " ").casefold().split())

    same = [c for c in candidates if norm(c) == norm(name)]
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    close += difflib.get_close_matches(norm(name), [norm(c) for c in candidates], n=n, cutoff=0.6)
    by_norm = {norm(c): c for c in candidates}
    out = same + [c if c in candidates else by_norm[c] for c in close]
    return list(dict.fromkeys(out))[:n]


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    hits = suggest(name, candidates)
    if not hits:
        return ""
    return "did you mean " + " or ".join(repr(h) for h in hits) + "?"


@functools.lru_cache(maxsize=16)
def _spec(function: str, params: tuple[tuple[str, Any], ...]) -> DetectionFunctionSpec:
    return load_function(function, "detection", **dict(params)).spec


def function_spec(function: str, params: Mapping[str, Any]) -> DetectionFunctionSpec:
    """The labels of predefined ``function`` built with ``params`` (cached per process)."""
    return _spec(function, tuple(sorted(params.items())))


def _labels_text(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_form(dataset: Any, params: Mapping[str, Any]) -> FormCheck:
    """Check the ``auto_label`` form's values against ``dataset`` (a FiftyOne dataset).

    Keys of ``errors``: ``function_params``, ``classes``, ``label_map``, ``label_field``,
    ``conf_threshold``, ``review_lower``, ``review_upper``, ``eval_gt_field``. The function
    parameters are always checked against its ``create`` signature (names, types; nothing built);
    the function is built (to read its labels) only when ``classes`` or ``label_map`` is filled in.
    """
    out = FormCheck()
    video = dataset.media_type == "video"
    label_field = (params.get("label_field") or "auto_labels").strip()  # the operator's default
    _check_thresholds(params, out)
    _check_label_field(dataset, label_field, params, video, out)

    try:
        fn_params = parse_params(split_list(params.get("function_params")))
    except AutoAnnotateError as e:
        out.error("function_params", str(e))
        fn_params = None
    try:
        class_specs = parse_classes(params.get("classes") or None)
    except AutoAnnotateError as e:
        out.error("classes", str(e))
        class_specs = None
    try:
        label_map = parse_label_map(params.get("label_map"))
    except AutoAnnotateError as e:
        out.error("label_map", str(e))
        label_map = None
    function = params.get("function") or "yolox"  # the operator's default
    if fn_params is not None and isinstance(function, str):
        try:  # the run would refuse them before any work: shown whatever classes and label map hold
            fn_params = typed_function_params(function, fn_params)
        except AutoAnnotateError as e:
            out.error("function_params", str(e))
            fn_params = None
    if fn_params is None or not (class_specs or label_map) or not isinstance(function, str):
        return out
    if is_open_vocabulary(function) and "classes" not in fn_params:
        return out  # built to find the form's classes: nothing to check against (and no model to load)
    try:
        spec = function_spec(function, fn_params)
    except Exception as e:  # noqa: BLE001 - any failure to build the function is shown on the form
        out.error("function_params", f"cannot build {function!r} to check the classes: {e}")
        return out
    names = list(spec.label_names)
    if label_map:
        unknown = [k for k in label_map if k not in names]
        if unknown:
            hints = "; ".join(f"{k!r}: {_did_you_mean(k, names) or 'no similar label'}" for k in unknown)
            out.error(
                "label_map",
                f"the label map names labels {function!r} does not have: {hints} (its labels: {_labels_text(names)})",
            )
    if class_specs:
        wanted = [c.name for c in class_specs]
        produced = set(resolve_names(spec, wanted, label_map).values())
        missing = [n for n in wanted if n not in produced]
        if missing:
            pool = names + [v for v in (label_map or {}).values() if v not in names]
            if len(missing) == 1:
                hints = _did_you_mean(missing[0], pool) or "no similar label"
            else:
                hints = "; ".join(f"{m!r}: {_did_you_mean(m, pool) or 'no similar label'}" for m in missing)
            out.error("classes", f"unknown classes {missing}: {hints} (labels of {function!r}: {_labels_text(names)})")
    if "classes" in out.errors or "label_map" in out.errors or "label_field" in out.errors:
        return out
    try:
        plan_labels(
            dataset,
            spec,
            label_field=label_field,
            classes=class_specs,
            label_map=label_map or None,
            review=None,
            frames=video,
        )
    except AutoAnnotateError as e:
        text = str(e)
        out.error("label_field" if repr(label_field) in text else "classes", text)
    return out


def _number(params: Mapping[str, Any], name: str) -> float | None:
    value = params.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_thresholds(params: Mapping[str, Any], out: FormCheck) -> None:
    conf = _number(params, "conf_threshold")
    lower = _number(params, "review_lower")
    upper = _number(params, "review_upper")
    for name, value in (("conf_threshold", conf), ("review_lower", lower), ("review_upper", upper)):
        if value is not None and not 0.0 <= value <= 1.0:
            out.error(name, f"{value:g} is not a confidence: use a number from 0 to 1")
    if params.get("route", True) is False:
        return
    if lower is not None and upper is not None and lower > upper and "review_upper" not in out.errors:
        out.error(
            "review_upper",
            f"auto-approve at {upper:g} is below discard at {lower:g}: the upper threshold must be at or above the lower",
        )
    if conf is not None and upper is not None and conf >= upper and not out.errors:
        out.warnings.append(
            f"the model threshold {conf:g} is at or above auto-approve {upper:g}: every stored label will be approved, "
            "none will need review"
        )


def _check_label_field(dataset: Any, name: str, params: Mapping[str, Any], video: bool, out: FormCheck) -> None:
    try:
        check_field(dataset, name, "detections", frames=video)
    except AutoAnnotateError as e:
        if "usable field name" in str(e):
            out.error(
                "label_field", f"{name!r} is not a usable field name: letters, digits and _, not starting with a digit"
            )
            return
        # another container type: the run may still write there (e.g. polygons); plan_labels decides
    if params.get("eval_gt_field") and params.get("eval_gt_field") == name:
        out.error("label_field", f"{name!r} is the ground-truth field chosen for evaluation; label into another field")
        return
    if video:
        return
    if dataset.get_field(name) is None:
        return
    labelled = dataset.exists(name).count()
    if not labelled:
        return
    foreign = dataset.exists(name).match(~F(f"{name}.{RUN_ATTRIBUTE}").exists()).count()
    if params.get("overwrite"):
        if foreign:
            out.error(
                "label_field",
                f"{foreign} samples have labels in {name!r} that autoannotate did not make; overwrite would "
                "replace them: choose another label field",
            )
    else:
        out.warnings.append(
            f"{labelled} samples already have labels in {name!r} and will be skipped (tick 'Re-label' to redo them)"
        )
