"""The docs stay true to the code: every route is in docs/api.md, every cited file exists."""

from __future__ import annotations

import re
from pathlib import Path

from ordinaut.api import create_app
from ordinaut.config import load_settings

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "examples" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_docs_api_lists_every_route() -> None:
    # Building the app connects to nothing; the URL only has to be set.
    app = create_app(load_settings({}, database_url="postgresql://127.0.0.1:1/unused"))
    documented = (REPO / "docs" / "api.md").read_text()
    missing = [
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if f"`{method.upper()} {path}`" not in documented
    ]
    assert missing == [], "add these routes to docs/api.md"


def test_docs_cite_only_files_in_the_repository() -> None:
    cited = {
        (doc.name, name)
        for doc in DOCS
        for name in re.findall(r"`([\w./-]+\.md)`", doc.read_text())
    }
    assert cited, "expected the docs to cite each other"
    for doc, name in cited:
        assert (REPO / name).is_file() or (REPO / "docs" / name).is_file(), f"{doc} cites {name}"
