"""Static checks of infra/terraform: parsed with python-hcl2, no providers, no cloud, no network.

What `terraform validate` cannot tell without providers, and what infra/README.md promises: every
handler Terraform names exists in functions/, every queue has a DLQ, the tick runs every minute
without retries, nothing secret is a variable or an output, every function and DLQ is alarmed,
the API uses the $default stage, and the layout is the one infra/README.md describes.
"""

from __future__ import annotations

import ast
import functools
import os
import random
import re
import shutil
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

from ordinaut.secrets import SecretBox

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "infra" / "terraform"
MODULES = TF / "modules"
ENVS = ("dev", "prod")
MODULE_NAMES = ("registry", "network", "data", "api", "scheduler", "workers", "observability")
# Every function the AWS deployment runs, by the directory of its handler under functions/.
EXPECTED_FUNCTIONS = {"api", "scheduler", "worker", "events", "migrate"}
HANDLER = re.compile(r"\bfunctions\.([a-z_][a-z0-9_]*)\.handler\.handler\b")
SECRETISH = re.compile(r"password|secret|token|credential", re.IGNORECASE)


# --- parsing -------------------------------------------------------------------------------


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def _clean(node: Any) -> Any:
    """Drop python-hcl2's __markers__ and literal quotes, whatever its version does with them."""
    if isinstance(node, dict):
        return {
            _unquote(k): _clean(v)
            for k, v in node.items()
            if not (k.startswith("__") and k.endswith("__"))
        }
    if isinstance(node, list):
        return [_clean(v) for v in node]
    if isinstance(node, str):
        return _unquote(node)
    return node


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        options_type = getattr(hcl2, "SerializationOptions", None)
        if options_type is None:  # python-hcl2 < 7 already strips quotes and has no options
            return _clean(hcl2.load(f))
        options = options_type(strip_string_quotes=True, with_comments=False)
        return _clean(hcl2.load(f, serialization_options=options))


@dataclass(frozen=True)
class Block:
    kind: str  # resource, data, module, variable, output, terraform, provider, locals
    type: str  # resource/data type or provider name; "" otherwise
    name: str
    body: dict[str, Any]
    path: Path

    @property
    def dir(self) -> Path:
        return self.path.parent

    def where(self) -> str:
        label = ".".join(p for p in (self.type, self.name) if p)
        return f"{self.path.relative_to(REPO)}: {self.kind} {label}"


def _file_blocks(path: Path) -> Iterator[Block]:
    doc = _load(path)
    for kind in ("resource", "data"):
        for entry in doc.get(kind, []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    yield Block(kind, rtype, name, body, path)
    for kind in ("module", "variable", "output"):
        for entry in doc.get(kind, []):
            for name, body in entry.items():
                yield Block(kind, "", name, body, path)
    for entry in doc.get("provider", []):
        for name, body in entry.items():
            yield Block("provider", name, "", body, path)
    for kind in ("terraform", "locals"):
        for body in doc.get(kind, []):
            yield Block(kind, "", "", body, path)


@functools.cache
def blocks() -> tuple[Block, ...]:
    return tuple(
        block
        for path in sorted(TF.rglob("*.tf"))
        if ".terraform" not in path.parts
        for block in _file_blocks(path)
    )


def select(kind: str, type_: str | None = None, where: Path | None = None) -> list[Block]:
    return [
        b
        for b in blocks()
        if b.kind == kind
        and (type_ is None or b.type == type_)
        and (where is None or b.dir == where)
    ]


def one(kind: str, type_: str, name: str, where: Path) -> Block:
    matches = [b for b in select(kind, type_ or None, where) if b.name == name]
    assert len(matches) == 1, f"expected one {kind} {type_} {name} in {where.relative_to(REPO)}"
    return matches[0]


def nested(body: dict[str, Any], *keys: str) -> Any:
    """Follow nested blocks (lists of one dict) and attributes down `keys`."""
    node: Any = body
    for key in keys:
        assert isinstance(node, dict), f"missing {'.'.join(keys)}"
        assert key in node, f"missing {'.'.join(keys)}"
        node = node[key]
        if isinstance(node, list) and len(node) == 1 and isinstance(node[0], dict):
            node = node[0]
    return node


def strings(node: Any, skip: frozenset[str] = frozenset({"description"})) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k not in skip:
                yield from strings(v, skip)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v, skip)
    elif isinstance(node, str):
        yield node


def function_calls() -> list[Block]:
    """Every instance of modules/function: one per Lambda function."""
    return [b for b in select("module") if b.body.get("source") == "../function"]


def handler_names() -> list[str]:
    names = {m.group(1) for b in blocks() for s in strings(b.body) for m in HANDLER.finditer(s)}
    return sorted(names)


def module_dir(call: Block) -> Path:
    return (call.dir / call.body["source"]).resolve()


