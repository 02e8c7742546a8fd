"""Open-vocabulary detection: find any class given by its name (SAM 3, OWLv2, Grounding DINO).

An open-vocabulary function is created with the class names it must find
(``create(classes=["stop_sign", "yield"], prompts={"yield": "yield sign"})``); its spec lists
exactly those labels, in that order (ids 0, 1, ...), so label mapping, validation and review work
as for any other function.

Names become prompts (:func:`prompt_for`): underscores and runs of white space become one space
(``stop_sign`` -> ``"stop sign"``). ``prompts`` overrides a class's prompt with one text or
several; with several, every prompt is searched and, where two prompts of a class find the same
object (boxes overlapping by more than ``nms_threshold``), the best-scoring detection wins; it
carries the class's one label.

A module whose functions are open-vocabulary says so in its record (``open_vocabulary=True``); front ends
call :func:`autoannotate.loading.with_classes` to give such a function their own class names
when the user named none (FiftyOne: the run's classes; Label Studio: the labeling config's
labels; the CLI: ``--classes``).

Weights: saved Hugging Face model folders found by :func:`autoannotate.weights.resolve`
(``autoannotate weights list``). ``pretrained=False`` builds the real-size architecture with
random weights and a character-level tokenizer built here (no download): latency figures are
real, detections are not.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, Self, TypedDict, TypeVar

import numpy as np
import PIL.Image

from ..errors import BadParameterError
from ..interface import DetectionFunctionContext, DetectionFunctionSpec, label_spec
from ..loading import split_list
from ..masks import batched_nms
from ..seeding import seeded_torch
from ..shapes import Shape, mask, rectangle
from ..signatures import declare
from ._batching import BatchedDetection

__all__ = [
    "ClassPrompts",
    "Detections",
    "OpenVocabularyFunction",
    "OpenVocabularyParameters",
    "create_signature",
    "prompt_for",
    "class_prompts",
    "parse_prompts",
    "char_clip_tokenizer",
    "char_bert_tokenizer",
    "random_clip_text",
    "load_pretrained",
]


def prompt_for(name: str) -> str:
    """The default prompt of a class name: ``stop_sign`` -> ``"stop sign"`` (underscores and runs
    of white space become one space; other characters are kept)."""
    text = " ".join(re.sub(r"_+", " ", str(name)).split())
    return text or str(name).strip()


@dataclass(frozen=True)
class ClassPrompts:
    """A class (``name``, as stored) and the texts searched for it (at least one)."""

    name: str
    prompts: tuple[str, ...]


def parse_prompts(text: str | Mapping[str, Any] | None) -> dict[str, list[str]]:
    """``prompts`` as ``{class: [prompt, ...]}``: a mapping (values a text or a list of texts) or
    the command line's text ``"yield=yield sign|give way sign, stop_sign=stop sign"``."""
    if text is None or text == "":
        return {}
    if isinstance(text, Mapping):
        out: dict[str, list[str]] = {}
        for k, v in text.items():
            vals = [v] if isinstance(v, str) else list(v)
            if not vals or not all(isinstance(x, str) and x.strip() for x in vals):
                raise BadParameterError(f"prompts for class {k!r} must be non-empty texts, got {v!r}")
            out[str(k)] = [" ".join(x.split()) for x in vals]
        return out
    if not isinstance(text, str):
        raise BadParameterError(f"prompts must be a dict or 'class=prompt|prompt, ...', got {text!r}")
    parsed: dict[str, list[str]] = {}
    for item in split_list(text):
        name, sep, rest = item.partition("=")
        if not sep or not name.strip():
            raise BadParameterError(f"cannot read prompts entry {item.strip()!r}: write class=prompt|other prompt")
        parsed[name.strip()] = [p for p in rest.split("|")]
    return parse_prompts(parsed)


