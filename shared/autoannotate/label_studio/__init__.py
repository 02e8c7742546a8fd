"""Label Studio integration: the ML backend (``create_app``) and project pre-annotation
(``annotate_project``). Needs ``pip install autoannotate[label-studio]``."""

from ..encodings import EncodingCache
from ..settings import Settings
from .backend import Backend
from .config import Control, ControlConflictError, LabelConfigError, map_controls, parse_config
from .fetch import FetchError, FetchPolicy, ImageFetcher
from .interactive import parse_context
from .project import annotate_project
from .regions import build_prediction
from .responses import BadRequest, failure
from .video import pre_annotate_video, track_drawn_boxes

__all__ = [
    "Backend",
    "BadRequest",
    "failure",
    "parse_context",
    "EncodingCache",
    "Control",
    "LabelConfigError",
    "ControlConflictError",
    "map_controls",
    "parse_config",
    "FetchError",
    "FetchPolicy",
    "ImageFetcher",
    "annotate_project",
    "build_prediction",
    "pre_annotate_video",
    "track_drawn_boxes",
    "create_app",
    "Settings",
]


def __getattr__(name: str):
    if name == "create_app":  # FastAPI is imported only when the service is wanted
        from . import app

        return app.create_app
    raise AttributeError(name)