# --- layout ----------------------------------------------------------------------------------


def test_layout_matches_deploy_md() -> None:
    for name in MODULE_NAMES:
        for file in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (MODULES / name / file).is_file(), f"modules/{name}/{file}"
    for env in ENVS:
        for file in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "backend.hcl.example"):
            assert (TF / "envs" / env / file).is_file(), f"envs/{env}/{file}"
    assert (TF / "gcp" / "main.tf").is_file()


def test_env_roots_are_thin() -> None:
    """Roots only wire modules: no resources of their own."""
    for env in ENVS:
        root = TF / "envs" / env
        assert select("resource", where=root) == []
        calls = {b.name for b in select("module", where=root)}
        assert calls == set(MODULE_NAMES), f"envs/{env} calls {sorted(calls)}"


# --- handlers --------------------------------------------------------------------------------


def test_terraform_names_every_function() -> None:
    assert set(handler_names()) == EXPECTED_FUNCTIONS


def test_every_function_runs_a_handler_string() -> None:
    for call in function_calls():
        command = call.body["command"]
        assert isinstance(command, list), call.where()
        assert len(command) == 1, call.where()
        assert HANDLER.fullmatch(command[0]), f"{call.where()}: command {command}"


def _handler_defined(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "handler":
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "handler" for t in node.targets
        ):
            return True  # handler = Mangum(app, lifespan="off")
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "handler"
        ):
            return True
    return False


@pytest.mark.parametrize("name", handler_names())
def test_handler_named_in_terraform_exists(name: str) -> None:
    path = REPO / "functions" / name / "handler.py"
    assert path.is_file(), (
        f"Terraform runs functions.{name}.handler.handler but {path.relative_to(REPO)} is missing"
    )
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert _handler_defined(tree), f"{path.relative_to(REPO)} defines no top-level `handler`"


# --- queues ----------------------------------------------------------------------------------


def _is_dlq(queue: Block) -> bool:
    return queue.name.endswith("dlq") or str(queue.body.get("name", "")).endswith("-dlq")


def test_every_queue_has_a_dead_letter_queue() -> None:
    queues = select("resource", "aws_sqs_queue")
    assert queues, "no SQS queues found"
    for queue in queues:
        if _is_dlq(queue):
            continue
        policy = queue.body.get("redrive_policy")
        assert policy, f"{queue.where()} has no redrive_policy"
        target = re.search(r"aws_sqs_queue\.(\w+)\.arn", policy)
        assert target, f"{queue.where()}: redrive_policy names no queue"
        dlq = one("resource", "aws_sqs_queue", target.group(1), queue.dir)
        assert _is_dlq(dlq), f"{queue.where()} redrives to {dlq.name}, not a DLQ"
        assert "maxReceiveCount" in policy
        assert dlq.body["message_retention_seconds"] >= queue.body["message_retention_seconds"]


def test_every_dead_letter_queue_is_wired() -> None:
    for dlq in (q for q in select("resource", "aws_sqs_queue") if _is_dlq(q)):
        ref = f"aws_sqs_queue.{dlq.name}.arn"
        users = [
            b
            for b in select("resource", where=dlq.dir) + select("module", where=dlq.dir)
            if b is not dlq and any(ref in s for s in strings(b.body))
        ]
        assert users, f"{dlq.where()} receives from nothing"


def test_queues_are_encrypted() -> None:
    for queue in select("resource", "aws_sqs_queue"):
        assert queue.body.get("sqs_managed_sse_enabled") is True or queue.body.get(
            "kms_master_key_id"
        ), queue.where()


# --- the tick --------------------------------------------------------------------------------


def test_tick_runs_every_minute_on_time_without_retries() -> None:
    schedules = select("resource", "aws_scheduler_schedule")
    assert len(schedules) == 1
    tick = schedules[0].body
    assert tick["schedule_expression"] == "rate(1 minute)"
    assert nested(tick, "flexible_time_window", "mode") == "OFF"
    assert nested(tick, "target", "retry_policy", "maximum_retry_attempts") == 0
    assert "aws_sqs_queue." in nested(tick, "target", "dead_letter_config", "arn")
    assert nested(tick, "target", "arn") == "${module.function.alias_arn}"


def test_tick_function_has_concurrency_one_in_prod_and_no_lambda_retries() -> None:
    where = MODULES / "scheduler"
    function = one("module", "", "function", where).body
    assert function["command"] == ["functions.scheduler.handler.handler"]
    assert function["reserved_concurrency"] == "${var.reserved_concurrency}"
    validation = one("variable", "", "reserved_concurrency", where).body["validation"][0]
    assert "var.reserved_concurrency == 1" in validation["condition"]
    assert "dead_letter_queue_arn" in function
    invoke = select("resource", "aws_lambda_function_event_invoke_config", where)
    assert len(invoke) == 1
    assert invoke[0].body["maximum_retry_attempts"] == 0
    assert invoke[0].body["qualifier"] == "${module.function.alias_name}"
    assert function["timeout"] == "${var.timeout}"
    timeout = one("variable", "", "timeout", where).body
    assert timeout["default"] < 60


