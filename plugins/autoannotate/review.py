"""The review operators and panel: accept or reject selected labels, promote approved labels to
ground truth, assign reviewers, show the most uncertain first, learn thresholds from decisions
(``calibrate_review``), and the review-progress panel."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from autoannotate.calibrate import BOUNDS
from autoannotate.loading import split_list
from autoannotate.settings import (
    DEFAULT_BOUND,
    DEFAULT_GT_FIELD,
    DEFAULT_LABEL_FIELD,
    DEFAULT_MIN_DECISIONS,
    DEFAULT_MIN_SUPPORT,
    DEFAULT_REVIEW,
    DEFAULT_TARGET_PRECISION,
)

from .common import label_fields, operator_config, review_threshold_inputs


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

        # who decided: the App's user where FiftyOne knows one (Teams), else AUTOANNOTATE_REVIEWER / the login
        user = getattr(ctx, "user", None)
        reviewer = getattr(user, "name", None) or getattr(user, "email", None)
        result = set_review(ctx.dataset, ctx.selected_labels, self.status, reviewer=reviewer)
        ctx.trigger("reload_dataset")
        # ``set_review`` counts only labels it changed; selected ids that match no label are unknown
        return {
            "updated": result.changed,
            "status": self.status,
            "unchanged": result.unchanged,
            "unknown": len(result.unknown),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("updated", label=f"Labels marked {self.status}")
        outputs.int("unchanged", label=f"Already {self.status}")
        outputs.int("unknown", label="Selected labels not found (deleted or wrong id)")
        return types.Property(outputs, view=types.View(label="Review"))


class AcceptLabels(_SetReview):
    status = "approved"

    config = operator_config("accept_labels", "Accept selected labels", dynamic=True)


class RejectLabels(_SetReview):
    status = "rejected"

    config = operator_config("reject_labels", "Reject selected labels", dynamic=True)


class PromoteApproved(foo.Operator):
    config = operator_config(
        "promote_approved", "Promote approved labels to ground truth", dynamic=True, allow_delegated_execution=True
    )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Promote")
        fields = label_fields(ctx)
        inputs.enum("label_field", fields or [DEFAULT_LABEL_FIELD], required=True, label="Auto label field")
        inputs.str("gt_field", default=DEFAULT_GT_FIELD, label="Ground truth field")
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import promote_approved

        n = promote_approved(
            ctx.target_view(), ctx.params["label_field"], ctx.params.get("gt_field") or DEFAULT_GT_FIELD
        )
        ctx.trigger("reload_dataset")
        return {"promoted": n}


class AssignReviewers(foo.Operator):
    config = operator_config("assign_reviewers", "Assign needs-review samples to reviewers", dynamic=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Assign")
        inputs.enum("label_field", label_fields(ctx) or [DEFAULT_LABEL_FIELD], required=True, label="Auto label field")
        inputs.str("reviewers", required=True, label="Reviewers", description="names, comma-separated")
        choices = types.RadioGroup()
        choices.add_choice("samples", label="Same number of samples each")
        choices.add_choice("labels", label="Same number of labels to review each")
        inputs.enum("balance", choices.values(), default="samples", label="Balance", view=choices)
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import assign_reviewers, review_workload

        view = ctx.target_view()
        field = ctx.params["label_field"]
        counts = assign_reviewers(
            view, field, split_list(ctx.params.get("reviewers")), balance=ctx.params.get("balance") or "samples"
        )
        ctx.trigger("reload_dataset")
        workload = review_workload(view, field)
        return {"assigned": counts, "labels": {name: workload.get(name, {}).get("labels", 0) for name in counts}}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.obj("assigned", label="Samples per reviewer", view=types.KeyValueView())
        outputs.obj("labels", label="Needs-review labels per reviewer", view=types.KeyValueView())
        return types.Property(outputs, view=types.View(label="Reviewers assigned"))


class ReviewProgressPanel(foo.Panel):
    """Review progress of a label field (per run, class and reviewer) and the precision of
    reviewed labels against confidence, per class (``autoannotate.fiftyone.panel``)."""

    @property
    def config(self):
        return foo.PanelConfig(
            name="autoannotate_review_progress",
            label="Review progress",
            surfaces="grid",
            help_markdown="Auto-approved, approved by reviewers, rejected, waiting and discarded labels per run, "
            "class and reviewer; % reviewed; acceptance rate; precision of reviewed labels by confidence.",
        )

    def _refresh(self, ctx, field=None):
        from autoannotate.fiftyone.panel import panel_content

        content = panel_content(ctx.view, field or ctx.panel.state.label_field)
        ctx.panel.state.set(
            {
                "label_field": content["label_field"],
                "fields": content["fields"],
                "markdown": content["markdown"],
                "traces": content["traces"],
            }
        )

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_view(self, ctx):
        self._refresh(ctx)

    def on_change_field(self, ctx):
        self._refresh(ctx, ctx.params.get("value"))

    def on_refresh(self, ctx):
        self._refresh(ctx)

    def render(self, ctx):
        from autoannotate.fiftyone.panel import PLOT_LAYOUT

        panel = types.Object()
        fields = ctx.panel.state.fields or []
        if fields:
            panel.enum(
                "label_field",
                fields,
                default=ctx.panel.state.label_field,
                label="Label field",
                on_change=self.on_change_field,
            )
        panel.btn("refresh", label="Refresh", on_click=self.on_refresh)
        panel.md(ctx.panel.state.markdown or "", name="summary")
        if ctx.panel.state.traces:
            panel.plot(
                "precision_by_confidence",
                data=ctx.panel.state.traces,
                layout=dict(PLOT_LAYOUT, title={"text": "Precision of reviewed labels by confidence"}),
                config={"displayModeBar": False},
                height="400px",
                width="100%",
            )
        return types.Property(panel, view=types.GridView(orientation="vertical", height=100, width=100))


class SortByReviewUncertainty(foo.Operator):
    config = operator_config(
        "sort_by_review_uncertainty", "Show needs-review labels, most uncertain first", dynamic=True
    )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.enum("label_field", label_fields(ctx) or [DEFAULT_LABEL_FIELD], required=True, label="Auto label field")
        inputs.str("run_key", label="Only this run (optional)")
        inputs.md(
            "Samples where two runs disagree come first, then those whose labels' confidence is nearest "
            "the review thresholds of the run that made them."
        )
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone.review import needs_review_view

        view = needs_review_view(
            ctx.dataset, ctx.params["label_field"], ctx.params.get("run_key") or None, order="uncertainty"
        )
        ctx.ops.set_view(view=view)
        return {"samples": view.count()}


def _held_out_text(check):
    """One line of a calibration's held-out check (``Calibration.held_out``)."""
    if not check:
        return "none: no decisions held out (set a held-out share to see the precision reached)"
    t = check["total"]
    if not t["labels"]:
        return f"no held-out label at or above a calibrated upper ({check['decisions']} decisions held out)"
    per = ", ".join(
        f"{k} {e['precision']:.3f} ({e['correct']}/{e['labels']})" for k, e in check["classes"].items() if e["labels"]
    )
    return (
        f"precision {t['precision']:.3f} ({t['correct']} of {t['labels']} held-out labels at or above upper; "
        f"{per}); {check['decisions']} decisions held out"
    )


