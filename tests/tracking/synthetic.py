"""A synthetic video made of real photos: a patch of chelsea() (the cat's face) moving over
coffee() along a known path, with the ground-truth box of every frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image

PATCH_BOX = (140, 40, 260, 150)  # x1, y1, x2, y2 in chelsea(): the cat's face
SIZE = (320, 240)


def path(n: int) -> list[tuple[int, int]]:
    """Top-left corner of the patch on each frame: a diagonal drift with a gentle wave."""
    return [(int(20 + 2.2 * i), int(40 + 1.2 * i + 12 * np.sin(i / 6))) for i in range(n)]


def make_frames(
    n: int = 60, objects: int = 1
) -> tuple[list[PIL.Image.Image], list[list[tuple[float, float, float, float]]]]:
    """``n`` frames and, per object, its box on each frame."""
    import skimage.data

    background = PIL.Image.fromarray(skimage.data.coffee()).resize(SIZE)
    patch = PIL.Image.fromarray(skimage.data.chelsea()).crop(PATCH_BOX).resize((60, 55))
    pw, ph = patch.size
    frames, boxes = [], [[] for _ in range(objects)]
    for x, y in path(n):
        frame = background.copy()
        for k in range(objects):
            ox, oy = (x, y) if k == 0 else (SIZE[0] - pw - x // 2 - 5, 20 + y // 3)
            frame.paste(patch, (ox, oy))
            boxes[k].append((float(ox), float(oy), float(ox + pw), float(oy + ph)))
        frames.append(frame)
    return frames, boxes


def write_video(frames: list[PIL.Image.Image], path_out: Path, fps: int = 10) -> Path:
    import cv2

    w, h = frames[0].size
    writer = cv2.VideoWriter(str(path_out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(np.asarray(f)[:, :, ::-1])
    writer.release()
    return path_out


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


PAN_SIZE = (400, 300)
#: What YOLOX returned for the tall object on the first frame of the panned clip (a user's report).
EDGE_BOX = (255.4, 0.5, 399.4, 300.0)


def make_panned_frames(
    n: int = 10, step: int = 4
) -> tuple[list[PIL.Image.Image], list[list[tuple[float, float, float, float]]]]:
    """A 400x300 camera panning right over a wide scene, ``step`` px per frame: object 0 is a
    full-height strip of chelsea() (it touches the top and bottom edges; on frame 0 it spans x
    255..399, next to the right edge) and object 1 the cat's face, small, on the left. Both move
    left by ``step`` px a frame. Returns the frames and, per object, its box on each frame."""
    import skimage.data

    W, H = PAN_SIZE
    scene = PIL.Image.fromarray(skimage.data.coffee()).resize((W + step * n, H))
    cat = PIL.Image.fromarray(skimage.data.chelsea())  # 451 x 300
    scene.paste(cat.crop((150, 0, 294, 300)), (255, 0))  # 144 x 300
    scene.paste(cat.crop(PATCH_BOX).resize((60, 55)), (60, 130))
    frames = [scene.crop((step * i, 0, step * i + W, H)) for i in range(n)]
    tall = [(255.0 - step * i, 0.0, 399.0 - step * i, 300.0) for i in range(n)]
    face = [(60.0 - step * i, 130.0, 120.0 - step * i, 185.0) for i in range(n)]
    return frames, [tall, face]


def make_leaving_frames(
    n: int = 24, step: int = 8
) -> tuple[list[PIL.Image.Image], list[tuple[float, float, float, float]]]:
    """The cat's face (60x55) walking right over coffee() by ``step`` px a frame, out through the
    right edge of the 320x240 frame; its true box per frame, unclipped (it starts at x 150, so
    with the defaults it is half out on frame 14 and gone on frame 21)."""
    import skimage.data

    background = PIL.Image.fromarray(skimage.data.coffee()).resize(SIZE)
    patch = PIL.Image.fromarray(skimage.data.chelsea()).crop(PATCH_BOX).resize((60, 55))
    frames, boxes = [], []
    for i in range(n):
        x, y = 150 + step * i, 90
        frame = background.copy()
        frame.paste(patch, (x, y))
        frames.append(frame)
        boxes.append((float(x), float(y), float(x + 60), float(y + 55)))
    return frames, boxes


def make_occluded_frames(
    n: int = 20, hidden_from: int = 8
) -> tuple[list[PIL.Image.Image], list[tuple[float, float, float, float]]]:
    """The cat's face drifting right 2 px a frame; from frame ``hidden_from`` on a grey wall
    (a flat board with a little noise, as a wall in a photo) stands in front of it. Its true box
    per frame (where it is, hidden or not)."""
    import skimage.data

    background = PIL.Image.fromarray(skimage.data.coffee()).resize(SIZE)
    patch = PIL.Image.fromarray(skimage.data.chelsea()).crop(PATCH_BOX).resize((60, 55))
    rng = np.random.default_rng(0)
    wall = PIL.Image.fromarray((128 + rng.normal(0, 6, (120, 110))).clip(0, 255).astype(np.uint8)).convert("RGB")
    frames, boxes = [], []
    for i in range(n):
        x, y = 80 + 2 * i, 80
        frame = background.copy()
        frame.paste(patch, (x, y))
        if i >= hidden_from:
            frame.paste(wall, (90, 50))
        frames.append(frame)
        boxes.append((float(x), float(y), float(x + 60), float(y + 55)))
    return frames, boxes
