"""The status page over 100,000 tasks, in headless Chromium over a real `ordinaut api` process.

The tasks are seeded by one ``INSERT ... SELECT generate_series`` (plus a handful of runs);
the page is driven through its first view, a search, a filter and pagination, and each view
is checked by the requests the page makes, not by time: one request per view of the task
table, never one per row, and the first view's requests are the same fixed set whatever the
number of tasks. Screenshots of each view are kept as artifacts like the other UI tests.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from support import fresh_database

CHROMIUM = os.environ.get("ORDINAUT_TEST_CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's (apt-get install -y chromium) "
        "or point ORDINAUT_TEST_CHROMIUM at one",
        allow_module_level=True,
    )
pw = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is missing: pip install -e '.[dev]'"
)

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
WAIT_MS = 20_000
TASKS = 100_000
UUID_PATH = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="session")
async def e2e_database(servers: dict[str, str], migrated: str) -> str:
    return await fresh_database(servers["database_url"], "ordinaut_ui_scale")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with pw.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


# Task g (1..100,000): created g seconds ago (g = 1 is the newest, first on the first page);
# every 10th an event task, every 7th paused, every 1,000th an "Invoice" task; every 100th is
# labelled team:ops and every 3rd user:ana (so both: every 300th). Time tasks fire
# at minute g % 60 of an hour two hours ahead (UTC), which is their next_run_at exactly.
SEED_TASKS = """
INSERT INTO tasks (id, created_by, title, description, schedule_kind, schedule_expr, timezone,
                   payload, status, next_run_at, labels, created_at, updated_at)
SELECT gen_random_uuid(), $1,
       CASE WHEN g % 1000 = 0 THEN 'Invoice run ' || g ELSE 'Task ' || lpad(g::text, 6, '0') END,
       '',
       CASE WHEN g % 10 = 0 THEN 'event' ELSE 'cron' END,
       CASE WHEN g % 10 = 0 THEN 'orders.created' ELSE (g % 60) || ' ' || $3::int || ' * * *' END,
       'UTC',
       '{"params": {}, "pipeline": [{"id": "a", "uses": "echo", "with": {"n": 1}}]}'::jsonb,
       (CASE WHEN g % 7 = 0 THEN 'paused' ELSE 'active' END)::task_status,
       CASE WHEN g % 10 = 0 THEN NULL ELSE $4::timestamptz + make_interval(mins => g % 60) END,
       jsonb_strip_nulls(jsonb_build_object(
           'team', CASE WHEN g % 100 = 0 THEN 'ops' END,
           'user', CASE WHEN g % 3 = 0 THEN 'ana' END)),
       $2::timestamptz - make_interval(secs => g), $2::timestamptz - make_interval(secs => g)
FROM generate_series(1, $5::int) g
"""
SEED_RUN = """
INSERT INTO runs (id, task_id, owner_id, slot, trigger, scheduled_for, status, attempt,
                  started_at, finished_at, duration_ms, error, idempotency_key, created_at,
                  updated_at)
SELECT gen_random_uuid(), t.id, t.created_by, 'manual:' || gen_random_uuid(), 'run_now', $2,
       $3::run_status, 1, $2, $2, 5, $4::jsonb, 'k-' || gen_random_uuid(), $2, $2
