"""Fetch task images safely.

A task's image reference may be an ``http(s)`` URL, a path on the Label Studio server
(``/data/upload/...``, ``/data/local-files/?d=...``), a ``data:`` URI, or a local file. Rules:

- a total deadline (``timeout`` seconds, slow-drip bodies included) and a size limit;
- the response must be an image (``Content-Type`` ``image/*`` or octet-stream), not HTML;
- the Label Studio token is sent only to the Label Studio origin, never to another host, and not
  across a redirect to another origin;
- other hosts whose addresses are loopback, private, link-local, multicast or reserved are refused
  unless allow-listed (names are resolved first, so a public name pointing inside is refused too);
  every redirect hop is checked again;
- local files are read only under the configured root (no ``..``, no symlinks out of it).
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImageLoadError
from ..settings import LABEL_STUDIO_API_KEY_ENV, LABEL_STUDIO_URL_ENV

MB = 1 << 20


class FetchError(ImageLoadError):
    """An image reference that was refused or could not be fetched (the message says why)."""


URL_VAR, API_KEY_VAR = LABEL_STUDIO_URL_ENV, LABEL_STUDIO_API_KEY_ENV
# no ">" for the menu path: Label Studio shows our messages as HTML, where "<" and ">" are dropped
TOKEN_HELP = (
    "create a personal access token in Label Studio (Account & Settings, then Personal Access Token) "
    f"and set {API_KEY_VAR} to it"
)


class TokenRefreshError(FetchError):
    """Label Studio's token refresh at ``endpoint`` did not give an access token: ``status`` is
    its HTTP status, ``detail`` Label Studio's own reason (its JSON ``detail``), None when the
    answer was not Label Studio's JSON (a web page: the URL does not lead to Label Studio's API)."""

    def __init__(self, endpoint: str, status: int, detail: str | None) -> None:
        self.status, self.detail = status, detail
        super().__init__(
            f"Label Studio refused the API key ({detail})"
            if self.token_refused
            else f"POST {endpoint} answered HTTP {status}, not Label Studio's token refresh: "
            f"is {URL_VAR} Label Studio's address?"
        )

    @property
    def token_refused(self) -> bool:
        """Label Studio itself refused the token (else the URL is the problem)."""
        return self.status in (400, 401, 403) and self.detail is not None


@dataclass(frozen=True)
class LabelStudioCheck:
    """What :meth:`ImageFetcher.check_label_studio` found. ``state``: ``ok``, ``not_configured``
    (no URL), ``token_missing``, ``token_rejected``, ``unreachable`` (no answer) or
    ``not_label_studio`` (an answer, but not from Label Studio's API: a wrong path or port);
    ``message`` says what to fix."""

    state: str
    url: str | None
    message: str
    user: str | None = None

    @property
    def usable(self) -> bool:
        """False when ``LABEL_STUDIO_URL`` is set but the token is missing or does not work, or the
        URL cannot be reached: fetching task images from Label Studio would fail."""
        return self.state in ("ok", "not_configured")

    def as_dict(self) -> dict:
        return {"state": self.state, "url": self.url, "message": self.message}


@dataclass
class FetchPolicy:
    timeout: float = 15.0
    max_bytes: int = 64 * MB
    max_redirects: int = 3
    allow_hosts: tuple[str, ...] = ()  # host names, IPs or CIDR ranges allowed even if private
    local_root: Path | None = None

    def allowed_networks(self) -> list:
        nets = []
        for h in self.allow_hosts:
            try:
                nets.append(ipaddress.ip_network(h, strict=False))
            except ValueError:
                pass
        return nets


class LabelStudioAuth:
    """Authorization for the Label Studio API: a personal access token (a JWT refresh token,
    exchanged for short-lived access tokens) or a legacy token (``Token <key>``)."""

    ACCESS_TTL = 240.0

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.api_key = (api_key or "").strip()
        self._access: tuple[str, float] | None = None
        self._lock = threading.Lock()

    @property
    def is_jwt(self) -> bool:
        return self.api_key.count(".") == 2

    def headers(self, client, force_refresh: bool = False, timeout: float = 15.0) -> dict[str, str]:
        if not self.api_key:
            return {}
        if not self.is_jwt:
            return {"Authorization": f"Token {self.api_key}"}
        with self._lock:
            if force_refresh or self._access is None or time.monotonic() - self._access[1] > self.ACCESS_TTL:
                endpoint = f"{self.url}/api/token/refresh/"
                r = client.post(endpoint, json={"refresh": self.api_key}, timeout=timeout)
                access = _json_field(r, "access") if r.status_code == 200 else None
                if not isinstance(access, str):
                    detail = _json_field(r, "detail")
                    raise TokenRefreshError(
                        _without_userinfo(endpoint), r.status_code, detail if isinstance(detail, str) else None
                    )
                self._access = (access, time.monotonic())
            return {"Authorization": f"Bearer {self._access[0]}"}


def _json_field(response: Any, name: str) -> Any:
    """``response.json()[name]``, None when the body is not a JSON object (a web page)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _without_userinfo(url: str) -> str:
    p = urllib.parse.urlsplit(url)
    if not (p.username or p.password):
        return url
    host = p.hostname or ""
    return urllib.parse.urlunsplit(p._replace(netloc=host + (f":{p.port}" if p.port else "")))


def _origin(url: str) -> tuple[str, str, int]:
    p = urllib.parse.urlsplit(url)
    port = p.port or (443 if p.scheme == "https" else 80)
    return p.scheme, (p.hostname or "").lower(), port


@dataclass
class ImageFetcher:
    """Fetch image bytes for task references under a :class:`FetchPolicy`."""

    policy: FetchPolicy = field(default_factory=FetchPolicy)
    label_studio_url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import httpx

        self._client = httpx.Client(follow_redirects=False, timeout=self.policy.timeout)
        self.auth = LabelStudioAuth(self.label_studio_url, self.api_key) if self.label_studio_url else None

    def close(self) -> None:
        self._client.close()

    # -- references ------------------------------------------------------------------------

    def fetch(self, ref: str, max_bytes: int | None = None) -> bytes:
        """The bytes behind ``ref``; ``max_bytes`` overrides the policy's limit (videos)."""
        limit = int(max_bytes or self.policy.max_bytes)
        if not isinstance(ref, str) or not ref.strip():
            raise FetchError(f"the task has no image reference (got {ref!r})")
        ref = ref.strip()
        if ref.startswith("data:"):
            return self._data_uri(ref, limit)
        parsed = urllib.parse.urlsplit(ref)
        if parsed.scheme in ("http", "https"):
            return self._http(ref, limit)
        if parsed.scheme in ("s3", "gs", "azure-blob"):
            raise FetchError(f"{ref}: cloud storage references must be resolved by Label Studio (presigned URLs)")
        if parsed.scheme == "file":
            return self._local(urllib.parse.unquote(parsed.path), limit)
        if ref.startswith("/data/local-files/") and self.policy.local_root is not None:
            d = urllib.parse.parse_qs(parsed.query).get("d", [""])[0]
            return self._local(d, limit)
        if ref.startswith("/"):
            if ref.startswith("/data/") or ref.startswith("/storage-data/") or ref.startswith("/tasks/"):
                if not self.label_studio_url:
                    raise FetchError(f"{ref} is a Label Studio path but no Label Studio URL is configured")
                return self._http(urllib.parse.urljoin(self.label_studio_url.rstrip("/") + "/", ref.lstrip("/")), limit)
            return self._local(ref, limit)
        raise FetchError(f"unsupported image reference {ref[:200]!r}")

    def _data_uri(self, ref: str, limit: int) -> bytes:
        header, _, payload = ref.partition(",")
        if ";base64" not in header or not header[5:].startswith(("image/", "video/")):
            raise FetchError("only base64 image or video data URIs are accepted")
        if len(payload) * 3 // 4 > limit:
            raise FetchError(f"data URI larger than {limit:,} bytes")
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError:
            raise FetchError("malformed base64 in data URI") from None

    def _local(self, path_text: str, limit: int) -> bytes:
        root = self.policy.local_root
        if root is None:
            raise FetchError(f"{path_text}: local files are not served (set a local files root to allow them)")
        root = Path(root).resolve()
        candidate = (root / path_text.lstrip("/")) if not Path(path_text).is_absolute() else Path(path_text)
        resolved = candidate.resolve()
        if resolved != root and root not in resolved.parents:
            raise FetchError(f"{path_text}: outside the local files root")
        if not resolved.is_file():
            raise FetchError(f"{path_text}: file not found")
        if resolved.stat().st_size > limit:
            raise FetchError(f"{path_text}: larger than {limit:,} bytes")
        return resolved.read_bytes()

    # -- the Label Studio connection --------------------------------------------------------

    def _token_hint(self) -> str:
        if self.auth is None or not self.auth.api_key:
            return f"{API_KEY_VAR} is not set: {TOKEN_HELP}"
        return f"{API_KEY_VAR} was rejected by {self.label_studio_url}: {TOKEN_HELP}"

    def check_label_studio(self, timeout: float = 10.0) -> LabelStudioCheck:
        """One authenticated call to Label Studio (``/api/current-user/whoami``): is the URL set and
        reachable, is the token set and accepted? Never raises; the result says what to fix."""
        import httpx

        url = (self.label_studio_url or "").rstrip("/")
        api, url = url, _without_userinfo(url)  # what is shown never carries user:password@
        if not url:
            return LabelStudioCheck(
                "not_configured",
                None,
                f"{URL_VAR} is not set: images uploaded to Label Studio or served from its storages "
                f"cannot be fetched (public URLs and data URIs still work); set {URL_VAR} and {API_KEY_VAR}",
            )
        if self.auth is None or not self.auth.api_key:
            return LabelStudioCheck(
                "token_missing",
                url,
                f"{API_KEY_VAR} is not set, so images stored in {url} cannot be fetched: {TOKEN_HELP}",
            )
        try:
            headers = self.auth.headers(self._client, force_refresh=True, timeout=timeout)
            r = self._client.get(f"{api}/api/current-user/whoami", headers=headers, timeout=timeout)
        except TokenRefreshError as e:
            if not e.token_refused:  # the URL answers, but not as Label Studio's API: the token is not at fault
                return self._wrong_url(url, f"POST {url}/api/token/refresh/ answered HTTP {e.status}", timeout)
            return LabelStudioCheck(
                "token_rejected",
                url,
                f"{API_KEY_VAR} was rejected by {url} (token refresh answered HTTP {e.status}: {e.detail}): {TOKEN_HELP}",
            )
        except httpx.HTTPError as e:
            return LabelStudioCheck(
                "unreachable",
                url,
                f"{URL_VAR}={url} is unreachable from this backend ({type(e).__name__}: {e}); "
                "it must be the address at which this machine reaches Label Studio",
            )
        detail = _json_field(r, "detail")
        if r.status_code in (401, 403) and isinstance(detail, str):
            if self.auth.is_jwt:
                what = "its access token was refused"
            elif "legacy token" in detail.lower():
                what = "it is a legacy token, which Label Studio 1.23 disables unless an administrator enables them"
            else:  # what Label Studio says, and what the key is not; never a guess at what it is
                what = "it is not a personal access token (those have three parts separated by dots)"
            return LabelStudioCheck(
                "token_rejected",
                url,
                f"{API_KEY_VAR} was rejected by {url} (HTTP {r.status_code}: {detail}); {what}: {TOKEN_HELP}",
            )
        if r.status_code != 200:
            return self._wrong_url(url, f"GET {url}/api/current-user/whoami answered HTTP {r.status_code}", timeout)
        try:
            who = r.json().get("email") or r.json().get("username")
        except (ValueError, AttributeError):
            return self._wrong_url(url, f"GET {url}/api/current-user/whoami answered no user", timeout)
        return LabelStudioCheck("ok", url, f"connected to {url} as {who}", user=who)

    def _wrong_url(self, url: str, answer: str, timeout: float) -> LabelStudioCheck:
        """``LABEL_STUDIO_URL`` answers, but not as Label Studio's API (``answer`` says what it
        said): the check names the URL, not the token, and the address where Label Studio does
        answer when its server's root has it (``/api/version``)."""
        p = urllib.parse.urlsplit(url)
        root = urllib.parse.urlunsplit((p.scheme, p.netloc, "", "", ""))
        hint = f"set {URL_VAR} to the address at which this machine reaches Label Studio"
        if p.path.strip("/"):
            try:
                r = self._client.get(f"{root}/api/version", timeout=timeout)
                release = _json_field(r, "release") if r.status_code == 200 else None
            except Exception:  # noqa: BLE001 - only a hint
                release = None
            if isinstance(release, str):
                hint = f"Label Studio {release} answers at {root}: set {URL_VAR}={root}"
        return LabelStudioCheck(
            "not_label_studio",
            url,
            f"{URL_VAR}={url} does not lead to Label Studio's API ({answer}; {API_KEY_VAR} was not checked): {hint}",
        )

    def label_studio_api(self, path: str, params: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
        """``GET <Label Studio URL><path>`` with our token; the decoded JSON. :class:`FetchError`
        naming the status (and the variable to fix on 401/403) when it fails."""
        import httpx

        if not self.label_studio_url or self.auth is None:
            raise FetchError(f"no Label Studio URL is configured ({URL_VAR})")
        url = self.label_studio_url.rstrip("/") + path
        try:
            r = self._client.get(url, params=params, headers=self.auth.headers(self._client), timeout=timeout)
        except httpx.HTTPError as e:
            raise FetchError(f"{url}: {type(e).__name__}: {e}") from None
        if r.status_code in (401, 403):
            raise FetchError(f"{url}: Label Studio answered HTTP {r.status_code}; {self._token_hint()}")
        if r.status_code != 200:
            raise FetchError(f"{url}: answered HTTP {r.status_code}")
        return r.json()

    # -- network ---------------------------------------------------------------------------

    def _is_label_studio(self, url: str) -> bool:
        return bool(self.label_studio_url) and _origin(url) == _origin(self.label_studio_url)  # type: ignore[arg-type]

    def check_host(self, url: str) -> None:
        """Refuse hosts that resolve to internal addresses (unless Label Studio or allow-listed)."""
        if self._is_label_studio(url):
            return
        host = urllib.parse.urlsplit(url).hostname or ""
        if not host:
            raise FetchError(f"{url}: no host")
        if host.lower() in {h.lower() for h in self.policy.allow_hosts}:
            return
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as e:
            raise FetchError(f"{url}: cannot resolve host {host!r} ({e})") from None
        nets = self.policy.allowed_networks()
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if any(ip in n for n in nets):
                continue
            if (
                ip.is_private
                or ip.is_loopback
                or ip.is_link_local
                or ip.is_multicast
                or ip.is_reserved
                or ip.is_unspecified
                or getattr(ip, "ipv4_mapped", None) is not None
            ):
                raise FetchError(
                    f"{url}: host {host!r} resolves to the internal address {ip}; refused "
                    "(allow-list it if the backend should reach it)"
                )

    def _http(self, url: str, limit: int) -> bytes:
        import httpx

        deadline = time.monotonic() + self.policy.timeout
        for _ in range(self.policy.max_redirects + 1):
            self.check_host(url)
            headers = {"Accept": "*/*"}
            to_ls = self._is_label_studio(url)
            if to_ls and self.auth is not None:
                headers.update(self.auth.headers(self._client))
            try:
                with self._client.stream("GET", url, headers=headers) as resp:
                    if resp.status_code == 401 and to_ls and self.auth is not None and self.auth.is_jwt:
                        headers.update(self.auth.headers(self._client, force_refresh=True))
                        continue
                    if resp.is_redirect:
                        location = resp.headers.get("location", "")
                        url = urllib.parse.urljoin(url, location)
                        continue
                    if resp.status_code in (401, 403) and to_ls:
                        raise FetchError(f"{url}: Label Studio answered HTTP {resp.status_code}; {self._token_hint()}")
                    if resp.status_code != 200:
                        raise FetchError(f"{url}: answered HTTP {resp.status_code}")
                    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                    if ctype and not (
                        ctype.startswith(("image/", "video/"))
                        or ctype in ("application/octet-stream", "binary/octet-stream")
                    ):
                        raise FetchError(f"{url}: returned {ctype}, not an image or a video")
                    length = int(resp.headers.get("content-length") or 0)
                    if length > limit:
                        raise FetchError(f"{url}: {length:,} bytes is larger than the limit of {limit:,}")
                    chunks, total = [], 0
                    for chunk in resp.iter_bytes(1 << 16):
                        total += len(chunk)
                        if total > limit:
                            raise FetchError(f"{url}: body larger than the limit of {limit:,} bytes")
                        if time.monotonic() > deadline:
                            raise FetchError(f"{url}: took longer than {self.policy.timeout:g} s")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException:
                raise FetchError(f"{url}: timed out after {self.policy.timeout:g} s") from None
            except httpx.HTTPError as e:
                raise FetchError(f"{url}: {type(e).__name__}: {e}") from None
        raise FetchError(f"{url}: too many redirects (more than {self.policy.max_redirects})")


def parse_hosts(text: str | Iterable[str] | None) -> tuple[str, ...]:
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(i.strip() for i in items if i and i.strip())