def class_prompts(
    classes: Sequence[str] | str | None, prompts: Mapping[str, Any] | str | None = None
) -> list[ClassPrompts]:
    """The classes to find and their prompts. ``classes``: names, or one text listing them comma-
    or newline-separated; ``prompts``: see :func:`parse_prompts` (classes not listed use
    :func:`prompt_for`). Raises :class:`BadParameterError` for no classes, repeated names, or
    prompts naming a class that is not listed."""
    if classes is None or (isinstance(classes, str) and not classes.strip()):
        raise BadParameterError(
            "this function is open-vocabulary: give the class names to find, e.g. create(classes=['stop_sign', "
            "'yield']), --classes stop_sign,yield on the command line, or -p classes=str:stop_sign,yield "
            "(FiftyOne and Label Studio pass their own class names)"
        )
    names = split_list(classes) if isinstance(classes, str) else list(classes)
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise BadParameterError(f"class names must be non-empty texts, got {n!r}")
    if not names:
        raise BadParameterError("classes is empty: give at least one class name")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise BadParameterError(f"classes listed twice: {dups}")
    given = parse_prompts(prompts)
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise BadParameterError(f"prompts name classes that are not among the classes {names}: {unknown}")
    return [ClassPrompts(n, tuple(given.get(n) or [prompt_for(n)])) for n in names]


@dataclass
class Detections:
    """One image's raw detections, before thresholds per context and NMS across prompts.

    ``boxes``: float64 N x 4, ``(x1, y1, x2, y2)`` in pixels of the upright image (not yet
    clipped); ``scores``: N in [0, 1]; ``prompts``: N indices into the function's flat prompt list;
    ``masks``: bool N x H x W over the whole image, or None for box models.
    """

    boxes: np.ndarray
    scores: np.ndarray
    prompts: np.ndarray
    masks: np.ndarray | None = None


