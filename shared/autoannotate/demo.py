"""``python -m autoannotate.demo``: the main job on real photos.

Builds a FiftyOne dataset from real photos (the COCO128 photos with their ground truth when
``AUTOANNOTATE_COCO128`` points at them, else scikit-image's sample photos), runs the plugin's
``auto_label`` operator through FiftyOne's operator execution with YOLOX-Nano and review
thresholds, prints the report, and prints the command that opens the App on the dataset.

``--coco`` instead annotates the photos with the CLI into COCO JSON plus overlay PNGs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins"


def write_sample_photos(folder: Path) -> list[Path]:
    """Save scikit-image's sample photos (shipped inside its wheel) as JPEG files in ``folder``."""
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("the demo needs scikit-image for its sample photos: pip install scikit-image") from None
    import PIL.Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_PHOTOS:
        arr = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
        path = folder / f"{name}.jpg"
        PIL.Image.fromarray(arr).convert("RGB").save(path, quality=92)
        paths.append(path)
    return paths


def coco_demo(out: Path, conf_threshold: float) -> int:
    from .cli import main as cli_main

    photos = out / "photos"
    write_sample_photos(photos)
    print(f"annotating {len(SAMPLE_PHOTOS)} real photos in {photos} with YOLOX-Nano")
    return cli_main(
        [
            "annotate",
            str(photos),
            "--function",
            "yolox",
            "--conf-threshold",
            str(conf_threshold),
            "--output",
            str(out / "coco.json"),
            "--overlays",
            str(out / "overlays"),
        ]
    )


def build_dataset(name: str, out: Path):
    import fiftyone as fo

    coco = Path(os.environ.get("AUTOANNOTATE_COCO128", "")) if os.environ.get("AUTOANNOTATE_COCO128") else None
    if coco is not None and (coco / "detections.json").exists():
        print(f"building dataset {name!r} from the 128 COCO photos in {coco} (with their ground truth)")
        ds = fo.Dataset.from_dir(
            dataset_type=fo.types.COCODetectionDataset,
            data_path=str(coco / "images"),
            labels_path=str(coco / "detections.json"),
            label_types=["detections"],
            label_field="ground_truth",
            name=name,
            overwrite=True,
            progress=False,
        )
    else:
        photos = write_sample_photos(out / "photos")
        print(f"building dataset {name!r} from {len(photos)} scikit-image sample photos")
        ds = fo.Dataset(name, overwrite=True)
        ds.add_samples([fo.Sample(filepath=str(p)) for p in photos])
    ds.persistent = True
    return ds


def fiftyone_demo(name: str, out: Path, lower: float, upper: float) -> int:
    os.environ.setdefault("FIFTYONE_PLUGINS_DIR", str(PLUGIN_DIR))
    import fiftyone.operators as foo

    from .report import AnnotateReport

    ds = build_dataset(name, out)
    params = {
        "view_target": "DATASET",
        "function": "yolox",
        "label_field": "auto_labels",
        "route": True,
        "review_lower": lower,
        "review_upper": upper,
        "overwrite": True,
    }
    if ds.get_field("ground_truth") is not None:
        params["eval_gt_field"] = "ground_truth"
    print(f"running the auto_label operator (YOLOX-Nano, review thresholds {lower} / {upper}) on {len(ds)} samples")
    result = foo.execute_operator("@autoannotate/autoannotate/auto_label", ctx={"dataset": ds.name, "params": params})
    if result.error:
        print(f"auto_label failed: {result.error}", file=sys.stderr)
        return 1
    report = AnnotateReport.from_dict(result.result)
    print(report.summary())  # includes the evaluation against ground_truth when there is one
    venv_bin = Path(sys.executable).parent
    print("\nopen the App on it:")
    print(f"  FIFTYONE_PLUGINS_DIR={PLUGIN_DIR} {venv_bin / 'fiftyone'} app launch {ds.name}")
    print("  (add --remote on a headless machine, then browse to http://localhost:5151)")
    if report.extra.get("needs_review_view"):
        print(f"  saved view with the labels waiting for review: {report.extra['needs_review_view']}")
    return 0 if report.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--dataset", default="autoannotate-demo")
    parser.add_argument("--review-lower", type=float, default=0.3)
    parser.add_argument("--review-upper", type=float, default=0.7)
    parser.add_argument("--coco", action="store_true", help="CLI demo: COCO JSON + overlay PNGs instead of FiftyOne")
    args = parser.parse_args(argv)
    if args.coco:
        return coco_demo(args.out, args.review_lower)
    return fiftyone_demo(args.dataset, args.out, args.review_lower, args.review_upper)


if __name__ == "__main__":
    sys.exit(main())
