"""What a run did: counts, per-image failures, and whether it fully succeeded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageFailure:
    """One image the run could not annotate, and why (a sentence a person can act on)."""

    image: str
    reason: str


@dataclass
class AnnotateReport:
    """Counts of one run.

    ``images_attempted == images_processed + images_skipped + len(failures)``:

    - ``images_processed``: images annotated (even when the model found nothing);
    - ``images_skipped``: images left alone (already labelled, nothing to do);
    - ``failures``: images that could not be read or annotated, with the reason;
    - ``annotations_added``: shapes stored (after threshold, mapping and routing).
    - ``warnings``: problems with single objects while the item itself was labelled (a video
      object the tracker could not follow: the rest of the video is labelled).

    The review counts are filled by runs that route labels (FiftyOne ``review=``):
    ``auto_approved`` + ``needs_review`` labels were stored, ``discarded`` were not.
    """

    images_attempted: int = 0
    images_processed: int = 0
    images_skipped: int = 0
    annotations_added: int = 0
    failures: list[ImageFailure] = field(default_factory=list)
    auto_approved: int = 0
    needs_review: int = 0
    discarded: int = 0
    warnings: list[ImageFailure] = field(default_factory=list)
    #: What the run's items are, for people reading the summary: images, videos, tasks.
    unit: str = "images"
    #: What ``annotations_added`` counts, as the summary names it (Label Studio runs store
    #: predictions, not annotations: "regions predicted").
    added: str = "annotations added"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """True when no image failed."""
        return not self.failures

    def add_failure(self, image: str, reason: str) -> None:
        self.failures.append(ImageFailure(str(image), str(reason)))

    def count(self, item: str, error: str | None, warnings: Iterable[str] = ()) -> None:
        """Count one attempted item: processed (with its warnings) or failed with ``error``."""
        self.images_attempted += 1
        if error is None:
            self.images_processed += 1
            for w in warnings:
                self.add_warning(item, w)
        else:
            self.add_failure(item, error)

    def add_warning(self, item: str, reason: str) -> None:
        self.warnings.append(ImageFailure(str(item), str(reason)))

    def merge(self, other: AnnotateReport) -> None:
        """Add ``other``'s counts to this report."""
        for name in (
            "images_attempted",
            "images_processed",
            "images_skipped",
            "annotations_added",
            "auto_approved",
            "needs_review",
            "discarded",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        self.warnings.extend(other.warnings)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["success"] = self.success
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnnotateReport:
        d = dict(d)
        d.pop("success", None)
        d["failures"] = [ImageFailure(**f) for f in d.get("failures", [])]
        d["warnings"] = [ImageFailure(**f) for f in d.get("warnings", [])]
        d.pop("failures_not_stored", None)
        return cls(**d)

    @property
    def queued(self) -> bool:
        """True for a sharded run that was queued: workers label its items later."""
        return self.extra.get("status") == "queued"

    def headline(self) -> str:
        """One line saying what the run did (what a queued run will do)."""
        u = self.unit
        if self.queued:
            n = self.extra.get("samples")
            what = f"{n} {u}" if n is not None else u.capitalize()
            return (
                f"Queued: {what} in {self.extra.get('shards', '?')} shards (run {self.extra.get('run_key')}); "
                "nothing labelled yet: workers (fiftyone delegated launch) label them"
            )
        line = (
            f"{self.images_processed} of {self.images_attempted} {u} labelled, {self.annotations_added} labels stored"
        )
        return line + (f", {len(self.failures)} failed" if self.failures else "")

    def summary(self, max_failures: int = 20) -> str:
        """A few lines for a terminal."""
        u = self.unit
        if self.queued:  # a sharded run: nothing counted here yet
            lines = [self.headline()]
            for k, v in self.extra.items():
                if v is not None and k not in ("status", "run_key", "shards", "samples"):
                    lines.append(f"{k}: {v}")
            lines.append(f"result: queued as {self.extra.get('shards', '?')} shards (run {self.extra.get('run_key')})")
            return "\n".join(lines)
        lines = [
            f"{u + ' attempted:':<20}{self.images_attempted}",
            f"{u + ' processed:':<20}{self.images_processed}",
            f"{u + ' skipped:':<20}{self.images_skipped}",
            f"{u + ' failed:':<20}{len(self.failures)}",
            f"{self.added + ':':<20}{self.annotations_added}",
        ]
        if self.auto_approved or self.needs_review or self.discarded:
            lines += [
                f"  auto-approved:    {self.auto_approved}",
                f"  needs review:     {self.needs_review}",
                f"  discarded:        {self.discarded}",
            ]
        for k, v in self.extra.items():
            if k == "evaluation" and isinstance(v, dict) and "by_type" in v:
                lines += _evaluation_lines(v)
            elif v is not None:
                lines.append(f"{k}: {v}")
        for w in self.warnings[:max_failures]:
            lines.append(f"WARNING {w.image}: {w.reason}")
        if len(self.warnings) > max_failures:
            lines.append(f"... and {len(self.warnings) - max_failures} more warnings")
        for f in self.failures[:max_failures]:
            lines.append(f"FAILED {f.image}: {f.reason}")
        if len(self.failures) > max_failures:
            lines.append(f"... and {len(self.failures) - max_failures} more failures")
        lines.append("result: " + ("success" if self.success else "completed with failures"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _evaluation_lines(ev: dict[str, Any]) -> list[str]:
    """A run's evaluation (:func:`autoannotate.fiftyone.evaluation.evaluate_run`) for a terminal."""
    lines = [f"evaluation against {ev.get('gt_field')!r} (classes of the run: {', '.join(ev.get('classes') or [])}):"]
    for kind, e in (ev.get("by_type") or {}).items():
        lines.append(
            f"  {kind} ({', '.join(e['classes'])}) by {e['method']}: precision {e['precision']:.3f}, "
            f"recall {e['recall']:.3f}, mAP {e['mAP']:.3f} (evaluation key {e['eval_key']})"
        )
    if not ev.get("by_type"):
        lines.append("  nothing evaluated")
    if ev.get("not_evaluated"):
        lines.append(f"  not evaluated: {ev['not_evaluated']}")
    if ev.get("classes_without_ground_truth"):
        lines.append(f"  classes without ground truth here: {', '.join(ev['classes_without_ground_truth'])}")
    return lines
