"""The web app's trust boundary and body limits, as ASGI middleware (innermost first, the order `install` adds them):

- BodyLimit: a body past its limit gets 413, whether its length was declared or it arrives chunked (counted as it
  arrives, so no more than the limit is ever read). The search API's routes and TF Serving's JSON routes have
  their own, smaller limits.
- TrustedHosts: only requests naming an allowed host in their Host header are answered (loopback names when bound
  to loopback), so a DNS-rebinding page on another name cannot reach the server through a victim's browser.
- SameOrigin: a state-changing request to the search API (POST, PUT, PATCH, DELETE under /api/) whose Origin (or,
  without one, Referer) names another origin is refused; clients that send neither (curl, scripts) are not
  browsers and pass, and so do the page's own requests.
- ModelCrossSite: a POST to TF Serving's routes (/v1/..., which run the model) that carries a browser's marks
  (Origin, Referer or Sec-Fetch-Site) must come from this server's origin and send application/json: otherwise
  any web page could make its visitors' browsers run the model with a "simple" request (text/plain, a form)
  that needs no preflight. curl, scripts and TF Serving's clients send no such marks and pass.
- WriteToken: with a token configured, adding, deleting and re-indexing need `Authorization: Bearer <token>`.
- SecurityHeaders: nosniff, no framing, and a Content-Security-Policy on every answer.
- Framing: a request with both Content-Length and Transfer-Encoding is a 400 and its connection is closed
  (RFC 9112 6.3: the two framings disagree, the classic request-smuggling shape).

Origins are compared as scheme, host and port.
"""

import hmac
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import parse_host_header
from starlette.responses import JSONResponse

from captioning.util.errors import OUTCOMES, OverLimit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WRITES = (
    (frozenset({"POST"}), re.compile(r"/api/images/?")),
    (frozenset({"DELETE"}), re.compile(r"/api/images/.+")),
    (frozenset({"POST"}), re.compile(r"/api/reindex/?")),
)
# The page and its scripts and styles load from this server only; images may come from anywhere (the page shows
# an image described by its URL as the user gave it). Swagger UI (/docs) needs its inline start-up script.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob: http: https:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_POLICY = PAGE_POLICY.replace(
    "default-src 'self'", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'"
)


def _error(status, message, **headers):
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


FORM_ALLOWANCE = 2**20  # the search API's form fields besides the upload (labels, texts, a URL)
# TF Serving's JSON bodies: parsing costs about 14x the body in memory, so far below --max_request_bytes; one
# image as large as an upload still fits in base64.
MAX_JSON_BYTES = 32 * 2**20


@dataclass(frozen=True)
class WebGuards:
    allowed_hosts: tuple = LOOPBACK_NAMES  # Host header names answered; ("*",) answers any
    api_token: str | None = None  # needed by add, delete and re-index when set
    max_request_bytes: int = 2**31 - 1  # any body
    max_upload_bytes: int = 20 * 2**20  # an uploaded image; a search API body may add FORM_ALLOWANCE to it
    max_json_bytes: int = MAX_JSON_BYTES  # a body to TF Serving's routes (/v1/...)

    def install(self, app):
        """Adds the middleware to a Starlette app (each added one wraps the ones before)."""
        app.add_middleware(BodyLimit, guards=self)
        app.add_middleware(WriteToken, token=self.api_token)
        app.add_middleware(ModelCrossSite)
        app.add_middleware(SameOrigin)
        app.add_middleware(TrustedHosts, allowed=self.allowed_hosts)
        app.add_middleware(SecurityHeaders)
        app.add_middleware(Framing)


class _TooLarge(OverLimit):
    """A body grew past its limit while read: stops the app reading it (BodyLimit then answers 413)."""


class BodyLimit:
    def __init__(self, app, guards: WebGuards):
        self.app, self.guards = app, guards

    def _limit(self, path):
        if path.startswith("/api/") or path == "/search":
            own = self.guards.max_upload_bytes + FORM_ALLOWANCE, "--max_upload_bytes"
        elif path.startswith("/v1/"):
            own = self.guards.max_json_bytes, "--max_json_bytes"
        else:
            own = None
        if own and own[0] < self.guards.max_request_bytes:
            return own
        return self.guards.max_request_bytes, "--max_request_bytes"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, flag = self._limit(scope["path"])

        def too_large():
            return _error(
                OUTCOMES[OverLimit].http_status,
                f"request body is larger than this server's limit of {limit} bytes ({flag})",
                Connection="close",
            )  # the unread rest of the body cannot be followed by a request

        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await too_large()(scope, receive, send)
        state = {"received": 0, "over": False, "started": False}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            if state["over"]:
                return  # whatever the app makes of the cut body (often a 400) is replaced by the 413
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        if state["over"] and not state["started"]:
            await too_large()(scope, receive, send)


