"""Run a detection function over many images.

:func:`iter_annotations` is the engine both front ends use: it decodes images in background
threads (so the model never waits on disk), calls the function (in batches when it has
``detect_batch``), validates every result against the function's spec, applies the confidence
threshold, maps labels onto the target (or onto each of several targets, :class:`TargetMappings`:
one mapping per Label Studio control tag), and yields one :class:`ImageResult` per image, in input
order. A bad image or a misbehaving model becomes a failure record; the run goes on.

:func:`autoannotate.run.annotate_images` runs it through the run engine and returns every result.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import PIL.Image

from .errors import AutoAnnotateError, BadFunctionError, BadParameterError, ImageLoadError
from .images import DEFAULT_MAX_PIXELS, ImageSource, image_name, load_image
from .interface import BatchDetection, DetectionFunction, DetectionFunctionContext
from .mapping import LabelMapping, TargetMappings
from .report import AnnotateReport
from .settings import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS
from .shapes import Shape
from .validation import validate_shapes

log = logging.getLogger(__name__)

#: ``progress`` may be a bool (tqdm or nothing) or a callback ``(done, total_or_None)``.
Progress = bool | Callable[[int, int | None], None]


@dataclass
class ImageResult:
    """The outcome for one image.

    ``shapes`` are validated, thresholded and mapped (label ids are the target's), or ``None``
    when the image failed, in which case ``error`` says why. ``size`` is ``(width, height)`` of
    the upright image, ``None`` if it could not be read. Mapped with one mapping per target
    (:class:`~autoannotate.mapping.TargetMappings`), ``targets`` names the target of each shape
    (:meth:`by_target` groups them).
    """

    key: Hashable
    name: str
    shapes: list[Shape] | None
    size: tuple[int, int] | None
    error: str | None = None
    #: Review status of each shape (``approved`` / ``needs_review`` / None), once routed.
    reviews: list[str | None] | None = None
    #: With one mapping per target: the target of each shape of ``shapes``, in order.
    targets: list[Hashable] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def by_target(self) -> dict[Hashable, list[Shape]]:
        """The shapes of each target (in the order the targets were mapped), for results mapped
        with one mapping per target; ``{}`` for a failed image."""
        out: dict[Hashable, list[Shape]] = {}
        for s, t in zip(self.shapes or [], self.targets or []):
            out.setdefault(t, []).append(s)
        return out

    def route(self, router: Any) -> int:
        """Apply review routing (an :class:`autoannotate.routing.Router`): discarded shapes are
        removed, ``reviews`` is set for the rest. Returns how many shapes were discarded."""
        kept: list[Shape] = []
        reviews: list[str | None] = []
        targets: list[Hashable] = []
        for i, s in enumerate(self.shapes or []):
            status = router.route(s.label_id, s.score)
            if status == "discarded":
                continue
            kept.append(s)
            reviews.append(status)
            if self.targets is not None:
                targets.append(self.targets[i])
        discarded = len(self.shapes or []) - len(kept)
        self.shapes, self.reviews = kept, reviews
        if self.targets is not None:
            self.targets = targets
        return discarded


def check_threshold(value: float | None, what: str = "conf_threshold") -> float | None:
    """``None`` or a number in [0, 1]; anything else raises :class:`BadParameterError`."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BadParameterError(f"{what} must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise BadParameterError(f"{what} must be in [0, 1], got {value!r}")
    return v


def _as_pairs(items: Iterable[Any]) -> Iterator[tuple[Hashable, ImageSource]]:
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            yield item  # (key, source)
        else:
            yield image_name(item), item


def progress_bar(progress: Progress, total: int | None, desc: str, unit: str = "img") -> Any:
    """A tqdm bar (``progress=True``), a callback adapter (``progress=callable``) or nothing; all
    have ``update(k)`` and ``close()``."""
    if callable(progress) and not isinstance(progress, bool):
        return _CallbackProgress(progress, total)
    if progress:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
    return _CallbackProgress(None, total)


class _CallbackProgress:
    def __init__(self, cb: Callable[[int, int | None], None] | None, total: int | None):
        self.cb, self.total, self.n = cb, total, 0

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.cb:
            self.cb(self.n, self.total)

    def close(self) -> None:
        pass


def iter_annotations(
    function: DetectionFunction,
    images: Iterable[Any],
    *,
    mapping: LabelMapping | TargetMappings | None = None,
    conf_threshold: float | None = None,
    conv_mask_to_poly: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = DEFAULT_NUM_WORKERS,
    progress: Progress = True,
    total: int | None = None,
    report: AnnotateReport | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    loader: Callable[[Any], PIL.Image.Image] | None = None,
    desc: str = "auto-annotating",
    item_name: Callable[[Hashable, Any], str] | None = None,
) -> Iterator[ImageResult]:
    """Yield an :class:`ImageResult` per image, in order.

    ``images`` holds paths / bytes / PIL images, or ``(key, source)`` pairs whose key comes back in
    the result. ``mapping`` (default: identity) converts label ids; build it before calling so a
    bad mapping fails before any inference. A :class:`~autoannotate.mapping.TargetMappings`
    maps every shape onto each of its targets (results carry ``targets``). ``report``, if given, is updated as results arrive
    (attempted, processed, failures; ``annotations_added`` is left to the caller, which decides
    what is stored). ``item_name(key, source)`` names items in results and failure records
    (default: the path, or the key for in-memory images).
    """
    conf_threshold = check_threshold(conf_threshold)
    if batch_size < 1:
        raise BadParameterError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise BadParameterError(f"num_workers must be >= 0, got {num_workers}")
    per_target = mapping if isinstance(mapping, TargetMappings) else None
    base = mapping if isinstance(mapping, LabelMapping) else LabelMapping.build(function.spec)
    if total is None and isinstance(images, Sequence):
        total = len(images)
    load = loader or (lambda src: load_image(src, max_pixels=max_pixels))
    batch_fn = function.detect_batch if batch_size > 1 and isinstance(function, BatchDetection) else None
    bar = progress_bar(progress, total, desc)
    decoder = _Decoder(_as_pairs(images), load, num_workers, max(batch_size * 2, num_workers * 2, 2), item_name)
    try:
        while True:
            batch = decoder.take(batch_size)
            if not batch:
                return
            decoded = [(key, name, img) for key, name, img in batch if isinstance(img, PIL.Image.Image)]
            done = iter(_run_batch(function, batch_fn, decoded, base, conf_threshold, conv_mask_to_poly, per_target))
            for key, name, img in batch:  # input order, failed reads included
                r = next(done) if isinstance(img, PIL.Image.Image) else ImageResult(key, name, None, None, img)
                _count(report, r)
                bar.update(1)
                yield r
    finally:
        bar.close()
        decoder.close()


class _Decoder:
    """Reads images ahead of the model in ``num_workers`` threads (inline when 0), keeping at
    most ``ahead`` in flight. ``take(n)`` returns up to ``n`` ``(key, name, image or failure
    reason)`` in input order."""

    def __init__(
        self,
        pairs: Iterator[tuple[Hashable, Any]],
        load: Callable[[Any], PIL.Image.Image],
        num_workers: int,
        ahead: int,
        item_name: Callable[[Hashable, Any], str] | None,
    ) -> None:
        self.pairs, self.load, self.ahead, self.item_name = pairs, load, ahead, item_name
        self.pool = ThreadPoolExecutor(max_workers=num_workers) if num_workers > 0 else None
        self.pending: deque[tuple[Hashable, Any, Future]] = deque()
        self.exhausted = False

    def _submit(self, src: Any) -> Future:
        if self.pool is not None:
            return self.pool.submit(self.load, src)
        f: Future = Future()
        try:
            f.set_result(self.load(src))
        except BaseException as e:  # noqa: BLE001 - delivered to the consumer in take()
            f.set_exception(e)
        return f

    def _fill(self) -> None:
        while not self.exhausted and len(self.pending) < self.ahead:
            try:
                key, src = next(self.pairs)
            except StopIteration:
                self.exhausted = True
                return
            self.pending.append((key, src, self._submit(src)))

    def _name(self, key: Hashable, src: Any) -> str:
        if self.item_name is not None:
            return self.item_name(key, src)
        if src is None or isinstance(src, (PIL.Image.Image, bytes, bytearray)):
            return str(key)
        return image_name(src)

    def take(self, n: int) -> list[tuple[Hashable, str, PIL.Image.Image | str]]:
        out: list[tuple[Hashable, str, PIL.Image.Image | str]] = []
        self._fill()
        while self.pending and len(out) < n:
            key, src, fut = self.pending.popleft()
            name = self._name(key, src)
            try:
                out.append((key, name, fut.result()))
            except ImageLoadError as e:
                out.append((key, name, failure_reason(e, name)))
            except Exception as e:  # noqa: BLE001 - a loader bug must not stop the run
                out.append((key, name, f"cannot read image: {type(e).__name__}: {e}"))
            self._fill()
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def _count(report: AnnotateReport | None, r: ImageResult) -> None:
    if not r.ok:
        log.warning("%s: %s", r.name, r.error)
    if report is not None:
        report.count(r.name, r.error)


def failure_reason(error: BaseException, name: str) -> str:
    """The error's message without a leading ``"<name>: "`` (failure records already name the
    item, so the path is not repeated)."""
    text = str(error)
    prefix = f"{name}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _run_batch(
    function: DetectionFunction,
    batch_fn: Callable | None,
    batch: list[tuple[Hashable, str, PIL.Image.Image]],
    mapping: LabelMapping,
    conf_threshold: float | None,
    conv_mask_to_poly: bool,
    per_target: TargetMappings | None = None,
) -> list[ImageResult]:
    if not batch:
        return []
    contexts = [
        DetectionFunctionContext(frame_name=name, conf_threshold=conf_threshold, conv_mask_to_poly=conv_mask_to_poly)
        for _, name, _ in batch
    ]
    outputs: list[Any] | None = None
    if batch_fn is not None and len(batch) > 1:
        try:
            outputs = list(batch_fn(contexts, [img for _, _, img in batch]))
            if len(outputs) != len(batch):
                raise BadFunctionError(f"detect_batch() returned {len(outputs)} results for {len(batch)} images")
        except Exception as e:  # noqa: BLE001 - retry one by one to isolate the bad image
            log.warning("batch of %d failed (%s: %s); retrying image by image", len(batch), type(e).__name__, e)
            outputs = None
    results = []
    for i, ((key, name, img), ctx) in enumerate(zip(batch, contexts)):
        try:
            raw = outputs[i] if outputs is not None else function.detect(ctx, img)
            shapes = process_output(function.spec, raw, img.size, ctx, mapping)
            targets = None
            if per_target is not None:  # mapping was the identity: now onto each target
                shapes, targets = per_target.map_shapes(shapes)
            results.append(ImageResult(key, name, shapes, img.size, targets=targets))
        except BadFunctionError as e:
            results.append(ImageResult(key, name, None, img.size, f"function broke the protocol: {e}"))
        except AutoAnnotateError as e:
            results.append(ImageResult(key, name, None, img.size, str(e)))
        except Exception as e:  # noqa: BLE001 - a model error on one image must not stop the run
            log.debug("model error on %s", name, exc_info=True)
            results.append(ImageResult(key, name, None, img.size, f"model error: {type(e).__name__}: {e}"))
    return results


def process_output(
    spec: Any,
    raw: Any,
    size: tuple[int, int],
    context: DetectionFunctionContext,
    mapping: LabelMapping,
) -> list[Shape]:
    """Validate ``raw`` (what ``detect`` returned), threshold it, convert masks to polygons when
    asked, and map it onto the target. Raises :class:`BadFunctionError` on protocol breaks."""
    shapes = validate_shapes(spec, raw, size, frame_name=context.frame_name)
    t = context.conf_threshold
    if t is not None:
        shapes = [s for s in shapes if s.score is None or s.score >= t]
    if context.conv_mask_to_poly and any(s.type == "mask" for s in shapes):
        shapes = masks_to_polygon_shapes(shapes)
    return mapping.map_shapes(shapes)


def masks_to_polygon_shapes(shapes: Iterable[Shape]) -> list[Shape]:
    """Replace each mask shape by its polygon (the core's one rule: ``outputs.mask_polygon``)."""
    from .outputs import masks_to_polygons

    return masks_to_polygons(shapes)
