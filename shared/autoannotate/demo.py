"""``python -m autoannotate.demo``: annotate real photos with YOLOX-Nano, write COCO JSON and
overlay PNGs. Photos are scikit-image's sample photos (shipped inside its wheel), so the demo
needs no download beyond the YOLOX weights (``AUTOANNOTATE_MODELS`` or the official URL)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")


def write_sample_photos(folder: Path) -> list[Path]:
    """Save scikit-image's sample photos as JPEG files in ``folder``."""
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("the demo needs scikit-image for its sample photos: pip install scikit-image") from None
    import PIL.Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_PHOTOS:
        if name == "motorcycle_left":
            arr = skimage.data.stereo_motorcycle()[0]
        else:
            arr = getattr(skimage.data, name)()
        path = folder / f"{name}.jpg"
        PIL.Image.fromarray(arr).convert("RGB").save(path, quality=92)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    from .cli import main as cli_main

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--conf-threshold", type=float, default=0.3)
    args = parser.parse_args(argv)
    photos = args.out / "photos"
    write_sample_photos(photos)
    print(f"annotating {len(SAMPLE_PHOTOS)} real photos in {photos} with YOLOX-Nano")
    code = cli_main([
        "annotate", str(photos), "--function", "yolox", "--conf-threshold", str(args.conf_threshold),
        "--output", str(args.out / "coco.json"), "--overlays", str(args.out / "overlays"),
    ])
    if code == 0:
        print(f"look at the overlays: {args.out / 'overlays'}/*.png")
    return code


if __name__ == "__main__":
    sys.exit(main())
