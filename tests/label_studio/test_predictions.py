"""Issue 24: one Label Studio prediction builder (``label_studio/predictions.py``) serves the
project sink (``label-studio annotate``) and the backend (``serve``), with the labels mapped in
the driver, one mapping per control tag."""

from __future__ import annotations

import pytest

from autoannotate import iter_annotations
from autoannotate.images import load_image
from autoannotate.label_studio import Backend, FetchPolicy, ImageFetcher, map_controls, parse_config
from autoannotate.label_studio.predictions import control_mappings
from autoannotate.label_studio.project import ProjectSink
from tests.fakes import FakeDetector
from tests.label_studio.test_protocol import CONFIG, boxes, task

pytest.importorskip("label_studio_sdk")


def test_the_sink_and_the_backend_write_the_same_prediction():
    fn = FakeDetector(boxes)
    controls = map_controls(fn.spec, parse_config(CONFIG))
    t = task(11)
    fetcher = ImageFetcher(FetchPolicy())
    served = Backend(function=fn, fetcher=fetcher).pre_annotate([t], controls)[0]

    sink = ProjectSink(client=None, project_id=1, version="FakeDetector", controls=controls, overwrite=False)
    (result,) = iter_annotations(
        fn,
        [(11, t["data"]["image"])],
        mapping=control_mappings(controls),
        loader=lambda ref: load_image(fetcher.fetch(ref)),
        progress=False,
    )
    assert sink.add(result) == [None, None]
    (uploaded,) = sink.predictions
    assert uploaded.pop("task") == 11
    assert uploaded == served
    assert [(r["from_name"], r["value"]["rectanglelabels"]) for r in served["result"]] == [
        ("box", ["Cat"]),
        ("box", ["dog"]),
    ]
