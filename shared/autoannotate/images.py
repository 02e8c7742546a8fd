"""Read images the way a person sees them: EXIF orientation applied, converted to 8-bit RGB.

Grayscale, RGBA/LA, palette, CMYK, 16-bit and 32-bit integer/float images are accepted;
multi-frame files (animated GIF, TIFF stacks) give their first frame. A missing, empty,
truncated, oversized or non-image file raises :class:`ImageLoadError` with a reason a person
can act on.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps

from .errors import ImageLoadError

#: Default limit on pixels per image (width x height); larger files are refused as
#: decompression bombs. 178,956,970 is Pillow's own error threshold.
DEFAULT_MAX_PIXELS = 178_956_970

ImageSource = str | os.PathLike | bytes | PIL.Image.Image


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> PIL.Image.Image:
    """Open ``source`` (a path, raw bytes or a PIL image) as an upright 8-bit RGB image."""
    name = _describe(source)
    if isinstance(source, PIL.Image.Image):
        return to_rgb(upright(source))
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageLoadError(f"{name}: empty data (0 bytes)")
        fp: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"{name}: file not found")
        if path.is_dir():
            raise ImageLoadError(f"{name}: is a directory, not an image file")
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{name}: empty file (0 bytes)")
        fp = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(fp) as img:  # type: ignore[arg-type]
                if max_pixels is not None and img.width * img.height > max_pixels:
                    raise ImageLoadError(
                        f"{name}: {img.width}x{img.height} pixels exceeds the limit of {max_pixels:,} "
                        "pixels (possible decompression bomb); raise max_pixels to accept it"
                    )
                img.seek(0)
                img.load()
                return to_rgb(upright(img))
    except ImageLoadError:
        raise
    except (PIL.UnidentifiedImageError, ImportError):
        # ImportError: a library that replaced PIL.Image.open (Ultralytics, when a user imports it)
        # reaches for an optional plugin when Pillow does not recognise the file
        raise ImageLoadError(f"{name}: not an image file (format not recognised)") from None
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"{name}: refused as a possible decompression bomb ({e})") from None
    except OSError as e:
        text = str(e)
        if "truncated" in text or "broken data stream" in text or "premature end" in text.lower():
            raise ImageLoadError(f"{name}: truncated or corrupt image data ({text})") from None
        raise ImageLoadError(f"{name}: cannot read image ({text})") from None
    except (ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise ImageLoadError(f"{name}: corrupt image ({type(e).__name__}: {e})") from None


def upright(img: PIL.Image.Image) -> PIL.Image.Image:
    """``img`` rotated/flipped as its EXIF orientation says (no copy when it is already upright)."""
    if img.getexif().get(0x0112, 1) in (0, 1):
        return img
    return PIL.ImageOps.exif_transpose(img)


def to_rgb(img: PIL.Image.Image) -> PIL.Image.Image:
    """Convert any Pillow mode to 8-bit RGB (high bit depths are scaled, not clipped)."""
    if img.mode == "RGB":
        return img.copy() if img.readonly else img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            arr = arr / 257.0
        else:
            lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
            if img.mode == "I" and 0 <= lo and hi <= 65535 and hi > 255:
                arr = arr / 257.0  # 16-bit data that Pillow opened as 32-bit
            elif hi > 255 or lo < 0:
                arr = (arr - lo) * (255.0 / max(hi - lo, 1e-12))
        gray = PIL.Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
        return gray.convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _describe(source: ImageSource) -> str:
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    if isinstance(source, PIL.Image.Image):
        return "<PIL image>"
    return str(source)


def image_name(source: ImageSource) -> str:
    """A short name for logs and failure records."""
    return _describe(source)
