"""Label Studio integration: the ML backend (``create_app``) and project pre-annotation
(``annotate_project``). Needs ``pip install autoannotate[label-studio]``."""

from .backend import Backend, BadRequest, parse_context
from .cache import EncodingCache
from .config import Control, LabelConfigError, map_controls, parse_config
from .fetch import FetchError, FetchPolicy, ImageFetcher
from .project import annotate_project

__all__ = [
    "Backend", "BadRequest", "parse_context", "EncodingCache", "Control", "LabelConfigError", "map_controls",
    "parse_config", "FetchError", "FetchPolicy", "ImageFetcher", "annotate_project", "create_app", "Settings",
]


def __getattr__(name: str):
    if name in ("create_app", "Settings"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
