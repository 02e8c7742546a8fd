"""The operators that label: ``auto_label`` (images and videos, immediate, delegated or sharded),
``auto_label_shard`` (one shard of a sharded run) and ``track_labels`` (videos)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from autoannotate.loading import function_names, parse_params, split_list
from autoannotate.settings import DEFAULT_FUNCTION, DEFAULT_TRACK_FRAMES, DEFAULT_TRACKER

from .common import delegated_progress, operator_config, stream_to_app, streams_to_app
from .forms import auto_label_arguments, auto_label_inputs
from .report import report_view


class AutoLabel(foo.Operator):
    config = operator_config(
        "auto_label",
        "Auto-label with a model",
        long_running=True,
        description="Run a model over samples, store labels with confidences and route them for review",
    )

    def resolve_input(self, ctx):
        return auto_label_inputs(ctx)

    def resolve_delegation(self, ctx):
        # True forces delegation; None (not False) leaves the choice to the App's execution
        # menu and to request_delegation from Python
        return True if ctx.params.get("delegate") else None

    def _run(self, ctx, progress):
        from autoannotate.fiftyone import annotate_dataset

        kwargs = auto_label_arguments(ctx.dataset, ctx.params)
        return annotate_dataset(ctx.target_view(), kwargs.pop("function"), progress=progress, **kwargs).to_dict()

    def execute(self, ctx):
        if streams_to_app(ctx):
            return self._execute_in_app(ctx)
        # Python callers (execute_operator(...).result) and delegated workers get the report
        return self._run(ctx, delegated_progress(ctx) if ctx.delegated else True)

    def _execute_in_app(self, ctx):
        function = ctx.params.get("function") or DEFAULT_FUNCTION
        yield from stream_to_app(
            ctx,
            lambda progress: self._run(ctx, progress),
            name="auto_label",
            title="Auto-label",
            starting=f"loading {function} and reading the samples",
            saving=": saving the labels" + (", evaluating" if ctx.params.get("eval_gt_field") else ""),
        )

    def resolve_output(self, ctx):
        return report_view(ctx.results or {})[0]


class TrackLabels(foo.Operator):
    config = operator_config("track_labels", "Track labels through the video", long_running=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Track")
        inputs.str(
            "label_field", required=True, label="Frame label field", description="e.g. detections (frames.detections)"
        )
        inputs.int("frame_number", default=1, min=1, label="Frame to start from")
        inputs.int("num_frames", default=DEFAULT_TRACK_FRAMES, min=1, label="Frames to propagate")
        inputs.enum("direction", ["forward", "backward", "both"], default="forward", label="Direction")
        inputs.enum("tracker", function_names("tracking"), default=DEFAULT_TRACKER, label="Tracker")
        inputs.str(
            "tracker_params", default="", label="Tracker parameters", description="NAME=TYPE:VALUE, comma-separated"
        )
        inputs.bool("overwrite", default=False, label="Replace tracked labels already on later frames")
        inputs.enum(
            "output",
            ["boxes", "masks", "polylines"],
            default="boxes",
            label="Output",
            description="masks: also store each tracked object's mask; polylines: also its outline as a closed "
            "polyline in <field>_polylines (both: sam2_video, edgetam_video)",
        )
        return types.Property(inputs, view=types.View(label="Track labels"))

    def execute(self, ctx):
        if streams_to_app(ctx):
            tracker = ctx.params.get("tracker") or ctx.params.get("function") or DEFAULT_TRACKER
            return stream_to_app(
                ctx,
                lambda progress: self._run(ctx, progress),
                name="track_labels",
                title="Track labels",
                starting=f"loading {tracker} and reading the videos",
                saving=": saving the tracked labels",
            )
        # Python callers (execute_operator(...).result) and delegated workers get the report
        report = self._run(ctx, delegated_progress(ctx) if ctx.delegated else False)
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return report

    def _run(self, ctx, progress):
        from autoannotate.fiftyone import track_labels

        p = ctx.params
        selected = [s["label_id"] for s in ctx.selected_labels if s.get("field", "").endswith(p["label_field"])]
        frames = {s.get("frame_number") for s in ctx.selected_labels if s.get("frame_number")}
        report = track_labels(
            ctx.target_view(),
            p["label_field"].removeprefix("frames."),
            tracker=p.get("tracker") or DEFAULT_TRACKER,
            tracker_params=parse_params(split_list(p.get("tracker_params"))),
            frame_number=frames.pop() if len(frames) == 1 else int(p.get("frame_number") or 1),
            label_ids=selected or None,
            num_frames=int(p.get("num_frames") or DEFAULT_TRACK_FRAMES),
            direction=p.get("direction") or "forward",
            overwrite=bool(p.get("overwrite")),
            output=p.get("output") or "boxes",
            progress=progress,
        )
        return report.to_dict()

    def resolve_output(self, ctx):
        return report_view(ctx.results or {}, title="Track labels report")[0]


class AutoLabelShard(foo.Operator):
    """One shard of a sharded auto-label run (queued by ``annotate_dataset(..., shards=N)``)."""

    config = operator_config(
        "auto_label_shard",
        "Auto-label: one shard of a sharded run",
        unlisted=True,
        allow_immediate_execution=True,
        allow_delegated_execution=True,
    )

    def execute(self, ctx):
        from autoannotate.fiftyone.shard_worker import run_shard

        p = ctx.params
        progress = delegated_progress(ctx) if ctx.delegated else False
        return run_shard(ctx.dataset, p["run_key"], int(p["shard"]), progress=progress).to_dict()
