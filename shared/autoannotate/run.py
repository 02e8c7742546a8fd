"""The run engine: one loop behind every front end.

A run is always the same steps, written once here:

1. pick the items still to do (the sink says which are done; a resumed run keeps its key);
2. process them: :func:`autoannotate.driver.iter_annotations` for images (decoding ahead,
   batching, calling the function, validation and label mapping) or
   :func:`autoannotate.video.iter_video_tracks` for videos (the same validation and mapping on
   every key frame);
3. route every label for review (:class:`autoannotate.routing.Router`);
4. hand results to the sink, which writes them in batches: every ``write_every`` items or
   ``write_interval`` seconds, and once more at the end, also when the run is interrupted;
5. keep a run record (where the target has a :class:`RunStore`) and return the
   :class:`~autoannotate.report.AnnotateReport`.

A front end contributes a :class:`Sink` (FiftyOne images, FiftyOne video, Label Studio
projects, COCO files) and, optionally, a :class:`RunStore` (FiftyOne keeps one document per run
in its database, so several processes and machines never overwrite each other's records).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .driver import ImageResult, Progress, iter_annotations
from .errors import AutoAnnotateError, BadParameterError
from .images import DEFAULT_MAX_PIXELS
from .interface import DetectionFunction
from .loading import adapt_function
from .mapping import LabelMapping, Synonyms, TargetLabel, target_labels_from_spec
from .report import AnnotateReport
from .routing import Router
from .settings import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, DEFAULT_WRITE_EVERY, DEFAULT_WRITE_INTERVAL

log = logging.getLogger(__name__)

#: A run record's ``status``: ``running`` while its process works on it.
UNFINISHED = ("running", "interrupted", "failed")

Item = tuple[Hashable, Any]


@runtime_checkable
class Result(Protocol):
    """What a processor yields per item (:class:`autoannotate.driver.ImageResult`,
    :class:`autoannotate.video.VideoResult`)."""

    key: Hashable
    name: str
    error: str | None

    @property
    def ok(self) -> bool: ...

    def route(self, router: Router) -> int:
        """Apply review routing in place; return how many labels were discarded."""
        ...


#: ``process(items, report)`` yields one :class:`Result` per item, in order, and counts
#: attempted / processed / failed items in ``report``. Build one with :func:`processor`.
Processor = Callable[[Sequence[Item], AnnotateReport], Iterator[Any]]


@dataclass(frozen=True)
class _Bound:
    iterate: Callable[..., Iterable[Any]]
    args: tuple[Any, ...]
    options: Mapping[str, Any]

    def __call__(self, todo: Sequence[Item], report: AnnotateReport) -> Iterator[Any]:
        return iter(self.iterate(*self.args, todo, report=report, **self.options))


def processor(iterate: Callable[..., Iterable[Any]], *args: Any, **options: Any) -> Processor:
    """The engine's ``process(todo, report)`` for ``iterate``, a function that takes the items to
    do after ``args`` and counts them in ``report=``: the engine's call becomes
    ``iterate(*args, todo, report=report, **options)``. Images:
    ``processor(iter_annotations, function, mapping=mapping, batch_size=8)``; videos:
    ``processor(iter_video_tracks, detector, tracker, mapping=mapping)``."""
    if "report" in options:
        raise TypeError("processor(): the engine passes report= itself")
    return _Bound(iterate, args, dict(options))


@runtime_checkable
class Sink(Protocol):
    """Where a run's results go.

    - ``done_keys(run_key)``: keys of items already finished (the run skips them); ``run_key`` is
      the key of this run (resumed or new), for targets that count only this run's own work;
    - ``begin(run_key)``: the run starts under this key (labels may carry it);
    - ``add(result)``: take one successful, routed result and buffer it; return the review status
      of each label it will store (``None`` for labels that are not routed), in any order;
    - ``pending()``: how many results are buffered;
    - ``flush()``: write what is buffered (raise :class:`AutoAnnotateError` if that fails; what was
      written before stays);
    - ``finish(report)``: called once when the run completed (saved views, evaluation, files).
    """

    def done_keys(self, run_key: str | None) -> set[Hashable]: ...

    def begin(self, run_key: str) -> None: ...

    def add(self, result: Any) -> Sequence[str | None]: ...

    def pending(self) -> int: ...

    def flush(self) -> None: ...

    def finish(self, report: AnnotateReport) -> None: ...


@runtime_checkable
class CountingSink(Protocol):
    """A sink that can count what a run stored in its target (its labels carry the run key):
    ``stored_counts(run_key)`` gives ``{"items", "labels", "auto_approved", "needs_review"}``. A
    resumed run starts from these counts instead of its record's (which a killed process may
    not have saved)."""

    def stored_counts(self, run_key: str) -> Mapping[str, int]: ...


@runtime_checkable
class RunStore(Protocol):
    """Run records of one target, each created and updated atomically on its own.

    - ``find_resumable(config_hash)``: the newest unfinished record with this configuration whose
      process is gone (killed, interrupted), or None;
    - ``claim(record)``: atomically take over ``record`` (a resumable one) for this process;
      False when another process took it first;
    - ``create(record)``: store a new record; False when its ``run_key`` already exists;
    - ``update(record)``: write this run's record (it owns it);
    - ``heartbeat(record)``: note that this run is alive (called at every write).
    """

    def find_resumable(self, config_hash: str) -> dict[str, Any] | None: ...

    def claim(self, record: dict[str, Any]) -> bool: ...

    def create(self, record: dict[str, Any]) -> bool: ...

    def update(self, record: dict[str, Any]) -> None: ...

    def heartbeat(self, record: dict[str, Any]) -> None: ...


def now() -> str:
    """UTC time as ISO 8601 (seconds), the format of every time in run records."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_key(prefix: str = "autolabel") -> str:
    """A key unique across processes and machines: ``<prefix>_<UTC time>_<8 random hex digits>``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d_%H%M%S")
    return f"{prefix}_{stamp}_{secrets.token_hex(4)}"


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a run's configuration (what decides whether a run can resume)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(keys: Iterable[Hashable]) -> str:
    """A short hash of a set of item keys: which items a run targets, for its configuration."""
    h = hashlib.sha256()
    for k in sorted(str(k) for k in keys):
        h.update(k.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def check_write_policy(write_every: int, write_interval: float) -> None:
    if not isinstance(write_every, int) or isinstance(write_every, bool) or write_every < 1:
        raise BadParameterError(f"write_every must be an integer >= 1, got {write_every!r}")
    if not isinstance(write_interval, (int, float)) or isinstance(write_interval, bool) or write_interval < 0:
        raise BadParameterError(f"write_interval must be a number of seconds >= 0, got {write_interval!r}")


def check_max_items(value: int | None, name: str) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise BadParameterError(f"{name} must be an integer >= 0, got {value!r}")


def run(
    items: Iterable[Item],
    process: Processor,
    sink: Sink,
    *,
    config: Mapping[str, Any] | None = None,
    store: RunStore | None = None,
    router: Router | None = None,
    max_items: int | None = None,
    write_every: int = DEFAULT_WRITE_EVERY,
    write_interval: float = DEFAULT_WRITE_INTERVAL,
    key_prefix: str = "autolabel",
    unit: str = "images",
) -> AnnotateReport:
    """Run ``process`` over the ``items`` (``(key, source)`` pairs) the ``sink`` has not done yet.

    ``config`` describes the run (function, classes, thresholds, ...): it is stored in the run
    record, and a run with the same configuration whose process is gone is resumed under its
    key. ``max_items`` limits how many items this call processes (after skipping). With a
    ``store``, the report's ``extra["run_key"]`` names the run (None when nothing was left to do
    and no run was resumed). ``unit`` names the items in the report's summary (images, videos,
    tasks); ``key_prefix`` starts new run keys.
    """
    check_write_policy(write_every, write_interval)
    check_max_items(max_items, "max_items")
    items = list(items)
    record = _Record(store, dict(config or {}), key_prefix)
    todo, skipped = _todo(items, sink.done_keys(record.key), max_items)
    report = record.first_report(skipped, unit, sink)
    if not todo:  # nothing new: no new record; a resumed record is closed
        record.close_resumed(report)
        if store is not None:
            report.extra["run_key"] = record.resumed_key
        sink.finish(report)
        return report
    if record.start():  # another process resumed that run first: this one is new, recount
        todo, skipped = _todo(items, sink.done_keys(record.key), max_items)
        report = record.first_report(skipped, unit, sink)
    if store is not None:  # a key without a record to look it up in would only be noise
        report.extra["run_key"] = record.key
    sink.begin(record.key)
    _Loop(sink, record, router, write_every, write_interval).run(process, todo, report)
    return report


def _todo(items: list[Item], done: set[Hashable], max_items: int | None) -> tuple[list[Item], int]:
    todo = [it for it in items if it[0] not in done]
    skipped = len(items) - len(todo)
    return (todo if max_items is None else todo[:max_items]), skipped


class _Record:
    """This run's record: resumed or new, saved through the store (if any)."""

    def __init__(self, store: RunStore | None, config: dict[str, Any], key_prefix: str) -> None:
        self.store = store
        self.config = config
        self.prefix = key_prefix
        self.hash = config_hash(config)
        self.previous = store.find_resumable(self.hash) if store is not None else None
        self.key = self.previous["run_key"] if self.previous else new_run_key(key_prefix)
        self.data: dict[str, Any] = {}

    @property
    def resumed_key(self) -> str | None:
        return self.previous["run_key"] if self.previous else None

    def first_report(self, skipped: int, unit: str, sink: Sink) -> AnnotateReport:
        """The report this process starts from: empty for a new run; for a resumed run what its
        earlier processes stored, so that its counts stay those of everything the run stored,
        however often it was resumed: what a :class:`CountingSink` counts in its target, else
        its record's report (saved with every write). Items those processes did are among the
        ``skipped`` ones but count as processed; their failures are dropped (failed items are
        tried again); discarded labels and warnings come from the record."""
        if self.previous is None:
            return AnnotateReport(images_attempted=skipped, images_skipped=skipped, unit=unit)
        earlier = self.previous.get("report") or {}
        before = AnnotateReport.from_dict({k: v for k, v in earlier.items() if k != "extra"})
        if isinstance(sink, CountingSink):
            stored = sink.stored_counts(self.previous["run_key"])
            before.images_processed = stored["items"]
            before.annotations_added = stored["labels"]
            before.auto_approved = stored["auto_approved"]
            before.needs_review = stored["needs_review"]
        report = AnnotateReport(
            images_processed=before.images_processed,
            images_skipped=max(0, skipped - before.images_processed),
            annotations_added=before.annotations_added,
            auto_approved=before.auto_approved,
            needs_review=before.needs_review,
            discarded=before.discarded,
            warnings=list(before.warnings),
            unit=unit,
        )
        report.images_attempted = report.images_processed + report.images_skipped
        report.extra["earlier_processes"] = {
            "images_processed": before.images_processed,
            "annotations_added": before.annotations_added,
        }
        return report

    def start(self) -> bool:
        """Claim the resumable record or create a new one; True when the key changed (another
        process resumed that run first, so this one starts a new run)."""
        if self.store is None:
            return False
        if self.previous is not None and self.store.claim(self.previous):
            self.data = dict(self.previous, **self.config, resumed=True, status="running")
            self.store.update(self._doc())
            return False
        changed = self.previous is not None
        self.previous = None
        while True:
            if changed:
                self.key = new_run_key(self.prefix)
            self.data = dict(self.config, status="running", started_at=now(), resumed=False)
            if self.store.create(self._doc()):
                return changed
            changed = True

    def _doc(self) -> dict[str, Any]:
        return dict(self.data, run_key=self.key, config_hash=self.hash)

    def close_resumed(self, report: AnnotateReport) -> None:
        """Everything was done already: mark the resumed record completed (if this process wins it)."""
        if self.store is None or self.previous is None or not self.store.claim(self.previous):
            return
        self.data = dict(self.previous, status="completed", finished_at=now())
        self.data.setdefault("report", report.to_dict())
        self.store.update(self._doc())

    def heartbeat(self, report: AnnotateReport | None = None) -> None:
        """Tell the store this process is alive; with ``report`` (right after a write) also keep
        the counts of what is stored so far, which a resumed run starts from."""
        if self.store is None or not self.data:
            return
        if report is None:
            self.store.heartbeat(self._doc())
            return
        self.data["report"] = report.to_dict()
        self.store.update(self._doc())

    def finish(self, status: str, report: AnnotateReport) -> None:
        if self.store is None:
            return
        # what the run found out (its needs-review view, its evaluation) is part of its record
        self.data.update({k: v for k, v in report.extra.items() if k not in self.config and k != "run_key"})
        self.data.update(status=status, finished_at=now(), report=report.to_dict())
        try:
            self.store.update(self._doc())
        except Exception:  # noqa: BLE001 - the run's own outcome matters more
            log.exception("could not save the record of run %s", self.key)


