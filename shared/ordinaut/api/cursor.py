"""Opaque keyset cursors for list routes (``next_cursor`` in, ``cursor=`` back).

A cursor names the last item of a page by its sort key, an instant and an id (a run's
``scheduled_for`` and id, a task's ``created_at`` and id), so the next page starts right after
it with an index range: a deep page costs what the first one does, and items added or removed
meanwhile never shift a page the way they shift an offset.

It is bound to the query it came from: the route, the owner it listed (the caller, another
agent for an admin, or every agent) and every filter. A cursor that was altered, cut, made up,
or sent with another route, owner or filter is a 422 naming ``query.cursor``; it grants
nothing either way, since the request's own owner and filters always apply. The check is a
keyed BLAKE2b over the cursor and its query, keyed by ``ORDINAUT_SECRETS_KEY`` when one is set.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard
from uuid import UUID

from ordinaut.errors import ValidationFailed

VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BODY = struct.Struct(">Bq16s")  # version, microseconds since the epoch, id
_MAC_BYTES = 12
_DEFAULT_KEY = b"ordinaut keyset cursor v1"
MAX_LENGTH = 200


def _key(secret: str) -> bytes:
    return hashlib.blake2b(secret.encode(), digest_size=32, person=b"ord-cursor").digest()


def _mac(key: bytes, body: bytes, query: tuple[object, ...]) -> bytes:
    h = hashlib.blake2b(key=key, digest_size=_MAC_BYTES)
    h.update(body)
    h.update(repr(query).encode())
    return h.digest()


class Cursors:
    """Encodes and checks the cursors of one deployment (``secret``: its secrets key, or "")."""

    def __init__(self, secret: str = "") -> None:
        self._key = _key(secret) if secret else _DEFAULT_KEY

    def encode(self, at: datetime, item_id: UUID, query: tuple[object, ...]) -> str:
        """The cursor after the item (``at``, ``item_id``) of a listing described by ``query``."""
        micros = (at - _EPOCH) // timedelta(microseconds=1)
        body = _BODY.pack(VERSION, micros, item_id.bytes)
        raw = body + _mac(self._key, body, query)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, cursor: str, query: tuple[object, ...]) -> tuple[datetime, UUID]:
        """The (instant, id) a cursor names; a 422 on ``query.cursor`` unless it is one this
        deployment issued for this same ``query``."""
        raw = _raw(cursor)
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if not hmac.compare_digest(mac, _mac(self._key, body, query)):
            raise _invalid(NOT_THIS_LISTING)
        return _position(body)


NOT_THIS_LISTING = (
    "not a cursor from this listing: pass next_cursor back unchanged, with the same filters"
)


def _raw(cursor: str) -> bytes:
    """A cursor's bytes (body and check); a 422 unless it has their length."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _BODY.size + _MAC_BYTES:
        raise _invalid(NOT_THIS_LISTING)
    return raw


def _position(body: bytes) -> tuple[datetime, UUID]:
    """The (instant, id) in a cursor's body; a 422 for another version or an instant out of
    range."""
    version, micros, item = _BODY.unpack(body)
    if version != VERSION:
        raise _invalid("a cursor from another version: start again from the first page")
    try:
        return _EPOCH + timedelta(microseconds=micros), UUID(bytes=item)
    except OverflowError:
        raise _invalid("not a cursor from this listing: start again from the first page") from None


@functools.lru_cache(maxsize=8)
def cursors(secret: str) -> Cursors:
    """The deployment's ``Cursors`` (``Settings.secrets_key``), made once per key."""
    return Cursors(secret)


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, [{"field": "query.cursor", "message": message}])


def start_after(
    secret: str, cursor: str | None, offset: int, query: tuple[object, ...]
) -> tuple[datetime, UUID] | None:
    """Where a page starts: after the item ``cursor`` names (None: by ``offset``). A cursor
    with an offset is a 422: a cursor already says where the page starts."""
    if not _given(cursor, offset):
        return None
    return cursors(secret).decode(cursor, query)


def _given(cursor: str | None, offset: int) -> TypeGuard[str]:
    """Whether the page starts at a cursor; a 422 when an offset is sent with it."""
    if cursor is None:
        return False
    if offset:
        message = "send either cursor or offset, not both"
        raise ValidationFailed(message, [{"field": "query.offset", "message": message}])
    return True


def cursor_position(cursor: str | None, offset: int) -> tuple[datetime, UUID] | None:
    """The (instant, id) a cursor names, before it is checked against its listing: for a
    statement that reads the page and checks the caller's token at once, so the listing's
    owner is not known yet. The route checks the cursor with ``start_after`` as soon as it
    is, before it uses anything read (the page is the caller's own either way). A cursor
    that is not even well formed is a 422 here."""
    if not _given(cursor, offset):
        return None
    return _position(_raw(cursor)[: _BODY.size])


def as_is(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """``page``'s ``item`` for a route whose response model validates the rows itself: making
    each row a model first, then validating the envelope of models, did the work twice (~80 µs
    of a page of 50 runs)."""
    return row


def page(
    rows: Sequence[Mapping[str, Any]],
    item: Callable[[Mapping[str, Any]], Any],
    *,
    sort: str,
    total: int | None,
    limit: int,
    offset: int,
    more: bool,
    secret: str,
    query: tuple[object, ...],
) -> dict[str, Any]:
    """The list envelope of ``rows`` (each made an item by ``item``): ``next_cursor`` names the
    last row's sort key (``sort``, then ``id``) when more rows follow; ``total`` is None when
    it was not counted."""
    last = rows[-1] if rows else None
    return {
        "items": [item(row) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": more,
        "next_cursor": (
            cursors(secret).encode(last[sort], last["id"], query) if more and last else None
        ),
    }
