"""The status page: ``GET /ui`` and its two assets, a static page over the public API.

The page itself needs no token (it is the login form); every call it makes for data sends
the caller's bearer token, so it sees exactly what that agent may see through the API. It is
plain HTML, CSS and JavaScript shipped inside the package: no build step, nothing fetched from
elsewhere at run time. Every response carries a Content-Security-Policy that allows only this
origin's script, style and API, no inline code, no form submission and no framing, and it
requires Trusted Types so that an assignment of a string to ``innerHTML`` fails outright.
"""

from __future__ import annotations

import functools
import html
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ordinaut.api.strict import JSONRoute
from ordinaut.errors import NotFound

router = APIRouter(tags=["ui"], include_in_schema=False, route_class=JSONRoute)

STATIC_PACKAGE = "ordinaut.api"
STATIC_DIR = "static"
# The only files served, with their media types: nothing else under static/ is reachable.
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
BASE_PLACEHOLDER = "{{BASE}}"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Revalidate each time: a new release's page and script must not be mixed with old ones.
    "Cache-Control": "no-cache",
}


@functools.cache
def asset(name: str) -> bytes:
    """One file under ``static/``, read once per process."""
    return resources.files(STATIC_PACKAGE).joinpath(STATIC_DIR, name).read_bytes()


def _response(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


def page(root_path: str) -> bytes:
    """The page, with asset and API addresses under ``root_path`` (a proxy's path prefix)."""
    text = asset("index.html").decode("utf-8")
    return text.replace(BASE_PLACEHOLDER, html.escape(root_path.rstrip("/"), quote=True)).encode()


@router.get("/ui")
async def status_page(request: Request) -> Response:
    """The status page (login form first; data comes from the API with the caller's token)."""
    return _response(page(str(request.scope.get("root_path") or "")), "text/html; charset=utf-8")


@router.get("/ui/{name}")
async def status_page_asset(name: str) -> Response:
    """The page's script and style sheet."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound("no such file on the status page", {"name": name[:100]})
    return _response(asset(name), media_type)
