"""Label Studio's ML backend protocol over HTTP (FastAPI + uvicorn).

Endpoints: ``GET /health``, ``POST /setup``, ``POST /predict``, ``POST /webhook``,
``GET /versions``, ``POST /validate``, and ``POST /train`` (answers that training is not
supported). Errors are JSON ``{"error": message, "error_id": id}``; tracebacks go to the log
only. Optional caller authentication: HTTP basic auth (what Label Studio sends when the backend
is connected with "Basic auth") or a bearer token.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request  # module level: FastAPI resolves handler annotations from here

from ..errors import AutoAnnotateError, BadParameterError
from ..loading import load_function, parse_params
from .backend import Backend, BadRequest
from .cache import EncodingCache
from .config import LabelConfigError
from .fetch import FetchPolicy, ImageFetcher, parse_hosts

log = logging.getLogger("autoannotate.label_studio")

MAX_BODY = 32 << 20


@dataclass
class Settings:
    """Everything the service needs; :meth:`from_env` reads the ``AUTOANNOTATE_*`` variables."""

    function: str | None = "yolox"
    interactive: str | None = "grabcut"
    tracker: str | None = "opencv_tracker"
    track_frames: int = 30
    params: dict[str, Any] = field(default_factory=dict)
    interactive_params: dict[str, Any] = field(default_factory=dict)
    conf_threshold: float | None = None
    label_studio_url: str | None = None
    label_studio_api_key: str | None = field(default=None, repr=False)  # secrets never appear in reprs/logs
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    allow_hosts: tuple[str, ...] = ()
    local_files_root: str | None = None
    fetch_timeout: float = 15.0
    max_image_bytes: int = 64 << 20
    cache_bytes: int = 2 << 30
    cache_ttl: float = 3600.0
    batch_size: int = 4

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        e = dict(os.environ if env is None else env)

        def get(name: str, default: Any = None) -> Any:
            v = e.get(name)
            return default if v is None or v == "" else v

        def none_or(name: str, default: str | None) -> str | None:
            v = get(name, default)
            return None if v in (None, "none", "") else v

        def number(name: str, kind: type, default: Any) -> Any:
            v = get(name, default)
            try:
                return None if v is None else kind(v)
            except (TypeError, ValueError):
                raise BadParameterError(f"{name}={v!r} is not a valid {kind.__name__}") from None

        return cls(
            function=none_or("AUTOANNOTATE_FUNCTION", "yolox"),
            interactive=none_or("AUTOANNOTATE_INTERACTIVE", "grabcut"),
            tracker=none_or("AUTOANNOTATE_TRACKER", "opencv_tracker"),
            track_frames=number("AUTOANNOTATE_TRACK_FRAMES", int, 30),
            params=parse_params(p for p in get("AUTOANNOTATE_PARAMS", "").split(",") if p.strip()),
            interactive_params=parse_params(p for p in get("AUTOANNOTATE_INTERACTIVE_PARAMS", "").split(",") if p.strip()),
            conf_threshold=number("AUTOANNOTATE_CONF_THRESHOLD", float, None),
            label_studio_url=get("LABEL_STUDIO_URL"),
            label_studio_api_key=get("LABEL_STUDIO_API_KEY"),
            basic_auth_user=get("AUTOANNOTATE_BASIC_AUTH_USER"),
            basic_auth_pass=get("AUTOANNOTATE_BASIC_AUTH_PASS"),
            bearer_token=get("AUTOANNOTATE_BEARER_TOKEN"),
            allow_hosts=parse_hosts(get("AUTOANNOTATE_ALLOW_HOSTS", "")),
            local_files_root=get("AUTOANNOTATE_LOCAL_FILES_ROOT"),
            fetch_timeout=number("AUTOANNOTATE_FETCH_TIMEOUT", float, 15),
            max_image_bytes=number("AUTOANNOTATE_MAX_IMAGE_BYTES", int, 64 << 20),
            cache_bytes=number("AUTOANNOTATE_CACHE_BYTES", int, 2 << 30),
            cache_ttl=number("AUTOANNOTATE_CACHE_TTL", float, 3600),
            batch_size=number("AUTOANNOTATE_BATCH_SIZE", int, 4),
        )

    def build_backend(self) -> Backend:
        """Load the functions now (Label Studio gives /health and /setup only seconds)."""
        function = load_function(self.function, **self.params) if self.function else None
        interactive = load_function(self.interactive, **self.interactive_params) if self.interactive else None
        tracker = load_function(self.tracker) if self.tracker else None
        fetcher = ImageFetcher(
            FetchPolicy(timeout=self.fetch_timeout, max_bytes=self.max_image_bytes, allow_hosts=self.allow_hosts,
                        local_root=Path(self.local_files_root) if self.local_files_root else None),
            label_studio_url=self.label_studio_url, api_key=self.label_studio_api_key,
        )
        return Backend(function=function, interactive=interactive, tracker=tracker, track_frames=self.track_frames,
                       fetcher=fetcher,
                       cache=EncodingCache(self.cache_bytes, self.cache_ttl), conf_threshold=self.conf_threshold,
                       batch_size=self.batch_size)


def _error(status: int, message: str, error_id: str | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message, "error_id": error_id or uuid.uuid4().hex[:12]}, status_code=status)


def _authorized(header: str | None, settings: Settings) -> bool:
    if not (settings.bearer_token or settings.basic_auth_user):
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and settings.bearer_token:
        return hmac.compare_digest(value.strip(), settings.bearer_token)
    if scheme.lower() == "basic" and settings.basic_auth_user:
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, settings.basic_auth_user) and hmac.compare_digest(
            password, settings.basic_auth_pass or ""
        )
    return False


def create_app(settings: Settings | None = None, backend: Backend | None = None):
    """The ASGI app. Pass a ready ``backend`` (tests), or ``settings`` to build one."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    settings = settings or Settings.from_env()
    backend = backend or settings.build_backend()
    app = FastAPI(title="autoannotate Label Studio ML backend", version="0.1.0")
    app.state.backend = backend
    app.state.settings = settings

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if not _authorized(request.headers.get("authorization"), settings):
            resp = _error(401, "authentication required")
            resp.headers["WWW-Authenticate"] = 'Basic realm="autoannotate"'
            return resp
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return _error(413, f"request body larger than {MAX_BODY:,} bytes")
        try:
            return await call_next(request)
        except Exception:  # noqa: BLE001 - never a traceback to the client
            error_id = uuid.uuid4().hex[:12]
            log.exception("unhandled error [%s] on %s %s", error_id, request.method, request.url.path)
            return _error(500, "internal error; see the backend log", error_id)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422 if first.get("type") != "json_invalid" else 400,
                      f"invalid request{' at ' + where if where else ''}: {first.get('msg', 'malformed body')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    async def body_dict(request: Request) -> dict:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise BadRequest(f"request body larger than {MAX_BODY:,} bytes")
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("the request body must be a JSON object")
        return data

    def run(handler, payload):
        """Call a handler; dicts go out through ``JSONResponse`` directly (FastAPI's
        ``jsonable_encoder`` walks every element in Python: 160 ms for one brush mask's RLE)."""
        try:
            result = handler(payload)
            return JSONResponse(result) if isinstance(result, dict) else result
        except (BadRequest, LabelConfigError) as e:
            return _error(400 if isinstance(e, BadRequest) else 422, str(e))
        except AutoAnnotateError as e:
            return _error(400, str(e))

    async def handle(request: Request, handler, *, threaded: bool = False):
        """Parse the JSON object body, then run ``handler(payload)`` (in a worker thread when it
        does model work, so the event loop keeps answering)."""
        try:
            payload = await body_dict(request)
        except BadRequest as e:
            return _error(400, str(e))
        if threaded:
            return await run_in_threadpool(run, handler, payload)
        return run(handler, payload)

    def webhook_handler(payload: dict) -> dict:
        action = payload.get("action")
        action = action if isinstance(action, str) else None  # never echo arbitrary values (NaN is not JSON)
        if action == "START_TRAINING":
            return {"status": "ignored", "reason": "this backend does not train"}
        return {"status": "ok", "action": action}

    def validate_handler(payload: dict) -> dict:
        if not isinstance(payload.get("config"), str):
            raise BadRequest("validate needs 'config': the labeling config")
        return {"status": "ok", **backend.setup({"schema": payload["config"]})}

    @app.get("/health")
    @app.get("/")
    def health():
        return backend.health()

    @app.post("/setup")
    async def setup(request: Request):
        return await handle(request, backend.setup)

    @app.post("/predict")
    async def predict(request: Request):
        return await handle(request, backend.predict, threaded=True)

    @app.post("/webhook")
    async def webhook(request: Request):
        return await handle(request, webhook_handler)

    @app.post("/train")
    def train():
        return {"status": "ignored", "reason": "this backend does not train"}

    @app.get("/versions")
    def versions():
        return {"versions": [backend.model_version]}

    @app.post("/validate")
    async def validate(request: Request):
        return await handle(request, validate_handler)

    return app


def serve(settings: Settings, host: str = "0.0.0.0", port: int = 9090, log_level: str = "info") -> None:
    import uvicorn

    app = create_app(settings)
    log.info("serving %s on http://%s:%d", app.state.backend.model_version, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
