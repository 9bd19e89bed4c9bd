"""load_settings: every ORDINAUT_* variable read once, typed, with errors that name the variable."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from ordinaut.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_from_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url == ""
    assert settings.api_host == "127.0.0.1"
    assert settings.api_port == 8080
    assert settings.home == ".ordinaut"


def test_values_are_coerced_to_the_field_types() -> None:
    settings = load_settings(
        {
            "ORDINAUT_API_PORT": "9000",
            "ORDINAUT_TICK_INTERVAL_S": "0.5",
            "ORDINAUT_LOG_JSON": "false",
            "ORDINAUT_EGRESS_ALLOWLIST": " example.com, 10.0.0.0/8 ,,",
            "ORDINAUT_DATABASE_URL": "postgresql://u@127.0.0.1/db",
        }
    )
    assert settings.api_port == 9000
    assert settings.tick_interval_s == 0.5
    assert settings.log_json is False
    assert settings.egress_allowlist == ("example.com", "10.0.0.0/8")
    assert settings.database_url == "postgresql://u@127.0.0.1/db"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("False", False),
     ("no", False), ("off", False)],
)  # fmt: skip
def test_booleans_accept_the_usual_spellings(raw: str, expected: bool) -> None:
    assert load_settings({"ORDINAUT_LOG_JSON": raw}).log_json is expected


def test_an_empty_value_means_the_default() -> None:
    assert load_settings({"ORDINAUT_API_PORT": ""}).api_port == 8080


@pytest.mark.parametrize(
    ("name", "raw", "kind"),
    [
        ("ORDINAUT_API_PORT", "eighty", "int"),
        ("ORDINAUT_LEASE_SECONDS", "30s", "float"),
        ("ORDINAUT_LOG_JSON", "maybe", "bool"),
        ("ORDINAUT_WORKER_CONCURRENCY", "1.5", "int"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_the_type(
    name: str, raw: str, kind: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(name)}: ") as excinfo:
        load_settings({name: raw})
    assert str(excinfo.value) == f"{name}: cannot read {raw!r} as {kind}"


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings({"ORDINAUT_API_PORT": "9000"}, api_port=9100)
    assert settings.api_port == 9100


def test_unknown_variables_are_ignored() -> None:
    settings = load_settings({"ORDINAUT_NO_SUCH_THING": "x", "ORDINAUT_EXTRA": "y", "PATH": "/"})
    assert settings == Settings()


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDINAUT_API_PORT", "8123")
    assert load_settings().api_port == 8123


def test_settings_are_immutable_and_replace_returns_a_copy() -> None:
    settings = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.api_port = 1  # type: ignore[misc]
    changed = settings.replace(api_port=1)
    assert (settings.api_port, changed.api_port) == (8080, 1)


def _readme_settings() -> dict[str, str]:
    """README's configuration table: each variable with its default cell (``a`` / ``b`` rows
    split in two)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`ORDINAUT_"):
            continue
        names = re.findall(r"`(ORDINAUT_[A-Z0-9_]+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(" / ")]
        if len(defaults) != len(names):
            defaults = [cells[1]] * len(names)
        for name, default in zip(names, defaults, strict=True):
            assert name not in found, f"{name} is listed twice"
            found[name] = default
    return found


def test_the_readme_lists_every_setting_with_its_default() -> None:
    """Settings and README's table stay in step: no setting undocumented, no row for a
    setting that does not exist, and a plain default shown as the code has it."""
    listed = _readme_settings()
    fields = {
        f"ORDINAUT_{f.name.upper()}": f for f in dataclasses.fields(Settings) if f.name != "extra"
    }
    assert sorted(set(fields) - set(listed)) == [], "missing from README.md"
    assert sorted(set(listed) - set(fields)) == [], "not a setting"
    defaults = Settings()
    for name, cell in listed.items():
        shown = re.fullmatch(r"`([^`]*)`", cell)
        value = getattr(defaults, fields[name].name)
        if shown is None or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        assert float(shown.group(1)) == float(value), f"{name}: README says {cell}, code {value}"
