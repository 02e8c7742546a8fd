"""FiftyOne tests run against the real embedded MongoDB in a per-session temporary folder."""

from __future__ import annotations

import itertools
import json

import numpy as np
import PIL.Image
import pytest

fo = pytest.importorskip("fiftyone")

_names = itertools.count()


@pytest.fixture
def dataset_name():
    return f"aa-test-{next(_names)}"


@pytest.fixture
def small_dataset(tmp_path, dataset_name):
    """Six small synthetic photos, one sample each, with a human ground-truth box on each."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    ds = fo.Dataset(dataset_name)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        p = folder / f"img{i}.png"
        PIL.Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(p)
        gt = fo.Detections(detections=[fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.2, 0.2])])
        samples.append(fo.Sample(filepath=str(p), ground_truth=gt))
    ds.add_samples(samples)
    yield ds
    if fo.dataset_exists(dataset_name):
        fo.delete_dataset(dataset_name)


@pytest.fixture(scope="session")
def coco128_dataset(coco128):
    """COCO128 photos with their ground-truth boxes, imported by FiftyOne's COCO importer."""
    name = "aa-coco128"
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    ds = fo.Dataset.from_dir(
        dataset_type=fo.types.COCODetectionDataset,
        data_path=str(coco128 / "images"),
        labels_path=str(coco128 / "detections.json"),
        label_types=["detections"],
        label_field="ground_truth",
        name=name,
        progress=False,
    )
    ds.persistent = True
    return ds


def gt_snapshot(ds, field="ground_truth"):
    """Everything about the human labels, to check nothing changed."""
    return json.dumps([s[field].to_json() if s[field] else None for s in ds.sort_by("filepath")])