class CalibrateReview(foo.Operator):
    config = operator_config("calibrate_review", "Learn review thresholds from decisions", dynamic=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Calibrate")
        fields = label_fields(ctx) or [DEFAULT_LABEL_FIELD]
        inputs.enum("label_field", fields, required=True, label="Auto label field")
        inputs.enum(
            "source",
            ["review", *fields],
            default="review",
            label="Decisions from",
            description="'review': reviewers' accept/reject; or a ground-truth field",
        )
        inputs.float("target_precision", default=DEFAULT_TARGET_PRECISION, min=0.5, max=0.999, label="Target precision")
        inputs.enum(
            "bound",
            [DEFAULT_BOUND, *(b for b in BOUNDS if b != DEFAULT_BOUND)],
            default=DEFAULT_BOUND,
            label="Precision must reach it as",
            description="'wilson': the lower end of its Wilson interval (holds on new labels); "
            "'estimate': the observed precision (optimistic)",
        )
        inputs.int("min_decisions", default=DEFAULT_MIN_DECISIONS, min=1, label="Least decisions per class")
        inputs.int(
            "min_support",
            default=DEFAULT_MIN_SUPPORT,
            min=1,
            label="Least decided labels at or above auto-approve",
            description="the auto-approve threshold must rest on at least this many decided labels "
            "(the shell's --min-support)",
        )
        inputs.float(
            "holdout",
            default=0.0,
            min=0.0,
            max=0.9,
            label="Held-out share",
            description="share of the samples (by a hash of their file name) kept out of the thresholds: the "
            "precision the thresholds reach on them is shown",
        )
        review_threshold_inputs(
            inputs,
            ("fallback_lower", "fallback_upper"),
            ("Other classes: discard below", "Other classes: auto-approve at or above"),
        )
        inputs.bool(
            "apply",
            default=False,
            label="Apply",
            description="save the thresholds on the dataset (for the next run's review=) and approve the "
            "needs-review labels they would auto-approve",
        )
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone.review import apply_calibration, calibrate_review, save_calibration

        p = ctx.params
        view = ctx.target_view()
        cal = calibrate_review(
            view,
            p["label_field"],
            float(p.get("target_precision") or DEFAULT_TARGET_PRECISION),
            source=p.get("source") or "review",
            bound=p.get("bound") or DEFAULT_BOUND,
            min_decisions=int(p.get("min_decisions") or DEFAULT_MIN_DECISIONS),
            min_support=int(p["min_support"]) if p.get("min_support") else None,
            fallback=(
                float(p.get("fallback_lower", DEFAULT_REVIEW[0])),
                float(p.get("fallback_upper", DEFAULT_REVIEW[1])),
            ),
            holdout=float(p.get("holdout") or 0.0),
        )
        approved = 0
        if p.get("apply"):
            save_calibration(ctx.dataset, p["label_field"], cal)
            approved = apply_calibration(view, p["label_field"], cal)
            ctx.trigger("reload_dataset")
        return {
            "thresholds": {k: f"{lo:.3f} / {up:.3f}" for k, (lo, up) in cal.thresholds.items()},
            "refused": cal.refused,
            "auto_approved_share": cal.auto_approved_share,
            "approved": approved,
            "held_out": _held_out_text(cal.held_out),
            "summary": cal.summary(),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.obj("thresholds", label="Review thresholds (lower / upper) per class", view=types.KeyValueView())
        outputs.obj("refused", label="Classes not calibrated", view=types.KeyValueView())
        outputs.float("auto_approved_share", label="Share of labels auto-approved")
        outputs.int("approved", label="Needs-review labels approved now")
        outputs.str("held_out", label="Held-out check (precision on decisions not used)")
        outputs.str("summary", label="Details")
        return types.Property(outputs, view=types.View(label="Calibrated review thresholds"))