class _Loop:
    """Routing, counting and timed/counted writes around one processor."""

    def __init__(self, sink: Sink, record: _Record, router: Router | None, every: int, interval: float) -> None:
        self.sink, self.record, self.router = sink, record, router
        self.every, self.interval = every, interval
        self.last_write = time.monotonic()

    def run(self, process: Processor, todo: list[Item], report: AnnotateReport) -> None:
        status = "failed"
        try:
            for result in process(todo, report):
                if result.ok:
                    self.take(result, report)
                n = self.sink.pending()
                if n >= self.every or (n and time.monotonic() - self.last_write >= self.interval):
                    self.flush(report)
            self.flush(report)
            self.sink.finish(report)
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if status != "completed" and self.sink.pending():
                try:
                    self.flush(report)
                except Exception:  # noqa: BLE001 - the original error matters more
                    log.exception("could not write the pending results of run %s", self.record.key)
            self.record.finish(status, report)

    def take(self, result: Any, report: AnnotateReport) -> None:
        if self.router:
            report.discarded += result.route(self.router)
        stored = self.sink.add(result)
        report.annotations_added += len(stored)
        report.auto_approved += sum(1 for s in stored if s == "approved")
        report.needs_review += sum(1 for s in stored if s == "needs_review")

    def flush(self, report: AnnotateReport | None = None) -> None:
        if self.sink.pending():
            self.sink.flush()
            self.record.heartbeat(report)
        self.last_write = time.monotonic()


