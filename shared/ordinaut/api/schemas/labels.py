"""Task labels: the bounds of the small map an agent files its tasks under, and the
``label=key:value`` filter of the task lists."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from ordinaut.errors import ValidationFailed

# Labels: a small map an agent files its tasks under (docs/api.md, "Labels"). Keys are short
# identifiers so that `key:value` filters and `--label key=value` stay unambiguous.
MAX_LABELS = 16
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 256
LABEL_KEY_RE = r"^[a-z0-9][a-z0-9._/-]*$"
LABEL_VALUE_RE = r"^[^\x00-\x1f\x7f]*$"  # no control characters
LabelKey = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL_KEY, pattern=LABEL_KEY_RE)
]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE, pattern=LABEL_VALUE_RE)]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(
        max_length=MAX_LABELS,
        description=f"Up to {MAX_LABELS} labels: keys of 1-63 characters (lowercase letters, "
        "digits, `.` `_` `-` `/`, starting with a letter or digit), values of up to "
        f"{MAX_LABEL_VALUE} characters without control characters. List tasks by label with "
        "`GET /tasks?label=key:value`.",
        examples=[{"user": "ana", "team": "ops"}],
    ),
]


def label_filter(values: list[str] | None) -> list[tuple[str, str]]:
    """``label=key:value`` query values as (key, value) pairs (a 422 naming ``label`` for a
    malformed one); every pair must match (AND)."""
    pairs: list[tuple[str, str]] = []
    problems: list[dict[str, Any]] = []
    for text in values or []:
        key, sep, value = text.partition(":")
        if not sep or len(key) > MAX_LABEL_KEY or not re.fullmatch(LABEL_KEY_RE, key):
            problems.append(
                {
                    "field": "query.label",
                    "message": "a label filter is key:value with a valid label key "
                    f"(got {text[:80]!r})",
                }
            )
        elif len(value) > MAX_LABEL_VALUE or not re.fullmatch(LABEL_VALUE_RE, value):
            problems.append(
                {
                    "field": "query.label",
                    "message": f"a label value has at most {MAX_LABEL_VALUE} characters and no "
                    "control characters",
                }
            )
        else:
            pairs.append((key, value))
    if len(values or []) > MAX_LABELS:
        problems.append({"field": "query.label", "message": f"at most {MAX_LABELS} label filters"})
    if problems:
        raise ValidationFailed("invalid label filter", problems)
    return pairs
