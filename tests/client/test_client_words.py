"""Pure parts: schedules in words, instants in a zone, where credentials come from."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ordinaut.client import Tokens
from ordinaut.client import credentials as store
from ordinaut.client.words import describe_cron, describe_rrule, describe_schedule, summary


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 8 * * 1-5", "every weekday at 08:00"),
        ("0 8 * * MON-FRI", "every weekday at 08:00"),
        ("@daily", "every day at 00:00"),
        ("*/15 * * * *", "every 15 minutes"),
        ("*/5 9-17 * * 1-5", "every 5 minutes from 09:00 to 17:59 on weekdays"),
        ("30 9 1 * *", "on the 1st of every month at 09:30"),
        ("0 9 1 1 *", "on the 1st of January at 09:00"),
        ("0 */2 * * *", "every 2 hours on the hour"),
        ("15 * * * *", "every hour at minute 15"),
        ("0 9 * * mon,wed,fri", "every Monday, Wednesday and Friday at 09:00"),
        ("0 10 * * 6,0", "every Saturday and Sunday at 10:00"),
        ("0 8,17 * * *", "every day at 08:00 and 17:00"),
        ("0 9 15 * 1", "on the 15th of every month and every Monday at 09:00"),
        ("1-5/2 * * * *", "cron '1-5/2 * * * *'"),  # not recognised: shown verbatim
        ("0 8 * *", "cron '0 8 * *'"),
    ],
)
def test_cron_in_words(expr: str, words: str) -> None:
    assert describe_cron(expr) == words


def test_other_kinds_in_words() -> None:
    assert describe_rrule("RRULE:FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=30") == (
        "every week on Monday and Wednesday at 09:30"
    )
    anchored = "DTSTART;TZID=Europe/Chisinau:20260130T170000\nRRULE:FREQ=DAILY;INTERVAL=2;COUNT=5"
    assert describe_rrule(anchored) == "every 2 days, 5 times"
    assert describe_rrule("FREQ=MONTHLY;BYSETPOS=-1") == "rrule 'FREQ=MONTHLY;BYSETPOS=-1'"
    assert describe_schedule("once", "2026-03-08T07:00:00+00:00", "Europe/Chisinau") == (
        "once at 2026-03-08 09:00 Europe/Chisinau"
    )
    assert describe_schedule("event", "orders.*") == (
        "whenever an event matching 'orders.*' is published"
    )
    fires = [datetime(2026, 3, 29, 5, 0, tzinfo=UTC), datetime(2026, 3, 30, 5, 0, tzinfo=UTC)]
    assert summary("cron", "0 8 * * *", "Europe/Chisinau", fires) == (
        "every day at 08:00 Europe/Chisinau, next: "
        "Sun 2026-03-29 08:00 EEST, Mon 2026-03-30 08:00 EEST"
    )
    assert summary("once", "2026-01-01T00:00:00Z", "UTC", []).endswith("no fire times ahead")


def test_credentials_resolution_order(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home")}
    assert store.resolve(env).url == "http://127.0.0.1:8080"
    assert store.resolve(env).token is None

    dev_home = tmp_path / "dev"
    dev_home.mkdir()
    dev = {"url": "http://127.0.0.1:9000/", "agent_id": "a", "agent_secret": "s", "token": "t"}
    (dev_home / "credentials.json").write_text(json.dumps(dev))
    env_dev = {**env, "ORDINAUT_HOME": str(dev_home)}
    found = store.resolve(env_dev)
    assert (found.url, found.agent_id, found.token) == ("http://127.0.0.1:9000", "a", "t")

    path = store.save_login(
        env_dev, "http://127.0.0.1:7000", token="t7", agent_id="b", agent_secret="x"
    )
    assert path == dev_home / "credentials.json"  # shares ordinaut dev's file...
    saved = json.loads(path.read_text())
    assert saved["url"] == dev["url"]
    assert saved["servers"]["http://127.0.0.1:7000"]["token"] == "t7"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.resolve(env_dev).url == "http://127.0.0.1:7000"  # ...and becomes the default
    assert store.resolve(env_dev, url="http://127.0.0.1:9000").agent_id == "a"
    assert store.resolve(env_dev, url="http://elsewhere:1").token is None

    store.remember_token(
        env_dev,
        "http://127.0.0.1:7000",
        Tokens(access_token="t8", refresh_token="r", expires_in=60, scope="tasks:read"),
    )
    assert store.resolve(env_dev).token == "t8"
    assert store.resolve({**env_dev, "ORDINAUT_TOKEN": "env"}).token == "env"
    assert store.resolve({**env_dev, "ORDINAUT_URL": "http://x:1"}, token="flag").token == "flag"

    assert store.login_path(env) == tmp_path / "home" / ".config" / "ordinaut" / "credentials.json"
    assert store.login_path({**env, "XDG_CONFIG_HOME": "/cfg"}) == Path(
        "/cfg/ordinaut/credentials.json"
    )