# --- workers and events ----------------------------------------------------------------------


def test_worker_is_fed_by_sqs_with_a_concurrency_cap() -> None:
    where = MODULES / "workers"
    worker = one("module", "", "worker", where).body
    assert worker["command"] == ["functions.worker.handler.handler"]
    mapping = one("resource", "aws_lambda_event_source_mapping", "work", where).body
    assert mapping["event_source_arn"] == "${aws_sqs_queue.work.arn}"
    assert mapping["function_name"] == "${module.worker.alias_arn}"
    cap = nested(mapping, "scaling_config", "maximum_concurrency")
    assert cap == "${var.worker_max_concurrency}"
    # Reservation optional; when set it covers the cap, or Lambda throttles wake-ups into the DLQ.
    assert worker["reserved_concurrency"] == "${var.worker_reserved_concurrency}"
    reserved = one("variable", "", "worker_reserved_concurrency", where).body
    assert reserved["default"] is None
    assert ">= var.worker_max_concurrency" in reserved["validation"][0]["condition"]


def test_events_report_partial_batch_failures_and_take_eventbridge_through_the_queue() -> None:
    where = MODULES / "workers"
    events = one("module", "", "events", where).body
    assert events["command"] == ["functions.events.handler.handler"]
    assert "dead_letter_queue_arn" not in events  # never invoked asynchronously
    mapping = one("resource", "aws_lambda_event_source_mapping", "events", where).body
    assert mapping["event_source_arn"] == "${aws_sqs_queue.events.arn}"
    assert mapping["function_name"] == "${module.events.alias_arn}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert nested(mapping, "scaling_config", "maximum_concurrency") == (
        "${var.events_max_concurrency}"
    )
    assert events["reserved_concurrency"] == "${var.events_reserved_concurrency}"
    reserved = one("variable", "", "events_reserved_concurrency", where).body
    assert reserved["default"] is None
    assert ">= var.events_max_concurrency" in reserved["validation"][0]["condition"]
    # EventBridge delivers to the ingest queue, never to the function.
    target = one("resource", "aws_cloudwatch_event_target", "ingress", where).body
    assert target["arn"] == "${aws_sqs_queue.events.arn}"
    assert "dead_letter_config" in target
    assert select("resource", "aws_cloudwatch_event_rule", where)
    assert select("resource", "aws_lambda_permission", where) == []
    assert select("resource", "aws_lambda_function_event_invoke_config", where) == []
    policy = one("resource", "aws_sqs_queue_policy", "events", where).body
    assert policy["queue_url"] == "${aws_sqs_queue.events.id}"
    text = " ".join(strings([b.body for b in select("locals", where=where)]))
    assert "events.amazonaws.com" in text
    assert "aws_cloudwatch_event_rule.ingress.arn" in text


# --- API -------------------------------------------------------------------------------------


def test_api_uses_default_stage_and_catch_all_route() -> None:
    where = MODULES / "api"
    assert one("resource", "aws_apigatewayv2_api", "this", where).body["protocol_type"] == "HTTP"
    stages = select("resource", "aws_apigatewayv2_stage")
    assert [s.body["name"] for s in stages] == ["$default"]
    assert stages[0].body["auto_deploy"] is True
    routes = {r.name: r.body for r in select("resource", "aws_apigatewayv2_route")}
    assert routes["default"]["route_key"] == "$default"
    assert "authorization_type" not in routes["default"]  # the app authenticates
    # /metrics is kept off the public host: IAM-only routes in front of it.
    assert '"ANY /metrics"' in routes["metrics"]["for_each"]
    assert routes["metrics"]["authorization_type"] == "AWS_IAM"
    integration = one("resource", "aws_apigatewayv2_integration", "api", where).body
    assert integration["integration_type"] == "AWS_PROXY"
    assert integration["payload_format_version"] == "2.0"
    assert integration["integration_uri"] == "${module.function.alias_invoke_arn}"
    function = one("module", "", "function", where).body
    assert function["command"] == ["functions.api.handler.handler"]
    assert one("variable", "", "timeout", where).body["default"] <= 30
    permission = one("resource", "aws_lambda_permission", "api_gateway", where).body
    assert permission["qualifier"] == "${module.function.alias_name}"


