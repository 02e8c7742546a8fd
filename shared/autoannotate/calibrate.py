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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

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


@dataclass(frozen=True)
class ClassCalibration:
    """The calibration of one class.

    - ``decisions`` / ``correct``: scored decisions it rests on and how many were correct;
    ``unscored``: decisions on labels without a score (not used);
    - ``lower`` / ``upper``: the thresholds (None when ``refused``);
    - ``precision``: observed precision of the decided labels at or above ``upper``, over
      ``support`` of them, with its Wilson ``interval`` at the calibration's confidence;
    - ``discarded_correct``: decided labels below ``lower`` that were correct (lost by discarding);
    - ``auto_approved_share``: share of the class's scored labels (all of them, decided or not)
      at or above ``upper``;
    - ``score_range``: lowest and highest decided score: the thresholds can only move inside it.
    """

    name: str
    decisions: int
    correct: int
    unscored: int = 0
    lower: float | None = None
    upper: float | None = None
    precision: float | None = None
    support: int = 0
    interval: tuple[float, float] | None = None
    discarded_correct: int = 0
    auto_approved_share: float | None = None
    score_range: tuple[float, float] | None = None
    target_reached: bool = False
    refused: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Calibration(Mapping):
    """Per-class calibrations; as a mapping it is the ``review=`` argument of the next run:
    ``{class: (lower, upper)}`` for every calibrated class, plus ``"*": fallback`` (refused and
    unseen classes route with it; :func:`calibrate` always sets one). Passed as a run's
    ``review=``, classes the run does not have are ignored (:meth:`review`)."""

    target_precision: float
    bound: str
    confidence: float
    min_decisions: int
    classes: dict[str, ClassCalibration]
    fallback: tuple[float, float] | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, tuple[float, float]]:
        out = {
            c.name: (float(c.lower), float(c.upper))
            for c in self.classes.values()
            if c.refused is None and c.lower is not None and c.upper is not None
        }
        if self.fallback is not None:
            out["*"] = (float(self.fallback[0]), float(self.fallback[1]))
        return out

    def review(self, classes: Iterable[str] | None = None) -> dict[str, tuple[float, float]]:
        """The thresholds restricted to ``classes`` (a run of fewer classes; ``"*"`` kept)."""
        if classes is None:
            return self.thresholds
        keep = set(classes) | {"*"}
        return {k: v for k, v in self.thresholds.items() if k in keep}

    @property
    def held_out(self) -> dict[str, Any] | None:
        """The held-out check (:func:`held_out_check`), or None when nothing was held out."""
        return self.extra.get("held_out")

    @property
    def refused(self) -> dict[str, str]:
        return {c.name: c.refused for c in self.classes.values() if c.refused}

    @property
    def auto_approved_share(self) -> float | None:
        """Share of the scored labels of the calibrated classes that would be auto-approved."""
        total = approved = 0.0
        for c in self.classes.values():
            n = self.extra.get("labels", {}).get(c.name, 0)
            if c.refused is None and c.auto_approved_share is not None and n:
                total += n
                approved += c.auto_approved_share * n
        return approved / total if total else None

    def __getitem__(self, key: str) -> tuple[float, float]:
        return self.thresholds[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.thresholds)

    def __len__(self) -> int:
        return len(self.thresholds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target_precision": self.target_precision,
            "bound": self.bound,
            "confidence": self.confidence,
            "min_decisions": self.min_decisions,
            "fallback": list(self.fallback) if self.fallback else None,
            "fallback_is_default": bool(self.extra.get("fallback_is_default")),
            "review": {k: list(v) for k, v in self.thresholds.items()},
            "auto_approved_share": self.auto_approved_share,
            "classes": {k: c.to_dict() for k, c in self.classes.items()},
            "refused": self.refused,
            "held_out": self.held_out,
            **({"extra": self.extra} if self.extra else {}),
        }

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [
            f"calibration from {self.source or 'decisions'}: target precision {self.target_precision:g} "
            f"({self.bound}), auto-approved share {_pct(self.auto_approved_share)}"
        ]
        for c in self.classes.values():
            if c.refused:
                lines.append(f"  {c.name}: refused ({c.refused})")
                continue
            iv = f"[{c.interval[0]:.3f}, {c.interval[1]:.3f}]" if c.interval else "-"
            prec = f"{c.precision:.3f}" if c.precision is not None else "-"
            reached = "" if c.target_reached else " (target not reached: nothing auto-approved)"
            lines.append(
                f"  {c.name}: lower {c.lower:.3f} upper {c.upper:.3f}; precision {prec} {iv} over {c.support} "
                f"of {c.decisions} decisions; auto-approved {_pct(c.auto_approved_share)}{reached}"
            )
        if self.fallback is not None:
            origin = " (the package's default review thresholds)" if self.extra.get("fallback_is_default") else ""
            lines.append(
                f"  other classes (refused, not seen): lower {self.fallback[0]:.3f} upper {self.fallback[1]:.3f}{origin}"
            )
        lines.extend(held_out_lines(self.held_out, self.target_precision))
        return "\n".join(lines)


def held_out_lines(check: Mapping[str, Any] | None, target: float) -> list[str]:
    """The held-out check (:func:`held_out_check`, or None) as lines for a terminal."""
    if check is None:
        return ["held-out check: none (no decisions held out; hold some out to see the precision reached)"]
    note = f" ({check['note']})" if check.get("note") else ""
    lines = [f"held-out check on {check['decisions']} decisions not used for the thresholds{note}:"]
    for name, e in [*check["classes"].items(), ("all calibrated classes", check["total"])]:
        if not e["labels"]:
            lines.append(f"  {name}: no held-out label at or above upper ({e['decisions']} held out)")
            continue
        met = "target met" if e["target_met"] else f"BELOW the target {target:g}"
        lines.append(
            f"  {name}: precision {e['precision']:.3f} ({e['correct']}/{e['labels']} at or above upper, "
            f"Wilson [{e['interval'][0]:.3f}, {e['interval'][1]:.3f}]): {met}"
        )
    if check.get("not_checked"):
        lines.append(f"  not checked (refused classes): {', '.join(check['not_checked'])}")
    return lines


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


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
