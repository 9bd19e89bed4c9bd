"""The status page in a real headless Chromium over real `ordinaut api` and `worker` processes.

Sign in with an agent id and secret (a wrong secret first), see the overview (health,
counters, what needs attention), the caller's tasks with their schedule in words and next run
and nothing of another agent's, open a task's run timeline and a run's step
results, retry a dead letter and see it requeued, sign out and back in with a token. Debian's
``chromium`` is driven by Playwright's Python package with ``executable_path``; no browser is
downloaded. Without /usr/bin/chromium or the package, the module skips and says which.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from support import eventually, fresh_database

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

REPO = Path(__file__).resolve().parents[2]
# Without the networking flags Chromium keeps dialling Google's hosts, which this sandbox
# refuses; the tests reach only 127.0.0.1.
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
WAIT_MS = 15_000


@pytest.fixture(scope="session")
async def e2e_database(servers: dict[str, str], migrated: str) -> str:
    """A database of this module's own for the processes (the e2e fixtures use this name)."""
    return await fresh_database(servers["database_url"], "ordinaut_ui")


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


def _utc(instant: str) -> str:
    """How the page prints an instant: ``2026-03-09 05:30:00 UTC``."""
    return instant.replace("T", " ").replace("Z", "")[:19] + " UTC"


def _local(instant: str, zone: str = "Europe/Chisinau") -> datetime:
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))


async def _status_is(
    http: httpx.AsyncClient, headers: dict[str, str], run_id: str, status: str
) -> bool:
    return bool((await http.get(f"/runs/{run_id}", headers=headers)).json()["status"] == status)


XSS_TITLE = '<img src=x onerror="window.__pwned=1">Broken feed'