def test_api_stream_ends_before_the_gateway_times_out() -> None:
    where = MODULES / "api"
    environment = one("module", "", "function", where).body["environment"]
    text = " ".join(strings(environment))
    assert "ORDINAUT_SSE_MAX_SECONDS" in text
    assert "var.sse_max_seconds" in text
    sse = one("variable", "", "sse_max_seconds", where).body
    gateway = one("variable", "", "integration_timeout_seconds", where).body
    assert sse["default"] < gateway["default"] <= 30
    assert (
        "var.sse_max_seconds < var.integration_timeout_seconds"
        in (sse["validation"][0]["condition"])
    )
    integration = one("resource", "aws_apigatewayv2_integration", "api", where).body
    assert integration["timeout_milliseconds"] == "${var.integration_timeout_seconds * 1000}"


@pytest.mark.parametrize("module", ["api", "workers"])
def test_api_and_events_wake_workers(module: str) -> None:
    """Both create due work: each has the work queue's URL and may send to it."""
    where = MODULES / module
    calls = [b for b in select("module", where=where) if b.body.get("source") == "../function"]
    names = {"api": {"function"}, "workers": {"worker", "events"}}[module]
    for call in calls:
        if call.name not in names:
            continue
        text = " ".join(strings(call.body["environment"]))
        assert "ORDINAUT_WORK_QUEUE_URL" in text, call.where()
    documents = " ".join(
        strings([d.body for d in select("data", "aws_iam_policy_document", where)])
    )
    assert "WakeWorkers" in documents
    assert "sqs:SendMessage" in documents


# --- variables and outputs -------------------------------------------------------------------


def _variables() -> list[Block]:
    return select("variable")


@pytest.mark.parametrize("variable", _variables(), ids=lambda b: b.where())
def test_every_variable_is_typed_and_described(variable: Block) -> None:
    assert "type" in variable.body, f"{variable.where()} has no type"
    description = variable.body.get("description", "")
    assert isinstance(description, str), f"{variable.where()} has no description"
    assert len(description.strip()) >= 10, f"{variable.where()} has no useful description"


def _carries_only_references(name: str) -> bool:
    return name.endswith(("_arn", "_arns", "_secret_id"))


def test_no_variable_takes_a_secret_value() -> None:
    for variable in _variables():
        if variable.body.get("type") in ("${number}", "number", "${bool}", "bool"):
            continue  # a count or a switch cannot carry a secret
        if SECRETISH.search(variable.name) and not _carries_only_references(variable.name):
            assert variable.body.get("sensitive") is True, (
                f"{variable.where()} looks like a secret value: make it an ARN or sensitive"
            )


def test_no_output_returns_a_secret_value() -> None:
    leaks = re.compile(r"random_password|random_bytes|\.auth_string|secret_string|secret_data")
    for output in select("output"):
        value = " ".join(strings(output.body.get("value", "")))
        assert not leaks.search(value), f"{output.where()} returns a secret value: {value}"
        if SECRETISH.search(output.name) and not _carries_only_references(output.name):
            assert output.body.get("sensitive") is True, f"{output.where()} looks secret"
        if output.name.endswith(("_arn", "_arns")):
            assert ".arn" in value or "_arn" in value, f"{output.where()}: {value}"


def test_function_environments_hold_no_secret_values() -> None:
    for call in function_calls():
        env = call.body.get("environment", {})
        text = " ".join(strings(env))
        assert "random_password" not in text, call.where()
        assert "auth_string" not in text, call.where()
        variables = " ".join(env) if isinstance(env, dict) else text
        assert "ORDINAUT_DATABASE_URL" not in variables, call.where()


def test_generated_credentials_live_in_secrets_manager() -> None:
    where = MODULES / "data"
    # RDS generates, stores and rotates the database password: it never passes through Terraform.
    db = one("resource", "aws_db_instance", "this", where).body
    assert db["manage_master_user_password"] is True
    assert db["master_user_secret_kms_key_id"] == "${aws_kms_key.this.arn}"
    assert "password" not in db
    assert "password_wo" not in db
    # Secrets Manager generates the rest (GetRandomPassword), pinned at creation.
    generated = {b.name for b in select("data", "aws_secretsmanager_random_password", where)}
    assert generated == {"redis", "secrets_key"}
    secrets = {b.name for b in select("resource", "aws_secretsmanager_secret", where)}
    assert secrets == {"redis", "secrets_key"}
    for name in secrets:
        assert one("resource", "aws_secretsmanager_secret", name, where).body["kms_key_id"]


def test_aws_roots_use_only_the_aws_provider() -> None:
    """Only hashicorp/aws is mirrored for offline checks: no random, no other provider."""
    for path in sorted({b.path for b in blocks()}):
        if TF / "gcp" in path.parents:
            continue
        for block in select("terraform", where=path.parent):
            for entry in block.body.get("required_providers", []):
                assert set(entry) == {"aws"}, f"{path.relative_to(REPO)}: {sorted(entry)}"
    for block in blocks():
        if TF / "gcp" in block.path.parents:
            continue
        assert not block.type.startswith("random_"), block.where()


