"""``/docs`` and ``/redoc`` work without internet: every script, style sheet and icon they
reference is served by the API itself (no CDN, no web fonts, no online validator)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from ordinaut.api import create_app
from ordinaut.config import load_settings

URL_ATTR = re.compile(r"""\b(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""")
ABSOLUTE = re.compile(r"""(?:https?:)?//[A-Za-z0-9]""")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings({}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http


@pytest.mark.parametrize(
    ("page", "needed"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_docs_pages_reference_only_local_files(
    client: httpx.AsyncClient, page: str, needed: set[str]
) -> None:
    r = await client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not ABSOLUTE.search(html), "an absolute URL: " + ABSOLUTE.search(html).group(0)  # type: ignore[union-attr]
    assert "fonts.googleapis" not in html
    assert "cdn" not in html.lower()
    urls = set(URL_ATTR.findall(html)) | set(re.findall(r"url: '([^']+)'", html))
    assert {u.rsplit("/", 1)[-1] for u in urls} >= needed
    for url in urls:
        assert url.startswith("/"), url
        got = await client.get(url)
        assert got.status_code == 200, url
        assert got.content, url
    assert "/openapi.json" in urls


async def test_the_assets_are_the_real_files(client: httpx.AsyncClient) -> None:
    js = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in js.content
    assert len(js.content) > 500_000
    css = await client.get("/docs/assets/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")
    assert b".swagger-ui" in css.content
    redoc = await client.get("/docs/assets/redoc.standalone.js")
    assert b"Redoc" in redoc.content
    assert len(redoc.content) > 500_000
    assert (await client.get("/docs/assets/../../config.py")).status_code == 404
    assert (await client.get("/docs/assets/index.html")).status_code == 404


async def test_docs_follow_a_proxy_path_prefix() -> None:
    app = create_app(
        load_settings({}),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, root_path="/api"), base_url="http://test"
    ) as http:
        html = (await http.get("/docs")).text
    assert "/api/docs/assets/swagger-ui-bundle.js" in html
    assert "'/api/openapi.json'" in html
