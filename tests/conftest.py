"""Fixtures shared by the whole suite: real photos, the shared models/data folders, tiny fakes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from tests.mongo import start_session_mongod

pytest_plugins = [
    "tests.ls_server",
    "tests.installed",
]  # fixtures shared by every directory: Label Studio server, installed packages

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# FiftyOne reads these when first imported: our own database per test session (a private mongod
# on a free loopback port: FiftyOne would otherwise join any database service already running on
# the machine, e.g. a user's open App), our plugin folder, no usage tracking.
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="autoannotate-fo-db-")
SESSION_MONGOD = start_session_mongod()
if SESSION_MONGOD is not None:
    os.environ["FIFTYONE_DATABASE_URI"] = SESSION_MONGOD.uri
    os.environ["FIFTYONE_DATABASE_ADMIN"] = "true"  # our database: FiftyOne may migrate it
os.environ["FIFTYONE_PLUGINS_DIR"] = str(REPO / "plugins")
os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
ARTIFACTS = Path(os.environ.get("AUTOANNOTATE_TEST_ARTIFACTS") or REPO / "test-artifacts")


def _shared_path(env: str, default: Path) -> Path | None:
    p = Path(os.environ.get(env) or default)
    return p if p.exists() else None


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The folder with real weights (../shared/models); tests needing it skip where it is absent."""
    first = (os.environ.get("AUTOANNOTATE_MODELS") or "").split(os.pathsep)[0]
    p = _shared_path("AUTOANNOTATE_MODELS_DIR", Path(first) if first else SHARED / "models")
    if p is None or not (p / "yolox_nano.onnx").exists():
        pytest.skip("real weights folder (../shared/models) not available")
    return p


@pytest.fixture(scope="session")
def coco128() -> Path:
    p = _shared_path("AUTOANNOTATE_COCO128", SHARED / "data" / "coco128-train")
    if p is None:
        pytest.skip("COCO128 photos (../shared/data/coco128-train) not available")
    return p


@pytest.fixture
def models_env(models_dir, monkeypatch, tmp_path):
    """Weights resolved from the shared folder only, never downloaded."""
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(models_dir))
    monkeypatch.setenv("AUTOANNOTATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    return models_dir


@pytest.fixture(scope="session")
def astronaut() -> PIL.Image.Image:
    import skimage.data

    return PIL.Image.fromarray(skimage.data.astronaut())


@pytest.fixture(scope="session")
def coffee() -> PIL.Image.Image:
    import skimage.data

    return PIL.Image.fromarray(skimage.data.coffee())


@pytest.fixture
def rgb_image() -> PIL.Image.Image:
    rng = np.random.default_rng(0)
    return PIL.Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