def test_secret_values_are_not_derived_from_terraform_randomness() -> None:
    aws = [b for b in blocks() if TF / "gcp" not in b.path.parents]
    text = " ".join(s for b in aws for s in strings(b.body))
    assert not re.search(r"(?<![a-z_])random_(password|bytes|string|id)\.", text)


# --- alarms ----------------------------------------------------------------------------------


def _alarms() -> list[Block]:
    return select("resource", "aws_cloudwatch_metric_alarm", MODULES / "observability")


def _alarm(metric: str) -> Block:
    found = [a for a in _alarms() if a.body["metric_name"] == metric]
    assert len(found) == 1, f"one alarm on {metric} expected"
    return found[0]


def test_run_outcome_and_data_tier_alarms() -> None:
    where = MODULES / "observability"
    names = one("variable", "", "run_metric_names", where).body["default"]
    assert names == {
        "dead_lettered": "RunsDeadLettered",
        "failed": "RunsFailed",
        "start_lag": "StartLagMs",
    }
    for key in names:
        alarm = [
            a for a in _alarms() if a.body["metric_name"] == f"${{var.run_metric_names.{key}}}"
        ]
        assert len(alarm) == 1, key
        assert alarm[0].body["namespace"] == "Ordinaut"
        assert alarm[0].body["dimensions"] == "${var.worker_metric_dimensions}"
    redis = _alarm("DatabaseMemoryUsagePercentage").body
    assert redis["for_each"] == "${toset(var.redis_node_ids)}"
    assert redis["dimensions"] == {"CacheClusterId": "${each.value}"}
    for metric in ("CPUUtilization", "FreeStorageSpace", "DatabaseConnections"):
        alarm = _alarm(metric).body
        assert alarm["namespace"] == "AWS/RDS"
        assert alarm["dimensions"] == {"DBInstanceIdentifier": "${var.database_instance_id}"}
    ages = [a for a in _alarms() if a.body["metric_name"] == "ApproximateAgeOfOldestMessage"]
    assert {a.body["for_each"] for a in ages} == {"${var.queues}", "${var.dead_letter_queues}"}


@pytest.mark.parametrize("env", ENVS)
def test_every_queue_has_an_age_alarm(env: str) -> None:
    root = TF / "envs" / env
    observability = one("module", "", "observability", root).body
    covered = set()
    for reference in observability["queues"].values():
        where, value = _resolve_output(root, reference)
        match = re.fullmatch(r"\$\{aws_sqs_queue\.(\w+)\.name\}", value)
        assert match, f"{reference} -> {value} is not a queue name"
        covered.add((where, match.group(1)))
    every = {
        (q.dir.resolve(), q.name) for q in select("resource", "aws_sqs_queue") if not _is_dlq(q)
    }
    assert covered == every, f"queues without an age alarm: {every - covered}"
    worker = observability["worker_metric_dimensions"]
    emitted = one("module", "", "worker", MODULES / "workers").body["environment"]
    assert worker == {"service": "${local.name}-worker"}
    assert 'POWERTOOLS_SERVICE_NAME = "${var.name}-worker"' in emitted


@pytest.mark.parametrize("env", ENVS)
def test_reserved_concurrency_off_in_dev_explicit_in_prod(env: str) -> None:
    root = TF / "envs" / env
    reserved = next(
        b.body["reserved"] for b in select("locals", where=root) if "reserved" in b.body
    )
    assert set(reserved) == EXPECTED_FUNCTIONS
    if env == "dev":
        assert all(value is None for value in reserved.values()), reserved
    else:
        assert all(isinstance(value, int) and value >= 1 for value in reserved.values()), reserved
        assert reserved["scheduler"] == 1
        workers = one("module", "", "workers", root).body
        assert reserved["worker"] >= workers["worker_max_concurrency"]
        assert reserved["events"] >= workers["events_max_concurrency"]
    # Every function's reservation comes from this map.
    text = " ".join(s for b in select("module", where=root) for s in strings(b.body))
    for name in EXPECTED_FUNCTIONS:
        assert f"local.reserved.{name}" in text, name


def test_every_function_publishes_behind_a_live_alias() -> None:
    where = MODULES / "function"
    function = one("resource", "aws_lambda_function", "this", where).body
    assert function["publish"] is True
    alias = one("resource", "aws_lambda_alias", "live", where).body
    assert alias["name"] == "live"
    assert alias["function_version"] == "${aws_lambda_function.this.version}"
    assert one("variable", "", "reserved_concurrency", where).body["default"] is None
    # Triggers name the alias, never the unqualified function.
    for mapping in select("resource", "aws_lambda_event_source_mapping"):
        assert mapping.body["function_name"].endswith(".alias_arn}"), mapping.where()
    for schedule in select("resource", "aws_scheduler_schedule"):
        assert nested(schedule.body, "target", "arn").endswith(".alias_arn}"), schedule.where()


