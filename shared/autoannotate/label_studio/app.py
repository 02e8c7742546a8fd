"""Label Studio's ML backend protocol over HTTP (FastAPI + uvicorn).

Endpoints: ``GET /health``, ``POST /setup``, ``POST /predict``, ``POST /webhook``,
``GET /versions``, ``POST /validate``, and ``POST /train`` (answers that training is not
supported). Errors are JSON ``{"error": message, "error_id": id}``; tracebacks go to the log
only. Optional caller authentication: HTTP basic auth (what Label Studio sends when the backend
is connected with "Basic auth") or a bearer token.

Label Studio 1.23 never reads an ML backend's error body: it shows ``str(requests.HTTPError)``,
"422 Client Error: <reason phrase> for url: ...", on "Validate and Save" and on the model's card,
and logs the same for predictions. So every error answer carries its message and error id in the
HTTP reason phrase (ASCII, one line) as well as in the JSON body, and is logged with both.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hmac
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request  # module level: FastAPI resolves handler annotations from here

from ..errors import AutoAnnotateError, BadFunctionError
from ..settings import Settings
from .backend import Backend, LabelStudioUnusable
from .config import LabelConfigError, warm_up
from .responses import BadRequest
from .service import build_backend

__all__ = ["Settings", "create_app", "serve", "build_backend", "log_at"]

log = logging.getLogger("autoannotate.label_studio")

MAX_BODY = 32 << 20
MAX_REASON = 1500  # characters of the message in the reason phrase; the JSON body has all of it
_REASON_HEADER, _ERROR_ID_HEADER = "x-autoannotate-error", "x-autoannotate-error-id"


def _error(status: int, message: str, error_id: str | None = None):
    """An error answer: the JSON body, and the message and id in headers that
    :class:`_ReasonPhrase` turns into the HTTP reason phrase and the log line."""
    from fastapi.responses import JSONResponse

    error_id = error_id or uuid.uuid4().hex[:12]
    headers = {_REASON_HEADER: reason_phrase(message, error_id), _ERROR_ID_HEADER: error_id}
    return JSONResponse({"error": message, "error_id": error_id}, status_code=status, headers=headers)


def reason_phrase(message: str, error_id: str) -> str:
    """``message [error <id>]`` as a valid reason phrase: printable ASCII on one line, without
    ``<`` and ``>`` (Label Studio renders the reason as HTML, so ``<Label>`` would vanish)."""
    text = re.sub(r"\s+", " ", str(message)).strip().encode("ascii", "replace").decode()
    text = re.sub(r"[^\x20-\x7e]", "?", text).replace("<", "").replace(">", "")  # NUL etc. would break h11
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 3] + "..."
    return f"{text} [error {error_id}]"


# The reason phrase of the response being sent, read by uvicorn's status-phrase tables below.
_REASON: contextvars.ContextVar[str | None] = contextvars.ContextVar("autoannotate_reason", default=None)


class _PhraseTable(dict):
    """uvicorn's table of status phrases (or whole status lines), answering our reason for the
    response being sent. uvicorn (h11 and httptools) takes a response's phrase from a fixed table
    and ASGI has no field for it; the response's ``send`` runs in the task that set ``_REASON``."""

    def __init__(self, base: dict, status_line: bool) -> None:
        super().__init__(base)
        self.status_line = status_line

    def __getitem__(self, status: int) -> bytes:
        reason = _REASON.get()
        if reason is None:
            return super().__getitem__(status)
        phrase = reason.encode("ascii", "replace")
        return b"HTTP/1.1 %d %s\r\n" % (status, phrase) if self.status_line else phrase


def _install_reason_phrases() -> None:
    """Make uvicorn's HTTP/1.1 protocols send our reason phrases (idempotent)."""
    import importlib

    for module, attr, line in (
        ("uvicorn.protocols.http.h11_impl", "STATUS_PHRASES", False),
        ("uvicorn.protocols.http.httptools_impl", "STATUS_LINE", True),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:  # httptools is optional
            continue
        table = getattr(mod, attr, None)
        if isinstance(table, dict) and not isinstance(table, _PhraseTable):
            setattr(mod, attr, _PhraseTable(table, line))


class _ReasonPhrase:
    """Outermost ASGI middleware: logs every 4xx/5xx with its reason and error id, and has it
    sent as the HTTP reason phrase (what Label Studio shows)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_reason(message: dict) -> None:
            if message.get("type") != "http.response.start" or int(message.get("status", 200)) < 400:
                await send(message)
                return
            status = int(message["status"])
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])}
            reason = headers.get(_REASON_HEADER)
            (log.error if status >= 500 else log.warning)(
                "%s %s answered %d: %s",
                scope.get("method"),
                scope.get("path"),
                status,
                reason or "(no reason given)",
            )
            token = _REASON.set(reason)
            try:
                await send(message)
            finally:
                _REASON.reset(token)

        await self.app(scope, receive, send_with_reason)


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


def create_app(
    settings: Settings | None = None, backend: Backend | None = None, given: Mapping[str, str] | None = None
) -> Any:
    """The ASGI app. Pass a ready ``backend`` (tests), or ``settings`` to build one (``given``:
    as for :func:`build_backend`)."""
    from fastapi import FastAPI

    settings = settings or Settings.from_env()
    backend = backend or build_backend(settings, given)
    warm_up()  # the config parser's first import would eat Label Studio's 3 s for /setup

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        """At start: check the Label Studio URL and token (logged: token missing / rejected, URL
        unreachable, or OK; /health shows it). At stop: drop queued encodings."""
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(backend.label_studio_check, 60.0, 10.0)
        yield
        backend.close()

    app = FastAPI(title="autoannotate Label Studio ML backend", version="0.1.0", lifespan=lifespan)
    app.state.backend = backend
    app.state.settings = settings
    _install_guards(app, settings)
    _add_routes(app, backend)
    _install_reason_phrases()
    app.add_middleware(_ReasonPhrase)  # added last: outermost, around the guard's responses
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
    except LabelStudioUnusable as e:
        return _error(424, str(e))  # a dependency (Label Studio, as configured) does not work
    except BadFunctionError as e:  # the backend's model, not the request, is at fault
        return _error(500, f"function broke the protocol: {e}")
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
        return await _handle(request, backend.setup, threaded=True)  # it may ask Label Studio (2 s at most)

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
        return await _handle(request, validate_handler, threaded=True)


def log_at(level: str) -> None:
    """Show the ``autoannotate`` loggers' lines at uvicorn's ``level`` (``trace`` is DEBUG), with a
    handler of their own when nothing configured logging yet (``python app.py``, ``uvicorn app:app``)."""
    logger = logging.getLogger("autoannotate")
    logger.setLevel(logging.DEBUG if level.lower() == "trace" else getattr(logging, level.upper(), logging.INFO))
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    log_level: str = "info",
    given: Mapping[str, str] | None = None,
) -> None:
    """Serve the backend of ``settings`` (its functions are loaded, and checked, before the server
    starts); ``host`` / ``port`` default to the settings' (``AUTOANNOTATE_HOST`` /
    ``AUTOANNOTATE_PORT``). ``given``: the settings a command-line flag gave (field -> flag), which
    errors name instead of the variable (:func:`build_backend`)."""
    import uvicorn

    host = settings.host if host is None else host
    port = settings.port if port is None else port
    app = create_app(settings, given=given)
    backend = app.state.backend
    log.info("serving %s on http://%s:%d", backend.model_version, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
