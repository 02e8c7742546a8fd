"""Defaults shared by every front end (Python API, CLI, FiftyOne operators, Label Studio backend),
and the one place that reads the ``AUTOANNOTATE_*`` environment variables (:class:`Settings`).

One vocabulary, one set of defaults: a front end never writes its own number for these, and never
reads ``os.environ`` itself. This module imports nothing heavy (no FastAPI, Label Studio SDK or
FiftyOne): the CLI and the Docker health check use it as is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import AutoAnnotateError, BadParameterError
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


def env_variable(name: str) -> str:
    """The variable a :class:`Settings` field is read from: ``AUTOANNOTATE_<NAME>``, and
    ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` for the ``label_studio_*`` fields."""
    return name.upper() if name.startswith("label_studio_") else f"AUTOANNOTATE_{name.upper()}"


def _setting(
    default: Any = None,
    read: str = "text",
    *,
    low: float | None = None,
    high: float | None = None,
    secret: bool = False,
) -> Any:
    """A :class:`Settings` field and how :meth:`Settings.from_env` reads its variable: ``read`` is
    ``text`` (as given), ``word`` (stripped), ``function`` (a name; ``none`` disables it), ``int``
    or ``float`` (between ``low`` and ``high``), ``flag`` (yes/no), ``params``
    (``NAME=TYPE:VALUE,...``) or ``hosts`` (comma-separated). A ``secret`` never shows in reprs."""
    metadata = {"read": read, "low": low, "high": high}
    if isinstance(default, dict):  # a fresh one for each instance
        return field(default_factory=lambda: dict(default), repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass
class Settings:
    """Everything the Label Studio service (and ``autoannotate label-studio ...``) needs.

    :meth:`from_env` reads each field from its variable (:func:`env_variable`: the field's name,
    upper case, after ``AUTOANNOTATE_``), as the field declares; every field has the same default
    whether it comes from here, the CLI or the Docker image. ``function`` / ``interactive`` /
    ``tracker`` are function names (see ``autoannotate functions``), None to disable one.
    """

    function: str | None = _setting(DEFAULT_FUNCTION, "function")
    #: the best SAM model whose weights are present, else grabcut
    interactive: str | None = _setting(DEFAULT_INTERACTIVE, "function")
    tracker: str | None = _setting(DEFAULT_TRACKER, "function")
    track_frames: int = _setting(DEFAULT_TRACK_FRAMES, "int", low=1)
    params: dict[str, Any] = _setting({}, "params")
    interactive_params: dict[str, Any] = _setting({}, "params")
    conf_threshold: float | None = _setting(None, "float", low=0, high=1)
    host: str = _setting(DEFAULT_HOST, "word")
    port: int = _setting(DEFAULT_PORT, "int", low=0, high=65535)
    batch_size: int = _setting(DEFAULT_BATCH_SIZE, "int", low=1)
    num_workers: int = _setting(DEFAULT_NUM_WORKERS, "int", low=0)
    key_frame_interval: int = _setting(DEFAULT_KEY_FRAME_INTERVAL, "int", low=1)
    max_video_bytes: int = _setting(DEFAULT_MAX_VIDEO_BYTES, "int", low=1)
    #: Bytes of fetched videos kept on disk (0: fetch a task's video for every request).
    video_cache_bytes: int = _setting(DEFAULT_VIDEO_CACHE_BYTES, "int", low=0)
    label_studio_url: str | None = _setting()
    label_studio_api_key: str | None = _setting(secret=True)  # secrets never appear in reprs/logs
    basic_auth_user: str | None = _setting()
    basic_auth_pass: str | None = _setting(secret=True)
    bearer_token: str | None = _setting(secret=True)
    allow_hosts: tuple[str, ...] = _setting((), "hosts")
    local_files_root: str | None = _setting()
    fetch_timeout: float = _setting(DEFAULT_FETCH_TIMEOUT, "float", low=0)
    max_image_bytes: int = _setting(DEFAULT_MAX_IMAGE_BYTES, "int", low=1)
    cache_bytes: int = _setting(2 << 30, "int", low=0)
    cache_ttl: float = _setting(3600.0, "float", low=0)
    #: Store a prediction with no regions where nothing was found (default: none is stored, so
    #: Label Studio's "Retrieve predictions" tries those tasks again).
    empty_predictions: bool = _setting(False, "flag")
    #: Encode an opened task's image for click-to-mask in the background (Label Studio asks for
    #: the task's pre-annotation when it is opened), so the first click costs only the decoder.
    encode_ahead: bool = _setting(True, "flag")
    #: With encode-ahead, also encode the project's next N tasks (by id) when a task is opened or
    #: clicked in (Label Studio asks for an opened task's pre-annotation only when it has none).
    look_ahead: int = _setting(2, "int", low=0, high=64)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); an unset or empty variable keeps the
        default. A malformed value raises :class:`~autoannotate.errors.BadParameterError` naming
        the variable, e.g. ``AUTOANNOTATE_PORT='abc' is not a valid int``."""
        e = dict(os.environ if env is None else env)
        default_device(e)  # a bad AUTOANNOTATE_DEVICE / _DTYPE fails here, before any model loads
        default_dtype(e)
        values = {}
        for f in fields(cls):
            name = env_variable(f.name)
            v = e.get(name)
            if v is not None and v.strip():
                values[f.name] = _read(name, v, **f.metadata)
        return cls(**values)


def _read(name: str, v: str, *, read: str, low: float | None, high: float | None) -> Any:
    """The value of variable ``name`` (set, not empty), read as its :class:`Settings` field declares."""
    if read == "word":
        return v.strip()
    if read == "function":
        return None if v.strip().lower() in _NONE_WORDS else v.strip()
    if read == "hosts":
        return tuple(h.strip() for h in v.split(",") if h.strip())
    if read == "params":
        try:
            return parse_params(p for p in v.split(",") if p.strip())
        except BadParameterError as err:
            raise BadParameterError(f"{name}: {err}") from None
    if read == "flag":
        word = v.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise BadParameterError(f"{name}={v!r} must be true or false")
    if read in ("int", "float"):
        kind = int if read == "int" else float
        try:
            x = kind(v)
        except (TypeError, ValueError):
            raise BadParameterError(f"{name}={v!r} is not a valid {read}") from None
        return _in_range(name, v, x, low, high)
    return v


def _in_range(name: str, given: object, x: float, low: float | None, high: float | None) -> Any:
    if x != x or (low is not None and x < low) or (high is not None and x > high):  # NaN too
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise BadParameterError(f"{name}={given!r} must be {bounds}")
    return x


def checked(field_name: str, value: Any, what: str) -> Any:
    """``value`` for the :class:`Settings` field ``field_name`` given another way than its variable
    (``what``: the command-line flag), checked against the same range as the variable
    (``--port=70000 must be between 0 and 65535``); None passes."""
    meta = next(f.metadata for f in fields(Settings) if f.name == field_name)
    return value if value is None else _in_range(what, value, value, meta["low"], meta["high"])


@contextlib.contextmanager
def named(
    field_name: str,
    value: object,
    params_field: str | None = None,
    params: Mapping[str, Any] | None = None,
    given: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Errors raised inside (loading the function a setting names) start with that setting: its
    variable (:func:`env_variable`), or the flag that replaced it (``given``: field -> flag).
    A :class:`BadParameterError` names ``params_field`` instead when ``params`` were given, e.g.
    ``AUTOANNOTATE_TRACKER='nosuch': no function named 'nosuch'...`` and
    ``AUTOANNOTATE_PARAMS: parameter 'max_detections': 'abc' is not a valid int``."""

    def source(name: str) -> str:
        return (given or {}).get(name) or env_variable(name)

    try:
        yield
    except AutoAnnotateError as e:
        if isinstance(e, BadParameterError) and params_field and params:
            e.args = (f"{source(params_field)}: {e}",)
        else:
            e.args = (f"{source(field_name)}={value!r}: {e}",)
        raise


#: Every variable :meth:`Settings.from_env` reads.
ENV_VARIABLES = (*(env_variable(f.name) for f in fields(Settings)), DEVICE_ENV, DTYPE_ENV)
