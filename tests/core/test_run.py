"""The run engine with a fake sink and an in-memory run store: skipping, routing counts, counted and
timed writes, interruption, run records, resuming and the race for a resumable run."""

from __future__ import annotations

import re

import PIL.Image
import pytest

import autoannotate as aa
from autoannotate.driver import iter_annotations
from autoannotate.routing import ReviewThresholds, Router
from autoannotate.run import RunStore, Sink, config_hash, new_run_key, processor, run
from tests.fakes import FakeDetector


class ListSink:
    def __init__(self, done=()):
        self.done = set(done)
        self.buffer, self.writes, self.keys, self.finished = [], [], [], []

    def done_keys(self, run_key):
        self.keys.append(run_key)
        return set(self.done)

    def begin(self, run_key):
        self.run_key = run_key

    def add(self, result):
        self.buffer.append(result.key)
        return list(result.reviews or [None] * len(result.shapes or []))

    def pending(self):
        return len(self.buffer)

    def flush(self):
        self.writes.append(list(self.buffer))
        self.done.update(self.buffer)
        self.buffer.clear()

    def finish(self, report):
        self.finished.append(report.extra.get("run_key"))


class MemoryStore:
    def __init__(self):
        self.records, self.heartbeats, self.progress = {}, 0, []
        self.lose_claims = False

    def find_resumable(self, config_hash):
        for r in reversed(list(self.records.values())):
            if r["config_hash"] == config_hash and r["status"] != "completed":
                return dict(r)
        return None

    def claim(self, record):
        return not self.lose_claims

    def create(self, record):
        if record["run_key"] in self.records:
            return False
        self.records[record["run_key"]] = dict(record)
        return True

    def update(self, record):
        self.records[record["run_key"]] = dict(record)
        if record.get("status") == "running":  # a write: what it stored so far is counted
            self.progress.append((record.get("report") or {}).get("annotations_added"))

    def heartbeat(self, record):
        self.heartbeats += 1


def images(n):
    return [(f"img{i}", PIL.Image.new("RGB", (20, 10))) for i in range(n)]


def detecting(fn, **kw):
    return processor(iter_annotations, fn, progress=False, **kw)


def test_processor_hands_the_items_to_do_and_the_report_to_its_function():
    calls = []

    def iterate(first, second, todo, *, report, scale):
        calls.append((first, second, [k for k, _ in todo], report, scale))
        return iter(iter_annotations(FakeDetector(), todo, progress=False, report=report))

    sink = ListSink(done={"img0"})
    report = run(images(3), processor(iterate, "a", "b", scale=2), sink)
    assert calls == [("a", "b", ["img1", "img2"], report, 2)]
    assert report.images_processed == 2 and sink.writes == [["img1", "img2"]]
    with pytest.raises(TypeError, match="report"):
        processor(iterate, "a", report=None)


def test_fakes_satisfy_the_protocols():
    assert isinstance(ListSink(), Sink) and isinstance(MemoryStore(), RunStore)


def test_run_keys_are_unique_even_in_the_same_second():
    keys = {new_run_key() for _ in range(500)}
    assert len(keys) == 500
    assert all(re.fullmatch(r"autolabel_\d{8}_\d{6}_[0-9a-f]{8}", k) for k in keys)


def test_skips_done_items_writes_in_batches_and_counts():
    sink = ListSink(done={"img0", "img1"})
    store = MemoryStore()
    report = run(
        images(7), detecting(FakeDetector()), sink, config={"a": 1}, store=store, write_every=2, write_interval=1e9
    )
    assert report.images_attempted == 7 and report.images_skipped == 2 and report.images_processed == 5
    assert report.annotations_added == 5
    assert sink.writes == [["img2", "img3"], ["img4", "img5"], ["img6"]]
    key = report.extra["run_key"]
    assert sink.finished == [key] and sink.run_key == key
    rec = store.records[key]
    assert rec["status"] == "completed" and rec["a"] == 1 and rec["config_hash"] == config_hash({"a": 1})
    assert rec["report"]["images_processed"] == 5 and store.progress == [2, 4, 5]  # each write keeps the counts


def test_timed_writes():
    sink = ListSink()
    run(images(3), detecting(FakeDetector()), sink, write_every=100, write_interval=0)
    assert sink.writes == [["img0"], ["img1"], ["img2"]]


def test_routing_is_counted_by_the_engine():
    shapes = lambda ctx, img: (
        [aa.rectangle(0, [1, 1, 5, 5], score=s) for s in (0.1, 0.5, 0.9)] + [aa.rectangle(1, [1, 1, 5, 5], score=0.1)]
    )
    router = Router({0: ReviewThresholds(0.3, 0.8)})  # label 1 ("dog") is not routed
    report = run(images(2), detecting(FakeDetector(shapes)), ListSink(), router=router)
    assert report.discarded == 2 and report.auto_approved == 2 and report.needs_review == 2
    assert report.annotations_added == 6  # 2 x (approved, needs review, the unrouted dog)


def test_nothing_to_do_records_nothing_and_returns_no_key():
    store = MemoryStore()
    sink = ListSink(done={f"img{i}" for i in range(3)})
    report = run(images(3), detecting(FakeDetector()), sink, config={"a": 1}, store=store)
    assert store.records == {} and report.images_skipped == 3 and report.extra["run_key"] is None
    assert sink.finished == [None]


