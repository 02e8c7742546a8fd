"""Review thresholds from decisions (autoannotate.calibrate): synthetic decisions with a known
precision curve recover the thresholds that curve implies."""

from __future__ import annotations

import numpy as np
import pytest

from autoannotate.calibrate import (
    DEFAULT_FALLBACK,
    calibrate,
    calibrate_class,
    holds_out,
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
    cal = calibrate_class("cat", synthetic(40_000), 0.95, bound="estimate")
    assert cal.refused is None and cal.target_reached
    assert cal.upper == pytest.approx(0.9, abs=0.01)
    assert cal.lower == pytest.approx(0.1, abs=0.01)
    assert cal.precision == pytest.approx(0.95, abs=0.003) and cal.support == pytest.approx(4000, rel=0.05)
    lo, hi = cal.interval
    assert lo < cal.precision < hi and hi - lo < 0.02
    assert cal.auto_approved_share == pytest.approx(0.1, abs=0.01)
    # another curve: P(correct | s) = s**2; precision above t is (1 + t + t^2) / 3 -> 0.9 at t = 0.8964
    other = calibrate_class("dog", synthetic(40_000, seed=1, curve=lambda s: s**2), 0.9, bound="estimate")
    assert other.upper == pytest.approx(0.8964, abs=0.01)


def test_wilson_bound_is_more_cautious_and_holds_on_fresh_draws():
    train = synthetic(20_000, seed=2)
    est = calibrate_class("cat", train, 0.95, bound="estimate")
    assert calibrate_class("cat", train, 0.95) == calibrate_class("cat", train, 0.95, bound="wilson")  # the default
    wil = calibrate_class("cat", train, 0.95, bound="wilson")
    assert wil.upper > est.upper and wil.interval[0] >= 0.95
    fresh = synthetic(200_000, seed=3)
    above = [c for s, c in fresh if s >= wil.upper]
    assert np.mean(above) >= 0.95  # the bound holds on new labels of the same model


def test_too_few_decisions_are_refused_and_fallback_covers_the_rest():
    decisions = {"cat": synthetic(5000, seed=4), "dog": synthetic(10, seed=5)}
    cal = calibrate(decisions, 0.95, fallback=(0.3, 0.8), source="synthetic", bound="estimate")
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
    cal = calibrate_class("cat", perfect, 0.95, bound="estimate")
    assert (cal.lower, cal.upper, cal.precision, cal.support) == (0.5, 0.5, 1.0, 40)
    assert cal.discarded_correct == 0 and cal.score_range == (0.2, 0.9)
    # 40 of 40 correct do not show 0.95 with confidence (Wilson lower end 0.912); 80 of 80 do (0.954)
    assert not calibrate_class("cat", perfect, 0.95).target_reached
    wil = calibrate_class("cat", [(0.5, True)] * 40 + [(0.9, True)] * 40 + [(0.2, False)] * 20, 0.95)
    assert (wil.upper, wil.support, wil.target_reached) == (0.5, 80, True)


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


# -- the default bound holds on labels it has not seen; the held-out check ---------------------------


def test_the_default_bound_holds_on_fresh_labels_where_the_observed_precision_did_not():
    # a model whose precision above t is (1 + t) / 2 (P(correct | s) = s); 120 decisions, as a
    # class of a small photo set has. The observed-precision bound chooses where the sample just
    # touches the target, which new labels of the same model fall below; the default does not.
    fresh = synthetic(200_000, seed=11)
    reached = 0
    for seed in range(20, 30):
        default = calibrate_class("person", synthetic(300, seed=seed), 0.8)
        if not default.target_reached:  # nothing auto-approved: nothing below the target either
            assert default.upper == 1.0
            continue
        reached += 1
        assert default.interval[0] >= 0.8 and default.support >= 10  # the Wilson lower bound, over 10 or more
        above = [c for s, c in fresh if s >= default.upper]
        assert np.mean(above) >= 0.8, seed
    assert reached >= 8
    optimistic = [calibrate_class("person", synthetic(300, seed=s), 0.8, bound="estimate") for s in range(20, 30)]
    below = [c for c in optimistic if np.mean([ok for s, ok in fresh if s >= c.upper]) < 0.8]
    assert below  # what the default used to be gave less than the target on fresh labels


def test_an_upper_needs_ten_decided_labels_whatever_the_bound():
    # 3 correct labels at the top, then a model right 60% of the time: no threshold above the 3
    top = [(0.99, True), (0.98, True), (0.97, True)]
    rest = [(0.9 - i / 100, i % 5 >= 2) for i in range(60)]
    for bound in ("estimate", "wilson"):
        c = calibrate_class("person", top + rest, 0.9, bound=bound)
        assert not c.target_reached and c.upper == 1.0, bound
    assert calibrate_class("person", top + rest, 0.9, bound="estimate", min_support=3).upper == 0.97


def test_holds_out_is_a_stable_split_of_the_share_asked():
    keys = [f"{i:024x}" for i in range(4000)]
    held = [k for k in keys if holds_out(k, 0.25)]
    assert 0.22 < len(held) / len(keys) < 0.28
    assert held == [k for k in keys if holds_out(k, 0.25)]  # the same split every time
    assert set(held) <= {k for k in keys if holds_out(k, 0.5)}  # a larger share holds out more
    assert not any(holds_out(k, 0.0) for k in keys)
    for bad in (-0.1, 1.0):
        with pytest.raises(BadParameterError):
            holds_out("x", bad)


def test_the_held_out_check_reports_the_precision_the_thresholds_reach():
    train = {"cat": synthetic(3000, seed=7), "dog": synthetic(10, seed=8)}
    held = {"cat": synthetic(1000, seed=9), "dog": synthetic(5, seed=10), "cow": [(0.9, True)]}
    cal = calibrate(train, 0.9, held_out=held, held_out_note="by hand")
    check = cal.held_out
    cat = check["classes"]["cat"]
    upper = cal.classes["cat"].upper
    expect = [c for s, c in held["cat"] if s >= upper]
    assert cat["labels"] == len(expect) and cat["correct"] == sum(expect) and cat["decisions"] == 1000
    assert cat["precision"] == pytest.approx(sum(expect) / len(expect))
    assert cat["target_met"] == (cat["precision"] >= 0.9) and cat["interval"][0] < cat["precision"]
    assert check["total"]["labels"] == len(expect) and check["decisions"] == 1006
    assert check["not_checked"] == ["cow", "dog"]  # refused and unseen classes have no learned upper
    assert cal.to_dict()["held_out"] == check
    text = cal.summary()
    assert "held-out check on 1006 decisions not used for the thresholds (by hand)" in text
    assert f"cat: precision {cat['precision']:.3f} ({cat['correct']}/{cat['labels']}" in text
    assert "not checked (refused classes): cow, dog" in text
    assert "held-out check: none" in calibrate(train, 0.9).summary()


def test_labels_of_one_photo_count_as_less_evidence_than_independent_ones():
    # 30 photos of 10 labels each; the labels of a photo are all right or all wrong (photos 5, 15, 25)
    decisions, photos = [], []
    for g in range(30):
        for j in range(10):
            decisions.append((0.99 - g * 0.01 - j * 0.0001, g not in (5, 15, 25)))
            photos.append(f"photo{g}")
    alone = calibrate_class("person", decisions, 0.8)
    grouped = calibrate_class("person", decisions, 0.8, groups=photos)
    # as 300 independent labels, 270 right shows 0.8 (Wilson 0.861); as 30 photos it does not:
    # only the first 5 photos, all right, and the first label of the wrong sixth are auto-approved
    assert alone.upper == pytest.approx(0.99 - 0.29 - 0.0009) and alone.support == 300
    assert grouped.upper == pytest.approx(0.99 - 0.05) and (grouped.support, grouped.precision) == (51, 50 / 51)
    # one label a photo is the independent case
    assert calibrate_class("person", decisions, 0.8, groups=list(range(300))) == alone
    cal = calibrate({"person": decisions}, 0.8, groups={"person": photos})
    assert cal["person"][1] == grouped.upper and cal.to_dict()["extra"]["grouped"]
    with pytest.raises(BadParameterError):
        calibrate_class("person", decisions, 0.8, groups=photos[:5])
