"""What a review calibration gives (:func:`autoannotate.calibrate.calibrate`): per class a
:class:`ClassCalibration`, and the :class:`Calibration` of all classes, which is also the
``review=`` argument of the next run; both print and serialise themselves. Importable from
:mod:`autoannotate.calibrate` too."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


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
        """The held-out check (:func:`~autoannotate.calibrate.held_out_check`), or None when nothing was held out."""
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
    """The held-out check (:func:`~autoannotate.calibrate.held_out_check`, or None) as lines for a terminal."""
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