def test_a_failed_run_is_resumed_under_its_key_and_finishing_it_needs_no_new_record():
    store = MemoryStore()
    calls = []

    def flaky(ctx, img):
        calls.append(ctx.frame_name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return []

    sink = ListSink()
    with pytest.raises(KeyboardInterrupt):
        run(images(5), detecting(FakeDetector(flaky), batch_size=1), sink, config={"a": 1}, store=store, write_every=1)
    (key,) = store.records
    assert store.records[key]["status"] == "interrupted" and sink.done == {"img0", "img1"}
    report = run(images(5), detecting(FakeDetector()), sink, config={"a": 1}, store=store)
    # the resumed run's report counts what it stored in both processes: 5 images, 3 labels
    assert report.extra["run_key"] == key and report.images_skipped == 0 and report.images_processed == 5
    assert report.annotations_added == 3 and report.extra["earlier_processes"]["images_processed"] == 2
    assert store.records[key]["status"] == "completed" and store.records[key]["resumed"] is True
    again = run(images(5), detecting(FakeDetector()), sink, config={"a": 1}, store=store)
    assert list(store.records) == [key] and again.extra["run_key"] is None


class Killed(BaseException):
    """The process dies: nothing after it runs (its record stays "running")."""


class KillableStore(MemoryStore):
    def update(self, record):
        if record.get("status") == "running":  # a dead process never writes its end
            super().update(record)


class CountingSink(ListSink):
    def __init__(self, done=()):
        super().__init__(done)
        self.labels, self.buffered = {}, {}

    def add(self, result):
        self.buffered[result.key] = list(result.reviews or [None] * len(result.shapes or []))
        return super().add(result)

    def flush(self):
        self.labels.update(self.buffered)
        self.buffered.clear()
        super().flush()


def test_a_killed_run_resumed_twice_reports_every_label_it_stored():
    store, sink = KillableStore(), CountingSink(done={"img9"})  # img9 was labelled by someone else
    shapes = lambda ctx, img: [aa.rectangle(0, [1, 1, 5, 5], score=s) for s in (0.1, 0.5, 0.9)]
    router = Router({0: ReviewThresholds(0.3, 0.8)})

    def dies_after(n):
        calls = []

        def fn(ctx, img):
            calls.append(1)
            if len(calls) > n:
                raise Killed
            return shapes(ctx, img)

        return FakeDetector(fn)

    def once(fn):
        return run(
            images(10), detecting(fn, batch_size=1), sink, config={"a": 1}, store=store, router=router, write_every=2
        )

    for n in (3, 4):  # killed after 3 images (the 3rd written as the process fails), then after 4 more
        with pytest.raises(Killed):
            once(dies_after(n))
    assert len(sink.labels) == 7
    report = once(FakeDetector(shapes))
    stored = [r for rs in sink.labels.values() for r in rs]
    assert len(sink.labels) == 9 and len(stored) == 18
    assert report.annotations_added == len(stored) == 18 and report.discarded == 9
    assert report.auto_approved == stored.count("approved") == 9 and report.needs_review == 9
    assert (report.images_processed, report.images_skipped, report.images_attempted) == (9, 1, 10)
    assert report.extra["earlier_processes"] == {"images_processed": 7, "annotations_added": 14}


def test_a_resumable_run_claimed_by_another_process_makes_this_run_new():
    store = MemoryStore()
    store.records["old"] = {"run_key": "old", "config_hash": config_hash({"a": 1}), "status": "interrupted"}
    store.lose_claims = True
    sink = ListSink()
    report = run(images(2), detecting(FakeDetector()), sink, config={"a": 1}, store=store)
    key = report.extra["run_key"]
    assert key != "old" and store.records[key]["status"] == "completed"
    assert sink.keys == ["old", key]  # done items were counted again for the new key


def test_a_failing_write_keeps_earlier_writes_and_records_the_failure():
    class Broken(ListSink):
        def flush(self):
            if len(self.writes) == 1:
                raise aa.AutoAnnotateError("disk full")
            super().flush()

    store = MemoryStore()
    sink = Broken()
    with pytest.raises(aa.AutoAnnotateError, match="disk full"):
        run(images(5), detecting(FakeDetector()), sink, store=store, write_every=2)
    (rec,) = store.records.values()
    assert rec["status"] == "failed" and sink.writes == [["img0", "img1"]]


@pytest.mark.parametrize("kw", [{"write_every": 0}, {"write_interval": -1}, {"max_items": -1}, {"write_every": 1.5}])
def test_bad_write_policy_is_refused(kw):
    with pytest.raises(aa.BadParameterError):
        run(images(1), detecting(FakeDetector()), ListSink(), **kw)


def test_max_items_counts_after_skipping():
    sink = ListSink(done={"img0"})
    report = run(images(5), detecting(FakeDetector()), sink, max_items=2)
    assert sink.done == {"img0", "img1", "img2"} and report.images_processed == 2


def test_a_queued_report_does_not_read_as_a_success():
    from autoannotate.report import AnnotateReport

    report = AnnotateReport()
    report.extra.update(run_key="sharded_1", status="queued", shards=4, samples=24, label_fields=["auto"])
    lines = report.summary().splitlines()
    assert lines[-1] == "result: queued as 4 shards (run sharded_1)"
    assert lines[0] == report.headline() and lines[0].startswith("Queued: 24 images in 4 shards (run sharded_1)")
    assert "label_fields: ['auto']" in lines and not any("attempted" in line for line in lines)  # no 0 counts
    done = AnnotateReport(images_attempted=3, images_processed=3, annotations_added=5)
    assert done.headline() == "3 of 3 images labelled, 5 labels stored"
    assert AnnotateReport().summary().splitlines()[-1] == "result: success"