def write_error(target: str, count: int, error: BaseException | str) -> AutoAnnotateError:
    """The error a sink raises when a write fails: what failed, and that re-running continues.
    ``error`` is the exception, or a message already made safe to show (no secrets)."""
    why = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return AutoAnnotateError(
        f"writing {count} results to {target} failed ({why}); what was written "
        "before is kept, and running the same call or command again continues where it stopped"
    )


class _Collect:
    """A sink that keeps every result in memory (for :func:`annotate_images`)."""

    def __init__(self) -> None:
        self.results: list[ImageResult] = []

    def collect(self, function: DetectionFunction, todo: Sequence[Item], **options: Any) -> Iterator[ImageResult]:
        """The driver's results, each also kept (failures too: they are results of the call). The
        driver gets the caller's images as given (its keys and names, not the run's)."""
        for r in iter_annotations(function, [src for _, src in todo], **options):
            self.results.append(r)
            yield r

    def done_keys(self, run_key: str | None) -> set[Hashable]:
        return set()

    def begin(self, run_key: str) -> None:
        pass

    def add(self, result: ImageResult) -> list[str | None]:
        return [None] * len(result.shapes or [])

    def pending(self) -> int:
        return 0

    def flush(self) -> None:
        pass

    def finish(self, report: AnnotateReport) -> None:
        pass