def test_image_repository_is_immutable_scanned_and_pruned() -> None:
    where = MODULES / "registry"
    repo = one("resource", "aws_ecr_repository", "this", where).body
    assert repo["image_tag_mutability"] == "IMMUTABLE"
    assert nested(repo, "image_scanning_configuration", "scan_on_push") is True
    assert nested(repo, "encryption_configuration", "encryption_type") == "KMS"
    policy = one("resource", "aws_ecr_lifecycle_policy", "this", where).body
    assert policy["repository"] == "${aws_ecr_repository.this.name}"
    assert "imageCountMoreThan" in policy["policy"]
    assert "untagged" in policy["policy"]


def test_worker_run_budget_fits_its_time_limit() -> None:
    where = MODULES / "workers"
    budget = next(
        b.body["max_run_duration_seconds"]
        for b in select("locals", where=where)
        if "max_run_duration_seconds" in b.body
    )
    assert budget == (
        "${var.worker_timeout - var.worker_drain_margin_seconds - var.worker_safety_margin_seconds}"
    )
    text = " ".join(strings(one("module", "", "worker", where).body["environment"]))
    assert "ORDINAUT_MAX_RUN_DURATION_S" in text
    assert "local.max_run_duration_seconds" in text
    defaults = {
        name: one("variable", "", name, where).body["default"]
        for name in (
            "worker_timeout",
            "worker_drain_margin_seconds",
            "worker_safety_margin_seconds",
        )
    }
    assert (
        defaults["worker_timeout"]
        - defaults["worker_drain_margin_seconds"]
        - defaults["worker_safety_margin_seconds"]
        > 0
    )


def test_alarm_kinds() -> None:
    assert _alarm("Errors").body["for_each"] == "${var.functions}"
    assert _alarm("Throttles").body["for_each"] == "${var.functions}"
    dlq = _alarm("ApproximateNumberOfMessagesVisible").body
    assert dlq["for_each"] == "${var.dead_letter_queues}"
    assert dlq["namespace"] == "AWS/SQS"
    lag = _alarm("DueWorkLagSeconds").body
    assert lag["namespace"] == "Ordinaut"
    assert lag["treat_missing_data"] == "breaching"
    api = _alarm("5xx").body
    assert api["namespace"] == "AWS/ApiGateway"
    for alarm in _alarms():
        assert alarm.body["alarm_actions"], alarm.where()


def _resolve_output(env_root: Path, reference: str) -> tuple[Path, str]:
    """`${module.api.function_name}` in a root -> (module dir, what the output points at)."""
    match = re.fullmatch(r"\$\{module\.(\w+)\.(\w+)\}", reference)
    assert match, f"not a module output reference: {reference}"
    call = one("module", "", match.group(1), env_root)
    target = module_dir(call)
    output = one("output", "", match.group(2), target)
    return target, output.body["value"]


@pytest.mark.parametrize("env", ENVS)
def test_every_function_has_alarms(env: str) -> None:
    root = TF / "envs" / env
    functions = one("module", "", "observability", root).body["functions"]
    covered = set()
    for reference in functions.values():
        where, value = _resolve_output(root, reference)
        match = re.fullmatch(r"\$\{module\.(\w+)\.function_name\}", value)
        assert match, f"{reference} -> {value} is not a function name"
        covered.add((where, match.group(1)))
    every = {(call.dir.resolve(), call.name) for call in function_calls()}
    assert covered == every, f"functions without alarms: {every - covered}"
    assert set(functions) == EXPECTED_FUNCTIONS


@pytest.mark.parametrize("env", ENVS)
def test_every_dead_letter_queue_has_an_alarm(env: str) -> None:
    root = TF / "envs" / env
    queues = one("module", "", "observability", root).body["dead_letter_queues"]
    covered = set()
    for reference in queues.values():
        where, value = _resolve_output(root, reference)
        match = re.fullmatch(r"\$\{aws_sqs_queue\.(\w+)\.name\}", value)
        assert match, f"{reference} -> {value} is not a queue name"
        covered.add((where, match.group(1)))
    every = {(q.dir.resolve(), q.name) for q in select("resource", "aws_sqs_queue") if _is_dlq(q)}
    assert covered == every, f"DLQs without alarms: {every - covered}"


@pytest.mark.parametrize("env", ENVS)
def test_lag_alarm_watches_the_scheduler_metric(env: str) -> None:
    root = TF / "envs" / env
    dimensions = one("module", "", "observability", root).body["lag_metric_dimensions"]
    scheduler = one("module", "", "scheduler", root).body
    assert scheduler["name"] == "${local.name}"
    emitted = one("module", "", "function", MODULES / "scheduler").body["environment"]
    assert 'POWERTOOLS_SERVICE_NAME = "${var.name}-scheduler"' in emitted
    assert dimensions == {"service": "${local.name}-scheduler"}
    assert 'POWERTOOLS_METRICS_NAMESPACE = "Ordinaut"' in emitted


