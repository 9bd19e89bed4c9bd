"""What a wheel of the project installs: the SQL migrations as package data, found without a
checkout, and a plain (client) install that needs httpx, pydantic and pyyaml (task files) and
nothing else.

The wheel is built once, offline (``pip wheel --no-build-isolation --no-index``: hatchling
comes with the ``dev`` extra), and installed with ``--no-deps`` into a fresh virtual
environment that has no pip and no site packages; the client's dependencies, and theirs,
are copied in from this environment's installed files, so nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ordinaut.config import Settings, default_migrations_dir

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = sorted(p.name for p in (REPO / "migrations").glob("*.sql"))
CLIENT_DEPENDENCIES = {"httpx", "pydantic", "pyyaml"}

RESOLVE = """
import json
from ordinaut.config import Settings, default_migrations_dir
print(json.dumps({"default": str(default_migrations_dir()), "settings": Settings().migrations_dir}))
"""

CLIENT_ONLY = """
import importlib.util, json, sys
import ordinaut.client
from ordinaut.client import AsyncOrdinaut, Ordinaut
print(json.dumps({
    "ordinaut": sorted(m for m in sys.modules if m.split(".")[0] == "ordinaut"),
    "server": [m for m in ("fastapi", "asyncpg", "redis", "uvicorn", "orjson", "dateutil")
               if importlib.util.find_spec(m) is not None],
    "file": ordinaut.client.__file__,
}))
"""


def run(*argv: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run(
        *pip,
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        out,
        REPO,
        cwd=out,
    )
    (built,) = out.glob("ordinaut-*.whl")
    return built


def requirement_closure(names: Iterable[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` need, without extras, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        dist = metadata.distribution(name)
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def copy_installed(dist: metadata.Distribution, site_packages: Path) -> None:
    """The files pip installed for ``dist`` (its RECORD), under another site-packages."""
    for file in dist.files or []:
        if file.parts[0] == ".." or "__pycache__" in file.parts:
            continue  # scripts live outside site-packages; bytecode is rebuilt
        target = site_packages / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(str(dist.locate_file(file))), target)


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding the wheel (``--no-deps``), httpx, pydantic and pyyaml."""
    root = tmp_path_factory.mktemp("venv") / "client"
    run(sys.executable, "-m", "venv", "--without-pip", root, cwd=root.parent)
    python = root / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run(*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=root)
    purelib = run(
        python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root
    )
    for dist in requirement_closure(CLIENT_DEPENDENCIES).values():
        copy_installed(dist, Path(purelib.strip()))
    return root


def test_the_wheel_carries_the_migrations_and_the_package_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = sorted(
            n.removeprefix("ordinaut/migrations/")
            for n in names
            if n.startswith("ordinaut/migrations/")
        )
        assert shipped == MIGRATIONS
        for name in MIGRATIONS:
            assert (
                archive.read(f"ordinaut/migrations/{name}")
                == (REPO / "migrations" / name).read_bytes()
            )
    assert {
        "ordinaut/py.typed",
        "ordinaut/api/static/index.html",
        "ordinaut/vocabulary.py",
    } <= names
    assert not any(n.startswith(("shared/", "migrations/", "tests/")) for n in names)


def test_a_plain_install_requires_httpx_pydantic_and_pyyaml_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        info = Parser().parsestr(archive.read("ordinaut-0.1.0.dist-info/METADATA").decode())
    requirements = [Requirement(r) for r in info.get_all("Requires-Dist") or []]
    plain = {r.name for r in requirements if r.marker is None}
    assert plain == CLIENT_DEPENDENCIES
    server = {r.name for r in requirements if r.marker and r.marker.evaluate({"extra": "server"})}
    assert {"fastapi", "asyncpg", "redis", "uvicorn"} <= server


def test_an_installed_wheel_migrates_from_its_own_files(venv: Path, tmp_path: Path) -> None:
    resolved = json.loads(run(venv / "bin" / "python", "-I", "-c", RESOLVE, cwd=tmp_path))
    directory = Path(resolved["default"])
    assert directory.is_relative_to(venv)
    assert directory.parts[-2:] == ("ordinaut", "migrations")
    assert resolved["settings"] == resolved["default"]
    assert sorted(p.name for p in directory.glob("*.sql")) == MIGRATIONS


def test_a_checkout_migrates_from_its_migrations_directory() -> None:
    # the editable install runs the package from shared/, which has no migrations of its own
    assert default_migrations_dir() == REPO / "migrations"
    assert Settings().migrations_dir == str(REPO / "migrations")


def test_a_client_install_imports_the_client_and_nothing_server_side(
    venv: Path, tmp_path: Path
) -> None:
    result = json.loads(run(venv / "bin" / "python", "-I", "-c", CLIENT_ONLY, cwd=tmp_path))
    assert Path(result["file"]).is_relative_to(venv)
    assert result["server"] == []  # the environment really is a client install
    outside = [
        m
        for m in result["ordinaut"]
        if m not in ("ordinaut", "ordinaut.vocabulary", "ordinaut.client")
        and not m.startswith("ordinaut.client.")
    ]
    assert outside == []


def test_a_client_install_runs_the_ordinaut_command(venv: Path, tmp_path: Path) -> None:
    usage = run(venv / "bin" / "ordinaut", "--help", cwd=tmp_path)
    assert "tasks" in usage


def test_ordinaut_mcp_in_a_client_install_names_the_extra(venv: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "ordinaut"), "mcp"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "pip install 'ordinaut[mcp]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "task.yaml",
            # unquoted, a YAML timestamp: read as the text it is, as the API reads it
            "title: nightly\nschedule_kind: once\nschedule_expr: 2030-01-01T00:00:00Z\n"
            "payload:\n  pipeline: []\n",
        ),
        ("task.json", '{"title": "nightly", "schedule_kind": "once"}'),
    ],
)
def test_a_client_install_reads_a_task_file(
    venv: Path, tmp_path: Path, name: str, text: str
) -> None:
    # `ordinaut tasks create -f task.yaml` is the client's main command: reading the file must
    # not need the server's packages (the request then fails: nothing listens on port 9)
    (tmp_path / name).write_text(text)
    result = subprocess.run(
        [str(venv / "bin" / "ordinaut"), "tasks", "create", "-f", name],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "ORDINAUT_URL": "http://127.0.0.1:9",
            "ORDINAUT_TOKEN": "x",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "cannot reach the Ordinaut API at http://127.0.0.1:9" in result.stderr
    assert result.returncode == 1
