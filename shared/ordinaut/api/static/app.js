// Ordinaut status page: plain JavaScript over the public REST API, no dependencies.
//
// Every value that comes from the API reaches the page as text (textContent, Node.append of
// strings, attribute values of fixed attribute names); nothing is parsed as HTML. The page's
// Content-Security-Policy requires Trusted Types, so handing a string of markup to an HTML
// sink would throw instead of rendering.
"use strict";

(() => {
  const BASE = (document.querySelector('meta[name="ordinaut-base"]') || {}).content || "";
  const TOKEN_KEY = "ordinaut.token";
  const WHO_KEY = "ordinaut.who";
  const AUTO_KEY = "ordinaut.auto";
  const AUTO_REFRESH_MS = 5000;
  const TASK_LIMIT = 50; // one page of the task table: one request, however many tasks exist
  const TITLE_LOOKUPS = 50; // tasks fetched one by one for their titles, at most, per view
  const RUN_LIMIT = 50;
  const DEAD_LIMIT = 100;
  const PREVIEW_COUNT = 3;
  const ATTENTION_LIMIT = 20;
  const WINDOWS = [
    ["last hour", 3600e3],
    ["last day", 86400e3],
  ];
  const COUNTED = ["succeeded", "failed", "dead_letter"];
  const TEXT_CAP = 4000;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  const $ = (id) => document.getElementById(id);
  const state = {
    tasks: new Map(), // the task table's page
    known: new Map(), // every task seen (for titles elsewhere on the page)
    filter: { search: "", status: "", kind: "", labels: [], offset: 0 },
    searchTimer: null,
    taskSeq: 0,
    taskId: null,
    runId: null,
    timer: null,
    loading: false,
    again: false,
  };

  // --- the API --------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, requestId, details, doc) {
      super(message);
      this.status = status;
      this.code = code;
      this.requestId = requestId;
      this.details = details;
      this.doc = doc || null; // the whole answer (GET /health answers 503 with its document)
    }
  }

  async function api(method, path, body, { auth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (auth) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (!token) throw new ApiError(401, "unauthorized", "not signed in", null, null);
      headers.Authorization = "Bearer " + token;
    }
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(BASE + path, init);
    } catch (exc) {
      throw new ApiError(0, "network_error", "cannot reach the API (" + exc.message + ")");
    }
    const text = await response.text();
    let doc = null;
    if (text) {
      try {
        doc = JSON.parse(text);
      } catch (_) {
        doc = null;
      }
    }
    if (!response.ok) {
      const err = (doc && typeof doc.error === "object" && doc.error) || {};
      throw new ApiError(
        response.status,
        typeof err.code === "string" ? err.code : "http_" + response.status,
        typeof err.message === "string" ? err.message : response.statusText || "request failed",
        (doc && doc.request_id) || response.headers.get("X-Request-ID"),
        err.details === undefined ? null : err.details,
        doc,
      );
    }
    return doc;
  }

  // A query string; an array value repeats its parameter (label=a:1&label=b:2).
  const q = (params) => {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (Array.isArray(v)) for (const item of v) s.append(k, item);
      else if (v !== null && v !== undefined) s.set(k, v);
    }
    return s.toString();
  };
  const seg = (id) => encodeURIComponent(String(id));

  // --- DOM helpers (text only) ----------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const clear = (node) => node.replaceChildren();

  function capped(text) {
    return text.length > TEXT_CAP ? text.slice(0, TEXT_CAP) + " … (cut)" : text;
  }

  function json(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") return capped(value);
    try {
      return capped(JSON.stringify(value, null, 2));
    } catch (_) {
      return String(value);
    }
  }

  function describe(error) {
    if (!(error instanceof ApiError)) return String((error && error.message) || error);
    const head = (error.status ? error.status + " " : "") + error.code + ": " + error.message;
    const parts = [head];
    if (Array.isArray(error.details)) {
      for (const d of error.details.slice(0, 10)) {
        if (d && typeof d === "object" && d.message) {
          parts.push((d.field ? d.field + ": " : "") + d.message);
        }
      }
    }
    if (error.requestId) parts.push("request id " + error.requestId);
    return parts.join(" — ");
  }

  function show(node, message) {
    node.textContent = message || "";
    node.hidden = !message;
  }

  function notify(message) {
    show($("notice"), message);
  }

  function fail(box, error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut("Your session ended (" + describe(error) + "). Sign in again.");
      return;
    }
    show(box, describe(error));
  }

  // A run's error as one line: "step fetch · egress_refused: refused to connect ...".
  function errorLine(error) {
    if (!error || typeof error !== "object" || Array.isArray(error)) return json(error);
    const where = [error.step ? "step " + error.step : null, error.code || null].filter(Boolean);
    const message = error.message === undefined ? json(error) : String(error.message);
    return (where.length ? where.join(" · ") + ": " : "") + message;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function utc(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return (
      d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC"
    );
  }

  function relative(iso) {
    const ms = new Date(iso).getTime() - Date.now();
    if (Number.isNaN(ms)) return "";
    const abs = Math.abs(ms);
    const [n, unit] =
      abs < 60e3 ? [Math.round(abs / 1e3), "s"]
      : abs < 3600e3 ? [Math.round(abs / 60e3), "min"]
      : abs < 48 * 3600e3 ? [Math.round(abs / 3600e3), "h"]
      : [Math.round(abs / 86400e3), "d"];
    return ms >= 0 ? "in " + n + " " + unit : n + " " + unit + " ago";
  }

  function time(iso) {
    if (!iso) return el("span", { class: "muted" }, "—");
    const local = new Date(iso).toLocaleString();
    return el("time", { datetime: iso, title: local + " (" + relative(iso) + ")" }, utc(iso));
  }

  // An instant as wall time in a task's zone ("Tue 2026-03-03 08:00 EET"); UTC on hover.
  function zoned(iso, zone) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    try {
      const parts = {};
      const format = new Intl.DateTimeFormat("en-GB", {
        timeZone: zone || "UTC",
        weekday: "short",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
        timeZoneName: "short",
      });
      for (const part of format.formatToParts(d)) parts[part.type] = part.value;
      return (
        parts.weekday + " " + parts.year + "-" + parts.month + "-" + parts.day + " " +
        parts.hour + ":" + parts.minute + " " + parts.timeZoneName
      );
    } catch (_) {
      return utc(iso); // a zone this browser does not know
    }
  }

  function zonedTime(iso, zone) {
    if (!iso) return el("span", { class: "muted" }, "—");
    return el("time", { datetime: iso, title: utc(iso) + " (" + relative(iso) + ")" }, zoned(iso, zone));
  }

  function badge(status) {
    const s = String(status || "unknown");
    return el("span", { class: "badge status-" + s.replace(/[^a-z_]/g, "") }, s);
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  }

  function taskLabel(taskId) {
    const task = state.known.get(taskId);
    return task ? task.title : taskId;
  }

  // Titles of tasks that are not on the table's page (a dead letter of an older task), fetched
  // once each and kept; a task deleted meanwhile is shown as such.
  async function ensureTasks(ids) {
    const missing = [...new Set(ids)].filter((id) => id && !state.known.has(id));
    await Promise.all(
      missing.slice(0, TITLE_LOOKUPS).map(async (id) => {
        try {
          state.known.set(id, await api("GET", "/tasks/" + seg(id)));
        } catch (error) {
          if (error instanceof ApiError && error.status === 404) {
            state.known.set(id, { id, title: "(deleted task)", status: "deleted" });
          } else if (error instanceof ApiError && error.status === 401) {
            throw error;
          }
        }
      }),
    );
  }

  // --- where we are (kept in the address fragment: #task=ID&run=ID) ---------------------

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const task = params.get("task");
    const run = params.get("run");
    state.taskId = task && UUID.test(task) ? task : null;
    state.runId = run && UUID.test(run) ? run : null;
  }

  function writeHash() {
    const fragment = q({ task: state.taskId, run: state.runId });
    history.replaceState(null, "", fragment ? "#" + fragment : location.pathname);
  }

  // --- signing in and out ---------------------------------------------------------------

  function signedIn() {
    return Boolean(sessionStorage.getItem(TOKEN_KEY));
  }

  function enter(token, who) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(WHO_KEY, who);
    $("agent-secret").value = "";
    $("token").value = "";
    show($("error"), "");
    render();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(WHO_KEY);
    stopAuto();
    state.tasks.clear();
    state.known.clear();
    render();
    notify("");
    show($("error"), message || "");
  }

  async function loginWithSecret(event) {
    event.preventDefault();
    const agentId = $("agent-id").value.trim();
    const secret = $("agent-secret").value;
    show($("error"), "");
    try {
      const doc = await api(
        "POST", "/agents/auth/token", { agent_id: agentId, agent_secret: secret }, { auth: false },
      );
      enter(doc.access_token, "agent " + agentId);
    } catch (error) {
      show($("error"), "Sign-in failed: " + describe(error));
    }
  }

  async function loginWithToken(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    show($("error"), "");
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      await api("GET", "/tasks?" + q({ limit: 1 }));
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401 || error.status === 0) {
        sessionStorage.removeItem(TOKEN_KEY);
        show($("error"), "Sign-in failed: " + describe(error));
        return;
      }
      // 403: a valid token without tasks:read may still read runs; the sections say so.
    }
    enter(token, "token …" + token.slice(-6));
  }

  // --- tasks ----------------------------------------------------------------------------

  function schedule(task) {
    // The API's words (the CLI's and MCP's); the expression itself below, for the exact rule.
    const words = task.schedule_text || task.schedule_kind + " " + task.schedule_expr;
    return el(
      "span",
      {},
      el("span", { class: "words" }, words),
      el(
        "div",
        { class: "muted small" },
        el("span", { class: "kind" }, task.schedule_kind),
        " ",
        el("code", {}, task.schedule_expr),
        " · " + (task.timezone || "UTC"),
      ),
    );
  }

  // The next run from the task's own next_run_at: one request for the whole table, never one
  // per row. A paused or finished task shows none (its schedule stays, nothing will run).
  function nextCell(task) {
    const cell = el("td", { class: "fires" });
    if (task.schedule_kind === "event") {
      cell.append(el("span", { class: "muted" }, "on event " + task.schedule_expr));
    } else if (task.schedule_kind === "condition") {
      cell.append(el("span", { class: "muted" }, "when its condition turns true"));
    } else if (task.status !== "active") {
      cell.append(el("span", { class: "muted" }, "none while " + task.status));
    } else if (!task.next_run_at) {
      cell.append(el("span", { class: "muted" }, "no further fire times"));
    } else {
      cell.append(zonedTime(task.next_run_at, task.timezone));
    }
    return cell;
  }

  // How the task last went, from the list itself: the latest finished run and the failures
  // of the last 24 hours.
  function lastCell(task) {
    const cell = el("td", { class: "last" });
    if (!task.last_run_status) {
      cell.append(el("span", { class: "muted" }, "no runs yet"));
    } else {
      cell.append(badge(task.last_run_status), " ", zonedTime(task.last_run_at, task.timezone));
    }
    if (task.failures_24h) {
      cell.append(el("div", { class: "error-inline small" }, task.failures_24h + " failed in 24 h"));
    }
    return cell;
  }

  // One request per view of the table (first view, search, filter, page), whatever the number
  // of tasks: the list answer carries each row's last run, failures and next run.
  async function loadTasks() {
    const box = $("tasks-error");
    const seq = ++state.taskSeq;
    try {
      const f = state.filter;
      const doc = await api(
        "GET",
        "/tasks?" +
          q({
            limit: TASK_LIMIT,
            offset: f.offset,
            status: f.status || null,
            schedule_kind: f.kind || null,
            search: f.search || null,
            label: f.labels,
          }),
      );
      if (seq !== state.taskSeq) return true; // a newer view was asked for meanwhile
      show(box, "");
      state.tasks = new Map(doc.items.map((t) => [t.id, t]));
      for (const task of doc.items) state.known.set(task.id, task);
      $("tasks-prev").disabled = f.offset === 0;
      $("tasks-next").disabled = !doc.has_more;
      const body = $("tasks").tBodies[0];
      clear(body);
      for (const task of doc.items) {
        const open = () => selectTask(task.id);
        body.append(
          el(
            "tr",
            { "data-task-id": task.id, class: task.id === state.taskId ? "selected" : null },
            el(
              "td",
              {},
              el("button", { type: "button", class: "link task-title", onclick: open }, task.title),
              task.description ? el("div", { class: "muted small" }, task.description) : null,
              labelChips(task.labels),
            ),
            el("td", {}, schedule(task)),
            el("td", {}, badge(task.status)),
            nextCell(task),
            lastCell(task),
            el("td", {}, el("button", { type: "button", onclick: open }, "Runs")),
          ),
        );
      }
      renderLabelFilters();
      const filtered = f.status || f.kind || f.search || f.labels.length;
      $("tasks-meta").textContent =
        doc.total === 0
          ? filtered ? "No tasks match these filters." : "No tasks yet."
          : doc.total > doc.items.length
            ? "Tasks " + (f.offset + 1) + "–" + (f.offset + doc.items.length) + " of " + doc.total + "."
            : doc.total + (doc.total === 1 ? " task." : " tasks.");
      return true;
    } catch (error) {
      fail(box, error);
      return false;
    }
  }

  // --- labels: chips on each task; a chip, or key:value typed in, filters the table --------

  const LABEL_FILTERS = 16; // the API's bound on label= parameters

  function labelChips(labels) {
    const entries = labels && typeof labels === "object" ? Object.entries(labels) : [];
    if (!entries.length) return null;
    return el(
      "div",
      { class: "chips" },
      entries.map(([key, value]) =>
        el(
          "button",
          {
            type: "button",
            class: "chip",
            "data-label": key + ":" + value,
            title: "show only tasks labelled " + key + ":" + value,
            onclick: () => addLabelFilter(key + ":" + value),
          },
          key + ": " + value,
        ),
      ),
    );
  }

  function addLabelFilter(text) {
    const f = state.filter;
    const colon = text.indexOf(":");
    if (colon < 1) {
      show($("tasks-error"), "A label filter is key:value (for example user:ana).");
      return;
    }
    if (f.labels.includes(text)) return;
    if (f.labels.length >= LABEL_FILTERS) {
      show($("tasks-error"), "At most " + LABEL_FILTERS + " label filters.");
      return;
    }
    const before = { ...f };
    f.labels = [...f.labels, text];
    f.offset = 0;
    renderLabelFilters();
    // A filter the API refuses (422 naming query.label) is dropped again; its error stays.
    loadTasks().then((ok) => {
      if (!ok && state.filter.labels.includes(text)) {
        state.filter = before;
        renderLabelFilters();
      }
    });
  }

  function removeLabelFilter(text) {
    state.filter.labels = state.filter.labels.filter((l) => l !== text);
    state.filter.offset = 0;
    renderLabelFilters();
    loadTasks();
  }

  function renderLabelFilters() {
    $("label-filters").replaceChildren(
      ...state.filter.labels.map((text) =>
        el(
          "button",
          {
            type: "button",
            class: "chip active",
            "data-label": text,
            title: "remove this filter",
            onclick: () => removeLabelFilter(text),
          },
          text,
          " ×",
        ),
      ),
    );
  }

  // A queued run whose slot is still ahead is upcoming, not waiting for a worker.
  function shownStatus(run) {
    const ahead = new Date(run.scheduled_for).getTime() > Date.now();
    return run.status === "queued" && ahead ? "upcoming" : run.status;
  }

  // --- what a person does to a task: pause, resume, run now, cancel, delete ---------------

  const TASK_ACTIONS = [
    ["pause", "Pause", (t) => t.status === "active"],
    ["resume", "Resume", (t) => t.status === "paused"],
    ["run_now", "Run now", (t) => t.status !== "canceled"],
    ["cancel", "Cancel task", (t) => t.status === "active" || t.status === "paused"],
    ["delete", "Delete", () => true],
  ];

  function taskActions(task) {
    const box = $("task-actions");
    clear(box);
    if (!task) return;
    for (const [action, label, allowed] of TASK_ACTIONS) {
      if (!allowed(task)) continue;
      const button = el(
        "button",
        { type: "button", "data-action": action, class: action === "delete" ? "danger" : null },
        label,
      );
      button.addEventListener("click", () => taskAction(task, action, button));
      box.append(button);
    }
  }

  async function taskAction(task, action, button) {
    const box = $("runs-error");
    if (action === "delete" || action === "cancel") {
      const what =
        action === "delete"
          ? "Delete the task “" + task.title + "” and all its runs? This cannot be undone."
          : "Cancel the task “" + task.title + "” for good? Its queued runs are canceled.";
      if (!window.confirm(what)) return;
    }
    button.disabled = true;
    try {
      if (action === "delete") {
        await api("DELETE", "/tasks/" + seg(task.id));
        notify("Deleted task " + task.title + ".");
        state.taskId = null;
        state.runId = null;
        writeHash();
      } else if (action === "run_now") {
        const queued = await api("POST", "/tasks/" + seg(task.id) + "/run_now");
        notify("Queued run " + queued.run_id + " of " + task.title + ".");
      } else {
        const changed = await api("POST", "/tasks/" + seg(task.id) + "/" + action);
        notify("Task " + task.title + " is " + changed.status + ".");
      }
      show(box, "");
      await refresh();
    } catch (error) {
      button.disabled = false;
      fail(box, error);
    }
  }

  // --- the run timeline of one task -----------------------------------------------------

  function selectTask(taskId) {
    state.taskId = taskId;
    state.runId = null;
    writeHash();
    for (const row of $("tasks").tBodies[0].rows) {
      row.classList.toggle("selected", row.dataset.taskId === taskId);
    }
    $("run-section").hidden = true;
    loadRuns();
  }

  async function loadRuns() {
    const section = $("runs-section");
    if (!state.taskId) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const box = $("runs-error");
    try {
      await ensureTasks([state.taskId]);
    } catch (error) {
      return fail(box, error);
    }
    const task = state.known.get(state.taskId);
    $("runs-task").textContent = taskLabel(state.taskId);
    taskActions(task);
    // The runs and the schedule's next fire times together: the axis spans both.
    const [doc, fires] = await Promise.all([
      api("GET", "/runs?" + q({ task_id: state.taskId, limit: RUN_LIMIT })).catch((e) => e),
      loadNext(task),
    ]);
    if (doc instanceof Error) return fail(box, doc);
    show(box, "");
    const zone = (task && task.timezone) || "UTC";
    drawAxis(doc.items, fires, zone);
    const list = $("timeline");
    clear(list);
    for (const run of doc.items) {
      const shown = shownStatus(run);
      list.append(
        el(
          "li",
          {
            "data-run-id": run.id,
            "data-status": run.status,
            "data-shown": shown,
            class: run.id === state.runId ? "selected" : null,
          },
          badge(shown),
          " ",
          zonedTime(run.scheduled_for, zone),
          el(
            "span",
            { class: "muted" },
            shown === "upcoming"
              ? " · upcoming, due " + relative(run.scheduled_for) + " · " + run.trigger
              : " · attempt " + run.attempt + " · " + run.trigger + " · " + duration(run.duration_ms),
          ),
          " ",
          el("button", { type: "button", class: "link", onclick: () => selectRun(run.id) }, "Open"),
        ),
      );
    }
    $("runs-meta").textContent =
      doc.total === 0
        ? "No runs yet."
        : "Newest first; " + doc.items.length + " of " + doc.total + " runs.";
  }

  // --- the time axis: runs and next fire times at their instants ------------------------

  // Tick spacings in minutes; the first that gives at most AXIS_TICKS ticks is used.
  const AXIS_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 43200];
  const AXIS_TICKS = 7;
  const DAY_MS = 86400e3;

  // The zone's offset from UTC at an instant (wall time minus UTC), in ms; 0 for an unknown zone.
  function zoneOffset(ms, zone) {
    try {
      const parts = {};
      const format = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      });
      for (const part of format.formatToParts(new Date(ms))) parts[part.type] = part.value;
      const wall = Date.UTC(
        +parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second,
      );
      return wall - Math.floor(ms / 1000) * 1000;
    } catch (_) {
      return 0;
    }
  }

  // Ticks at round wall times of the task's zone (whole hours there, midnights there; the
  // offset at the start of the axis, so across a DST change a tick may sit an hour off round,
  // while its label, from Intl, stays true).
  function axisTicks(min, max, zone) {
    const span = max - min;
    const minutes = AXIS_STEPS.find((m) => span / (m * 60e3) <= AXIS_TICKS) || AXIS_STEPS.at(-1);
    const step = minutes * 60e3;
    const offset = zoneOffset(min, zone);
    const ticks = [];
    for (let t = Math.ceil((min + offset) / step) * step - offset; t <= max; t += step) {
      ticks.push(t);
    }
    return { ticks, step };
  }

  function tickLabel(ms, step, zone, withDay) {
    const options = { timeZone: zone };
    if (step >= DAY_MS) Object.assign(options, { weekday: "short", day: "numeric", month: "short" });
    else {
      Object.assign(options, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
      if (withDay) Object.assign(options, { weekday: "short", day: "numeric", month: "short" });
    }
    try {
      return new Intl.DateTimeFormat("en-GB", options).format(new Date(ms));
    } catch (_) {
      return utc(new Date(ms).toISOString());
    }
  }

  function dayOf(ms, zone) {
    return Math.floor((ms + zoneOffset(ms, zone)) / DAY_MS);
  }

  function place(node, ms, min, span) {
    node.style.left = (((ms - min) / span) * 100).toFixed(3) + "%";
    return node;
  }

  function drawAxis(runs, fires, zone) {
    const track = $("axis-track");
    const scale = $("axis-ticks");
    clear(track);
    clear(scale);
    const now = Date.now();
    const slots = new Set(runs.map((r) => new Date(r.scheduled_for).getTime()));
    const upcoming = fires.map((f) => new Date(f).getTime()).filter((t) => !slots.has(t));
    const instants = [...slots, ...upcoming, now].filter((t) => !Number.isNaN(t));
    let min = Math.min(...instants);
    let max = Math.max(...instants);
    if (max - min < 60e3) {
      min -= 30 * 60e3;
      max += 30 * 60e3;
    }
    const pad = (max - min) * 0.03;
    min -= pad;
    max += pad;
    const span = max - min;
    const { ticks, step } = axisTicks(min, max, zone);
    let lastDay = null;
    for (const t of ticks) {
      const iso = new Date(t).toISOString();
      const day = dayOf(t, zone);
      const label = tickLabel(t, step, zone, lastDay === null || day !== lastDay);
      lastDay = day;
      scale.append(
        place(el("time", { class: "axis-tick", datetime: iso, title: utc(iso) }, label), t, min, span),
      );
    }
    track.append(place(el("span", { class: "mark-now", title: "now · " + utc(new Date(now).toISOString()) }), now, min, span));
    for (const run of runs.slice().reverse()) {
      const shown = shownStatus(run);
      const at = new Date(run.scheduled_for).getTime();
      const title = shown + " · " + zoned(run.scheduled_for, zone) + " (" + utc(run.scheduled_for) + ")";
      track.append(
        place(
          el("button", {
            type: "button",
            class: "mark status-" + shown.replace(/[^a-z_]/g, ""),
            title,
            "aria-label": title,
            "data-run-id": run.id,
            onclick: () => selectRun(run.id),
          }),
          at,
          min,
          span,
        ),
      );
    }
    for (const t of upcoming) {
      const iso = new Date(t).toISOString();
      const title = "upcoming (next fire time) · " + zoned(iso, zone) + " (" + utc(iso) + ")";
      track.append(
        place(el("span", { class: "mark fire status-upcoming", title, "data-fire": iso }), t, min, span),
      );
    }
    $("axis-caption").textContent =
      runs.length + (runs.length === 1 ? " run" : " runs") +
      (upcoming.length ? " and " + upcoming.length + " next fire times" : "") +
      " at their scheduled times; the axis is in " + zone + " (hover a time for UTC).";
  }

  // The schedule's next fire times (one preview request for this task), listed as upcoming;
  // returns them for the axis. A paused or finished task has none.
  async function loadNext(task) {
    const next = $("runs-next");
    $("runs-schedule").textContent = task ? task.schedule_text || "" : "";
    if (!task || task.schedule_kind === "event" || task.schedule_kind === "condition") {
      clear(next);
      return [];
    }
    if (task.status !== "active") {
      next.replaceChildren(el("span", { class: "muted" }, "No next runs while " + task.status + "."));
      return [];
    }
    try {
      const doc = await api("GET", "/tasks/" + seg(task.id) + "/preview?" + q({ limit: PREVIEW_COUNT }));
      const times = (doc && doc.fire_times) || [];
      next.replaceChildren(
        times.length
          ? el(
              "ul",
              { class: "plain" },
              times.map((t) =>
                el("li", { "data-fire": t }, badge("upcoming"), " ", zonedTime(t, task.timezone), " · ", relative(t)),
              ),
            )
          : el("span", { class: "muted" }, "No further fire times."),
      );
      return times;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) fail($("runs-error"), error);
      else next.replaceChildren(el("span", { class: "error-inline" }, describe(error)));
      return [];
    }
  }

  // --- one run: every attempt and every step of each ------------------------------------

  function selectRun(runId) {
    state.runId = runId;
    writeHash();
    for (const item of $("timeline").children) {
      item.classList.toggle("selected", item.dataset.runId === runId);
    }
    loadRun();
  }

  function field(list, name, value) {
    list.append(el("dt", {}, name), el("dd", {}, value));
  }

  async function loadRun() {
    const section = $("run-section");
    if (!state.runId) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    $("run-id").textContent = state.runId;
    const box = $("run-error");
    try {
      const [run, history] = await Promise.all([
        api("GET", "/runs/" + seg(state.runId)),
        api("GET", "/runs/" + seg(state.runId) + "/attempts"),
      ]);
      await ensureTasks([run.task_id]);
      show(box, "");
      const task = state.known.get(run.task_id);
      const zone = (task && task.timezone) || "UTC";
      const fields = $("run-fields");
      clear(fields);
      field(fields, "Status", badge(shownStatus(run)));
      field(fields, "Task", taskLabel(run.task_id));
      field(fields, "Trigger", run.trigger + (run.event_id ? " (event " + run.event_id + ")" : ""));
      field(fields, "Attempt", String(run.attempt));
      field(fields, "Scheduled for", zonedTime(run.scheduled_for, zone));
      field(fields, "Started", zonedTime(run.started_at, zone));
      field(fields, "Finished", zonedTime(run.finished_at, zone));
      field(fields, "Duration", duration(run.duration_ms));
      if (run.finished_at && run.error !== null && run.error !== undefined) {
        field(fields, "Error", el("span", { class: "error-inline" }, capped(errorLine(run.error))));
      }
      if (run.output !== null && run.output !== undefined) {
        field(fields, "Output", el("pre", {}, json(run.output)));
      }
      const actions = $("run-actions");
      clear(actions);
      if (run.status === "failed" || run.status === "dead_letter") {
        actions.append(retryButton(run.id, box));
      }
      const attempts = history.attempts || [];
      const missing = run.attempt - attempts.length;
      $("attempts-meta").textContent =
        (attempts.length === 1 ? "One attempt." : attempts.length + " attempts, oldest first.") +
        (missing > 0 ? " " + missing + " earlier attempt(s) ended before attempts were recorded." : "") +
        " Steps that never ran are taken from the task's current pipeline.";
      $("attempts").replaceChildren(...attempts.map((a) => attemptSection(a, run, task, zone)));
    } catch (error) {
      fail(box, error);
    }
  }

  function attemptSection(attempt, run, task, zone) {
    const status = attempt.current ? shownStatus(run) : attempt.status;
    const heading = el(
      "h4",
      {},
      "Attempt " + attempt.attempt + " ",
      badge(status),
      el(
        "span",
        { class: "muted small" },
        attempt.current
          ? run.finished_at ? " · the final attempt" : " · the current attempt"
          : " · ended and was retried",
      ),
    );
    const when = attempt.started_at
      ? el(
          "p",
          { class: "small muted" },
          "started ",
          zonedTime(attempt.started_at, zone),
          attempt.finished_at ? " · ended " : "",
          attempt.finished_at ? zonedTime(attempt.finished_at, zone) : "",
          " · " + duration(attempt.duration_ms),
          attempt.worker_id ? " · worker " + attempt.worker_id : "",
        )
      : el(
          "p",
          { class: "small muted" },
          status === "upcoming" || status === "queued" ? "not started yet" : "it never started",
        );
    const error =
      attempt.error === null || attempt.error === undefined
        ? null
        : el("p", { class: "error-inline" }, capped(errorLine(attempt.error)));
    const body = el("tbody");
    const steps = attempt.step_results || [];
    const unrun = stepsNeverRun(task, attempt, status, steps);
    if (!steps.length && !unrun.length) {
      body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No step results.")));
    }
    steps.forEach((step, index) => body.append(stepRow(step, index)));
    const why = attempt.finished_at
      ? "never ran in this attempt (the attempt ended before it)"
      : attempt.started_at
        ? "not reached yet"
        : "not started yet";
    unrun.forEach((step, index) => {
      body.append(
        el(
          "tr",
          { "data-step-id": String(step.id), class: "never-ran" },
          el("td", {}, String(steps.length + index + 1)),
          el("td", {}, el("code", {}, String(step.id))),
          el("td", {}, step.uses === undefined ? "" : String(step.uses)),
          el("td", {}, badge("not run")),
          el("td", {}, "—"),
          el("td", { class: "muted" }, why),
        ),
      );
    });
    return el(
      "section",
      {
        class: "attempt" + (attempt.current ? " current" : ""),
        "data-attempt": String(attempt.attempt),
        "data-status": status,
      },
      heading,
      when,
      error,
      el(
        "table",
        { class: "grid steps" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ["#", "Step", "Tool", "Status", "Time", "Input, output, error"].map((h) => el("th", {}, h)),
          ),
        ),
        body,
      ),
    );
  }

  function stepRow(step, index) {
    const failed = step.error !== null && step.error !== undefined;
    const hasOutput = step.output !== null && step.output !== undefined;
    const hasInput = step.input !== null && step.input !== undefined;
    return el(
      "tr",
      { "data-step-id": step.id === undefined ? null : String(step.id), "data-status": step.status },
      el("td", {}, String(index + 1)),
      el("td", {}, el("code", {}, step.id === undefined ? "?" : String(step.id))),
      el("td", {}, step.uses === undefined ? "" : String(step.uses)),
      el("td", {}, badge(step.status), step.attempts > 1 ? el("div", { class: "small muted" }, step.attempts + " tries") : null),
      el("td", {}, duration(step.duration_ms)),
      el(
        "td",
        {},
        failed ? el("pre", { class: "error-inline" }, json(step.error)) : null,
        hasOutput ? el("pre", { class: "output" }, json(step.output)) : null,
        step.status === "skipped" ? el("span", { class: "muted" }, "skipped: its condition was false") : null,
        !failed && !hasOutput && step.status !== "skipped" ? el("span", { class: "muted" }, "no output") : null,
        hasInput ? el("details", {}, el("summary", {}, "input"), el("pre", {}, json(step.input))) : null,
      ),
    );
  }

  // Steps of the task's (current) pipeline with no result in this attempt: the attempt ended
  // before them, or has not got there yet. Skipped steps have a result of their own.
  function stepsNeverRun(task, attempt, status, steps) {
    const pipeline = task && task.payload && Array.isArray(task.payload.pipeline)
      ? task.payload.pipeline
      : [];
    if (status === "skipped" || (status === "canceled" && !steps.length)) return [];
    const seen = new Set(steps.map((s) => String(s.id)));
    return pipeline.filter((s) => s && s.id !== undefined && !seen.has(String(s.id)));
  }

  // --- dead letters and retry -----------------------------------------------------------

  function retryButton(runId, box) {
    const button = el("button", { type: "button", class: "retry", "data-run-id": runId }, "Retry");
    button.addEventListener("click", () => retry(runId, button, box));
    return button;
  }

  async function retry(runId, button, box) {
    button.disabled = true;
    try {
      const run = await api("POST", "/runs/" + seg(runId) + "/retry");
      show(box, "");
      notify(
        "Run " + run.id + " of " + taskLabel(run.task_id) + " requeued: status " + run.status +
          ", attempt " + run.attempt + ".",
      );
      await refresh();
    } catch (error) {
      button.disabled = false;
      fail(box, error);
    }
  }

  async function retryAll(runIds, button, box) {
    if (!window.confirm("Requeue " + runIds.length + " dead-lettered run(s) now?")) return;
    button.disabled = true;
    let done = 0;
    const failures = [];
    for (const runId of runIds) {
      try {
        await api("POST", "/runs/" + seg(runId) + "/retry");
        done += 1;
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) return fail(box, error);
        failures.push(runId + ": " + describe(error));
      }
    }
    show(box, failures.length ? "Not requeued: " + failures.join("; ") : "");
    notify("Requeued " + done + " of " + runIds.length + " dead-lettered runs.");
    await refresh();
  }

  // The dead letters card, from the same answer as "needs attention" (titles included: no
  // lookup per row).
  function renderDead(attention) {
    const box = $("dead-error");
    const items = attention.dead_letters;
    const total = attention.dead_letters_total;
    show(box, "");
    const body = $("dead").tBodies[0];
    clear(body);
    for (const run of items) {
      const message = errorLine(run.error);
      body.append(
        el(
          "tr",
          { "data-run-id": run.id },
          el("td", {}, run.task_title || taskLabel(run.task_id)),
          el("td", {}, time(run.scheduled_for)),
          el("td", {}, String(run.attempt)),
          el("td", {}, time(run.finished_at)),
          el("td", { class: "error-inline" }, capped(message)),
          el(
            "td",
            { class: "actions" },
            el(
              "button",
              {
                type: "button",
                class: "link",
                onclick: () => {
                  selectTask(run.task_id);
                  selectRun(run.id);
                },
              },
              "Open",
            ),
            " ",
            retryButton(run.id, box),
          ),
        ),
      );
    }
    const all = $("retry-all");
    all.hidden = items.length === 0;
    all.disabled = false;
    all.onclick = () => retryAll(items.map((r) => r.id), all, box);
    $("dead-meta").textContent =
      total === 0
        ? "No dead letters."
        : total + (total === 1 ? " run" : " runs") +
          " ended without success and will not be retried" +
          (total > items.length ? " (newest " + items.length + " shown)" : "") +
          "; Retry requeues one now with a fresh retry budget.";
  }

  // --- the overview: health, counters, what needs attention ------------------------------

  function healthItem(name, status, ...text) {
    return el(
      "li",
      { "data-component": name, class: "status-" + String(status || "unknown").replace(/[^a-z_]/g, "") },
      el("span", { class: "label" }, name),
      " ",
      ...text,
    );
  }

  async function loadHealth() {
    let doc;
    try {
      doc = await api("GET", "/health", undefined, { auth: false });
    } catch (error) {
      // 503 is still a health document (the database is down); anything else is an error.
      if (!(error instanceof ApiError) || !error.doc || !error.doc.components) throw error;
      doc = error.doc;
    }
    const c = doc.components || {};
    const db = c.database || {};
    const redis = c.redis || {};
    const scheduler = c.scheduler || {};
    const workers = c.workers || {};
    const items = [
      healthItem("overall", doc.status, String(doc.status)),
      healthItem(
        "database",
        db.status,
        String(db.status) + (db.latency_ms === undefined ? "" : " · " + db.latency_ms + " ms"),
      ),
      healthItem(
        "Redis",
        redis.status,
        String(redis.status),
        redis.outbox_backlog === null || redis.outbox_backlog === undefined
          ? ""
          : " · relay backlog " + redis.outbox_backlog,
      ),
      healthItem(
        "scheduler",
        scheduler.status,
        String(scheduler.status),
        scheduler.last_tick_at ? " · last tick " + relative(scheduler.last_tick_at) : " · no tick yet",
      ),
      healthItem(
        "workers",
        workers.status,
        workers.live === undefined ? String(workers.status) : workers.live + " live",
      ),
    ];
    return items;
  }

  async function countRuns(status, since) {
    const doc = await api(
      "GET",
      "/runs?" + q({ status, start_time: new Date(since).toISOString(), limit: 1 }),
    );
    return doc.total;
  }

  async function loadCounters() {
    const now = Date.now();
    const rows = [];
    for (const [label, span] of WINDOWS) {
      const counts = await Promise.all(COUNTED.map((status) => countRuns(status, now - span)));
      rows.push(
        el(
          "tr",
          { "data-window": label },
          el("th", {}, label),
          counts.map((n, i) =>
            el("td", { "data-status": COUNTED[i], class: i > 0 && n > 0 ? "bad" : null }, String(n)),
          ),
        ),
      );
    }
    return rows;
  }

  // What needs a person, over all history, from one request (GET /runs/attention): dead
  // letters not retried since, and tasks whose last finished run did not succeed.
  function attentionItems(doc) {
    const title = (id, given) => given || taskLabel(id);
    const items = [];
    const dead = doc.dead_letters.slice(0, ATTENTION_LIMIT);
    const failingTasks = doc.failing_tasks.slice(0, ATTENTION_LIMIT);
    for (const run of dead) {
      items.push(
        el(
          "li",
          { "data-run-id": run.id, "data-status": run.status },
          badge(run.status),
          " ",
          el("strong", {}, title(run.task_id, run.task_title)),
          " · ",
          time(run.finished_at),
          " · attempt " + run.attempt + " · ",
          el("span", { class: "error-inline" }, capped(errorLine(run.error))),
          " ",
          el(
            "button",
            {
              type: "button",
              class: "link",
              onclick: () => {
                selectTask(run.task_id);
                selectRun(run.id);
              },
            },
            "Open",
          ),
          " ",
          retryButton(run.id, $("overview-error")),
        ),
      );
    }
    for (const task of failingTasks) {
      items.push(
        el(
          "li",
          { "data-task-id": task.task_id },
          "Task ",
          el("strong", {}, title(task.task_id, task.title)),
          " (" + task.task_status + "): its last run " + task.status.replace("_", "-") + " ",
          time(task.finished_at),
          task.error ? el("span", { class: "error-inline" }, " · " + capped(errorLine(task.error))) : null,
          " ",
          el("button", { type: "button", class: "link", onclick: () => selectTask(task.task_id) }, "Runs"),
        ),
      );
    }
    const deadTotal = doc.dead_letters_total;
    const failing = doc.failing_tasks_total;
    const meta =
      deadTotal === 0 && failing === 0
        ? "Nothing: no run ended without success unretried, and no task's last run failed."
        : deadTotal + (deadTotal === 1 ? " run" : " runs") + " ended without success and " +
          (deadTotal === 1 ? "has" : "have") + " not been retried" +
          (deadTotal > dead.length ? " (newest " + dead.length + " shown)" : "") +
          "; " + failing + (failing === 1 ? " task's" : " tasks'") + " last run failed" +
          (failing > failingTasks.length ? " (newest " + failingTasks.length + " shown)" : "") +
          ". Over all history.";
    return [items, meta];
  }

  async function loadOverview() {
    const box = $("overview-error");
    try {
      const [health, counters, doc] = await Promise.all([
        loadHealth(),
        loadCounters(),
        api("GET", "/runs/attention?" + q({ limit: DEAD_LIMIT })),
      ]);
      show(box, "");
      const [attention, meta] = attentionItems(doc);
      $("health").replaceChildren(...health);
      $("counters").tBodies[0].replaceChildren(...counters);
      $("attention").replaceChildren(...attention);
      $("attention-meta").textContent = meta;
      renderDead(doc);
    } catch (error) {
      fail(box, error);
      fail($("dead-error"), error);
    }
  }

  // --- the whole page -------------------------------------------------------------------

  async function refresh() {
    if (!signedIn()) return;
    if (state.loading) {
      state.again = true; // one more pass once this one ends, never two at once
      return;
    }
    state.loading = true;
    try {
      do {
        state.again = false;
        await loadTasks();
        await Promise.all([loadOverview(), loadRuns(), loadRun()]);
      } while (state.again && signedIn());
    } finally {
      state.loading = false;
    }
  }

  function stopAuto() {
    if (state.timer !== null) clearInterval(state.timer);
    state.timer = null;
  }

  function setAuto(on) {
    stopAuto();
    sessionStorage.setItem(AUTO_KEY, on ? "1" : "0");
    $("auto-refresh").checked = on;
    if (on && signedIn()) state.timer = setInterval(refresh, AUTO_REFRESH_MS);
  }

  // The signed-in agent by name (GET /agents/me), its id and the token's scopes on hover.
  async function loadMe() {
    try {
      const me = await api("GET", "/agents/me");
      const scopes = me.is_admin ? "admin (every scope)" : me.scopes.join(", ");
      sessionStorage.setItem(WHO_KEY, me.name);
      $("who").textContent = "signed in as " + me.name;
      $("who").title = "agent " + me.id + " · " + scopes;
      $("who").dataset.agentId = me.id;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) fail($("error"), error);
      // otherwise the name given at sign-in stays
    }
  }

  function render() {
    const inside = signedIn();
    $("login").hidden = inside;
    $("dashboard").hidden = !inside;
    $("session").hidden = !inside;
    $("who").textContent = inside ? "signed in as " + (sessionStorage.getItem(WHO_KEY) || "?") : "";
    $("who").title = "";
    if (inside) {
      setAuto(sessionStorage.getItem(AUTO_KEY) === "1");
      loadMe();
      refresh();
    }
  }

  function start() {
    readHash();
    $("login-agent").addEventListener("submit", loginWithSecret);
    $("login-token").addEventListener("submit", loginWithToken);
    $("logout").addEventListener("click", () => signOut(""));
    $("refresh").addEventListener("click", () => {
      notify("");
      refresh();
    });
    $("auto-refresh").addEventListener("change", (e) => setAuto(e.target.checked));
    const refilter = () => {
      state.filter = {
        search: $("filter-search").value.trim(),
        status: $("filter-status").value,
        kind: $("filter-kind").value,
        labels: state.filter.labels,
        offset: 0,
      };
      loadTasks(); // the table's view changes; nothing else on the page does
    };
    // Typing searches once it pauses (one request, not one per key).
    $("filter-search").addEventListener("input", () => {
      clearTimeout(state.searchTimer);
      state.searchTimer = setTimeout(refilter, 300);
    });
    $("filter-status").addEventListener("change", refilter);
    $("label-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("filter-label").value.trim();
      if (!text) return;
      $("filter-label").value = "";
      addLabelFilter(text);
    });
    $("filter-kind").addEventListener("change", refilter);
    $("tasks-prev").addEventListener("click", () => {
      state.filter.offset = Math.max(0, state.filter.offset - TASK_LIMIT);
      loadTasks();
    });
    $("tasks-next").addEventListener("click", () => {
      state.filter.offset += TASK_LIMIT;
      loadTasks();
    });
    window.addEventListener("hashchange", () => {
      readHash();
      refresh();
    });
    render();
  }

  start();
})();
