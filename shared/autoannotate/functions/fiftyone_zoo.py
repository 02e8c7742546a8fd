"""A model of the FiftyOne Model Zoo by name (``-p name=faster-rcnn-resnet50-fpn-coco-torch``): its detections, masks, polylines, keypoints or classifications as shapes.

The model is loaded with ``fiftyone.zoo.load_zoo_model(name, **params)`` (other parameters go to
the model's config, e.g. ``-p confidence_thresh=float:0.5``) and wrapped by
:func:`autoannotate.fiftyone.models.from_model`: its labels are its classes (``classes=`` for a
model that declares none), their shape type is read from the model, else from its zoo tags
(``detection``, ``instances``, ``keypoints``, ``classification``). A model that is not downloaded
yet is downloaded by FiftyOne into ``fo.config.model_zoo_dir``, unless ``AUTOANNOTATE_OFFLINE=1``
or ``download=False``: then the error says the command that fetches it. Video models, models that
need sample fields (prompts) and models whose outputs are no shapes (semantic segmentation, depth,
embeddings) are refused with the reason. Usage:
``autoannotate annotate photos/ --function fiftyone_zoo -p name=str:faster-rcnn-resnet50-fpn-coco-torch``.
"""

from __future__ import annotations

import difflib
from typing import Any

from ..errors import BadFunctionError, BadParameterError, WeightsNotFoundError
from ..registry import FunctionRecord
from ..settings import OFFLINE_ENV, offline

FUNCTION = FunctionRecord(
    name="fiftyone_zoo",
    kind="detection",
    extras=("fiftyone",),
    requires=("fiftyone",),
    license="that of the zoo model (fiftyone zoo models info NAME)",
)

#: Zoo tags whose models give no shapes, and what they give instead.
NO_SHAPE_TAGS = {"segmentation": "semantic segmentation masks", "depth": "depth maps", "embeddings": "embeddings"}


def _zoo_model(name: str) -> Any:
    import fiftyone.zoo as foz

    try:
        return foz.get_zoo_model(name)
    except ValueError:
        known = foz.list_zoo_models()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise BadParameterError(
            f"no FiftyOne zoo model named {name!r}{hint} (`fiftyone zoo models list` lists them)"
        ) from None


def label_type_from_tags(name: str, tags: list[str]) -> str | None:
    """The shape type a zoo model's tags promise; refuses video models and models with no shapes."""
    if "video" in tags:
        raise BadFunctionError(f"zoo model {name!r} is a video model; autoannotate runs image models")
    from ..fiftyone.models import TAG_TYPES

    found = next((TAG_TYPES[t] for t in TAG_TYPES if t in tags), None)
    if found is None:
        gives = [what for tag, what in NO_SHAPE_TAGS.items() if tag in tags]
        if gives:
            raise BadFunctionError(
                f"zoo model {name!r} gives {' and '.join(gives)}, not objects autoannotate can store as shapes; "
                "use dataset.apply_model() for it"
            )
    return found


def _ensure_downloaded(name: str, zoo_model: Any, download: bool) -> None:
    import fiftyone as fo
    import fiftyone.zoo as foz

    if zoo_model.manager is None or zoo_model.is_in_dir(fo.config.model_zoo_dir):
        return
    how = (
        f"fetch it with `fiftyone zoo models download {name}` (into fo.config.model_zoo_dir, {fo.config.model_zoo_dir})"
    )
    if not download or offline():
        why = f"downloads are disabled ({OFFLINE_ENV}=1)" if offline() else "download=False"
        raise WeightsNotFoundError(f"FiftyOne zoo model {name!r} is not downloaded and {why}: {how}, then run again")
    try:
        foz.download_zoo_model(name)
    except Exception as e:  # noqa: BLE001 - any download failure says how to fetch it by hand
        raise WeightsNotFoundError(
            f"FiftyOne zoo model {name!r} could not be downloaded ({type(e).__name__}: {e}): {how}, then run again"
        ) from e


def create(
    name: str,
    classes: str | None = None,
    label_type: str | None = None,
    download: bool = True,
    **params: Any,
) -> Any:
    """``name``: the zoo model (``fiftyone zoo models list``). ``classes``: labels separated by commas
    (or ``|`` in ``AUTOANNOTATE_PARAMS``), for a model that declares none (or to keep only these).
    ``label_type``: the shape type of its labels when neither the model nor its tags say it (rectangle, mask, polygon, polyline, points,
    skeleton, tag). ``download=False``: never download. Other parameters go to the model's config
    (``load_zoo_model(name, **params)``)."""
    import fiftyone.zoo as foz

    from ..fiftyone.models import from_model, model_label_type

    zoo_model = _zoo_model(name)
    tag_type = label_type_from_tags(name, list(zoo_model.tags or []))
    _ensure_downloaded(name, zoo_model, download)
    try:
        model = foz.load_zoo_model(name, download_if_necessary=False, **params)
    except Exception as e:  # noqa: BLE001 - a zoo model that will not load says why, with its name
        raise BadFunctionError(f"FiftyOne zoo model {name!r} could not be loaded: {type(e).__name__}: {e}") from e
    kind = label_type or model_label_type(model) or tag_type
    names = classes.replace("|", ",") if classes else None  # "|" where commas separate parameters
    return from_model(model, classes=names, label_type=kind, name=f"fiftyone-zoo:{name}")
