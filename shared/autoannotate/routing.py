"""Review routing by confidence: every stored label is approved, waits for review, or is discarded.

``review=(lower, upper)`` (or ``{class: (lower, upper), "*": (...)}``): a label scoring at or
above ``upper`` is ``approved``, one in ``[lower, upper)`` is ``needs_review``, one below
``lower`` is ``discarded`` (not stored). A label without a score always needs review.

The run engine (:mod:`autoannotate.run`) applies a :class:`Router` to every result, images and
video tracks alike, and counts the outcomes in the run's report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .driver import check_threshold
from .errors import BadParameterError

REVIEW_STATES = ("approved", "needs_review", "discarded")


@dataclass(frozen=True)
class ReviewThresholds:
    """Routing by confidence: ``>= upper`` approved, ``[lower, upper)`` needs review, ``< lower``
    discarded (not stored). Labels without a score always need review."""

    lower: float
    upper: float

    def __post_init__(self) -> None:
        lo = check_threshold(self.lower, "review lower threshold")
        hi = check_threshold(self.upper, "review upper threshold")
        if lo is None or hi is None or lo > hi:
            raise BadParameterError(
                f"review thresholds need 0 <= lower <= upper <= 1, got ({self.lower}, {self.upper})"
            )

    def route(self, score: float | None) -> str:
        """``approved``, ``needs_review`` or ``discarded``."""
        if score is None:
            return "needs_review"
        if score >= self.upper:
            return "approved"
        if score >= self.lower:
            return "needs_review"
        return "discarded"


def parse_review(review: Any) -> ReviewThresholds | dict[str, ReviewThresholds] | None:
    """``None``, ``(lower, upper)``, a :class:`ReviewThresholds`, or ``{class: (lower, upper)}``."""
    if review is None:
        return None
    if isinstance(review, ReviewThresholds):
        return review
    if isinstance(review, Mapping):
        out: dict[str, ReviewThresholds] = {}
        for k, v in review.items():
            t = parse_review(v)
            if not isinstance(t, ReviewThresholds):
                raise BadParameterError(f"review thresholds for {k!r} must be (lower, upper), got {v!r}")
            out[str(k)] = t
        return out
    try:
        lower, upper = review
    except (TypeError, ValueError):
        raise BadParameterError(f"review must be (lower, upper) or {{class: (lower, upper)}}, got {review!r}") from None
    return ReviewThresholds(lower, upper)


def thresholds_per_class(review: Any, classes: list[str]) -> dict[str, ReviewThresholds]:
    """``{class: thresholds}`` for every class of ``classes`` (empty when ``review`` is None).

    A dict must name known classes only and cover every class (``"*"`` covers the rest)."""
    parsed = parse_review(review)
    if parsed is None:
        return {}
    if isinstance(parsed, ReviewThresholds):
        return {name: parsed for name in classes}
    unknown = [k for k in parsed if k != "*" and k not in classes]
    if unknown:
        raise BadParameterError(f"review thresholds for unknown classes {unknown}; classes: {classes}")
    out = {}
    for name in classes:
        t = parsed.get(name) or parsed.get("*")
        if t is None:
            raise BadParameterError(f"no review thresholds for class {name!r}; list it or add a '*' entry for the rest")
        out[name] = t
    return out


class Router:
    """Routes labels by their target label id (ids the mapping gave them)."""

    def __init__(self, thresholds: Mapping[int, ReviewThresholds]) -> None:
        self.thresholds = dict(thresholds)

    def __bool__(self) -> bool:
        return bool(self.thresholds)

    def route(self, label_id: int | None, score: float | None) -> str | None:
        """``approved`` / ``needs_review`` / ``discarded``, or None for a label that is not routed."""
        t = self.thresholds.get(label_id) if label_id is not None else None
        return None if t is None else t.route(score)
