"""The driver: thresholds, validation and mapping of every output, failures, progress, batching."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate import LabelMappingError, annotate_images, iter_annotations
from autoannotate.mapping import TargetLabel
from tests.fakes import FakeDetector


def scored(ctx, img):
    return [aa.rectangle(0, [0, 0, 4, 4], score=s) for s in (0.0, 0.3, 0.5, 0.9)] + [aa.rectangle(1, [0, 0, 4, 4])]


def images(n, size=(32, 24)):
    return [(f"im{i}", PIL.Image.new("RGB", size, (i, i, i))) for i in range(n)]


@pytest.mark.parametrize("threshold, kept", [(None, 5), (0.0, 5), (0.3, 4), (0.5, 3), (0.9, 2), (1.0, 1)])
def test_threshold_is_inclusive_and_zero_is_real(threshold, kept):
    fn = FakeDetector(scored)
    seen = []
    fn.make = lambda ctx, img: (seen.append(ctx.conf_threshold), scored(ctx, img))[1]
    results, report = annotate_images(fn, images(1), conf_threshold=threshold, progress=False)
    assert seen == [threshold]  # passed through, 0.0 not turned into None
    assert len(results[0].shapes) == kept  # shapes without a score are kept
    assert report.annotations_added == kept


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high", float("nan")])
def test_bad_threshold_is_rejected_before_work(bad):
    fn = FakeDetector()
    with pytest.raises(aa.BadParameterError):
        annotate_images(fn, images(1), conf_threshold=bad, progress=False)
    assert fn.calls == []


def test_mapping_is_checked_before_any_inference():
    fn = FakeDetector()
    with pytest.raises(LabelMappingError):
        annotate_images(fn, images(2), target_labels=[TargetLabel("horse", 0)], progress=False)
    assert fn.calls == []


def test_outputs_are_mapped_and_unmatched_dropped():
    fn = FakeDetector(lambda c, i: [aa.rectangle(0, [0, 0, 1, 1], score=0.5), aa.rectangle(1, [0, 0, 1, 1], score=0.5)])
    results, report = annotate_images(
        fn, images(1), target_labels=[TargetLabel("Cat", 7)], allow_unmatched_labels=True, progress=False
    )
    assert [s.label_id for s in results[0].shapes] == [7]
    assert report.annotations_added == 1


def test_function_errors_and_garbage_become_failures_and_the_run_goes_on():
    def make(ctx, img):
        if ctx.frame_name == "im1":
            raise RuntimeError("CUDA out of memory")
        if ctx.frame_name == "im2":
            return [{"not": "a shape"}]
        if ctx.frame_name == "im3":
            return [aa.rectangle(5, [0, 0, 1, 1])]
        return [aa.rectangle(0, [0, 0, 1, 1], score=0.5)]

    results, report = annotate_images(FakeDetector(make), images(5), progress=False)
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert "model error: RuntimeError: CUDA out of memory" in results[1].error
    assert "broke the protocol" in results[2].error and "dict" in results[2].error
    assert "label id 5" in results[3].error
    assert report.images_attempted == 5 and report.images_processed == 2
    assert [f.image for f in report.failures] == ["im1", "im2", "im3"]
    assert not report.success
    assert report.images_attempted == report.images_processed + report.images_skipped + len(report.failures)


def test_results_come_back_in_input_order_with_keys():
    results, _ = annotate_images(FakeDetector(), images(9), num_workers=3, progress=False)
    assert [r.key for r in results] == [f"im{i}" for i in range(9)]
    assert all(r.size == (32, 24) for r in results)


def test_function_output_is_not_mutated():
    kept = []

    def make(ctx, img):
        s = [aa.rectangle(0, [0, 0, 1, 1], score=0.5), aa.rectangle(1, [0, 0, 2, 2], score=0.1)]
        kept.append(list(s))
        return s

    results, _ = annotate_images(
        FakeDetector(make),
        images(1),
        target_labels=[TargetLabel("cat", 10), TargetLabel("dog", 11)],
        conf_threshold=0.3,
        progress=False,
    )
    assert [s.label_id for s in kept[0]] == [0, 1] and len(kept[0]) == 2
    assert [s.label_id for s in results[0].shapes] == [10]


@pytest.mark.parametrize("label_type", ["any", "mask"])
def test_masks_become_polygons_when_asked(label_type):
    spec = [aa.label_spec("blob", 0, type=label_type)]  # a mask label takes the polygons of its masks
    bitmap = np.zeros((24, 32), bool)
    bitmap[5:15, 5:20] = True
    fn = FakeDetector(lambda c, i: [aa.mask(0, bitmap, score=0.8)], labels=spec)
    results, _ = annotate_images(fn, images(1), conv_mask_to_poly=True, progress=False)
    (s,) = results[0].shapes
    assert s.type == "polygon" and s.score == 0.8
    xs, ys = s.points[0::2], s.points[1::2]
    assert (min(xs), min(ys), max(xs), max(ys)) == (5, 5, 19, 14)


class BatchDetector(FakeDetector):
    def __init__(self):
        super().__init__()
        self.batches = []

    def detect_batch(self, contexts, imgs):
        self.batches.append([c.frame_name for c in contexts])
        if any(c.frame_name == "im2" for c in contexts):
            raise RuntimeError("one bad image spoils the batch")
        return [self.detect(c, i) for c, i in zip(contexts, imgs)]


def test_batches_are_used_and_a_failing_batch_is_retried_one_by_one():
    fn = BatchDetector()
    results, report = annotate_images(fn, images(6), batch_size=3, progress=False)
    assert fn.batches == [["im0", "im1", "im2"], ["im3", "im4", "im5"]]
    assert report.success and len(results) == 6  # the failed batch succeeded image by image


def test_progress_callback_and_report_counts():
    calls = []
    report = aa.AnnotateReport()
    out = list(iter_annotations(FakeDetector(), images(4), progress=lambda n, t: calls.append((n, t)), report=report))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(out) == 4 and report.images_processed == 4


def test_tqdm_progress_bar_is_shown(capsys):
    annotate_images(FakeDetector(), images(3), progress=True)
    assert "3/3" in capsys.readouterr().err


def test_generator_input_without_len():
    gen = (img for _, img in images(5))
    results, report = annotate_images(FakeDetector(), gen, progress=False)
    assert report.images_processed == 5


def test_report_serialises():
    r = aa.AnnotateReport(images_attempted=2, images_processed=1)
    r.add_failure("a.jpg", "file not found")
    d = r.to_dict()
    assert d["success"] is False and d["failures"] == [{"image": "a.jpg", "reason": "file not found"}]
    assert aa.AnnotateReport.from_dict(d) == r
    assert "FAILED a.jpg: file not found" in r.summary()


def test_results_keep_input_order_when_a_batch_has_unreadable_images(tmp_path):
    import PIL.Image as Image

    from tests.fakes import FakeDetector

    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8)).save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    items = [("a", good), ("b", empty), ("c", good), ("d", tmp_path / "missing.png"), ("e", good)]
    results = list(iter_annotations(FakeDetector(), items, batch_size=4, progress=False))
    assert [r.key for r in results] == ["a", "b", "c", "d", "e"]
    assert [r.ok for r in results] == [True, False, True, False, True]
    assert results[1].error == "empty file (0 bytes)"  # the path is not repeated in the reason