# --- IAM, logs -------------------------------------------------------------------------------


def test_one_role_per_function_from_policy_documents() -> None:
    where = MODULES / "function"
    assert len(select("resource", "aws_iam_role", where)) == 1
    policies = select("resource", "aws_iam_role_policy", where)
    assert len(policies) == 1
    assert policies[0].body["policy"].startswith("${data.aws_iam_policy_document.")
    assert select("resource", "aws_iam_role_policy_attachment", where) == []
    assert len(function_calls()) == len(EXPECTED_FUNCTIONS)


def test_policy_documents_grant_no_wildcard_actions() -> None:
    for doc in select("data", "aws_iam_policy_document"):
        if doc.name == "kms":  # a key policy: the account administers its key through IAM
            continue
        for statement in doc.body.get("statement", []):
            for action in statement.get("actions", []):
                assert "*" not in action, f"{doc.where()} grants {action}"


def test_log_groups_are_encrypted_and_expire() -> None:
    groups = select("resource", "aws_cloudwatch_log_group")
    assert groups
    for group in groups:
        assert group.body.get("kms_key_id"), group.where()
        assert group.body.get("retention_in_days"), group.where()


# --- data tier -------------------------------------------------------------------------------


def test_postgres_behind_proxy_with_tls_backups_and_insights() -> None:
    where = MODULES / "data"
    db = one("resource", "aws_db_instance", "this", where).body
    assert db["engine"] == "postgres"
    assert one("variable", "", "postgres_engine_version", where).body["default"].startswith("16")
    assert db["storage_encrypted"] is True
    assert db["kms_key_id"]
    assert db["performance_insights_enabled"] is True
    assert db["publicly_accessible"] is False
    assert db["backup_retention_period"] == "${var.db_backup_retention_days}"
    assert db["deletion_protection"] == "${var.deletion_protection}"
    params = {
        p["name"]: p["value"]
        for p in one("resource", "aws_db_parameter_group", "this", where).body["parameter"]
    }
    assert params["rds.force_ssl"] == "1"
    assert params["jit"] == "0"  # short statements: no plan worth compiling
    proxy = one("resource", "aws_db_proxy", "this", where).body
    assert proxy["require_tls"] is True
    assert proxy["engine_family"] == "POSTGRESQL"
    # The proxy's credential is the RDS-managed master secret: it exists with the instance, so
    # before the proxy.
    assert nested(proxy, "auth", "secret_arn") == "${local.database_secret_arn}"
    secret_arn = [
        b.body["database_secret_arn"]
        for b in select("locals", where=where)
        if "database_secret_arn" in b.body
    ]
    assert secret_arn == ["${aws_db_instance.this.master_user_secret[0].secret_arn}"]
    assert select("resource", "aws_db_proxy_target", where)


def test_redis_noeviction_cluster_mode_off_tls_auth() -> None:
    where = MODULES / "data"
    params = {
        p["name"]: p["value"]
        for p in one("resource", "aws_elasticache_parameter_group", "this", where).body["parameter"]
    }
    assert params["maxmemory-policy"] == "noeviction"
    assert params.get("cluster-enabled", "no") == "no"
    group = one("resource", "aws_elasticache_replication_group", "this", where).body
    assert group["transit_encryption_enabled"] is True
    assert group["at_rest_encryption_enabled"] is True
    assert group["auth_token"] == "${terraform_data.redis_auth_token.output}"
    token = one("resource", "terraform_data", "redis_auth_token", where).body
    assert token["input"] == "${data.aws_secretsmanager_random_password.redis.random_password}"
    assert nested(token, "lifecycle", "ignore_changes") == ["input"]
    assert "num_node_groups" not in group  # cluster mode off


def test_prod_protects_its_data() -> None:
    """Backs the checkov skips on the database and Redis: prod turns the protections on."""
    prod = one("module", "", "data", TF / "envs" / "prod").body
    assert prod["deletion_protection"] is True
    assert prod["db_multi_az"] is True
    assert prod["db_backup_retention_days"] >= 7
    assert prod["redis_replicas"] >= 1
    assert prod["secret_recovery_window_days"] >= 7


