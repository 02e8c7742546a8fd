"""Review thresholds from decisions (autoannotate.calibrate): synthetic decisions with a known
precision curve recover the thresholds that curve implies."""

from __future__ import annotations

import numpy as np
import pytest

from autoannotate.calibrate import (
    DEFAULT_FALLBACK,
    calibrate,
    calibrate_class,
    precision_by_confidence,
    wilson_interval,
)
from autoannotate.errors import BadParameterError
from autoannotate.routing import parse_review, thresholds_per_class


def synthetic(n, seed=0, curve=lambda s: s):
    """Scores uniform on [0, 1], each label correct with probability ``curve(score)``."""
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    correct = rng.random(n) < curve(scores)
    return [(float(s), bool(c)) for s, c in zip(scores, correct)]


def test_known_precision_curve_gives_the_thresholds_it_implies():
    # P(correct | s) = s with uniform scores: the precision of labels >= t is (1 + t) / 2, so 0.95
    # is reached at t = 0.9; the correct share of labels below t is t / 2, 0.05 at t = 0.1.
    cal = calibrate_class("cat", synthetic(40_000), 0.95)
    assert cal.refused is None and cal.target_reached
    assert cal.upper == pytest.approx(0.9, abs=0.01)
    assert cal.lower == pytest.approx(0.1, abs=0.01)
    assert cal.precision == pytest.approx(0.95, abs=0.003) and cal.support == pytest.approx(4000, rel=0.05)
    lo, hi = cal.interval
    assert lo < cal.precision < hi and hi - lo < 0.02
    assert cal.auto_approved_share == pytest.approx(0.1, abs=0.01)
    # another curve: P(correct | s) = s**2; precision above t is (1 + t + t^2) / 3 -> 0.9 at t = 0.8964
    other = calibrate_class("dog", synthetic(40_000, seed=1, curve=lambda s: s**2), 0.9)
    assert other.upper == pytest.approx(0.8964, abs=0.01)


def test_wilson_bound_is_more_cautious_and_holds_on_fresh_draws():
    train = synthetic(20_000, seed=2)
    est = calibrate_class("cat", train, 0.95)
    wil = calibrate_class("cat", train, 0.95, bound="wilson")
    assert wil.upper > est.upper and wil.interval[0] >= 0.95
    fresh = synthetic(200_000, seed=3)
    above = [c for s, c in fresh if s >= wil.upper]
    assert np.mean(above) >= 0.95  # the bound holds on new labels of the same model


def test_too_few_decisions_are_refused_and_fallback_covers_the_rest():
    decisions = {"cat": synthetic(5000, seed=4), "dog": synthetic(10, seed=5)}
    cal = calibrate(decisions, 0.95, fallback=(0.3, 0.8), source="synthetic")
    assert cal.refused == {"dog": "10 scored decision(s), need at least 30"}
    assert set(cal) == {"cat", "*"} and cal["*"] == (0.3, 0.8)
    # the result is the next run's review= argument
    routing = thresholds_per_class(cal, ["cat", "dog"])
    assert routing["dog"].upper == 0.8 and routing["cat"].upper == pytest.approx(0.9, abs=0.02)
    assert parse_review(cal.review(["cat"]))["cat"].lower == cal["cat"][0]
    # without a fallback, refused classes route with the package's default review thresholds
    without = calibrate(decisions, 0.95)
    assert set(without) == {"cat", "*"} and without["*"] == DEFAULT_FALLBACK == (0.3, 0.8)
    assert without.to_dict()["fallback_is_default"] and "the package's default" in without.summary()
    assert thresholds_per_class(without, ["cat", "dog"])["dog"].upper == 0.8
    d = cal.to_dict()
    assert d["classes"]["dog"]["refused"] and d["review"]["*"] == [0.3, 0.8]
    assert "cat: lower" in cal.summary() and "dog: refused" in cal.summary()


def test_unreached_target_auto_approves_nothing_and_unscored_labels_are_left_out():
    bad = [(s, c and s < 0.5) for s, c in synthetic(500, seed=6)] + [(None, True)] * 7
    cal = calibrate_class("cat", bad, 0.95)
    assert not cal.target_reached and cal.upper == 1.0 and cal.unscored == 7 and cal.decisions == 500
    assert cal.auto_approved_share == 0.0


def test_ties_and_a_perfect_model():
    perfect = [(0.5, True)] * 20 + [(0.9, True)] * 20 + [(0.2, False)] * 20
    cal = calibrate_class("cat", perfect, 0.95)
    assert (cal.lower, cal.upper, cal.precision, cal.support) == (0.5, 0.5, 1.0, 40)
    assert cal.discarded_correct == 0 and cal.score_range == (0.2, 0.9)


def test_wilson_interval_and_bins_and_bad_parameters():
    lo, hi = wilson_interval(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-3) and hi == pytest.approx(0.9785, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    rows = precision_by_confidence([(0.05, False), (0.95, True), (1.0, True), (None, True)], bins=10)
    assert rows[0]["decisions"] == 1 and rows[0]["precision"] == 0.0
    assert rows[9]["decisions"] == 2 and rows[9]["precision"] == 1.0 and rows[5]["precision"] is None
    for kw in ({"target_precision": 1.0}, {"bound": "median"}, {"min_decisions": 0}):
        with pytest.raises(BadParameterError):
            calibrate({"cat": []}, **{"target_precision": 0.9, **kw})
