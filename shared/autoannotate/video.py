"""Read video frames with OpenCV (``opencv-python-headless``) as upright RGB PIL images."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import PIL.Image

from .errors import ImageLoadError


def video_info(path: str | Path) -> dict:
    """``{"frames", "fps", "width", "height"}`` of a video file."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageLoadError(f"{path}: cannot open video")
    try:
        return {
            "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            "fps": float(cap.get(cv2.CAP_PROP_FPS)) or 25.0,
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        }
    finally:
        cap.release()


def read_frames(path: str | Path, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[PIL.Image.Image]:
    """Frames ``start, start + step, ...`` (0-based) before ``stop``; backwards when ``step < 0``."""
    import cv2

    if not Path(path).is_file():
        raise ImageLoadError(f"{path}: file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageLoadError(f"{path}: cannot open video")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if stop is None:
            stop = total if step > 0 else -1
        indexes = range(start, stop, step)
        if step == 1:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            for _ in indexes:
                ok, frame = cap.read()
                if not ok:
                    return
                yield PIL.Image.fromarray(frame[:, :, ::-1])
            return
        for i in indexes:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if not ok:
                return
            yield PIL.Image.fromarray(frame[:, :, ::-1])
    finally:
        cap.release()
