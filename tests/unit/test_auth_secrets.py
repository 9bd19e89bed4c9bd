"""Agent secrets are usable on a command line as they come."""

from __future__ import annotations

import re

from ordinaut import auth
from ordinaut.cli import build_parser


def test_secrets_never_start_with_a_dash_and_stay_43_url_safe_characters() -> None:
    drawn = [auth.new_secret() for _ in range(3_000)]  # ~47 would start with "-" before
    assert not [s for s in drawn if s.startswith("-")]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", s) for s in drawn)
    assert len(set(drawn)) == len(drawn)
    assert sum("-" in s for s in drawn) > 0  # still the whole alphabet, only not first


def test_an_older_secret_that_starts_with_a_dash_is_given_as_secret_equals() -> None:
    args = build_parser().parse_args(
        ["login", "--url", "http://127.0.0.1:8080", "--agent-id", "a", "--secret=-abc"]
    )
    assert args.secret == "-abc"
