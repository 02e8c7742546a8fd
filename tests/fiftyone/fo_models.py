"""FiftyOne models built for the tests (no download): what the model zoo and integrations hand
users, reduced to deterministic labels computed from the image's pixels.

``ToyModel`` follows FiftyOne's conventions (a ``Config`` class named after it, loadable by
``fiftyone.core.models.load_model`` and so from a zoo manifest); ``kind`` picks its outputs.
"""

from __future__ import annotations

import eta.core.config as etac
import fiftyone as fo
import fiftyone.core.models as fom
import numpy as np

#: The batch sizes ``predict_all`` was called with, in this process (reset by the tests).
BATCHES: list[int] = []


class ToyModelConfig(etac.Config):
    def __init__(self, d):
        self.kind = self.parse_string(d, "kind", default="boxes")
        self.classes = self.parse_array(d, "classes", default=["cat", "dog"])
        self.confidence_thresh = self.parse_number(d, "confidence_thresh", default=None)


class ToyModel(fom.Model):
    """Two objects per image, placed and scored from the image's mean grey level: ``kind`` is
    ``boxes``, ``masks`` (boxes with a triangular mask), ``polylines`` (a closed polygon and an
    open polyline), ``keypoints`` (three points each) or ``classifications``."""

    def __init__(self, config=None):
        self.config = config or ToyModelConfig({})
        self._preprocess = True

    @property
    def media_type(self):
        return "image"

    @property
    def ragged_batches(self):
        return False

    @property
    def transforms(self):
        return None

    @property
    def preprocess(self):
        return self._preprocess

    @preprocess.setter
    def preprocess(self, value):
        self._preprocess = value

    def predict(self, arg):
        return self._labels(np.asarray(arg))

    def predict_all(self, args):
        BATCHES.append(len(args))
        return [self._labels(np.asarray(a)) for a in args]

    def _labels(self, img):
        h, w = img.shape[:2]
        seed = int(img.mean() * 10)
        objects = [  # label, pixel box x, y, width, height, confidence
            ("cat", 2 + seed % 10, 3, 20, 15, 0.5 + (seed % 40) / 100),
            ("dog", 35, 20 + seed % 4, 20, 15, 0.95),
        ]
        kind = self.config.kind
        if kind == "classifications":
            return fo.Classifications(
                classifications=[fo.Classification(label=name, confidence=c) for name, *_, c in objects]
            )
        if kind == "polylines":
            return fo.Polylines(
                polylines=[
                    fo.Polyline(
                        label=name,
                        points=[[(x / w, y / h), ((x + bw) / w, y / h), ((x + bw) / w, (y + bh) / h)]],
                        closed=name == "cat",
                        filled=name == "cat",
                        confidence=c,
                    )
                    for name, x, y, bw, bh, c in objects
                ]
            )
        if kind == "keypoints":
            return fo.Keypoints(
                keypoints=[
                    fo.Keypoint(
                        label=name,
                        points=[(x / w, y / h), ((x + bw) / w, y / h), ((x + bw / 2) / w, (y + bh) / h)],
                        confidence=[c, c, c],
                    )
                    for name, x, y, bw, bh, c in objects
                ]
            )
        dets = []
        for name, x, y, bw, bh, c in objects:
            det = fo.Detection(label=name, bounding_box=[x / w, y / h, bw / w, bh / h], confidence=c)
            if kind == "masks":
                det.mask = np.tri(bh, bw, k=seed % 5, dtype=bool)
            dets.append(det)
        return fo.Detections(detections=dets)


class VideoModelConfig(etac.Config):
    def __init__(self, d):
        pass


class VideoModel(ToyModel):
    @property
    def media_type(self):
        return "video"


class PromptedModel(fom.SamplesMixin, ToyModel):
    """A model that reads a sample field (as SAM reads its prompts)."""

    def __init__(self, config=None):
        fom.SamplesMixin.__init__(self)
        ToyModel.__init__(self, config)
        self.needs_fields = {"prompt_field": "ground_truth"}


def manifest(path, models):
    """Write a FiftyOne zoo manifest at ``path`` listing ``{name: (config dict, tags)}`` as
    ToyModels with nothing to download; returns its path."""
    import json

    entries = [
        {
            "base_name": name,
            "base_filename": None,
            "version": None,
            "description": "a test model",
            "manager": None,
            "default_deployment_config_dict": {"type": f"{__name__}.ToyModel", "config": config},
            "requirements": {"packages": []},
            "tags": tags,
            "date_added": "2026-12-03 00:00:00",
        }
        for name, (config, tags) in models.items()
    ]
    path.write_text(json.dumps({"models": entries}))
    return str(path)
