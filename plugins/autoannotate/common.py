"""What the plugin's operators share: the dataset's label fields, progress for the App and for
delegated runs (``stream_to_app``, ``delegated_progress``), and the plugin's constants."""

from __future__ import annotations

import logging
import queue
import threading
import time

import fiftyone.operators as foo
import fiftyone.operators.types as types

from autoannotate.settings import DEFAULT_REVIEW

from .report import report_view

log = logging.getLogger(__name__)

LABEL_LIST_TYPES = ("Detections", "Polylines", "Keypoints", "Classifications")
#: The plugin's name in fiftyone.yml (operator URIs are ``<PLUGIN_NAME>/<operator>``).
PLUGIN_NAME = "@autoannotate/autoannotate"
#: Seconds between two progress updates sent to the App or stored for a delegated run.
PROGRESS_EVERY = 0.5


#: What an operator that runs for long needs: a form that follows the inputs, progress streamed to
#: the App (a generator), and the choice of running now or on a delegated worker.
LONG_RUNNING = {
    "dynamic": True,
    "execute_as_generator": True,
    "allow_immediate_execution": True,
    "allow_delegated_execution": True,
}


def operator_config(name, label, *, long_running=False, **options):
    """An operator's config: ``name`` and ``label``, :data:`LONG_RUNNING`'s settings when
    ``long_running``, and FiftyOne's other ``OperatorConfig`` ``options`` (which win)."""
    return foo.OperatorConfig(name=name, label=label, **(LONG_RUNNING if long_running else {}), **options)


def review_threshold_inputs(inputs, names, labels, extra=({}, {})):
    """The two review thresholds of a form, each in [0, 1] with :data:`DEFAULT_REVIEW`'s default:
    ``names`` and ``labels`` (lower, upper), ``extra`` more keywords for each field."""
    for name, default, label, more in zip(names, DEFAULT_REVIEW, labels, extra, strict=True):
        inputs.float(name, default=default, min=0.0, max=1.0, label=label, **more)


def label_fields(ctx, frames=True):
    """The dataset's label-list fields; on videos also its frame fields as ``frames.<name>``."""
    if ctx.dataset is None:
        return []

    def lists(schema, prefix=""):
        return [
            prefix + name
            for name, field in (schema or {}).items()
            if getattr(getattr(field, "document_type", None), "__name__", "") in LABEL_LIST_TYPES
        ]

    out = lists(ctx.dataset.get_field_schema())
    if frames and ctx.dataset.media_type == "video":
        out += lists(ctx.dataset.get_frame_field_schema(), "frames.")
    return out


def progress_label(done, total):
    return f"{done} / {total if total is not None else '?'} samples"


def delegated_progress(ctx):
    """``(done, total)`` callback storing the run's progress on its delegated operation (at most
    every ``PROGRESS_EVERY`` seconds, and always the last one)."""
    last = [0.0]

    def report(done, total):
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY and done != total:
            return
        last[0] = now
        ctx.set_progress(progress=(done / total) if total else None, label=progress_label(done, total))

    return report


def app_can_schedule():
    """Whether FiftyOne's App offers "Schedule" without a registered orchestrator (1.22: only
    with legacy orchestrators, i.e. ``fiftyone delegated launch`` workers, allowed)."""
    import fiftyone as fo

    return bool(getattr(fo.config, "allow_legacy_orchestrators", True))


def streams_to_app(ctx):
    """True when the App runs the operator right now: its execution requests carry
    ``operator_uri`` (``fiftyone.operators.execute_operator`` and delegated workers do not), and
    it reads a generator's messages (progress, the result view) as they come. FiftyOne drops a
    generator's return value, so every other caller gets the report returned instead."""
    return not ctx.delegated and "operator_uri" in ctx.request_params


def saved_calibrations(ctx):
    """Label fields with saved review calibrations (the calibrate operator's Apply)."""
    if ctx.dataset is None:
        return []
    from autoannotate.fiftyone.review import saved_calibrations

    return saved_calibrations(ctx.dataset)


def stream_to_app(ctx, run, *, name, title, starting, saving):
    """A generator for the App: "done / total samples" progress while ``run(progress)`` works in a
    thread (``starting`` before the first count, ``saving`` appended to the last one), then the
    report it returns (:func:`report_view`, titled ``"<title> report"``), or its error. A run the
    person stops watching goes on to its end."""
    events = queue.Queue()

    def work():
        try:
            events.put(("done", run(lambda done, total: events.put(("progress", done, total)))))
        except Exception as e:  # noqa: BLE001 - shown in the App below
            log.exception("%s failed", name)
            events.put(("error", e))

    threading.Thread(target=work, name=f"autoannotate-{name}", daemon=True).start()
    yield ctx.trigger("set_progress", {"label": starting, "variant": "linear"})
    latest, event, sent = None, None, float("-inf")
    while event is None:
        try:
            got = events.get(timeout=PROGRESS_EVERY)
        except queue.Empty:
            got = None
        if got is not None and got[0] == "progress":
            latest = got
        elif got is not None:
            event = got
        # the first count, then at most one every PROGRESS_EVERY seconds, and always the last
        # one before the result (the run may end within one interval of its previous count)
        if latest is not None and (event is not None or time.monotonic() - sent >= PROGRESS_EVERY):
            _, done, total = latest
            label = progress_label(done, total)
            if total and done >= total:
                label += saving
            yield ctx.trigger("set_progress", {"progress": (done / total) if total else None, "label": label})
            latest, sent = None, time.monotonic()
    if event[0] == "error":
        yield ctx.ops.notify(f"{name} failed: {event[1]}", variant="error")
        outputs = types.Object()
        outputs.view("failed", types.Error(label="The run did not start or stopped", description=str(event[1])))
        yield ctx.ops.show_output(types.Property(outputs, view=types.View(label=f"{title} failed")).to_json(), {})
        return
    yield ctx.trigger("reload_dataset")
    outputs, results = report_view(event[1], title=f"{title} report")
    yield ctx.ops.show_output(outputs.to_json(), results)