FROM tasks t WHERE t.title = $1
RETURNING id, task_id, owner_id, finished_at
"""
DEAD_LETTER = """
INSERT INTO dead_letters (run_id, owner_id, task_id, finished_at) VALUES ($1, $2, $3, $4)
"""


async def _seed(url: str, owner: str, now: datetime) -> None:
    ahead = now + timedelta(hours=2)
    hour_start = ahead.replace(minute=0, second=0, microsecond=0)
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(SEED_TASKS, owner, now, ahead.hour, hour_start, TASKS)
            for _ in range(3):
                await conn.execute(SEED_RUN, "Task 000001", now, "succeeded", None)
            error = '{"step": "a", "code": "http_error", "message": "upstream said 503"}'
            # A dead letter on the first page and one on page 1,000: both listed, by title,
            # from the one attention request.
            for title in ("Task 000002", "Invoice run 50000"):
                (run,) = await conn.fetch(SEED_RUN, title, now, "dead_letter", error)
                await conn.execute(
                    DEAD_LETTER, run["id"], run["owner_id"], run["task_id"], run["finished_at"]
                )
        await conn.execute("ANALYZE tasks")
        await conn.execute("ANALYZE runs")
    finally:
        await conn.close()


def _path(url: str) -> str:
    return urlsplit(url).path


async def test_one_request_per_view_at_100k_tasks(
    api: dict[str, Any],
    processes: Any,
    browser: Any,
    e2e_database: str,
    tmp_path: Path,
) -> None:
    shots = Path(os.environ.get("ORDINAUT_TEST_ARTIFACTS") or tmp_path) / "ui-100k"
    shots.mkdir(parents=True, exist_ok=True)
    expect = pw.expect
    async with httpx.AsyncClient(base_url=api["base"], timeout=30) as http:
        scopes = ["tasks:read", "tasks:write", "runs:read"]
        r = await http.post(
            "/agents", headers=api["headers"], json={"name": "scale-viewer", "scopes": scopes}
        )
        assert r.status_code == 201, r.text
        agent_id, secret = r.json()["id"], r.json()["agent_secret"]
    await _seed(e2e_database, agent_id, datetime.now(UTC))

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    requests: list[str] = []  # every call the page makes to the API (not its own assets)
    page.on(
        "request",
        lambda req: (
            requests.append(req.url)
            if req.url.startswith(api["base"]) and not _path(req.url).startswith("/ui")
            else None
        ),
    )

    async def settle() -> list[str]:
        """The requests of the view just shown, once the page has stopped asking."""
        await page.wait_for_load_state("networkidle")
        seen = list(requests)
        requests.clear()
        return seen

    rows = page.locator("#tasks tbody tr")
    meta = page.locator("#tasks-meta")
    await page.goto(api["base"] + "/ui")
    await page.fill("#agent-id", agent_id)
    await page.fill("#agent-secret", secret)
    requests.clear()
    await page.click("#login-agent button[type=submit]")

    # First view: the first 50 of 100,000, each with its schedule, next run and last run.
    await expect(meta).to_have_text(f"Tasks 1–50 of {TASKS}.")
    await expect(rows).to_have_count(50)
    await expect(rows.first).to_contain_text("Task 000001")
    await expect(rows.first.locator(".last")).to_contain_text("succeeded")
    await expect(page.locator("#who")).to_have_text("signed in as scale-viewer")
    await expect(page.locator("#attention-meta")).to_contain_text(
        "2 runs ended without success and have not been retried"
    )
    await expect(page.locator("#attention")).to_contain_text("Invoice run 50000")
    await expect(page.locator("#dead")).to_contain_text("Invoice run 50000")
    first_view = await settle()
    paths = Counter(_path(u) for u in first_view)
    # The same fixed set of calls at any number of tasks: the token, who is signed in, one
    # page of tasks, health, six counters, one "needs attention" (which also fills the dead
    # letters, titles included); no call per task row or per dead letter.
    assert paths == {
        "/agents/auth/token": 1,
        "/agents/me": 1,
        "/tasks": 1,
        "/health": 1,
        "/runs": 6,
        "/runs/attention": 1,
    }, first_view
    assert not [u for u in first_view if UUID_PATH.search(_path(u))], first_view
    await page.screenshot(path=shots / "first-view.png", full_page=True)

    def only_tasks_request(seen: list[str]) -> dict[str, list[str]]:
        assert len(seen) == 1, seen
        (url,) = seen
        assert _path(url) == "/tasks", url
        return parse_qs(urlsplit(url).query)

    # Search: one request, with the text.
    await page.fill("#filter-search", "invoice")
    await expect(meta).to_have_text("Tasks 1–50 of 100.")
    await expect(rows.first).to_contain_text("Invoice run 1000")
    query = only_tasks_request(await settle())
    assert query["search"] == ["invoice"]
    assert query["offset"] == ["0"]
    await page.screenshot(path=shots / "search.png", full_page=True)

    # A filter on top: paused invoice tasks (every 7,000th): one request.
    await page.select_option("#filter-status", "paused")
    await expect(meta).to_have_text("14 tasks.")
    await expect(rows).to_have_count(14)
    query = only_tasks_request(await settle())
    assert (query["search"], query["status"]) == (["invoice"], ["paused"])
    await page.screenshot(path=shots / "search-and-filter.png", full_page=True)

    # Another filter alone: event tasks, then their pages, one request each.
    await page.fill("#filter-search", "")
    await expect(rows).to_have_count(50)
    await settle()
    await page.select_option("#filter-status", "")
    await expect(meta).to_have_text(f"Tasks 1–50 of {TASKS}.")
    await settle()
    await page.select_option("#filter-kind", "event")
    await expect(meta).to_have_text(f"Tasks 1–50 of {TASKS // 10}.")
    await expect(rows.first).to_contain_text("Task 000010")
    await expect(rows.first.locator(".fires")).to_contain_text("on event orders.created")
    query = only_tasks_request(await settle())
    assert query["schedule_kind"] == ["event"]
    await page.click("#tasks-next")
    await expect(meta).to_have_text(f"Tasks 51–100 of {TASKS // 10}.")
    await expect(rows.first).to_contain_text("Task 000510")
    query = only_tasks_request(await settle())
    assert (query["schedule_kind"], query["offset"]) == (["event"], ["50"])
    await page.screenshot(path=shots / "page-2.png", full_page=True)
    await page.click("#tasks-prev")
    await expect(meta).to_have_text(f"Tasks 1–50 of {TASKS // 10}.")
    query = only_tasks_request(await settle())
    assert query["offset"] == ["0"]
    await expect(page.locator("#tasks-prev")).to_be_disabled()

    # Labels: shown as chips; a label typed in filters, a chip clicked adds to it (AND), a
    # filter chip clicked removes it; one request each.
    await page.select_option("#filter-kind", "")
    await expect(meta).to_have_text(f"Tasks 1–50 of {TASKS}.")
    await settle()
    await page.fill("#filter-label", "team:ops")
    await page.click("#label-form button[type=submit]")
    await expect(meta).to_have_text("Tasks 1–50 of 1000.")
    await expect(rows.first).to_contain_text("Task 000100")
    query = only_tasks_request(await settle())
    assert query["label"] == ["team:ops"]
    third = rows.nth(2)
    await expect(third).to_contain_text("Task 000300")
    await expect(third.locator(".chip")).to_have_count(2)
    await third.locator('.chip[data-label="user:ana"]').click()
    await expect(meta).to_have_text("Tasks 1–50 of 333.")
    await expect(rows.first).to_contain_text("Task 000300")
    query = only_tasks_request(await settle())
    assert query["label"] == ["team:ops", "user:ana"]
    await page.screenshot(path=shots / "labels.png", full_page=True)
    await page.locator('#label-filters .chip[data-label="team:ops"]').click()
    await expect(meta).to_have_text(f"Tasks 1–50 of {TASKS // 3}.")
    query = only_tasks_request(await settle())
    assert query["label"] == ["user:ana"]
    # A malformed filter is the API's 422, shown; the table stays as it was.
    await page.fill("#filter-label", "Bad Key:x")
    await page.click("#label-form button[type=submit]")
    await expect(page.locator("#tasks-error")).to_contain_text("422")
    await expect(page.locator("#tasks-error")).to_contain_text("label")
    await expect(page.locator('#label-filters .chip[data-label="Bad Key:x"]')).to_have_count(0)
    await expect(page.locator("#label-filters .chip")).to_have_count(1)
    await expect(meta).to_have_text(f"Tasks 1–50 of {TASKS // 3}.")
    await settle()

    assert problems == []
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "first-view.png",
        "labels.png",
        "page-2.png",
        "search-and-filter.png",
        "search.png",
    ]
    await page.close()
