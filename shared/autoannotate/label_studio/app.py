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
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import Request  # module level: FastAPI resolves handler annotations from here

from ..errors import AutoAnnotateError
from ..settings import Settings
from .backend import Backend
from .config import LabelConfigError
from .responses import BadRequest
from .service import build_backend

__all__ = ["Settings", "create_app", "serve", "build_backend"]

log = logging.getLogger("autoannotate.label_studio")

MAX_BODY = 32 << 20


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


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> Any:
    """The ASGI app. Pass a ready ``backend`` (tests), or ``settings`` to build one."""
    from fastapi import FastAPI

    settings = settings or Settings.from_env()
    backend = backend or build_backend(settings)
    app = FastAPI(title="autoannotate Label Studio ML backend", version="0.1.0")
    app.state.backend = backend
    app.state.settings = settings
    _install_guards(app, settings)
    _add_routes(app, backend)
    return app


def _install_guards(app: Any, settings: Settings) -> None:
    """Authentication, body size limit, and errors as JSON with an id (never a traceback)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

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
        return _error(
            422 if first.get("type") != "json_invalid" else 400,
            f"invalid request{' at ' + where if where else ''}: {first.get('msg', 'malformed body')}",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))


async def _body_dict(request: Request) -> dict:
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


def _run_handler(handler: Callable[[dict], Any], payload: dict) -> Any:
    """Call a handler; dicts go out through ``JSONResponse`` directly (FastAPI's
    ``jsonable_encoder`` walks every element in Python: 160 ms for one brush mask's RLE)."""
    from fastapi.responses import JSONResponse

    try:
        result = handler(payload)
        return JSONResponse(result) if isinstance(result, dict) else result
    except (BadRequest, LabelConfigError) as e:
        return _error(400 if isinstance(e, BadRequest) else 422, str(e))
    except AutoAnnotateError as e:
        return _error(400, str(e))


async def _handle(request: Request, handler: Callable[[dict], Any], *, threaded: bool = False) -> Any:
    """Parse the JSON object body, then run ``handler(payload)`` (in a worker thread when it
    does model work, so the event loop keeps answering)."""
    from starlette.concurrency import run_in_threadpool

    try:
        payload = await _body_dict(request)
    except BadRequest as e:
        return _error(400, str(e))
    if threaded:
        return await run_in_threadpool(_run_handler, handler, payload)
    return _run_handler(handler, payload)


def _webhook(payload: dict) -> dict:
    action = payload.get("action")
    action = action if isinstance(action, str) else None  # never echo arbitrary values (NaN is not JSON)
    if action == "START_TRAINING":
        return {"status": "ignored", "reason": "this backend does not train"}
    return {"status": "ok", "action": action}


def _add_routes(app: Any, backend: Backend) -> None:
    """Label Studio's ML backend endpoints."""

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
        return await _handle(request, backend.setup)

    @app.post("/predict")
    async def predict(request: Request):
        return await _handle(request, backend.predict, threaded=True)

    @app.post("/webhook")
    async def webhook(request: Request):
        return await _handle(request, _webhook)

    @app.post("/train")
    def train():
        return {"status": "ignored", "reason": "this backend does not train"}

    @app.get("/versions")
    def versions():
        return {"versions": [backend.model_version]}

    @app.post("/validate")
    async def validate(request: Request):
        return await _handle(request, validate_handler)


def serve(settings: Settings, host: str | None = None, port: int | None = None, log_level: str = "info") -> None:
    """Serve the backend; ``host`` / ``port`` default to the settings' (``AUTOANNOTATE_HOST`` /
    ``AUTOANNOTATE_PORT``)."""
    import uvicorn

    host = settings.host if host is None else host
    port = settings.port if port is None else port
    app = create_app(settings)
    log.info("serving %s on http://%s:%d", app.state.backend.model_version, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
