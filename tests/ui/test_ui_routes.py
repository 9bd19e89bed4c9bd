"""``GET /ui`` and its assets: no token needed, a strict CSP, only the listed files served.

These answer without the database, so the app runs over settings with none configured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ordinaut.api import create_app
from ordinaut.api.routes import ui
from ordinaut.config import load_settings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings({}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http


def _csp(response: httpx.Response) -> dict[str, str]:
    directives = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


async def test_page_needs_no_token_and_forbids_inline_and_foreign_code(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/ui")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = _csp(r)
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert csp["connect-src"] == "'self'"
    assert csp["form-action"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["require-trusted-types-for"] == "'script'"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert 'src="/ui/app.js"' in r.text
    assert 'href="/ui/app.css"' in r.text
    assert "{{BASE}}" not in r.text
    assert "<script>" not in r.text
    assert " style=" not in r.text
    # A trailing slash reaches the same page.
    assert (await client.get("/ui/")).text == r.text


async def test_assets_carry_their_types_and_the_same_policy(client: httpx.AsyncClient) -> None:
    js = await client.get("/ui/app.js")
    css = await client.get("/ui/app.css")
    assert js.status_code == css.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert _csp(js)["script-src"] == "'self'"
    # The script never hands API data to the HTML parser.
    assert "innerHTML" not in js.text
    assert "insertAdjacentHTML" not in js.text
    assert "document.write" not in js.text
    assert "eval(" not in js.text
    assert "http://" not in js.text
    assert "https://" not in js.text


@pytest.mark.parametrize("name", ["index.html", "..%2Fapp.py", "missing.js", "app.js.map"])
async def test_only_listed_assets_are_served(client: httpx.AsyncClient, name: str) -> None:
    r = await client.get(f"/ui/{name}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_page_follows_a_proxy_path_prefix() -> None:
    app = create_app(load_settings({}))
    transport = httpx.ASGITransport(app=app, root_path="/prod")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        r = await http.get("/ui")
    assert r.status_code == 200
    assert 'src="/prod/ui/app.js"' in r.text
    assert '<meta name="ordinaut-base" content="/prod">' in r.text


def test_prefix_is_escaped_into_the_page() -> None:
    text = ui.page('/x"><script>').decode()
    assert "<script>" not in text.split("</head>")[0].replace('<script src="', "")
    assert 'content="/x&quot;&gt;&lt;script&gt;"' in text


async def test_ui_is_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not any(p.startswith("/ui") for p in paths)
