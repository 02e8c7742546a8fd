"""The bad-input catalogue (docs/reliability.md): each input with its expected outcome, a clear
error or a failure record, and the run going on. URL cases (hanging, redirecting to private
addresses, HTML, endless bodies) are in tests/label_studio/test_fetch_security.py; functions
returning garbage in tests/core/test_driver.py."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate import annotate_images
from tests.fakes import FakeDetector


def _jpeg(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _rotated(orientation):
    upright = PIL.Image.new("RGB", (60, 40), "white")
    stored = upright.transpose(PIL.Image.Transpose.ROTATE_90) if orientation in (5, 6, 7, 8) else upright
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    return _jpeg(stored, exif=exif.tobytes())


def _gif():
    buf = io.BytesIO()
    frames = [PIL.Image.new("P", (30, 20), c) for c in (1, 2, 3)]
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=40)
    return buf.getvalue()


#: name -> (file bytes, expected: ("ok", (width, height)) or ("failure", reason fragment))
CATALOGUE = {
    "missing file": (None, ("failure", "file not found")),
    "empty file": (b"", ("failure", "empty file")),
    "not an image": (b"%PDF-1.4 not an image", ("failure", "not an image")),
    "truncated JPEG": (
        _jpeg(PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)))[:3000],
        ("failure", "truncated"),
    ),
    "decompression bomb": (_png(PIL.Image.new("1", (20000, 10000))), ("failure", "decompression bomb")),
    "CMYK JPEG": (_jpeg(PIL.Image.new("CMYK", (50, 30), (0, 255, 0, 0))), ("ok", (50, 30))),
    "16-bit PNG": (_png(PIL.Image.fromarray(np.full((30, 50), 50000, np.uint16))), ("ok", (50, 30))),
    "animated GIF": (_gif(), ("ok", (30, 20))),
    "palette + transparency": (_png(PIL.Image.new("P", (50, 30), 0), transparency=0), ("ok", (50, 30))),
    **{f"EXIF orientation {o}": (_rotated(o), ("ok", (60, 40))) for o in range(1, 9)},
}


def test_every_catalogue_entry_through_the_driver(tmp_path):
    items = []
    for name, (data, _) in CATALOGUE.items():
        path = tmp_path / (name.replace(" ", "_") + ".img")
        if data is not None:
            path.write_bytes(data)
        items.append((name, path))
    fn = FakeDetector(lambda c, i: [aa.rectangle(0, [0, 0, i.size[0], i.size[1]], score=0.9)])
    results, report = annotate_images(fn, items, progress=False)
    assert report.images_attempted == len(CATALOGUE)
    for r in results:
        kind, expected = CATALOGUE[r.key][1]
        if kind == "ok":
            assert r.ok and r.size == expected, (r.key, r.error, r.size)
            assert r.shapes[0].points == (0.0, 0.0, float(expected[0]), float(expected[1]))
        else:
            assert not r.ok and expected in r.error, (r.key, r.error)


CONFIG_CASES = {
    "no matching labels": (
        '<View><Image name="i" value="$image"/><RectangleLabels name="r" toName="i">'
        '<Label value="Giraffe"/></RectangleLabels></View>',
        "none of the function's labels",
    ),
    "unknown tags only": (
        '<View><Image name="i" value="$image"/><Hypertext name="h" value="$html"/><Rating name="r" toName="i"/></View>',
        "no control tag",
    ),
    "duplicate label names": (
        '<View><Image name="i" value="$image"/><RectangleLabels name="r" toName="i">'
        '<Label value="cat"/><Label value="cat"/></RectangleLabels></View>',
        "more than once",
    ),
    "not XML": ("<View><Image", "cannot parse"),
    "empty": ("", "labeling config"),
}


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_labeling_config_catalogue(name):
    from fastapi.testclient import TestClient

    from autoannotate.label_studio import Backend
    from autoannotate.label_studio.app import Settings, create_app

    config, message = CONFIG_CASES[name]
    c = TestClient(create_app(Settings(), backend=Backend(function=FakeDetector())))
    r = c.post("/setup", json={"schema": config})
    assert r.status_code in (400, 422) and message in r.json()["error"], r.text
