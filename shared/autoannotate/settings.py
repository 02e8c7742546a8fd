"""Defaults shared by every front end (Python API, CLI, FiftyOne operators, Label Studio backend),
and the one place that reads the ``AUTOANNOTATE_*`` environment variables (:class:`Settings`).

One vocabulary, one set of defaults: a front end never writes its own number for these, and never
reads ``os.environ`` itself. This module imports nothing heavy (no FastAPI, Label Studio SDK or
FiftyOne): the CLI and the Docker health check use it as is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadParameterError
from .loading import parse_params

#: Images per call of the function (functions with ``detect_batch`` use it; others go one by one).
DEFAULT_BATCH_SIZE = 8
#: Threads that decode (and fetch) images ahead of the model.
DEFAULT_NUM_WORKERS = 4
#: Results written to the target after at most this many items ...
DEFAULT_WRITE_EVERY = 64
#: ... or after this many seconds, whichever comes first.
DEFAULT_WRITE_INTERVAL = 5.0
#: Frames a box drawn on a video is tracked (Label Studio ``VideoRectangle``).
DEFAULT_TRACK_FRAMES = 30
#: Whole-video pre-annotation: the detector runs on every n-th frame, the tracker in between.
DEFAULT_KEY_FRAME_INTERVAL = 5
#: Largest video the Label Studio backend downloads.
DEFAULT_MAX_VIDEO_BYTES = 512 << 20
#: Disk the Label Studio backend keeps fetched videos in (each task's video is fetched once).
DEFAULT_VIDEO_CACHE_BYTES = 2 << 30
#: Largest image the Label Studio backend downloads.
DEFAULT_MAX_IMAGE_BYTES = 64 << 20
#: Seconds per image (video) download, body included.
DEFAULT_FETCH_TIMEOUT = 15.0
#: The functions used when none is named: detection (every front end), interactive (clicks and
#: boxes: the best SAM model whose weights are present, else GrabCut; ``autoannotate.auto``) and
#: tracking (videos).
DEFAULT_FUNCTION = "yolox"
DEFAULT_INTERACTIVE = "auto"
DEFAULT_TRACKER = "opencv_tracker"
#: Review routing ``(lower, upper)``: labels scoring below lower are discarded, at or above upper
#: auto-approved, the rest need review. Also the thresholds a calibration gives classes it refused.
DEFAULT_REVIEW = (0.3, 0.8)
#: Review calibration (``autoannotate.calibrate``): the precision auto-approved labels must reach,
#: how that is judged (``"wilson"``: the lower end of the Wilson interval; ``"estimate"``), the
#: decisions a class needs, and the decided labels at or above upper the threshold must rest on.
DEFAULT_TARGET_PRECISION = 0.95
DEFAULT_BOUND = "wilson"
DEFAULT_MIN_DECISIONS = 30
DEFAULT_MIN_SUPPORT = 10
#: FiftyOne: the field auto labels go to, and the ground-truth field approved labels are promoted to.
DEFAULT_LABEL_FIELD = "auto_labels"
DEFAULT_GT_FIELD = "ground_truth"
#: Where ``autoannotate label-studio serve`` listens.
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 9090

_NONE_WORDS = ("none", "")

# Where weights are found (read when a model loads, so a test or a user can change them at run time).
MODELS_ENV = "AUTOANNOTATE_MODELS"
CACHE_ENV = "AUTOANNOTATE_CACHE"
OFFLINE_ENV = "AUTOANNOTATE_OFFLINE"
#: Where the Label Studio backend and commands find Label Studio (named in their error messages).
LABEL_STUDIO_URL_ENV = "LABEL_STUDIO_URL"
LABEL_STUDIO_API_KEY_ENV = "LABEL_STUDIO_API_KEY"


def models_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """The folders of ``AUTOANNOTATE_MODELS`` (``os.pathsep``-separated), in order."""
    e = os.environ if env is None else env
    return [Path(p).expanduser() for p in (e.get(MODELS_ENV) or "").split(os.pathsep) if p]


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``AUTOANNOTATE_CACHE``, default ``~/.cache/autoannotate``."""
    e = os.environ if env is None else env
    return Path(e.get(CACHE_ENV) or Path.home() / ".cache" / "autoannotate").expanduser()


