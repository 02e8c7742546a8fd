"""FiftyOne plugin of autoannotate: thin operators over ``autoannotate.fiftyone``.

Install the core with ``pip install "autoannotate[fiftyone,onnx]"`` and put the folder that
contains this plugin on ``FIFTYONE_PLUGINS_DIR`` (or ``fiftyone plugins create``/download it).
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from autoannotate.loading import parse_label_map, parse_params, predefined
from autoannotate.settings import DEFAULT_BATCH_SIZE

LABEL_LIST_TYPES = ("Detections", "Polylines", "Keypoints", "Classifications")


def _split(text):
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


def _label_fields(ctx):
    schema = ctx.dataset.get_field_schema(embedded_doc_type=None) if ctx.dataset else {}
    return [
        name
        for name, field in schema.items()
        if getattr(getattr(field, "document_type", None), "__name__", "") in LABEL_LIST_TYPES
    ]


def _progress(ctx):
    def report(done, total):
        ctx.set_progress(progress=(done / total) if total else None, label=f"{done}/{total or '?'} samples")

    return report


class AutoLabel(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="auto_label",
            label="Auto-label with a model",
            description="Run a model over samples, store labels with confidences and route them for review",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Auto-label")
        inputs.enum(
            "function",
            predefined("detection"),
            default="yolox",
            label="Function",
            description="a predefined function (see `autoannotate functions`)",
        )
        if ctx.dataset is not None and ctx.dataset.media_type == "video":
            inputs.enum(
                "tracker",
                predefined("tracking"),
                default="opencv_tracker",
                label="Tracker",
                description="follows the detections between key frames",
            )
            inputs.int("key_frame_interval", default=5, min=1, label="Detect on every Nth frame")
        inputs.str(
            "function_params",
            default="",
            label="Function parameters",
            description="NAME=TYPE:VALUE, comma-separated, e.g. model=str:yolox_nano",
        )
        inputs.str(
            "classes",
            default="",
            label="Classes",
            description="name:output_type, comma-separated (bbox, polygon, polyline, keypoint, mask, tag); empty: all",
        )
        inputs.str(
            "label_map",
            default="",
            label="Label map",
            description="function_label=dataset_label, comma-separated (e.g. car=vehicle)",
        )
        inputs.str("label_field", default="auto_labels", required=True, label="Label field")
        inputs.float(
            "conf_threshold",
            min=0.0,
            max=1.0,
            label="Model confidence threshold",
            description="empty: the model's default",
        )
        inputs.bool("route", default=True, label="Route labels for review")
        inputs.float("review_lower", default=0.3, min=0.0, max=1.0, label="Discard below")
        inputs.float("review_upper", default=0.8, min=0.0, max=1.0, label="Auto-approve at or above")
        inputs.bool("overwrite", default=False, label="Re-label samples that already have labels in this field")
        inputs.int("max_samples", min=0, label="At most this many samples")
        inputs.int("batch_size", default=DEFAULT_BATCH_SIZE, min=1, label="Images per model call")
        gt_choices = [f for f in _label_fields(ctx) if f != ctx.params.get("label_field")]
        if gt_choices:
            inputs.enum("eval_gt_field", gt_choices, label="Evaluate against ground truth field")
        return types.Property(inputs, view=types.View(label="Auto-label with a model"))

    def resolve_delegation(self, ctx):
        return ctx.params.get("delegate")

    def execute(self, ctx):
        from autoannotate.fiftyone import annotate_dataset

        p = ctx.params
        review = (p.get("review_lower", 0.3), p.get("review_upper", 0.8)) if p.get("route", True) else None
        label_map = parse_label_map(p.get("label_map"))
        video = {
            "tracker": p.get("tracker") or "opencv_tracker",
            "key_frame_interval": int(p.get("key_frame_interval") or 5),
        }
        report = annotate_dataset(
            ctx.target_view(),
            p.get("function") or "yolox",
            function_params=parse_params(_split(p.get("function_params"))),
            label_field=p.get("label_field") or "auto_labels",
            classes=_split(p.get("classes")) or None,
            label_map=label_map or None,
            conf_threshold=p.get("conf_threshold"),
            review=review,
            overwrite=bool(p.get("overwrite")),
            max_samples=p.get("max_samples"),
            eval_gt_field=p.get("eval_gt_field"),
            batch_size=int(p.get("batch_size") or DEFAULT_BATCH_SIZE),
            progress=_progress(ctx),
            **(video if ctx.dataset.media_type == "video" else {}),
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return report.to_dict()

    def resolve_output(self, ctx):
        outputs = types.Object()
        for name, label in [
            ("images_attempted", "Samples attempted"),
            ("images_processed", "Samples labelled"),
            ("images_skipped", "Samples skipped (already labelled)"),
            ("annotations_added", "Labels stored"),
            ("auto_approved", "Auto-approved"),
            ("needs_review", "Needs review"),
            ("discarded", "Discarded"),
        ]:
            outputs.int(name, label=label)
        outputs.list("failures", types.Object(), label="Failures")
        outputs.obj("extra", label="Run")
        return types.Property(outputs, view=types.View(label="Auto-label report"))


class _SetReview(foo.Operator):
    status = ""

    def resolve_input(self, ctx):
        inputs = types.Object()
        n = len(ctx.selected_labels)
        inputs.md(
            f"{n} selected label(s) will be marked **{self.status}**." if n else "Select labels in the App first."
        )
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import set_review

        n = set_review(ctx.dataset, ctx.selected_labels, self.status)
        ctx.trigger("reload_dataset")
        return {"updated": n, "status": self.status}


class AcceptLabels(_SetReview):
    status = "approved"

    @property
    def config(self):
        return foo.OperatorConfig(name="accept_labels", label="Accept selected labels", dynamic=True)


class RejectLabels(_SetReview):
    status = "rejected"

    @property
    def config(self):
        return foo.OperatorConfig(name="reject_labels", label="Reject selected labels", dynamic=True)


class PromoteApproved(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="promote_approved",
            label="Promote approved labels to ground truth",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Promote")
        fields = _label_fields(ctx)
        inputs.enum("label_field", fields or ["auto_labels"], required=True, label="Auto label field")
        inputs.str("gt_field", default="ground_truth", label="Ground truth field")
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import promote_approved

        n = promote_approved(ctx.target_view(), ctx.params["label_field"], ctx.params.get("gt_field") or "ground_truth")
        ctx.trigger("reload_dataset")
        return {"promoted": n}


class AssignReviewers(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="assign_reviewers", label="Assign needs-review samples to reviewers", dynamic=True
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Assign")
        inputs.enum("label_field", _label_fields(ctx) or ["auto_labels"], required=True, label="Auto label field")
        inputs.str("reviewers", required=True, label="Reviewers", description="names, comma-separated")
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import assign_reviewers

        counts = assign_reviewers(ctx.target_view(), ctx.params["label_field"], _split(ctx.params.get("reviewers")))
        ctx.trigger("reload_dataset")
        return {"assigned": counts}


class ListRuns(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="list_autoannotate_runs", label="List auto-label runs")

    def execute(self, ctx):
        from autoannotate.fiftyone import list_runs

        keep = ("run_key", "status", "function", "model_version", "label_fields", "review", "started_at", "finished_at")
        return {"runs": [{k: r.get(k) for k in keep} | {"report": r.get("report")} for r in list_runs(ctx.dataset)]}


class TrackLabels(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="track_labels",
            label="Track labels through the video",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Track")
        inputs.str(
            "label_field", required=True, label="Frame label field", description="e.g. detections (frames.detections)"
        )
        inputs.int("frame_number", default=1, min=1, label="Frame to start from")
        inputs.int("num_frames", default=30, min=1, label="Frames to propagate")
        inputs.enum("direction", ["forward", "backward", "both"], default="forward", label="Direction")
        inputs.enum("tracker", predefined("tracking"), default="opencv_tracker", label="Tracker")
        inputs.str(
            "tracker_params", default="", label="Tracker parameters", description="NAME=TYPE:VALUE, comma-separated"
        )
        inputs.bool("overwrite", default=False, label="Replace tracked labels already on later frames")
        return types.Property(inputs, view=types.View(label="Track labels"))

    def execute(self, ctx):
        from autoannotate.fiftyone import track_labels

        p = ctx.params
        selected = [s["label_id"] for s in ctx.selected_labels if s.get("field", "").endswith(p["label_field"])]
        frames = {s.get("frame_number") for s in ctx.selected_labels if s.get("frame_number")}
        report = track_labels(
            ctx.target_view(),
            p["label_field"].removeprefix("frames."),
            # "function" / "function_params": the form's names before 0.2
            tracker=p.get("tracker") or p.get("function") or "opencv_tracker",
            tracker_params=parse_params(_split(p.get("tracker_params") or p.get("function_params"))),
            frame_number=frames.pop() if len(frames) == 1 else int(p.get("frame_number") or 1),
            label_ids=selected or None,
            num_frames=int(p.get("num_frames") or 30),
            direction=p.get("direction") or "forward",
            overwrite=bool(p.get("overwrite")),
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return report.to_dict()


def register(p):
    for op in (AutoLabel, AcceptLabels, RejectLabels, PromoteApproved, AssignReviewers, ListRuns, TrackLabels):
        p.register(op)
