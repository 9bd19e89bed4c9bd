"""Ordinaut's MCP tools, for the hosted ``/mcp`` endpoint and the local ``ordinaut mcp``.

``tools``: every tool as a REST operation (method and path) with a description written for a
model; its input schema is read from the API's own OpenAPI document, so it is the REST request
schema by construction. ``server``: the MCP server (official ``mcp`` SDK, low-level ``Server``)
that answers ``tools/list`` and ``tools/call`` by sending those REST requests through an
``AsyncOrdinaut`` holding the caller's credential. ``stdio``: ``ordinaut mcp``. The hosted
endpoint lives with the API (``ordinaut.api.mcp``) and sends the same requests in process.

This package never imports the API: the API imports it.
"""
