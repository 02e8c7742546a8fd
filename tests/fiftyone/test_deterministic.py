"""The same photos give the same labels whatever the order, sharding or process: a plain
``person:polygon`` run (YOLOX boxes refined by GrabCut, whose k-means start draws from OpenCV's
generator) and a sharded one whose shards run in the opposite order, after other GrabCut calls
in the same thread, agree polygon for polygon."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoannotate.fiftyone import annotate_dataset
from autoannotate.fiftyone.shards import wait_for_run
from autoannotate.sharding import shard_of

fo = pytest.importorskip("fiftyone")

N_IMAGES = 10
SHARDS = 2
RUN = {"classes": "person:polygon", "refine_with": "grabcut", "review": (0.3, 0.6), "progress": False}


def _polygons(ds):
    """Every stored polygon per photo: (label, points, confidence, review, refined), exactly."""
    out = {}
    for s in ds.sort_by("filepath"):
        lines = s.auto.polylines if s.auto is not None else []
        out[Path(s.filepath).name] = sorted(
            (p.label, repr(p.points), p.confidence, p.review, p["refined"] if p.has_field("refined") else None)
            for p in lines
        )
    return out


def test_a_sharded_polygon_run_equals_a_plain_run_polygon_for_polygon(coco128_dataset, models_env):
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    # photos with people, whose ids put work in every shard
    photos = coco128_dataset.match(
        fo.ViewField("ground_truth.detections").filter(fo.ViewField("label") == "person").length() > 0
    ).sort_by("filepath")
    sharded = photos.clone("aa-deterministic-sharded")
    ids = sharded.values("id")  # a clone's own ids decide its shards
    chosen = [i for i in ids if shard_of(i, SHARDS) == 0][: N_IMAGES // 2]
    chosen += [i for i in ids if shard_of(i, SHARDS) == 1][: N_IMAGES // 2]
    sharded.delete_samples([i for i in ids if i not in set(chosen)])
    assert len(sharded) == N_IMAGES and {shard_of(i, SHARDS) for i in sharded.values("id")} == set(range(SHARDS))
    plain = photos.match(fo.ViewField("filepath").is_in(sharded.values("filepath"))).clone("aa-deterministic-plain")
    try:
        report = annotate_dataset(plain, "yolox", label_field="auto", **RUN)
        assert report.annotations_added > N_IMAGES  # people found and refined
        queued = annotate_dataset(sharded, "yolox", label_field="auto", shards=SHARDS, **RUN)
        svc = DelegatedOperationService()
        for op_id in reversed(queued.extra["operations"]):  # the last shard first, in this process
            svc.execute_operation(svc.get(ObjectId(op_id)))
        record = wait_for_run(sharded, queued.extra["run_key"], timeout=120)
        assert record["status"] == "completed"
        plain.reload()
        sharded.reload()
        expected = _polygons(plain)
        assert sum(len(v) for v in expected.values()) == report.annotations_added
        assert _polygons(sharded) == expected
    finally:
        plain.delete()
        sharded.delete()