class OpenVocabularyFunction(BatchedDetection):
    """Common part of the open-vocabulary functions: a ``transformers`` model and its processor
    (built by :meth:`build`), the spec from the classes, prompts flattened (``prompt_texts``, each
    prompt's class in ``prompt_class``), thresholds, NMS across the prompts of a class and
    conversion to shapes. Subclasses implement :meth:`predict` (one batched forward pass per group
    of images, all prompts at once where the model allows it)."""

    #: Label type of the spec: ``rectangle`` (box models) or ``mask``.
    label_type = "rectangle"

    def __init__(
        self,
        model: Any,
        processor: Any,
        classes: Sequence[str] | str | None,
        prompts: Mapping[str, Any] | str | None = None,
        *,
        model_version: str,
        default_conf_threshold: float = 0.3,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
    ) -> None:
        import torch

        #: The ``transformers`` model (in eval mode) and its processor.
        self.model = model.eval()
        self.processor = processor
        self._torch = torch
        self._set_classes(classes, prompts)
        if not 0.0 <= float(nms_threshold) <= 1.0:
            raise BadParameterError(f"nms_threshold must be in [0, 1] (1 disables NMS), got {nms_threshold!r}")
        self.default_conf_threshold = float(default_conf_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        #: The model's own version; :attr:`model_version` adds what it is asked to find.
        self.base_model_version = model_version
        # processors keep no per-call state but may build helpers lazily on first use
        self._lock = threading.Lock()

    @classmethod
    def build(
        cls, model_class: Any, processor_class: Any, random_model: Any, default_weights: str, params: Mapping[str, Any]
    ) -> Self:
        """The one ``create`` of the open-vocabulary functions: the class names are checked before
        any weights are looked for, then the function is built over the weights (:func:`load_model`)
        placed on ``device`` in ``dtype``. ``params``: the function's parameters by name
        (:data:`INPUTS` and the function's own settings, passed to its constructor)."""
        from ..devices import place

        inputs = {k: params.get(k, v) for k, v in INPUTS.items()}
        options = {k: v for k, v in params.items() if k not in INPUTS}
        classes, prompts = inputs["classes"], inputs["prompts"]
        class_prompts(classes, prompts)
        model, processor, version = load_model(
            model_class, processor_class, random_model, inputs["checkpoint"], default_weights, inputs["pretrained"]
        )
        model = place(model, inputs["device"], inputs["dtype"])
        return cls(model, processor, classes, prompts, model_version=version, **options)

    @property
    def spec(self) -> DetectionFunctionSpec:
        return self._spec

    @property
    def model_version(self) -> str:
        """The model's version and a short digest of the classes and their prompts: predictions
        made for other labels or prompts are another version (a Label Studio project whose labels
        changed is searched again, not skipped as done)."""
        found = repr([(c.name, list(c.prompts)) for c in self.classes]).encode()
        return f"{self.base_model_version}#{hashlib.sha1(found).hexdigest()[:8]}"

    def for_classes(
        self, classes: Sequence[str] | str | None, prompts: Mapping[str, Any] | str | None = None
    ) -> OpenVocabularyFunction:
        """The same model (shared, not copied) finding other classes: what a Label Studio backend
        does per labeling config. Thread-safe: this object is not changed."""
        other = copy.copy(self)
        other._set_classes(classes, prompts)
        return other

    def _set_classes(self, classes: Sequence[str] | str | None, prompts: Mapping[str, Any] | str | None) -> None:
        self.classes = class_prompts(classes, prompts)
        self.prompt_texts = [p for c in self.classes for p in c.prompts]
        self.prompt_class = np.asarray([i for i, c in enumerate(self.classes) for _ in c.prompts], dtype=np.int64)
        self._spec = DetectionFunctionSpec(
            labels=tuple(label_spec(c.name, i, type=self.label_type) for i, c in enumerate(self.classes))
        )

    def predict(self, images: Sequence[PIL.Image.Image], threshold: float) -> list[Detections]:
        """Raw detections scoring above ``threshold`` for RGB ``images`` (one entry per image)."""
        raise NotImplementedError

    def _threshold(self, context: DetectionFunctionContext) -> float:
        t = context.conf_threshold
        return self.default_conf_threshold if t is None else float(t)

    def detect_rgb(
        self, contexts: Sequence[DetectionFunctionContext], rgb: Sequence[PIL.Image.Image]
    ) -> list[list[Shape]]:
        """Several images in one forward pass (per group of prompts the model takes at once)."""
        thresholds = [self._threshold(c) for c in contexts]
        raw = self.predict(rgb, min(thresholds))
        return [self.to_shapes(d, t, im.size) for d, t, im in zip(raw, thresholds, rgb)]

    def to_shapes(self, det: Detections, threshold: float, size: tuple[int, int]) -> list[Shape]:
        """Threshold, class-wise NMS (the best-scoring prompt of a class wins), clip, convert.
        ``size``: (width, height) of the image."""
        scores = np.clip(np.asarray(det.scores, dtype=np.float64), 0.0, 1.0)
        keep = np.flatnonzero(scores >= threshold)
        if keep.size == 0:
            return []
        boxes = np.asarray(det.boxes, dtype=np.float64)[keep].copy()
        width, height = size
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        cls = self.prompt_class[np.asarray(det.prompts, dtype=np.int64)[keep]]
        sc = scores[keep]
        if self.nms_threshold < 1.0:
            order = batched_nms(boxes, sc, cls, self.nms_threshold)
        else:
            order = np.argsort(-sc, kind="stable")
        out: list[Shape] = []
        for i in order:
            if len(out) >= self.max_detections:
                break
            if det.masks is not None:
                m = det.masks[keep[i]]
                if m.any():  # an empty mask is no detection
                    out.append(mask(int(cls[i]), m, score=float(sc[i])))
            else:
                out.append(rectangle(int(cls[i]), boxes[i].tolist(), score=float(sc[i])))
        return out


# --------------------------------------------------------------------------------------------
# Building: create's parameters, weights, random weights, tokenizers for random weights


class OpenVocabularyParameters(TypedDict, total=False):
    """The parameters of every open-vocabulary ``create``, for type checkers (``**params:
    Unpack[OpenVocabularyParameters]``); :func:`create_signature` gives them their order, defaults
    and description at run time."""

    classes: Any
    prompts: Any
    checkpoint: str | None
    pretrained: bool
    device: str | None
    dtype: str | None
    default_conf_threshold: float
    nms_threshold: float
    max_detections: int


#: What every open-vocabulary ``create`` takes first, with its defaults; the function's own
#: settings (thresholds, limits) follow.
INPUTS = {"classes": None, "prompts": None, "checkpoint": None, "pretrained": True, "device": None, "dtype": None}

#: What the parameters of :class:`OpenVocabularyParameters` mean: the description every
#: open-vocabulary ``create`` has after its first line (``{weights}``: its default weights).
PARAMETERS_DOC = """``classes``: the class names to find (a list, or ``"stop_sign,yield"``); ``prompts``: texts
per class overriding the names (``{{"yield": ["yield sign", "give way sign"]}}`` or
``"yield=yield sign|give way sign"``). ``checkpoint``: a saved model folder (model and
processor), a repo id or a registry name (default ``{weights}``). ``pretrained=False``: the
real-size architecture with random weights. ``device``, ``dtype``: see :mod:`autoannotate.devices`
(default ``AUTOANNOTATE_DEVICE`` / ``AUTOANNOTATE_DTYPE``, else auto / float32).
``default_conf_threshold``: the score threshold when the caller gives none; ``nms_threshold``:
class-wise box NMS IoU across the prompts of a class (1 disables it); ``max_detections``: the
most detections kept per image."""

P = ParamSpec("P")
R = TypeVar("R")


def create_signature(
    default_weights: str, settings: Mapping[str, Any], parameters: Any = OpenVocabularyParameters
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates an open-vocabulary ``create(**params: Unpack[parameters])`` (``parameters``: a
    ``TypedDict``, :class:`OpenVocabularyParameters` or one extending it) with the signature users
    see (``-p``, the FiftyOne form, ``autoannotate functions``): :data:`INPUTS`, then ``settings``
    (the function's own parameters, in order, with their defaults), typed as in ``parameters``.
    Calls pass every parameter by name (:func:`declare`). The docstring's first paragraph is
    followed by :data:`PARAMETERS_DOC`, then the rest of the docstring (the function's own notes)."""
    declared = declare({**INPUTS, **settings}, parameters)

    def decorate(create: Callable[P, R]) -> Callable[P, R]:
        first, _, rest = inspect.cleandoc(create.__doc__ or "").partition("\n\n")
        own = f"\n\n{rest}" if rest else ""
        created = declared(create)
        created.__doc__ = f"{first}\n\n{PARAMETERS_DOC.format(weights=default_weights)}{own}\n"
        return created

    return decorate


def load_model(
    model_class: Any, processor_class: Any, random_model: Any, checkpoint: str | None, default: str, pretrained: bool
) -> tuple[Any, Any, str]:
    """``(model, processor, model_version)`` for a function's ``create``: the weights of
    ``checkpoint`` (default ``default``, :func:`load_pretrained`) or, with ``pretrained=False``,
    ``random_model()`` (the real-size architecture with random weights)."""
    if pretrained:
        return load_pretrained(model_class, processor_class, checkpoint or default)
    with seeded_torch(checkpoint or default):  # the same random weights in any process
        model, processor = random_model()
    return model, processor, f"{checkpoint or default}.random"


def load_pretrained(model_class: Any, processor_class: Any, name: str) -> tuple[Any, Any, str]:
    """``(model, processor, model_version)`` from a registry name, repo id or folder found by
    :func:`autoannotate.weights.resolve` (clear error with how to provide the weights)."""
    from ..weights import registry, resolve

    folder = resolve(name)
    model = model_class.from_pretrained(str(folder))
    try:
        processor = processor_class.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as e:
        raise BadParameterError(
            f"{folder} holds a model but not its processor (tokenizer, image processor): {e}. Save both with "
            "model.save_pretrained(folder) and processor.save_pretrained(folder)"
        ) from None
    # a registry name, not the folder's name (a Hugging Face cache snapshot is a commit hash)
    version = name if name in registry() else folder.name
    return model, processor, version


def char_clip_tokenizer(model_max_length: int = 16) -> Any:
    """A CLIP tokenizer over single bytes (no merges), for random-weight models: real tokenizers
    come with the weights. Its vocabulary has 514 entries, the start/end tokens last (OWLv2 treats
    token id 0 at a query's start as padding)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(c, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def char_bert_tokenizer() -> Any:
    """A BERT WordPiece tokenizer over letters, digits and punctuation (one token per character),
    for random-weight Grounding DINO models."""
    import string

    from transformers import BertTokenizer

    vocab: dict[str, int] = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    for c in string.ascii_lowercase + string.digits + string.punctuation:
        vocab.setdefault(c, len(vocab))
    for c in string.ascii_lowercase + string.digits:
        vocab.setdefault("##" + c, len(vocab))
    return BertTokenizer(vocab=vocab)


def clip_token_ids(tokenizer: Any) -> dict[str, int]:
    """Start, end and pad token ids of a CLIP tokenizer, for the text config of random weights."""
    return {
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    }


def random_clip_text(model_max_length: int, **config: Any) -> tuple[Any, dict[str, Any]]:
    """For a random-weight model with a CLIP text encoder: :func:`char_clip_tokenizer` and the text
    config that matches it (its vocabulary size and :func:`clip_token_ids`, plus ``config``)."""
    tokenizer = char_clip_tokenizer(model_max_length)
    return tokenizer, {"vocab_size": len(tokenizer), **config, **clip_token_ids(tokenizer)}
