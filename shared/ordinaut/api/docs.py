"""``/docs`` (Swagger UI) and ``/redoc``, with their scripts and styles served by this API.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so they stay blank where there
is no internet (an air-gapped install, a laptop on a plane). The same files ship in the
``fastapi-offline`` package from PyPI; they are served here under ``/docs/assets/`` and the
pages reference nothing else: no CDN, no web fonts, no online validator badge.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from ordinaut.errors import NotFound

ASSETS_PACKAGE = "fastapi_offline"
ASSETS_DIR = "static"
ASSETS_PATH = "/docs/assets"
# The only files served, with their media types.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# Static files of a given release: a new release changes the package, and the process.
ASSET_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}


@functools.cache
def asset(name: str) -> bytes:
    """One file of the docs assets, read once per process."""
    return resources.files(ASSETS_PACKAGE).joinpath(ASSETS_DIR, name).read_bytes()


def install(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and ``/docs/assets/{name}`` (not in the OpenAPI document)."""
    openapi_url = app.openapi_url or "/openapi.json"

    def base(request: Request) -> str:
        return str(request.scope.get("root_path") or "").rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = base(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            # No validator badge: it would be an image from an online validator.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = base(request)
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound("no such documentation asset", {"name": name[:100]})
        return Response(asset(name), media_type=media_type, headers=ASSET_HEADERS)