async def test_sign_in_see_tasks_open_a_run_and_retry_a_dead_letter(
    api: dict[str, Any], processes: Any, browser: Any, tmp_path: Path
) -> None:
    # Screenshots of each view, kept as artifacts (ORDINAUT_TEST_ARTIFACTS, else pytest's
    # temporary directory, which keeps the last runs).
    shots = Path(os.environ.get("ORDINAUT_TEST_ARTIFACTS") or tmp_path) / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    # A short fixed backoff: the failing task's two attempts are over in well under a second.
    processes.start("worker", "--metrics-port", "0", ORDINAUT_BACKOFF_BASE_S="0.2")
    expect = pw.expect
    async with httpx.AsyncClient(base_url=api["base"], timeout=10) as http:
        scopes = ["tasks:read", "tasks:write", "runs:read"]
        r = await http.post(
            "/agents", headers=api["headers"], json={"name": "ui-viewer", "scopes": scopes}
        )
        assert r.status_code == 201, r.text
        agent_id, secret = r.json()["id"], r.json()["agent_secret"]
        r = await http.post(
            "/agents/auth/token", json={"agent_id": agent_id, "agent_secret": secret}
        )
        token = r.json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}

        async def create(body: dict[str, Any], headers: dict[str, str] = h) -> str:
            r = await http.post("/tasks", headers=headers, json=body)
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        briefing = await create(
            {
                "title": "Morning briefing",
                "schedule_kind": "cron",
                "schedule_expr": "30 7 * * 1-5",
                "timezone": "Europe/Chisinau",
                "labels": {"user": "ana"},
                "payload": {
                    "params": {"who": "Ana", "loud": False},
                    "pipeline": [
                        {"id": "greet", "uses": "echo", "with": {"hi": "${params.who}"}},
                        # its condition is false: a skipped step, shown as such
                        {"id": "shout", "uses": "echo", "with": {"x": 1}, "if": "${params.loud}"},
                    ],
                },
            }
        )
        # Loopback is refused by the egress policy: every attempt fails, and with one retry
        # allowed the second failure dead-letters the run.
        broken = await create(
            {
                "title": XSS_TITLE,
                "schedule_kind": "cron",
                "schedule_expr": "0 9 * * *",
                "max_retries": 1,
                "backoff_strategy": "fixed",
                "payload": {
                    "pipeline": [
                        {
                            "id": "fetch",
                            "uses": "http.request",
                            "with": {"url": "http://127.0.0.1:9/"},
                        },
                        {"id": "after", "uses": "echo", "with": {"x": 1}},
                    ]
                },
            }
        )
        await create(
            {
                "title": "Admin's own task",
                "schedule_kind": "event",
                "schedule_expr": "admin.things",
                "payload": {"pipeline": [{"id": "a", "uses": "echo", "with": {}}]},
            },
            headers=api["headers"],
        )
        ok_run = (await http.post(f"/tasks/{briefing}/run_now", headers=h)).json()["run_id"]
        dead_run = (await http.post(f"/tasks/{broken}/run_now", headers=h)).json()["run_id"]

        async def status_of(run_id: str) -> str:
            return str((await http.get(f"/runs/{run_id}", headers=h)).json()["status"])

        async def settled() -> bool:
            return (await status_of(ok_run), await status_of(dead_run)) == (
                "succeeded",
                "dead_letter",
            )

        await eventually(settled, 20, "one run succeeded and one dead-lettered", processes.logs)
        fires = (await http.get(f"/tasks/{briefing}/preview?limit=3", headers=h)).json()
        assert len(fires["fire_times"]) == 3

        page = await browser.new_page()
        page.set_default_timeout(WAIT_MS)
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        # Chromium logs every non-2xx fetch as a console error; the 401s below are expected.
        page.on(
            "console",
            lambda msg: (
                problems.append(f"console: {msg.text}")
                if msg.type == "error" and "Failed to load resource" not in msg.text
                else None
            ),
        )

        response = await page.goto(api["base"] + "/ui")
        assert response is not None
        assert response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        # The sign-in screen says where an id and a secret come from.
        hint = page.locator("#login .hint").first
        await expect(hint).to_contain_text(".ordinaut/credentials.json")
        await expect(hint).to_contain_text("ordinaut agents create NAME")

        # A wrong secret: the API's error envelope is shown, the page stays on the form.
        await page.fill("#agent-id", agent_id)
        await page.fill("#agent-secret", "not-the-secret")
        await page.click("#login-agent button[type=submit]")
        await expect(page.locator("#error")).to_contain_text(
            "Sign-in failed: 401 invalid_credentials"
        )
        await expect(page.locator("#error")).to_contain_text("request id")
        await expect(page.locator("#dashboard")).to_be_hidden()

        await page.fill("#agent-secret", secret)
        await page.click("#login-agent button[type=submit]")
        await expect(page.locator("#dashboard")).to_be_visible()
        await expect(page.locator("#error")).to_be_hidden()
        # The header names the agent (GET /agents/me), its id and scopes on hover.
        await expect(page.locator("#who")).to_have_text("signed in as ui-viewer")
        await expect(page.locator("#who")).to_have_attribute("title", re.compile(agent_id))
        await expect(page.locator("#who")).to_have_attribute("title", re.compile("runs:read"))
        stored = await page.evaluate("() => JSON.stringify(Object.entries(sessionStorage))")
        assert secret not in stored  # the secret was used once, never kept
        assert await page.evaluate("() => localStorage.length") == 0
        assert await page.evaluate("() => sessionStorage.getItem('ordinaut.token')")

        # The overview: health from /health, counters, and what needs attention.
        await expect(page.locator('#health li[data-component="database"]')).to_contain_text(
            "healthy"
        )
        await expect(page.locator('#health li[data-component="workers"]')).to_contain_text("live")
        day = page.locator('#counters tr[data-window="last day"]')
        await expect(day.locator('td[data-status="dead_letter"]')).to_have_text("1")
        await expect(day.locator('td[data-status="succeeded"]')).to_have_text("1")
        attention = page.locator(f'#attention li[data-run-id="{dead_run}"]')
        await expect(attention).to_contain_text(XSS_TITLE)
        await expect(attention).to_contain_text("egress_refused")
        await expect(page.locator(f'#attention li[data-task-id="{broken}"]')).to_contain_text(
            "last run dead-letter"
        )
        await expect(page.locator("#attention-meta")).to_contain_text(
            "1 run ended without success and has not been retried; 1 task's last run failed"
        )

        # The caller's tasks, the schedule in words, the next run in the task's zone (UTC on
        # hover), all from the one list request; nothing of the admin's.
        rows = page.locator("#tasks tbody tr")
        await expect(rows).to_have_count(2)
        good_row = page.locator(f'#tasks tr[data-task-id="{briefing}"]')
        await expect(good_row).to_contain_text("Morning briefing")
        await expect(good_row).to_contain_text("every weekday at 07:30 Europe/Chisinau")
        await expect(good_row).to_contain_text("30 7 * * 1-5")
        await expect(good_row.locator('.chip[data-label="user:ana"]')).to_have_text("user: ana")
        await expect(good_row).to_contain_text("active")
        first = fires["fire_times"][0]
        local = datetime.fromisoformat(first.replace("Z", "+00:00"))
        local = local.astimezone(ZoneInfo("Europe/Chisinau"))
        await expect(good_row.locator(".fires")).to_contain_text(f"{local:%Y-%m-%d %H:%M}")
        await expect(good_row.locator(".fires time")).to_have_attribute(
            "title", re.compile(re.escape(_utc(first)))
        )
        await expect(page.locator("#tasks")).not_to_contain_text("Admin's own task")
        # Filters ask the API (one request per view): no event tasks here, then all again.
        await page.select_option("#filter-kind", "event")
        await expect(rows).to_have_count(0)
        await expect(page.locator("#tasks-meta")).to_have_text("No tasks match these filters.")
        await page.select_option("#filter-kind", "")
        await expect(rows).to_have_count(2)
        await page.fill("#filter-search", "MORNING")
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("Morning briefing")
        await page.fill("#filter-search", "")
        await expect(rows).to_have_count(2)
        await expect(page.locator("#tasks-next")).to_be_disabled()
        # A title full of markup is shown as text, and nothing in it ran.
        bad_row = page.locator(f'#tasks tr[data-task-id="{broken}"]')
        await expect(bad_row.locator(".task-title")).to_have_text(XSS_TITLE)
        await expect(bad_row.locator(".last")).to_contain_text("dead_letter")
        await expect(bad_row.locator(".last")).to_contain_text("1 failed in 24 h")
        await expect(good_row.locator(".last")).to_contain_text("succeeded")
        await page.screenshot(path=shots / "overview-and-tasks.png", full_page=True)
        assert await page.locator("img").count() == 0
        assert await page.evaluate("() => window.__pwned") is None

        # The broken task's timeline: its dead-lettered run; then the run's step results.
        await bad_row.locator(".task-title").click()
        await expect(page.locator("#runs-section")).to_be_visible()
        await expect(page.locator("#runs-task")).to_have_text(XSS_TITLE)
        item = page.locator(f'#timeline li[data-run-id="{dead_run}"]')
        await expect(item).to_have_attribute("data-status", "dead_letter")
        # egress_refused cannot be fixed by a retry: dead-lettered on its first attempt
        await expect(item).to_contain_text("attempt 1")
        await item.get_by_role("button", name="Open").click()
        await expect(page.locator("#run-section")).to_be_visible()
        await expect(page.locator("#run-id")).to_have_text(dead_run)
        await expect(page.locator("#run-fields")).to_contain_text("dead_letter")
        first_attempt = page.locator('#attempts section[data-attempt="1"]')
        await expect(page.locator("#attempts section")).to_have_count(1)
        await expect(first_attempt).to_have_attribute("data-status", "dead_letter")
        await expect(first_attempt).to_contain_text("the final attempt")
        step = first_attempt.locator('tr[data-step-id="fetch"]')
        await expect(step).to_contain_text("http.request")
        await expect(step).to_contain_text("egress_refused")
        await expect(step).to_contain_text("input")  # the step's input, folded
        # The step after the failed one never ran: it is listed as such, not left out.
        never = first_attempt.locator('tr[data-step-id="after"]')
        await expect(never).to_contain_text("not run")
        await expect(never).to_contain_text("never ran in this attempt")
        await page.screenshot(path=shots / "run-with-steps.png", full_page=True)
        assert f"run={dead_run}" in page.url
        # The address keeps the place: a reload (same tab, same session) reopens the run.
        await page.reload()
        await expect(page.locator("#run-id")).to_have_text(dead_run)
        await expect(page.locator('#attempts tr[data-step-id="fetch"]')).to_contain_text("egress")

        # The good task's run: its next fire times (one preview, for this task), its output.
        await good_row.locator(".task-title").click()
        for instant in fires["fire_times"]:
            upcoming = page.locator(f'#runs-next li[data-fire="{instant}"]')
            await expect(upcoming).to_contain_text("upcoming")
            await expect(upcoming).to_contain_text(f"{_local(instant):%Y-%m-%d %H:%M}")
            await expect(upcoming.locator("time")).to_have_attribute(
                "title", re.compile(re.escape(_utc(instant)))
            )
        # The time axis: its run and the next fire times (upcoming) placed on it, ticks in the
        # task's zone with UTC on hover, and a legend.
        await expect(page.locator(f'#axis-track .mark[data-run-id="{ok_run}"]')).to_have_class(
            re.compile("status-succeeded")
        )
        fire_marks = page.locator("#axis-track .mark.fire.status-upcoming")
        await expect(fire_marks).to_have_count(3)
        await expect(fire_marks.first).to_have_attribute("title", re.compile("^upcoming"))
        ticks = page.locator("#axis-ticks time")
        assert await ticks.count() >= 3
        for index in range(await ticks.count()):
            tick = ticks.nth(index)
            instant = await tick.get_attribute("datetime")
            assert instant is not None
            await expect(tick).to_have_attribute("title", _utc(instant.replace(".000Z", "Z")))
            wall = _local(instant)
            text = await tick.inner_text()
            if f"{wall:%H:%M}" not in text:  # a day tick: the task zone's midnight, by date
                assert (wall.hour, wall.minute) == (0, 0), (instant, text)
                assert f"{wall.day} {wall:%b}" in text, (instant, text)
        await expect(page.locator("#axis-caption")).to_contain_text("Europe/Chisinau")
        await expect(page.locator("#legend")).to_contain_text("upcoming")
        await expect(page.locator("#legend")).to_contain_text("now")
        # Pause and resume from the task's own section; a paused task lists no next runs.
        await page.locator('#task-actions button[data-action="pause"]').click()
        await expect(page.locator("#notice")).to_contain_text("Task Morning briefing is paused.")
        await expect(good_row.locator(".fires")).to_have_text("none while paused")
        await expect(page.locator("#runs-next")).to_contain_text("No next runs while paused")
        await page.locator('#task-actions button[data-action="resume"]').click()
        await expect(page.locator("#notice")).to_contain_text("Task Morning briefing is active.")
        first_fire = fires["fire_times"][0]
        await expect(page.locator(f'#runs-next li[data-fire="{first_fire}"]')).to_contain_text(
            "upcoming"
        )
        ok_item = page.locator(f'#timeline li[data-run-id="{ok_run}"]')
        await expect(ok_item).to_have_attribute("data-status", "succeeded")
        await ok_item.get_by_role("button", name="Open").click()
        greet = page.locator('#attempts tr[data-step-id="greet"]')
        await expect(greet).to_contain_text("succeeded")
        await expect(greet).to_contain_text('"hi": "Ana"')
        shout = page.locator('#attempts tr[data-step-id="shout"]')
        await expect(shout).to_have_attribute("data-status", "skipped")
        await expect(shout).to_contain_text("skipped: its condition was false")
        await page.screenshot(path=shots / "timeline-and-skipped-step.png", full_page=True)

        # Dead letters: retry one; the page says it was requeued, and the worker runs it again.
        dead_row = page.locator(f'#dead tr[data-run-id="{dead_run}"]')
        await expect(dead_row).to_contain_text(
            "step fetch · egress_refused: refused to connect to 127.0.0.1: loopback address"
        )
        await dead_row.get_by_role("button", name="Retry").click()
        await expect(page.locator("#notice")).to_contain_text(f"Run {dead_run} of")
        await expect(page.locator("#notice")).to_contain_text("requeued: status queued")
        await page.screenshot(path=shots / "dead-letter-retried.png", full_page=True)

        async def retried() -> bool:
            run = (await http.get(f"/runs/{dead_run}", headers=h)).json()
            return bool(run["attempt"] > 1)

        await eventually(retried, 20, "the requeued run's next attempt", processes.logs)
        await eventually(
            lambda: _status_is(http, h, dead_run, "dead_letter"),
            20,
            "the retried run dead-lettered again",
            processes.logs,
        )
        # Both attempts, each with its own steps and error, the first one retried by hand.
        await page.click("#refresh")
        await (
            page.locator(f'#dead tr[data-run-id="{dead_run}"]')
            .get_by_role("button", name="Open")
            .click()
        )
        sections = page.locator("#attempts section")
        await expect(sections).to_have_count(2)
        await expect(sections.nth(0)).to_have_attribute("data-attempt", "1")
        await expect(sections.nth(0)).to_contain_text("ended and was retried")
        await expect(sections.nth(1)).to_have_attribute("data-attempt", "2")
        await expect(sections.nth(1)).to_contain_text("the final attempt")
        for index in range(2):
            await expect(sections.nth(index).locator('tr[data-step-id="fetch"]')).to_contain_text(
                "egress_refused"
            )
            await expect(sections.nth(index).locator('tr[data-step-id="after"]')).to_contain_text(
                "never ran in this attempt"
            )
        await expect(page.locator("#attempts-meta")).to_contain_text("2 attempts, oldest first")
        await page.screenshot(path=shots / "run-attempts.png", full_page=True)

        # Sign out; a bad token is refused with the API's message; a good one signs in.
        await page.click("#logout")
        await expect(page.locator("#login")).to_be_visible()
        assert await page.evaluate("() => sessionStorage.getItem('ordinaut.token')") is None
        await page.fill("#token", "not-a-token")
        await page.click("#login-token button[type=submit]")
        await expect(page.locator("#error")).to_contain_text(
            "401 invalid_token: invalid, expired or revoked token"
        )
        await page.fill("#token", token)
        await page.click("#login-token button[type=submit]")
        await expect(page.locator("#tasks tbody tr")).to_have_count(2)

        assert problems == []
        assert sorted(p.name for p in shots.glob("*.png")) == [
            "dead-letter-retried.png",
            "overview-and-tasks.png",
            "run-attempts.png",
            "run-with-steps.png",
            "timeline-and-skipped-step.png",
        ]
        await page.close()