#: Who a FiftyOne review decision is recorded as, when neither the caller nor the App names anyone.
REVIEWER_ENV = "AUTOANNOTATE_REVIEWER"


def reviewer(env: Mapping[str, str] | None = None) -> str | None:
    """``AUTOANNOTATE_REVIEWER`` (stripped), or None when unset or empty."""
    e = os.environ if env is None else env
    return (e.get(REVIEWER_ENV) or "").strip() or None


def offline(env: Mapping[str, str] | None = None) -> bool:
    """``AUTOANNOTATE_OFFLINE`` set to 1 / true / yes / on: never download weights."""
    e = os.environ if env is None else env
    return (e.get(OFFLINE_ENV) or "").strip().lower() in TRUE_WORDS


#: Where and in what precision torch models run (``autoannotate.devices``): the default of every
#: function's ``device=`` / ``dtype=`` parameter when the caller gives none.
DEVICE_ENV = "AUTOANNOTATE_DEVICE"
DTYPE_ENV = "AUTOANNOTATE_DTYPE"
DEFAULT_DEVICE = "auto"
DEFAULT_DTYPE = "float32"
#: Accepted spellings of the precisions -> their ``torch`` name.
DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def device_name(value: object, what: str = "device") -> str:
    """``value`` as a device name, checked (no torch needed): ``auto``, ``cpu``, ``cuda`` or
    ``cuda:N``. Raises :class:`BadParameterError` naming ``what`` otherwise."""
    text = str(value).strip().lower()
    if text in ("auto", "cpu", "cuda"):
        return text
    kind, sep, index = text.partition(":")
    if kind == "cuda" and sep and index.isdigit():
        return f"cuda:{int(index)}"
    raise BadParameterError(
        f"{what}={value!r} is not a device: use auto (CUDA when present, else cpu), cpu, cuda or cuda:N"
    )


def dtype_name(value: object, what: str = "dtype") -> str:
    """``value`` as a precision name (``float32``, ``bfloat16`` or ``float16``; ``fp32``, ``bf16``,
    ``fp16`` and ``half`` too). Raises :class:`BadParameterError` naming ``what`` otherwise."""
    name = DTYPE_NAMES.get(str(value).strip().lower().removeprefix("torch."))
    if name is None:
        raise BadParameterError(f"{what}={value!r} is not a precision: use float32, bfloat16 or float16")
    return name


def default_device(env: Mapping[str, str] | None = None) -> str:
    """``AUTOANNOTATE_DEVICE`` (checked), default ``auto``."""
    e = os.environ if env is None else env
    v = (e.get(DEVICE_ENV) or "").strip()
    return device_name(v, DEVICE_ENV) if v else DEFAULT_DEVICE


def default_dtype(env: Mapping[str, str] | None = None) -> str:
    """``AUTOANNOTATE_DTYPE`` (checked), default ``float32``."""
    e = os.environ if env is None else env
    v = (e.get(DTYPE_ENV) or "").strip()
    return dtype_name(v, DTYPE_ENV) if v else DEFAULT_DTYPE