def annotate_images(
    function: DetectionFunction,
    images: Iterable[Any],
    *,
    target_labels: Sequence[TargetLabel] | None = None,
    label_map: Synonyms | None = None,
    allow_unmatched_labels: bool = False,
    conf_threshold: float | None = None,
    conv_mask_to_poly: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = DEFAULT_NUM_WORKERS,
    progress: Progress = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[list[ImageResult], AnnotateReport]:
    """Annotate ``images`` (paths, bytes, PIL images or ``(key, source)`` pairs) and return every
    :class:`~autoannotate.driver.ImageResult`, in order, with the run's report.

    Label mapping onto ``target_labels`` (default: the function's own labels, renamed by
    ``label_map``) is checked before any inference and raises
    :class:`~autoannotate.errors.LabelMappingError` if it fails.
    """
    function = adapt_function(function)
    if target_labels is None:
        target_labels = target_labels_from_spec(function.spec, conv_mask_to_poly=conv_mask_to_poly)
    mapping = LabelMapping.build(
        function.spec, target_labels, label_map=label_map, allow_unmatched=allow_unmatched_labels
    )
    sink = _Collect()
    items = [(f"#{i}", it) for i, it in enumerate(images)]
    process = processor(
        sink.collect,
        function,
        mapping=mapping,
        conf_threshold=conf_threshold,
        conv_mask_to_poly=conv_mask_to_poly,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        max_pixels=max_pixels,
    )
    return sink.results, run(items, process, sink)
