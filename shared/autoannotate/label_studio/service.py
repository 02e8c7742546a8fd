"""Settings -> the objects of the Label Studio integration (no web framework needed here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..auto import load_interactive
from ..encodings import EncodingCache
from ..loading import is_open_vocabulary, load_function, with_classes
from ..settings import Settings, named
from .backend import Backend
from .fetch import FetchPolicy, ImageFetcher
from .video_cache import VideoCache


def fetch_policy(settings: Settings) -> FetchPolicy:
    """Download rules from the settings (timeout, size limit, allowed hosts, local files root)."""
    return FetchPolicy(
        timeout=settings.fetch_timeout,
        max_bytes=settings.max_image_bytes,
        allow_hosts=settings.allow_hosts,
        local_root=Path(settings.local_files_root) if settings.local_files_root else None,
    )


def build_backend(settings: Settings, given: Mapping[str, str] | None = None) -> Backend:
    """Load the functions now (Label Studio gives /health and /setup only seconds), each checked
    for its role (detection, interactive, tracking). An error names the setting it comes from:
    its variable, or the flag ``given`` says replaced it (field -> flag, e.g. ``{"tracker": "--tracker"}``)."""
    # an open-vocabulary function (sam3, owlv2, grounding_dino) given no classes loads its model now
    # with a stand-in class; each labeling config's labels become its classes (Backend.detector),
    # with the user's prompts for them. Classes the user gives are searched as they are.
    function = interactive = tracker = vocabulary = None
    if settings.function:
        with named("function", settings.function, "params", settings.params, given):
            params = dict(settings.params)
            if is_open_vocabulary(settings.function) and "classes" not in params:
                vocabulary = params.pop("prompts", None) or {}  # the stand-in class has no prompts
            params = with_classes(settings.function, params, ["object"])
            function = load_function(settings.function, "detection", **params)
    # "auto": the best SAM model whose weights are here, else GrabCut (one log line says how to get SAM)
    if settings.interactive:
        with named("interactive", settings.interactive, "interactive_params", settings.interactive_params, given):
            interactive = load_interactive(settings.interactive, **settings.interactive_params)
    if settings.tracker:
        with named("tracker", settings.tracker, given=given):
            tracker = load_function(settings.tracker, "tracking")
    fetcher = ImageFetcher(
        fetch_policy(settings), label_studio_url=settings.label_studio_url, api_key=settings.label_studio_api_key
    )
    return Backend(
        function=function,
        vocabulary=vocabulary,
        interactive=interactive,
        tracker=tracker,
        fetcher=fetcher,
        cache=EncodingCache(settings.cache_bytes, settings.cache_ttl),
        conf_threshold=settings.conf_threshold,
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        track_frames=settings.track_frames,
        key_frame_interval=settings.key_frame_interval,
        max_video_bytes=settings.max_video_bytes,
        video_cache=VideoCache(settings.video_cache_bytes),
        empty_predictions=settings.empty_predictions,
        encode_ahead=settings.encode_ahead,
        look_ahead=settings.look_ahead,
    )
