"""Terraform itself checks the AWS roots (envs/dev, envs/prod): init from the provider mirror
against the committed lock file, `terraform validate`, and `terraform test`, whose
deploy.tftest.hcl mocks the aws provider to plan and apply the whole graph and assert the
deployment's invariants.

Nothing here touches a cloud or the network: the provider comes from a local filesystem mirror
(`terraform init -plugin-dir`), the CLI configuration is /dev/null, and every command runs in a
temporary copy of infra/terraform so the repository stays clean. Where terraform or the mirror is
missing the tests skip and say why. The mirror is the folder holding
`registry.terraform.io/hashicorp/aws`: ORDINAUT_TF_PLUGIN_DIR when set, else the first of a few
usual places, else what `find / -maxdepth 7` turns up.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.cloud

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "infra" / "terraform"
AWS_ROOTS = ("dev", "prod")
PROVIDER = Path("registry.terraform.io") / "hashicorp" / "aws"
PLUGIN_DIR_ENV = "ORDINAUT_TF_PLUGIN_DIR"
USUAL_MIRRORS = (
    Path("/opt/tf-plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
)
LOCKED_VERSION = re.compile(
    r'provider "registry\.terraform\.io/hashicorp/aws" \{\s*version\s*=\s*"([^"]+)"'
)


def _terraform() -> str:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH: terraform init/validate/test not run")
    return terraform


def _locked_version(root: str) -> str:
    lock = (TF / "envs" / root / ".terraform.lock.hcl").read_text(encoding="utf-8")
    match = LOCKED_VERSION.search(lock)
    assert match, f"envs/{root}/.terraform.lock.hcl locks no hashicorp/aws version"
    return match.group(1)


@functools.cache
def _find_mirror() -> Path | str:
    """The plugin directory that holds hashicorp/aws, or why there is none."""
    override = os.environ.get(PLUGIN_DIR_ENV, "")
    if override:
        path = Path(override)
        if (path / PROVIDER).is_dir():
            return path
        return f"{PLUGIN_DIR_ENV}={override} holds no {PROVIDER}"
    for path in USUAL_MIRRORS:
        if (path / PROVIDER).is_dir():
            return path
    try:
        found = subprocess.run(
            ["find", "/", "-maxdepth", "7", "-type", "d", "-path", f"*{PROVIDER}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        found = []
    for hit in found:
        path = Path(hit)
        return path.parents[2]
    return f"no provider mirror with {PROVIDER} (set {PLUGIN_DIR_ENV})"


def _mirror(version: str) -> Path:
    mirror = _find_mirror()
    if isinstance(mirror, str):
        pytest.skip(f"{mirror}: terraform init/validate/test not run")
    if not (mirror / PROVIDER / version).is_dir():
        pytest.skip(
            f"the mirror {mirror} has no hashicorp/aws {version} (the lock file's version): "
            "terraform init/validate/test not run"
        )
    return mirror


def _run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": os.devnull,  # no ~/.terraformrc: no network mirrors, no credentials
        "CHECKPOINT_DISABLE": "1",  # no version check against checkpoint-api.hashicorp.com
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
    }
    env.pop("TF_DATA_DIR", None)
    env.pop("TF_PLUGIN_CACHE_DIR", None)
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.fixture(scope="module", params=AWS_ROOTS)
def aws_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary copy of infra/terraform, initialised for envs/<root> from the mirror with the
    committed lock file (read-only: a provider that does not match the lock fails init)."""
    root: str = request.param
    terraform = _terraform()
    mirror = _mirror(_locked_version(root))
    copy = tmp_path_factory.mktemp(f"terraform-{root}") / "terraform"
    shutil.copytree(TF, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    where = copy / "envs" / root
    result = _run(
        [
            terraform,
            "init",
            "-backend=false",
            "-input=false",
            "-no-color",
            f"-plugin-dir={mirror}",
            "-lockfile=readonly",
        ],
        where,
    )
    assert result.returncode == 0, f"terraform init in envs/{root}:\n{result.stdout}{result.stderr}"
    return where


def test_aws_roots_need_only_the_aws_provider() -> None:
    """The mirror has hashicorp/aws only: every provider a root locks must be that one."""
    for root in AWS_ROOTS:
        lock = (TF / "envs" / root / ".terraform.lock.hcl").read_text(encoding="utf-8")
        providers = re.findall(r'^provider "([^"]+)"', lock, re.MULTILINE)
        assert providers == ["registry.terraform.io/hashicorp/aws"], f"envs/{root}: {providers}"


def test_terraform_validate(aws_root: Path) -> None:
    result = _run([_terraform(), "validate", "-no-color"], aws_root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"terraform validate in {aws_root.name}:\n{output}"
    assert "Success! The configuration is valid." in output
    assert "Warning" not in output, output


def test_terraform_test_plans_and_applies_with_every_assertion(aws_root: Path) -> None:
    """deploy.tftest.hcl: a bad image URI is refused, then plan and apply of the whole graph pass
    every assert block (see the file for the invariants)."""
    assert (aws_root / "deploy.tftest.hcl").is_file()
    result = _run([_terraform(), "test", "-no-color"], aws_root, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"terraform test in envs/{aws_root.name}:\n{output}"
    summary = re.search(r"Success! (\d+) passed, 0 failed\.", output)
    assert summary, output
    runs = dict(re.findall(r'run "([^"]+)"\.\.\. (\w+)', output))
    assert runs.get("plan") == "pass", output
    assert runs.get("apply") == "pass", output
    assert runs.get("image_must_come_from_ecr") == "pass", output
    assert all(status == "pass" for status in runs.values()), output
    assert int(summary.group(1)) == len(runs) >= 4


def test_both_roots_assert_the_same_invariants() -> None:
    """dev's and prod's test files differ only in the environment's name and the concurrency run
    at the end, so an invariant added to one is not forgotten in the other."""
    shared = []
    for root in AWS_ROOTS:
        text = (TF / "envs" / root / "deploy.tftest.hcl").read_text(encoding="utf-8")
        marker = text.index(f"# {root} ")  # the environment-specific run starts here
        shared.append(
            text[:marker].replace(f"envs/{root}", "envs/ROOT").replace(f"-{root}:", "-ROOT:")
        )
        assert re.search(rf'run "{root}_\w+"', text[marker:]), f"envs/{root}: no run of its own"
    assert shared[0] == shared[1]