def test_migration_runs_on_deploy_before_functions_update() -> None:
    where = MODULES / "data"
    invocation = one("resource", "aws_lambda_invocation", "migrate", where).body
    assert invocation["function_name"] == "${module.migrate.function_name}"
    assert invocation["qualifier"] == "${module.migrate.alias_name}"
    assert "migrate" in invocation["input"]
    assert invocation["triggers"]["image_uri"] == "${var.image_uri}"
    # The proxy target is registered (and its role may read the secret) before it migrates.
    assert "${aws_db_proxy_target.this}" in invocation["depends_on"]
    assert "${aws_iam_role_policy.proxy}" in invocation["depends_on"]
    for env in ENVS:
        root = TF / "envs" / env
        for name in ("api", "scheduler", "workers"):
            call = one("module", "", name, root).body
            assert call["migration_marker"] == "${module.data.migration_marker}"


# --- network ---------------------------------------------------------------------------------


def test_private_subnets_and_endpoints() -> None:
    where = MODULES / "network"
    endpoints = one("variable", "", "interface_endpoints", where).body["default"]
    assert set(endpoints) >= {"secretsmanager", "sqs", "logs", "ecr.api", "ecr.dkr"}
    s3 = one("resource", "aws_vpc_endpoint", "s3", where).body
    assert s3["vpc_endpoint_type"] == "Gateway"
    for call in function_calls():
        assert call.body["subnet_ids"], call.where()
    public = one("resource", "aws_subnet", "public", where).body
    assert public["map_public_ip_on_launch"] is False
    flow = select("resource", "aws_flow_log")
    assert len(flow) == 1
    assert flow[0].body["traffic_type"] == "ALL"


# --- backend, providers ----------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_s3_backend_with_native_locking_and_partial_config(env: str) -> None:
    root = TF / "envs" / env
    settings = [b for b in select("terraform", where=root) if "backend" in b.body]
    assert len(settings) == 1
    backend = settings[0].body["backend"][0]["s3"]
    assert backend["use_lockfile"] is True
    assert "bucket" not in backend
    assert "key" not in backend
    example = (root / "backend.hcl.example").read_text(encoding="utf-8")
    for key in ("bucket", "key", "region"):
        assert re.search(rf"^{key}\s*=", example, re.MULTILINE), f"{key} in backend.hcl.example"
    provider = select("provider", "aws", root)
    assert len(provider) == 1
    assert nested(provider[0].body, "default_tags", "tags")


# --- Cloud Run variant -----------------------------------------------------------------------


def test_gcp_variant() -> None:
    where = TF / "gcp"
    services = {b.name for b in select("resource", "google_cloud_run_v2_service", where)}
    assert {"api", "worker"} <= services
    jobs = one("resource", "google_cloud_run_v2_job", "this", where).body["for_each"]
    assert jobs["tick"]["args"] == ["scheduler", "--once"]
    assert jobs["migrate"]["args"] == ["migrate"]
    tick = one("resource", "google_cloud_scheduler_job", "tick", where).body
    assert tick["schedule"] == "* * * * *"
    assert nested(tick, "retry_config", "retry_count") == 0
    assert nested(tick, "http_target", "oauth_token", "service_account_email")
    sql = one("resource", "google_sql_database_instance", "this", where).body
    assert sql["database_version"] == "POSTGRES_16"
    assert nested(sql, "settings", "ip_configuration", "ipv4_enabled") is False
    redis = one("resource", "google_redis_instance", "this", where).body
    assert redis["redis_configs"]["maxmemory-policy"] == "noeviction"
    assert redis["auth_enabled"] is True
    assert redis["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    assert select("resource", "google_secret_manager_secret", where)
    backend = [b for b in select("terraform", where=where) if "backend" in b.body]
    assert "gcs" in backend[0].body["backend"][0]


# --- formatting and checkov skips ------------------------------------------------------------


def test_every_checkov_skip_has_a_reason() -> None:
    skip = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")
    for path in sorted(TF.rglob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = skip.search(line)
            if match:
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 20, f"{path.relative_to(REPO)}:{number} skip without reason"


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH: `terraform fmt -check` not run")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TF)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def test_generated_secrets_key_is_a_fernet_key_the_app_accepts() -> None:
    """Secrets Manager draws `password_length` letters and digits; Terraform appends "=". Every
    such string must open as the application's Fernet key (43 base64url characters + padding)."""
    where = MODULES / "data"
    source = one("data", "aws_secretsmanager_random_password", "secrets_key", where).body
    assert source["password_length"] == 43
    assert source["exclude_punctuation"] is True
    assert source["include_space"] is False
    version = one("resource", "aws_secretsmanager_secret_version", "secrets_key", where).body
    assert 'secrets_key = "${terraform_data.secrets_key.output}="' in version["secret_string"]
    alphabet = string.ascii_letters + string.digits
    draw = random.Random(10)  # deterministic sample of the generator's output space
    edge = ["A" * 43, "z" * 43, "9" * 43, "Z" * 42 + "9"]
    for drawn in edge + ["".join(draw.choices(alphabet, k=43)) for _ in range(200)]:
        box = SecretBox(drawn + "=")
        assert box.open(box.seal("value")) == "value"
