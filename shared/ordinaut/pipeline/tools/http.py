"""``http.request``: real HTTP under the egress policy, pinned to checked addresses.

Each hop (the first request and every redirect) resolves the host here, refuses internal
addresses unless allowlisted, and connects to the checked IP with the original name in the
``Host`` header and as TLS SNI / certificate name. Responses are read as a stream and cut
at ``http_max_response_bytes``; the whole exchange is bounded by ``http_timeout_s``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from typing import TYPE_CHECKING, Any

import certifi

from ordinaut.lazy import lazy_module
from ordinaut.pipeline.context import RunContext
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.tools.egress import Allowlist, Resolver, checked_addresses, system_resolver
from ordinaut.pipeline.tools.registry import Tool, ToolError

if TYPE_CHECKING:
    import httpx
else:  # imported on first use: the API builds this tool's registry entry, only workers call it
    httpx = lazy_module("httpx")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_REDIRECTS = {301, 302, 303, 307, 308}
_CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization"}
NO_BODY = object()


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _target(url: str, query: dict[str, Any] | None) -> httpx.URL:
    """The URL to request: ``url`` with ``query`` merged into its query string."""
    try:
        target = httpx.URL(url)
        if query:
            target = target.copy_merge_params({k: _query_value(v) for k, v in query.items()})
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ToolError("invalid_url", f"invalid URL: {exc}") from None
    return target


def _prepare(
    headers: dict[str, str], body: Any, text: str | None, idempotency_key: str
) -> bytes | None:
    """The request's content; completes ``headers`` (Idempotency-Key, Content-Type) in place
    unless the caller set them."""
    lowered = {k.lower() for k in headers}
    if "host" in lowered:
        raise ToolError("invalid_arguments", "the Host header is set from the URL")
    if idempotency_key and "idempotency-key" not in lowered:
        headers["Idempotency-Key"] = idempotency_key
    if body is not NO_BODY:
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        kind = "application/json"
    elif text is not None:
        content = text.encode("utf-8")
        kind = "text/plain; charset=utf-8"
    else:
        return None
    if "content-type" not in lowered:
        headers["Content-Type"] = kind
    return content


def _redirected(
    status: int,
    method: str,
    content: bytes | None,
    headers: dict[str, str],
    target: httpx.URL,
    following: httpx.URL,
) -> tuple[str, bytes | None, dict[str, str]]:
    """Method, content and headers for following a redirect from ``target`` to ``following``:
    303 (and 301/302 after a POST) turn into a body-less GET; credentials stay on their origin."""
    if status == 303 or (status in (301, 302) and method == "POST"):
        method = "GET" if method != "HEAD" else method
        content = None
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    if (following.scheme, following.host, _port(following)) != (
        target.scheme,
        target.host,
        _port(target),
    ):
        headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
    return method, content, headers


class HttpEgress:
    """An HTTP client that only talks to addresses the egress policy allows."""

    def __init__(
        self, limits: PipelineLimits, allowlist: Allowlist, resolver: Resolver = system_resolver
    ) -> None:
        self.limits = limits
        self.allowlist = allowlist
        self.resolver = resolver

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = NO_BODY,
        text: str | None = None,
        idempotency_key: str = "",
        trust_target: bool = False,
    ) -> dict[str, Any]:
        """Send one request, following up to ``http_max_redirects`` re-checked redirects.

        ``trust_target`` allows exactly the first URL's host:port (operator-declared tools).
        """
        try:
            async with asyncio.timeout(self.limits.http_timeout_s):
                return await self._exchange(
                    method.upper(),
                    url,
                    dict(headers or {}),
                    query,
                    body,
                    text,
                    idempotency_key,
                    trust_target,
                )
        except TimeoutError:
            raise ToolError(
                "timeout",
                f"no complete answer within {self.limits.http_timeout_s}s",
                retryable=True,
            ) from None
        except httpx.TimeoutException as exc:
            raise ToolError("timeout", f"{type(exc).__name__}: {exc}", retryable=True) from None
        except httpx.HTTPError as exc:
            raise ToolError("http_error", f"{type(exc).__name__}: {exc}", retryable=True) from None

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        query: dict[str, Any] | None,
        body: Any,
        text: str | None,
        idempotency_key: str,
        trust_target: bool,
    ) -> dict[str, Any]:
        target = _target(url, query)
        content = _prepare(headers, body, text, idempotency_key)
        allow = self.allowlist
        if trust_target:
            allow = allow.including(target.host, _port(target))
        async with httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would bypass address pinning
            verify=_tls(),
            timeout=httpx.Timeout(self.limits.http_timeout_s),
        ) as client:
            for _ in range(self.limits.http_max_redirects + 1):
                response, raw = await self._send(client, method, target, headers, content, allow)
                location = response.headers.get("location")
                if response.status_code not in _REDIRECTS or not location:
                    return _result(response, raw, target)
                following = target.join(location)
                method, content, headers = _redirected(
                    response.status_code, method, content, headers, target, following
                )
                target = following
        raise ToolError(
            "too_many_redirects", f"more than {self.limits.http_max_redirects} redirects"
        )

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        allow: Allowlist,
    ) -> tuple[httpx.Response, bytes]:
        if url.scheme not in ("http", "https") or not url.host:
            raise ToolError("invalid_url", f"only http and https URLs with a host: {url}")
        host, port = url.host, _port(url)
        addresses = await checked_addresses(host, port, allowlist=allow, resolver=self.resolver)
        shown_host = f"[{host}]" if ":" in host else host
        host_header = shown_host if url.port is None else f"{shown_host}:{url.port}"
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        last: Exception | None = None
        for ip in addresses[:3]:
            request = client.build_request(
                method,
                url.copy_with(host=str(ip)),
                headers={**headers, "Host": host_header},
                content=content,
                extensions=extensions,
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last = exc
                continue
            try:
                return response, await self._read(response)
            finally:
                await response.aclose()
        raise ToolError("connect_error", f"cannot connect to {host}: {last}", retryable=True)

    async def _read(self, response: httpx.Response) -> bytes:
        cap = self.limits.http_max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ToolError("response_too_large", f"response of {declared} bytes exceeds {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise ToolError("response_too_large", f"response exceeds {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def static_url_problem(url: str) -> str | None:
    """Why ``url`` can never be requested (not http/https, no host, unreadable), else None."""
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decodes an IDNA name: a malformed one ("xn--") raises here
    except (httpx.InvalidURL, TypeError, ValueError) as exc:  # UnicodeError is a ValueError
        return f"invalid URL: {exc}"
    if parsed.scheme not in ("http", "https"):
        shown = f"{parsed.scheme}:" if parsed.scheme else "a URL without a scheme"
        return f"only http and https URLs can be requested, not {shown}"
    if not host:
        return "the URL has no host"
    return None


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _result(response: httpx.Response, raw: bytes, url: httpx.URL) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for key, value in response.headers.multi_items():
        key = key.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    try:
        text = raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    body: Any = text
    if "json" in headers.get("content-type", "") and text.strip():
        try:
            body = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            body = text
    return {"status": response.status_code, "headers": headers, "body": body, "url": str(url)}


def http_request_tool(egress: HttpEgress) -> Tool:
    """The ``http.request`` tool over ``egress``."""

    def conflict(args: dict[str, Any]) -> list[tuple[str, str]]:
        if "json" in args and "text" in args:
            return [("text", "give `json` or `text`, not both")]
        return []

    def check(args: dict[str, Any]) -> list[tuple[str, str]]:
        # A URL written out is checked when the task is written; one built from expressions
        # (DEFERRED here) is checked when it is known, before each request (``_send``).
        url = args.get("url")
        problem = static_url_problem(url) if isinstance(url, str) else None
        return conflict(args) + ([("url", problem)] if problem else [])

    async def run(args: dict[str, Any], ctx: RunContext) -> Any:
        if conflict(args):
            raise ToolError("invalid_arguments", conflict(args)[0][1])
        method = args.get("method", "GET")
        result = await egress.request(
            method,
            args["url"],
            headers=args.get("headers"),
            query=args.get("query"),
            body=args.get("json", NO_BODY),
            text=args.get("text"),
            idempotency_key=ctx.idempotency_key,
        )
        if ctx.shown_args is not None:
            # the request carried secrets: its query string is never recorded or reported
            result["url"] = str(httpx.URL(result["url"]).copy_with(query=None, fragment=None))
        status = result["status"]
        if args.get("raise_for_status", True) and status >= 400:
            preview = (
                result["body"] if isinstance(result["body"], str) else json.dumps(result["body"])
            )
            raise ToolError(
                "http_status",
                f"{method} {result['url']} answered {status}: {preview[:200]}",
                retryable=status >= 500 or status == 429,
            )
        return result

    return Tool(
        name="http.request",
        description="Send an HTTP request (egress policy applies); returns status, headers "
        "and body (parsed when JSON). Fails on 4xx/5xx unless raise_for_status is false. "
        "Unless `headers` sets one, sends `Idempotency-Key`: the run's key, then `:<step id>` "
        "(`:<step id>:<index>` per foreach item), the same on every attempt of the run.",
        input_schema={
            "type": "object",
            "required": ["url"],
            "properties": {
                "method": {"enum": list(METHODS)},
                "url": {"type": "string", "minLength": 1, "maxLength": 4096},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "query": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
                "json": {},
                "text": {"type": "string"},
                "raise_for_status": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "status": {"type": "integer"},
                "headers": {"type": "object"},
                "body": {},
                "url": {"type": "string"},
            },
        },
        fn=run,
        default_timeout_s=egress.limits.http_timeout_s,
        check_args=check,
    )
