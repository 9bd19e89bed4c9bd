"""``Ordinaut``: the synchronous twin of ``AsyncOrdinaut`` (httpx.Client), method for method."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from ordinaut.client import calls
from ordinaut.client.calls import Call, Id, TaskBody
from ordinaut.client.errors import AuthError, OrdinautConnectionError
from ordinaut.client.models import (
    Agent,
    AgentCreated,
    AgentSecret,
    AuditEntry,
    EventAccepted,
    FireTimes,
    FunctionInfo,
    Page,
    Run,
    RunQueued,
    Task,
    Tokens,
    ToolInfo,
    Validation,
)
from ordinaut.client.session import (
    DEFAULT_URL,
    USER_AGENT,
    Credentials,
    RetryPolicy,
    connection_message,
    normalize_url,
    read,
    should_renew,
)

T = TypeVar("T")


def paginate(fetch: Callable[[int, int], Page[T]], page_size: int = 100) -> Iterator[T]:
    """Every item of a list route, page by page: ``fetch(limit, offset)`` returns one page."""
    offset = 0
    while True:
        page = fetch(page_size, offset)
        yield from page.items
        if not page.has_more or not page.items:
            return
        offset += len(page.items)


class Ordinaut:
    """Synchronous client. Give it a ``token``, or ``agent_id`` + ``agent_secret`` (exchanged on first
    use and again once when the API answers 401), optionally a ``refresh_token``.

    >>> with Ordinaut("http://127.0.0.1:8080", token="...") as client:
    ...     task = client.create_task({...})
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        agent_id: str | None = None,
        agent_secret: str | None = None,
        refresh_token: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.base_url = normalize_url(base_url)
        self.credentials = Credentials(token, refresh_token, agent_id, agent_secret, on_tokens)
        self.retry = RetryPolicy(max_retries=max_retries, max_wait_s=max_retry_wait)
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def __enter__(self) -> Ordinaut:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def token(self) -> str | None:
        return self.credentials.token

    # --- the one place requests are sent ---------------------------------------------------

    def send(self, call: Call[T]) -> T:
        """Send one call with token renewal and bounded retries; raise the typed error."""
        if self.credentials.needs_first_token(call):
            self._renew(None)
        attempt, renewed = 0, False
        while True:
            used = self.credentials.token
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    headers=self.credentials.headers(call),
                )
            except httpx.TransportError as exc:
                wait = self.retry.after_transport_error(call, exc, attempt)
                if wait is None:
                    raise OrdinautConnectionError(connection_message(self.base_url, exc)) from exc
            else:
                if should_renew(call, response, self.credentials, renewed):
                    renewed = True
                    self._renew(used)
                    continue
                wait = self.retry.after_response(call, response, attempt)
                if wait is None:
                    return read(call, response)
            attempt += 1
            self._sleep(wait)

    def _renew(self, used: str | None) -> None:
        with self._lock:
            if self.credentials.token is not None and self.credentials.token != used:
                return  # another request renewed it while this one waited
            self._renew_locked()

    def _renew_locked(self) -> None:
        creds = self.credentials
        if creds.refresh_token:
            try:
                creds.apply(self.send(calls.refresh_token(creds.refresh_token)))
                return
            except AuthError:
                creds.refresh_token = None
                if not creds.can_exchange:
                    raise
        if creds.can_exchange:
            assert creds.agent_id is not None
            assert creds.agent_secret is not None
            creds.apply(self.send(calls.exchange_token(creds.agent_id, creds.agent_secret)))

    # --- tasks -----------------------------------------------------------------------------

    def create_task(self, task: TaskBody, *, idempotency_key: str | None = None) -> Task:
        """Create a task (201). An ``Idempotency-Key`` is sent (made here unless given), so
        retries after a lost answer return the first task instead of a second one."""
        return self.send(calls.create_task(task, idempotency_key))

    def list_tasks(
        self,
        *,
        status: str | None = None,
        schedule_kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Page[Task]:
        """One page of your tasks, newest first; ``search`` matches titles (any case),
        ``labels`` keeps the tasks carrying every one of these labels."""
        return self.send(calls.list_tasks(status, schedule_kind, limit, offset, search, labels))

    def iter_tasks(
        self,
        *,
        status: str | None = None,
        schedule_kind: str | None = None,
        search: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
    ) -> Iterator[Task]:
        """Every task of the caller, walking all pages."""
        return paginate(
            lambda limit, offset: self.list_tasks(
                status=status,
                schedule_kind=schedule_kind,
                limit=limit,
                offset=offset,
                search=search,
                labels=labels,
            ),
            page_size,
        )

    def get_task(self, task_id: Id) -> Task:
        return self.send(calls.get_task(task_id))

    def update_task(self, task_id: Id, task: TaskBody) -> Task:
        """Replace every field (PUT); re-validated, effective from the next tick."""
        return self.send(calls.replace_task(task_id, task))

    def patch_task(self, task_id: Id, changes: Mapping[str, Any]) -> Task:
        """Change only the given fields (PATCH)."""
        return self.send(calls.patch_task(task_id, changes))

    def delete_task(self, task_id: Id) -> None:
        self.send(calls.delete_task(task_id))

    def run_task_now(self, task_id: Id) -> RunQueued:
        return self.send(calls.run_task_now(task_id))

    def snooze_task(self, task_id: Id, delay_seconds: int, reason: str | None = None) -> Task:
        return self.send(calls.snooze_task(task_id, delay_seconds, reason))

    def pause_task(self, task_id: Id) -> Task:
        return self.send(calls.task_action(task_id, "pause"))

    def resume_task(self, task_id: Id) -> Task:
        return self.send(calls.task_action(task_id, "resume"))

    def cancel_task(self, task_id: Id) -> Task:
        return self.send(calls.task_action(task_id, "cancel"))

    def preview_task(
        self,
        task_id: Id,
        *,
        from_: datetime | None = None,
        until: datetime | None = None,
        limit: int = 10,
    ) -> FireTimes:
        return self.send(calls.preview_task(task_id, from_, until, limit))

    def preview_schedule(
        self,
        schedule_kind: str,
        schedule_expr: str,
        timezone: str = "UTC",
        *,
        from_: datetime | None = None,
        until: datetime | None = None,
        limit: int = 10,
    ) -> FireTimes:
        return self.send(
            calls.preview_schedule(schedule_kind, schedule_expr, timezone, from_, until, limit)
        )

    def validate_task(
        self,
        task: TaskBody | None = None,
        *,
        payload: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        sample_params: Mapping[str, Any] | None = None,
    ) -> Validation:
        """Validate a task (or only a payload) without creating it; 422 names the field."""
        return self.send(calls.validate_task(task, payload, dry_run, sample_params))

    # --- runs ------------------------------------------------------------------------------

    def list_runs(
        self,
        *,
        task_id: Id | None = None,
        status: str | None = None,
        success: bool | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
        owner: str | None = None,
    ) -> Page[Run]:
        """Runs, newest slot first; ``owner`` (admins): an agent id, or ``*`` for every agent."""
        return self.send(
            calls.list_runs(task_id, status, success, start_time, end_time, limit, offset, owner)
        )

    def iter_runs(
        self,
        *,
        task_id: Id | None = None,
        status: str | None = None,
        success: bool | None = None,
        page_size: int = 100,
    ) -> Iterator[Run]:
        return paginate(
            lambda limit, offset: self.list_runs(
                task_id=task_id, status=status, success=success, limit=limit, offset=offset
            ),
            page_size,
        )

    def get_run(self, run_id: Id) -> Run:
        """One run with its step results."""
        return self.send(calls.get_run(run_id))

    def latest_run(self, task_id: Id) -> Run:
        return self.send(calls.latest_run(task_id))

    def task_run_stats(self, task_id: Id) -> dict[str, Any]:
        return self.send(calls.task_run_stats(task_id))

    def runs_summary(self) -> dict[str, Any]:
        return self.send(calls.runs_summary())

    def retry_run(self, run_id: Id) -> Run:
        return self.send(calls.run_action(run_id, "retry"))

    def cancel_run(self, run_id: Id) -> Run:
        return self.send(calls.run_action(run_id, "cancel"))

    def wait_for_run(
        self,
        run_id: Id,
        *,
        max_wait: float | None = None,
        poll_interval: float = 0.5,
        on_update: Callable[[Run], None] | None = None,
    ) -> Run:
        """Poll a run until it finishes; ``on_update`` sees every poll. TimeoutError after
        ``max_wait`` seconds."""
        deadline = None if max_wait is None else time.monotonic() + max_wait
        while True:
            run = self.get_run(run_id)
            if on_update is not None:
                on_update(run)
            if run.finished:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {max_wait} s")
            time.sleep(poll_interval)

    # --- events ----------------------------------------------------------------------------

    def publish_event(
        self, topic: str, payload: Any = None, *, event_id: str | None = None
    ) -> EventAccepted:
        """Publish an event (202). An ``event_id`` is made here unless given; the API accepts
        an id once, so retries cannot trigger tasks twice."""
        return self.send(calls.publish_event(topic, payload, event_id))

    def event_topics(self) -> list[dict[str, Any]]:
        return self.send(calls.event_topics())

    def recent_events(self, *, topic: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.send(calls.recent_events(topic, limit))

    # --- tools, secrets, health ------------------------------------------------------------

    def list_tools(self) -> list[ToolInfo]:
        """Every pipeline tool with its input and output JSON Schemas."""
        return self.send(calls.list_tools())

    def list_functions(self) -> list[FunctionInfo]:
        """Every expression function of ``${...}`` with its signature and a true example."""
        return self.send(calls.list_functions())

    def put_secret(self, name: str, value: str) -> None:
        self.send(calls.put_secret(name, value))

    def list_secrets(self) -> list[dict[str, Any]]:
        return self.send(calls.list_secrets())

    def delete_secret(self, name: str) -> None:
        self.send(calls.delete_secret(name))

    # --- audit and the operators' view ----------------------------------------------------

    def list_audit(
        self,
        *,
        actor: Id | None = None,
        subject_type: str | None = None,
        subject_id: Id | None = None,
        action: str | None = None,
        from_: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        """Audit entries, newest first (admins: every agent's; others: their own)."""
        return self.send(
            calls.list_audit(actor, subject_type, subject_id, action, from_, until, limit, offset)
        )

    def admin_overview(self) -> dict[str, Any]:
        """Due work by state, each scheduler's last tick, each worker and its runs (admin)."""
        return self.send(calls.admin_overview())

    def health(self) -> dict[str, Any]:
        """The health document (also when it reports unhealthy with 503)."""
        return self.send(calls.health())

    def ready(self) -> bool:
        return "error" not in self.send(calls.health("/health/ready"))

    # --- agents and tokens -----------------------------------------------------------------

    def create_agent(self, name: str, scopes: list[str]) -> AgentCreated:
        return self.send(calls.create_agent(name, scopes))

    def list_agents(self, *, limit: int = 50, offset: int = 0) -> Page[Agent]:
        return self.send(calls.list_agents(limit, offset))

    def iter_agents(self, *, page_size: int = 100) -> Iterator[Agent]:
        return paginate(
            lambda limit, offset: self.list_agents(limit=limit, offset=offset), page_size
        )

    def get_agent(self, agent_id: Id) -> Agent:
        return self.send(calls.get_agent(agent_id))

    def update_agent(
        self,
        agent_id: Id,
        *,
        name: str | None = None,
        scopes: list[str] | None = None,
        is_active: bool | None = None,
    ) -> Agent:
        return self.send(calls.update_agent(agent_id, name, scopes, is_active))

    def delete_agent(self, agent_id: Id) -> None:
        self.send(calls.delete_agent(agent_id))

    def rotate_agent_secret(self, agent_id: Id) -> AgentSecret:
        return self.send(calls.rotate_agent_secret(agent_id))

    def exchange_token(self, agent_id: Id, agent_secret: str) -> Tokens:
        """Exchange an agent's id and secret for tokens; the client uses them from now on."""
        tokens = self.send(calls.exchange_token(agent_id, agent_secret))
        self.credentials.apply(tokens)
        return tokens

    def refresh_token(self, refresh_token: str | None = None) -> Tokens:
        """Rotate the refresh token (the client's own unless given); uses the new pair."""
        given = refresh_token or self.credentials.refresh_token
        if not given:
            raise ValueError("no refresh token: pass one, or exchange agent credentials first")
        tokens = self.send(calls.refresh_token(given))
        self.credentials.apply(tokens)
        return tokens

    def revoke_token(self, token: str | None = None) -> None:
        """Revoke a token and the rest of its login (the client's own unless given)."""
        given = token or self.credentials.token
        if not given:
            raise ValueError("no token to revoke")
        self.send(calls.revoke_token(given))
        if given in (self.credentials.token, self.credentials.refresh_token):
            self.credentials.token = self.credentials.refresh_token = None