#: The words a yes/no variable takes (case-insensitive).
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass
class Settings:
    """Everything the Label Studio service (and ``autoannotate label-studio ...``) needs.

    :meth:`from_env` reads the variables below; every field has the same default whether it comes
    from here, the CLI or the Docker image. ``function`` / ``interactive`` / ``tracker`` are
    function names (see ``autoannotate functions``), None to disable one.
    """

    function: str | None = DEFAULT_FUNCTION
    interactive: str | None = DEFAULT_INTERACTIVE  # the best SAM model whose weights are present, else grabcut
    tracker: str | None = DEFAULT_TRACKER
    track_frames: int = DEFAULT_TRACK_FRAMES
    params: dict[str, Any] = field(default_factory=dict)
    interactive_params: dict[str, Any] = field(default_factory=dict)
    conf_threshold: float | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    batch_size: int = DEFAULT_BATCH_SIZE
    num_workers: int = DEFAULT_NUM_WORKERS
    key_frame_interval: int = DEFAULT_KEY_FRAME_INTERVAL
    max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES
    #: Bytes of fetched videos kept on disk (0: fetch a task's video for every request).
    video_cache_bytes: int = DEFAULT_VIDEO_CACHE_BYTES
    label_studio_url: str | None = None
    label_studio_api_key: str | None = field(default=None, repr=False)  # secrets never appear in reprs/logs
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    allow_hosts: tuple[str, ...] = ()
    local_files_root: str | None = None
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    cache_bytes: int = 2 << 30
    cache_ttl: float = 3600.0
    #: Store a prediction with no regions where nothing was found (default: none is stored, so
    #: Label Studio's "Retrieve predictions" tries those tasks again).
    empty_predictions: bool = False
    #: Encode an opened task's image for click-to-mask in the background (Label Studio asks for
    #: the task's pre-annotation when it is opened), so the first click costs only the decoder.
    encode_ahead: bool = True
    #: With encode-ahead, also encode the project's next N tasks (by id) when a task is opened or
    #: clicked in (Label Studio asks for an opened task's pre-annotation only when it has none).
    look_ahead: int = 2

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); an unset or empty variable keeps the
        default. A malformed value raises :class:`~autoannotate.errors.BadParameterError` naming
        the variable, e.g. ``AUTOANNOTATE_PORT='abc' is not a valid int``."""
        e = dict(os.environ if env is None else env)
        d = cls()

        def get(name: str) -> str | None:
            v = e.get(name)
            return None if v is None or v.strip() == "" else v

        def text(name: str, default: str | None) -> str | None:
            v = get(name)
            return default if v is None else v

        def function(name: str, default: str | None) -> str | None:
            v = get(name)
            if v is None:
                return default
            return None if v.strip().lower() in _NONE_WORDS else v.strip()

        def number(
            name: str, kind: Callable[[str], Any], default: Any, *, low: float | None = None, high: float | None = None
        ) -> Any:
            v = get(name)
            if v is None:
                return default
            try:
                x = kind(v)
            except (TypeError, ValueError):
                raise BadParameterError(f"{name}={v!r} is not a valid {kind.__name__}") from None
            if x != x or (low is not None and x < low) or (high is not None and x > high):  # NaN too
                bounds = f">= {low}" if high is None else f"between {low} and {high}"
                raise BadParameterError(f"{name}={v!r} must be {bounds}")
            return x

        def flag(name: str, default: bool) -> bool:
            v = get(name)
            if v is None:
                return default
            word = v.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise BadParameterError(f"{name}={v!r} must be true or false")

        def params(name: str) -> dict[str, Any]:
            v = get(name) or ""
            try:
                return parse_params(p for p in v.split(",") if p.strip())
            except BadParameterError as err:
                raise BadParameterError(f"{name}: {err}") from None

        default_device(e)  # a bad AUTOANNOTATE_DEVICE / _DTYPE fails here, before any model loads
        default_dtype(e)
        return cls(
            function=function("AUTOANNOTATE_FUNCTION", d.function),
            interactive=function("AUTOANNOTATE_INTERACTIVE", d.interactive),
            tracker=function("AUTOANNOTATE_TRACKER", d.tracker),
            track_frames=number("AUTOANNOTATE_TRACK_FRAMES", int, d.track_frames, low=1),
            params=params("AUTOANNOTATE_PARAMS"),
            interactive_params=params("AUTOANNOTATE_INTERACTIVE_PARAMS"),
            conf_threshold=number("AUTOANNOTATE_CONF_THRESHOLD", float, d.conf_threshold, low=0, high=1),
            host=text("AUTOANNOTATE_HOST", d.host).strip(),  # type: ignore[union-attr]
            port=number("AUTOANNOTATE_PORT", int, d.port, low=0, high=65535),
            batch_size=number("AUTOANNOTATE_BATCH_SIZE", int, d.batch_size, low=1),
            num_workers=number("AUTOANNOTATE_NUM_WORKERS", int, d.num_workers, low=0),
            key_frame_interval=number("AUTOANNOTATE_KEY_FRAME_INTERVAL", int, d.key_frame_interval, low=1),
            max_video_bytes=number("AUTOANNOTATE_MAX_VIDEO_BYTES", int, d.max_video_bytes, low=1),
            video_cache_bytes=number("AUTOANNOTATE_VIDEO_CACHE_BYTES", int, d.video_cache_bytes, low=0),
            label_studio_url=text("LABEL_STUDIO_URL", d.label_studio_url),
            label_studio_api_key=text("LABEL_STUDIO_API_KEY", d.label_studio_api_key),
            basic_auth_user=text("AUTOANNOTATE_BASIC_AUTH_USER", d.basic_auth_user),
            basic_auth_pass=text("AUTOANNOTATE_BASIC_AUTH_PASS", d.basic_auth_pass),
            bearer_token=text("AUTOANNOTATE_BEARER_TOKEN", d.bearer_token),
            allow_hosts=tuple(h.strip() for h in (get("AUTOANNOTATE_ALLOW_HOSTS") or "").split(",") if h.strip()),
            local_files_root=text("AUTOANNOTATE_LOCAL_FILES_ROOT", d.local_files_root),
            fetch_timeout=number("AUTOANNOTATE_FETCH_TIMEOUT", float, d.fetch_timeout, low=0),
            max_image_bytes=number("AUTOANNOTATE_MAX_IMAGE_BYTES", int, d.max_image_bytes, low=1),
            cache_bytes=number("AUTOANNOTATE_CACHE_BYTES", int, d.cache_bytes, low=0),
            cache_ttl=number("AUTOANNOTATE_CACHE_TTL", float, d.cache_ttl, low=0),
            empty_predictions=flag("AUTOANNOTATE_EMPTY_PREDICTIONS", d.empty_predictions),
            encode_ahead=flag("AUTOANNOTATE_ENCODE_AHEAD", d.encode_ahead),
            look_ahead=number("AUTOANNOTATE_LOOK_AHEAD", int, d.look_ahead, low=0, high=64),
        )


#: Every variable :meth:`Settings.from_env` reads.
ENV_VARIABLES = (
    "AUTOANNOTATE_FUNCTION",
    "AUTOANNOTATE_INTERACTIVE",
    "AUTOANNOTATE_TRACKER",
    "AUTOANNOTATE_TRACK_FRAMES",
    "AUTOANNOTATE_PARAMS",
    "AUTOANNOTATE_INTERACTIVE_PARAMS",
    "AUTOANNOTATE_CONF_THRESHOLD",
    "AUTOANNOTATE_HOST",
    "AUTOANNOTATE_PORT",
    "AUTOANNOTATE_BATCH_SIZE",
    "AUTOANNOTATE_NUM_WORKERS",
    "AUTOANNOTATE_KEY_FRAME_INTERVAL",
    "AUTOANNOTATE_MAX_VIDEO_BYTES",
    "AUTOANNOTATE_VIDEO_CACHE_BYTES",
    "AUTOANNOTATE_ALLOW_HOSTS",
    "AUTOANNOTATE_LOCAL_FILES_ROOT",
    "AUTOANNOTATE_FETCH_TIMEOUT",
    "AUTOANNOTATE_MAX_IMAGE_BYTES",
    "AUTOANNOTATE_CACHE_BYTES",
    "AUTOANNOTATE_CACHE_TTL",
    "AUTOANNOTATE_EMPTY_PREDICTIONS",
    "AUTOANNOTATE_ENCODE_AHEAD",
    "AUTOANNOTATE_LOOK_AHEAD",
    "AUTOANNOTATE_BASIC_AUTH_USER",
    "AUTOANNOTATE_BASIC_AUTH_PASS",
    "AUTOANNOTATE_BEARER_TOKEN",
    "AUTOANNOTATE_DEVICE",
    "AUTOANNOTATE_DTYPE",
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_API_KEY",
)
