"""Review thresholds learned from decisions: the math, free of FiftyOne and Label Studio.

A *decision* is ``(score, correct)``: a label's confidence and whether a reviewer (or a ground
truth match) found it right. :func:`calibrate` turns decisions per class into review thresholds
``(lower, upper)`` (:mod:`autoannotate.routing`):

- ``upper``: the smallest decided score ``s`` such that at least ``min_support`` decided labels
  score ``>= s`` and they were correct at ``target_precision``: ``bound="wilson"`` (the default)
  asks the lower end of their precision's Wilson interval at ``confidence`` to reach the target,
  so the threshold holds on labels it has not seen; ``bound="estimate"`` asks only their observed
  precision (optimistic: a threshold chosen where the observed precision just touches the target
  falls below it on new labels). When no score reaches the target, ``upper`` is ``1.0`` (nothing
  below a perfect score is auto-approved) and ``target_reached`` is False.
- ``lower``: the largest decided score ``s <= upper`` such that the decided labels scoring below
  ``s`` were correct at most ``1 - target_precision`` of the time (same ``bound``, upper end of
  the interval for ``"wilson"``): what would be discarded is mostly wrong. Without such a score,
  ``lower`` is the lowest decided score: nothing seen is discarded.

A class with fewer than ``min_decisions`` scored decisions is refused (``refused`` says why) and
is left out of the per-class thresholds: refused and unseen classes route with the ``fallback``
(the ``"*"`` entry; default :data:`DEFAULT_FALLBACK`, the package's default review thresholds,
which the result states).

Decisions from a review cover only what reviewers saw (usually the needs-review band), so the
thresholds can move only inside the decided range; the result states the range it rests on.

A held-out check: ``held_out`` decisions (left out of the thresholds; :func:`holds_out` splits
decisions by a stable key, e.g. their sample id) are routed with the learned thresholds and the
precision of those at or above each class's ``upper`` is reported (``Calibration.held_out``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

from .calibration import Calibration, ClassCalibration, held_out_lines
from .errors import BadParameterError
from .settings import (
    DEFAULT_BOUND,
    DEFAULT_MIN_DECISIONS,
    DEFAULT_MIN_SUPPORT,
    DEFAULT_REVIEW,
    DEFAULT_TARGET_PRECISION,
)

__all__ = [
    "BOUNDS",
    "DEFAULT_FALLBACK",
    "ClassCalibration",
    "Calibration",
    "calibrate",
    "held_out_check",
    "held_out_lines",
    "holds_out",
    "wilson_interval",
    "precision_by_confidence",
]

#: How a threshold must meet the target: the observed precision, or its Wilson lower bound.
BOUNDS = ("estimate", "wilson")
#: The default bound (:data:`~autoannotate.settings.DEFAULT_BOUND`, the Wilson lower bound: the
#: observed precision did not hold on new photos), the scored decisions a class needs before it is
#: calibrated, and the decided labels at or above ``upper`` the threshold must rest on, whatever
#: the bound: all from ``settings``.
#: The ``"*"`` thresholds of refused and unseen classes when :func:`calibrate` is given no
#: ``fallback``: the package's default review thresholds (``settings.DEFAULT_REVIEW``).
DEFAULT_FALLBACK = DEFAULT_REVIEW

Decision = tuple[float | None, bool]


def wilson_interval(correct: float, total: float, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``correct / total`` at ``confidence``
    (two-sided); ``(0.0, 1.0)`` when ``total`` is 0."""
    if total <= 0:
        return 0.0, 1.0
    if not 0 < confidence < 1:
        raise BadParameterError(f"confidence must be between 0 and 1, got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def holds_out(key: Any, share: float) -> bool:
    """Whether the decision(s) of ``key`` (a sample or label id, a task id) belong to the held-out
    part of size ``share`` (0 to 1): a stable hash of ``str(key)``, the same in every process."""
    if not 0 <= share < 1:
        raise BadParameterError(f"the held-out share must be at least 0 and below 1, got {share}")
    if share == 0:
        return False
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _check(target_precision: float, bound: str, confidence: float, min_decisions: int) -> None:
    if not 0 < target_precision < 1:
        raise BadParameterError(f"target_precision must be between 0 and 1 (exclusive), got {target_precision}")
    if bound not in BOUNDS:
        raise BadParameterError(f"bound must be one of {BOUNDS}, got {bound!r}")
    if not 0 < confidence < 1:
        raise BadParameterError(f"confidence must be between 0 and 1, got {confidence}")
    if min_decisions < 1:
        raise BadParameterError(f"min_decisions must be >= 1, got {min_decisions}")


def calibrate_class(
    name: str,
    decisions: Sequence[Decision],
    target_precision: float = DEFAULT_TARGET_PRECISION,
    *,
    scores: Sequence[float | None] | None = None,
    min_decisions: int = DEFAULT_MIN_DECISIONS,
    bound: str = DEFAULT_BOUND,
    confidence: float = 0.95,
    min_support: int = DEFAULT_MIN_SUPPORT,
    groups: Sequence[Any] | None = None,
) -> ClassCalibration:
    """Calibrate one class from its ``decisions`` (``(score, correct)`` pairs); ``scores``: every
    label of the class (decided or not) for the auto-approved share (default: the decided ones);
    ``min_support``: decided labels at or above ``upper`` it must rest on.

    ``groups``: one key per decision (its photo, its task): labels of one group are not
    independent (a background that fools the model fools it several times), so the Wilson bound
    counts the decisions as the effective number their groups' spread allows (a cluster-robust
    variance), never more than there are."""
    _check(target_precision, bound, confidence, min_decisions)
    if min_support < 1:
        raise BadParameterError(f"min_support must be >= 1, got {min_support}")
    if groups is not None and len(groups) != len(decisions):
        raise BadParameterError(f"groups must have one key per decision: {len(groups)} for {len(decisions)}")
    keys = list(groups) if groups is not None else list(range(len(decisions)))
    ranked = sorted(
        ((float(s), bool(c), g) for (s, c), g in zip(decisions, keys) if s is not None), key=lambda d: -d[0]
    )
    scored = [(s, c) for s, c, _ in ranked]
    unscored = sum(1 for s, _ in decisions if s is None)
    n, k = len(scored), sum(c for _, c in scored)
    if n < min_decisions:
        return ClassCalibration(name, n, k, unscored, refused=f"{n} scored decision(s), need at least {min_decisions}")
    per_group: dict[Any, list[int]] = {}  # group -> [labels, correct] at or above the candidate
    sums = [0.0, 0.0, 0.0]  # sum of n_g^2, k_g * n_g, k_g^2 over groups

    def add(group: Any, correct: bool) -> None:
        ng, kg = per_group.setdefault(group, [0, 0])
        sums[0] += 2 * ng + 1
        sums[1] += kg + (ng + 1) * correct
        sums[2] += (2 * kg + 1) if correct else 0
        per_group[group] = [ng + 1, kg + correct]

    def meets(correct: int, total: int) -> bool:
        if bound != "wilson":
            return correct >= target_precision * total - 1e-12
        p = correct / total
        effective = float(total)
        if groups is not None and 0 < p < 1:
            spread = sums[2] - 2 * p * sums[1] + p * p * sums[0]  # sum of (k_g - p n_g)^2
            if spread > 0:
                effective = min(float(total), p * (1 - p) * total * total / spread)
        return wilson_interval(p * effective, effective, confidence)[0] >= target_precision

    # upper: walk from the top score down; candidates are the distinct scores (ties together)
    upper: float | None = None
    support = hits = cum = cum_k = 0
    i = 0
    while i < n:
        s = scored[i][0]
        while i < n and scored[i][0] == s:
            cum += 1
            cum_k += scored[i][1]
            add(ranked[i][2], ranked[i][1])
            i += 1
        if cum >= min_support and meets(cum_k, cum):
            upper, support, hits = s, cum, cum_k
    reached = upper is not None
    if upper is None:
        upper = 1.0
        support = sum(1 for s, _ in scored if s >= 1.0)
        hits = sum(c for s, c in scored if s >= 1.0)

    # lower: walk from the bottom up; below s means strictly lower scores
    ascending = scored[::-1]
    allowed_wrong_share = 1 - target_precision
    lower = ascending[0][0]
    below = below_k = 0
    j = 0
    while j < n and ascending[j][0] <= upper:
        s = ascending[j][0]
        if below:
            share_ok = (
                wilson_interval(below_k, below, confidence)[1] <= allowed_wrong_share
                if bound == "wilson"
                else below_k <= allowed_wrong_share * below + 1e-12
            )
            if share_ok:
                lower = s
        while j < n and ascending[j][0] == s:
            below += 1
            below_k += ascending[j][1]
            j += 1
    discarded_correct = sum(c for s, c in scored if s < lower)
    everything = [float(s) for s in (scores if scores is not None else [d[0] for d in scored]) if s is not None]
    share = sum(1 for s in everything if s >= upper) / len(everything) if everything else None
    return ClassCalibration(
        name,
        n,
        k,
        unscored,
        lower=lower,
        upper=upper,
        precision=hits / support if support else None,
        support=support,
        interval=wilson_interval(hits, support, confidence) if support else None,
        discarded_correct=discarded_correct,
        auto_approved_share=share,
        score_range=(scored[-1][0], scored[0][0]),
        target_reached=reached,
    )


def calibrate(
    decisions: Mapping[str, Sequence[Decision]],
    target_precision: float = DEFAULT_TARGET_PRECISION,
    *,
    scores: Mapping[str, Sequence[float | None]] | None = None,
    min_decisions: int = DEFAULT_MIN_DECISIONS,
    bound: str = DEFAULT_BOUND,
    confidence: float = 0.95,
    fallback: tuple[float, float] | None = None,
    source: str = "",
    min_support: int = DEFAULT_MIN_SUPPORT,
    held_out: Mapping[str, Sequence[Decision]] | None = None,
    held_out_note: str = "",
    groups: Mapping[str, Sequence[Any]] | None = None,
) -> Calibration:
    """Calibrate every class of ``decisions`` (``{class: [(score, correct), ...]}``).

    ``scores``: ``{class: [score, ...]}`` of all labels (decided or not) for the auto-approved
    share; ``fallback``: ``(lower, upper)`` for refused classes and classes not seen (the
    ``"*"`` entry of the result), e.g. the thresholds the labels were routed with; default
    :data:`DEFAULT_FALLBACK` (stated as such in ``to_dict()`` and ``summary()``).

    ``held_out``: decisions kept out of the thresholds (same form as ``decisions``): the result's
    :attr:`Calibration.held_out` states the precision the learned ``upper`` of each calibrated
    class reaches on them (``held_out_note`` says how they were chosen). ``groups``: ``{class:
    [group key per decision]}`` (the photo or task of each decision; see :func:`calibrate_class`)."""
    from .routing import ReviewThresholds

    _check(target_precision, bound, confidence, min_decisions)
    is_default = fallback is None
    t = ReviewThresholds(*(DEFAULT_FALLBACK if fallback is None else fallback))
    fallback = (t.lower, t.upper)
    names = sorted(set(decisions) | set(scores or {}))
    classes = {
        name: calibrate_class(
            name,
            decisions.get(name, []),
            target_precision,
            scores=(scores or {}).get(name),
            min_decisions=min_decisions,
            bound=bound,
            confidence=confidence,
            min_support=min_support,
            groups=(groups or {}).get(name) if groups is not None else None,
        )
        for name in names
    }
    labels = {
        name: sum(1 for s in ((scores or {}).get(name) or [d[0] for d in decisions.get(name, [])]) if s is not None)
        for name in names
    }
    return Calibration(
        target_precision,
        bound,
        confidence,
        min_decisions,
        classes,
        fallback,
        source,
        {
            "labels": labels,
            "fallback_is_default": is_default,
            "min_support": min_support,
            "grouped": groups is not None,
            **(
                {"held_out": held_out_check(classes, held_out, target_precision, confidence, held_out_note)}
                if held_out is not None
                else {}
            ),
        },
    )


def held_out_check(
    classes: Mapping[str, ClassCalibration],
    held_out: Mapping[str, Sequence[Decision]],
    target_precision: float,
    confidence: float = 0.95,
    note: str = "",
) -> dict[str, Any]:
    """The precision the calibrated classes' ``upper`` reaches on ``held_out`` decisions:
    ``{"decisions", "note", "classes": {name: {"decisions", "labels", "correct", "precision",
    "interval", "target_met"}}, "total": {...}}``; ``labels``: held-out decisions scoring at or
    above ``upper`` (what the thresholds would auto-approve). Refused classes are not checked
    (``"not_checked"``)."""

    def entry(n_all: int, n: int, k: int) -> dict[str, Any]:
        prec = k / n if n else None
        return {
            "decisions": n_all,
            "labels": n,
            "correct": k,
            "precision": prec,
            "interval": list(wilson_interval(k, n, confidence)) if n else None,
            "target_met": None if prec is None else prec >= target_precision - 1e-12,
        }

    per: dict[str, dict[str, Any]] = {}
    not_checked: list[str] = []
    tot_all = tot_n = tot_k = 0
    for name in sorted(set(classes) | set(held_out)):
        ds = [(float(s), bool(c)) for s, c in held_out.get(name, []) if s is not None]
        c = classes.get(name)
        if c is None or c.refused is not None or c.upper is None:
            if ds:
                not_checked.append(name)
            continue
        above = [ok for s, ok in ds if s >= c.upper]
        per[name] = entry(len(ds), len(above), sum(above))
        tot_all, tot_n, tot_k = tot_all + len(ds), tot_n + len(above), tot_k + sum(above)
    return {
        "decisions": sum(len(v) for v in held_out.values()),
        "note": note,
        "classes": per,
        "total": entry(tot_all, tot_n, tot_k),
        "not_checked": not_checked,
    }


def precision_by_confidence(decisions: Sequence[Decision], bins: int = 10) -> list[dict[str, Any]]:
    """The share of correct decisions per confidence bin: ``[{"lower", "upper", "decisions",
    "correct", "precision"}]`` for ``bins`` equal bins of ``[0, 1]`` (empty bins have
    ``precision`` None). The last bin includes 1.0."""
    if bins < 1:
        raise BadParameterError(f"bins must be >= 1, got {bins}")
    n = [0] * bins
    k = [0] * bins
    for s, c in decisions:
        if s is None:
            continue
        b = min(bins - 1, max(0, int(float(s) * bins)))
        n[b] += 1
        k[b] += bool(c)
    return [
        {
            "lower": b / bins,
            "upper": (b + 1) / bins,
            "decisions": n[b],
            "correct": k[b],
            "precision": k[b] / n[b] if n[b] else None,
        }
        for b in range(bins)
    ]