class TrustedHosts:
    """Answers 400 unless the Host header names one of `allowed` ("*" allows any)."""

    def __init__(self, app, allowed):
        self.app = app
        self.allowed = {name.strip("[]").lower() for name in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or "*" in self.allowed:
            return await self.app(scope, receive, send)
        parsed = parse_host_header(Headers(scope=scope).get("host"))
        host = parsed.host.strip("[]").lower() if parsed else ""
        if host not in self.allowed:
            return await _error(
                400,
                f"host {host or '(none)'!r} is not a name this server answers to; allowed: "
                f"{', '.join(sorted(self.allowed))} (--allowed_hosts)",
            )(scope, receive, send)
        return await self.app(scope, receive, send)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str):
    """(scheme, host, port) of an origin or URL, the port defaulted from the scheme; None if it has none (or
    names credentials, which an Origin never does)."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def _own_origin(scope, headers):
    host = parse_host_header(headers.get("host"))
    if not host:
        return None
    scheme = scope.get("scheme", "http")
    return scheme, host.host.strip("[]").lower(), int(host.port or _DEFAULT_PORTS.get(scheme, 80))


def _foreign_claim(scope, headers):
    """The Origin (or, without one, Referer) a request claims when it is not this server's origin; else None."""
    claimed = headers.get("origin") or headers.get("referer")
    if claimed is None:
        return None
    origin, own = _origin_of(claimed), _own_origin(scope, headers)
    return claimed if origin is None or own is None or origin != own else None


def _cross_origin(claimed, scope, receive, send):
    return _error(403, f"cross-origin request refused: {claimed.split('?')[0][:200]!r} is not this server's origin")(
        scope, receive, send
    )


class SameOrigin:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in _STATE_CHANGING and scope["path"].startswith("/api/"):
            claimed = _foreign_claim(scope, Headers(scope=scope))
            if claimed is not None:
                return await _cross_origin(claimed, scope, receive, send)
        return await self.app(scope, receive, send)


class ModelCrossSite:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in _STATE_CHANGING and scope["path"].startswith("/v1/"):
            headers = Headers(scope=scope)
            claimed = _foreign_claim(scope, headers)
            if claimed is not None:
                return await _cross_origin(claimed, scope, receive, send)
            from_browser = any(name in headers for name in ("origin", "referer", "sec-fetch-site"))
            cross_site = headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")
            media_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if cross_site or (from_browser and media_type != "application/json"):
                return await _error(
                    403,
                    "a browser's request to the model must come from this server's page and "
                    "send Content-Type: application/json",
                )(scope, receive, send)
        return await self.app(scope, receive, send)


class Framing:
    """400 and a closed connection for a request whose body length is given twice (Content-Length and
    Transfer-Encoding): a proxy in front could read the body one way and this server the other."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            names = {name for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                return await _error(
                    400, "a request may not have both Content-Length and Transfer-Encoding", Connection="close"
                )(scope, receive, send)
        return await self.app(scope, receive, send)


class WriteToken:
    """With a token, the routes that change the collection need `Authorization: Bearer <token>`."""

    def __init__(self, app, token):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.token and _is_write(scope["method"], scope["path"]):
            given = Headers(scope=scope).get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return await _error(
                    401,
                    "adding, deleting and re-indexing need this server's token: send "
                    "'Authorization: Bearer <token>' (see --api_token_file)",
                    **{"WWW-Authenticate": "Bearer"},
                )(scope, receive, send)
        return await self.app(scope, receive, send)


def _is_write(method, path):
    return any(method in methods and pattern.fullmatch(path) for methods, pattern in _WRITES)


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        policy = DOCS_POLICY if scope["path"].startswith("/docs") else PAGE_POLICY

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", policy.encode()),
                    (b"referrer-policy", b"same-origin"),
                ]
            await send(message)

        return await self.app(scope, receive, with_headers)
