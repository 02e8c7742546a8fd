"""Images as a person sees them, and bad files as failure records (never crashes)."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate import annotate_images
from autoannotate.images import load_image
from tests.fakes import FakeDetector


def _exif_rotated_jpeg(path, orientation=6):
    """A 60x40 (WxH) photo stored sideways: the file is 40x60 and EXIF says rotate."""
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:, :30] = (255, 0, 0)  # left half red
    stored = PIL.Image.fromarray(upright).transpose(PIL.Image.Transpose.ROTATE_90)  # what a camera writes
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif.tobytes(), quality=95)
    return upright


def test_exif_orientation_is_honoured(tmp_path):
    p = tmp_path / "rotated.jpg"
    _exif_rotated_jpeg(p)
    with PIL.Image.open(p) as raw:
        assert raw.size == (40, 60)
    img = load_image(p)
    assert img.size == (60, 40)
    arr = np.asarray(img)
    assert arr[20, 5, 0] > 200 and arr[20, 55, 0] < 50  # red on the left, as the user sees it


@pytest.mark.parametrize(
    "make",
    [
        lambda: PIL.Image.new("L", (8, 6), 128),
        lambda: PIL.Image.new("RGBA", (8, 6), (10, 20, 30, 255)),
        lambda: PIL.Image.new("LA", (8, 6), (10, 255)),
        lambda: PIL.Image.new("P", (8, 6), 3),
        lambda: PIL.Image.new("CMYK", (8, 6), (0, 0, 0, 0)),
        lambda: PIL.Image.new("1", (8, 6), 1),
        lambda: PIL.Image.fromarray(np.full((6, 8), 65535, np.uint16)),
        lambda: PIL.Image.fromarray(np.full((6, 8), 0.5, np.float32)),
    ],
)
def test_modes_become_8bit_rgb(make, tmp_path):
    img = make()
    fmt = "TIFF" if img.mode in ("F", "CMYK", "I;16") else "PNG"
    p = tmp_path / f"x.{fmt.lower()}"
    img.save(p, format=fmt)
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (8, 6)


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 32896, 65535]], np.uint16)
    p = tmp_path / "deep.png"
    PIL.Image.fromarray(arr).save(p)
    out = np.asarray(load_image(p))[0, :, 0]
    assert out.tolist() == [0, 128, 255]


def test_transparent_pixels_composite_on_white():
    img = PIL.Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    assert np.asarray(load_image(img))[0, 0].tolist() == [255, 255, 255]


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [PIL.Image.new("P", (10, 10), c) for c in (1, 2, 3)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50)
    assert load_image(p).size == (10, 10)


def test_decompression_bomb_limit(tmp_path):
    p = tmp_path / "big.png"
    PIL.Image.new("L", (300, 300)).save(p)
    with pytest.raises(aa.ImageLoadError, match="exceeds the limit of 10,000 pixels"):
        load_image(p, max_pixels=10_000)


def _bad_files(tmp_path):
    good = tmp_path / "good.png"
    PIL.Image.new("RGB", (20, 10), "white").save(good)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    buf = io.BytesIO()
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    rotated = tmp_path / "rotated.jpg"
    _exif_rotated_jpeg(rotated)
    deep = tmp_path / "deep.png"
    PIL.Image.fromarray(np.full((10, 12), 40000, np.uint16)).save(deep)
    palette = tmp_path / "palette.png"
    PIL.Image.new("P", (12, 10), 5).save(palette)
    return {
        "good": good,
        "missing": tmp_path / "missing.jpg",
        "empty": empty,
        "text": text,
        "truncated": truncated,
        "rotated": rotated,
        "deep": deep,
        "palette": palette,
    }


def test_bad_images_are_failure_records_and_the_run_completes(tmp_path):
    files = _bad_files(tmp_path)
    sizes = []

    def make(ctx, img):
        sizes.append((ctx.frame_name, img.size, img.mode))
        w, h = img.size
        return [aa.rectangle(0, [0, 0, w, h], score=0.9)]

    results, report = annotate_images(FakeDetector(make), [(k, p) for k, p in files.items()], progress=False)
    by_key = {r.key: r for r in results}
    assert report.images_attempted == 8
    assert report.images_processed == 4  # good, rotated, deep, palette
    reasons = {f.image.split("/")[-1]: f.reason for f in report.failures}
    assert "file not found" in reasons["missing.jpg"]
    assert "empty file" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    # the rotated photo is annotated upright: its box spans the upright 60x40 frame
    assert by_key["rotated"].size == (60, 40)
    assert by_key["rotated"].shapes[0].points == (0.0, 0.0, 60.0, 40.0)
    assert all(mode == "RGB" for _, _, mode in sizes)


def test_directory_and_bytes_sources(tmp_path):
    with pytest.raises(aa.ImageLoadError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(aa.ImageLoadError, match="empty data"):
        load_image(b"")
    buf = io.BytesIO()
    PIL.Image.new("RGB", (3, 2)).save(buf, "PNG")
    assert load_image(buf.getvalue()).size == (3, 2)
