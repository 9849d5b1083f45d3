"""A new user's install: `pip install <checkout>` into a fresh virtual environment, no extras.

The default install does the main job (decision, build, run, entrypoint): a git-type project
is built and run. The extras stay extras: without `[github]`, registering a GitHub repository
and a container start for one are one line each, exit code 2, naming the install command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitworld import GIT_IDENTITY, clone_served
from tests.infra.git_server import GitServer

pytestmark = pytest.mark.docker

CHECKOUT = Path(__file__).resolve().parents[2]
INSTALL = "pip install 'builder-cli[github]'"
MISSING_GITHUB = ("builder: error: code repository type 'github' needs PyGithub, which is not "
                  f"installed: {INSTALL}")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with `pip install <checkout>` and nothing else; its bin/."""
    root = tmp_path_factory.mktemp("fresh-install")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                           str(CHECKOUT)], capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return bin_dir


def run(bin_dir: Path, home: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "BUILDER_HOME": str(home), **GIT_IDENTITY, **(env or {})}
    full.pop("PYTHONPATH", None)
    full["PATH"] = f"{bin_dir}{os.pathsep}{full['PATH']}"
    return subprocess.run([str(bin_dir / "builder"), *args], env=full, capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=home.parent)


@pytest.fixture
def git_project(fresh: Path, tmp_path: Path, docker_client,
                parent_image: str) -> Iterator[tuple[Path, Path]]:
    server = GitServer(tmp_path / "repos", work_dir=tmp_path / "work")
    server.start()
    name = f"fresh-{os.getpid()}-{tmp_path.name[-8:]}".lower().replace("_", "-")
    try:
        project = clone_served(server, tmp_path, {
            "builder.yaml": f"name: {name}\ncommand: [python, main.py]\n",
            "requirements.txt": "six==1.16.0\n",
            "main.py": "import os, six\nprint('fresh', six.__version__, "
                       "os.environ.get('BUILDER_COMMIT', 'baked')[:7])\n",
        })
        home = tmp_path / "home"
        done = run(fresh, home, "code-repository", "register", "app", "--type", "git",
                   "--url", f"{server.url}/team/app.git", "--token", server.token)
        assert done.returncode == 0, done.stderr
        yield project, home
    finally:
        server.stop()
        for image in docker_client.images.list(name=name):
            for tag in image.tags:
                docker_client.images.remove(tag, force=True)


def test_the_default_install_has_no_extras_but_a_version(fresh):
    probe = subprocess.run([str(fresh / "python"), "-c",
                            "import importlib.util as u; print(u.find_spec('github'), "
                            "u.find_spec('gitlab'), u.find_spec('docker') is not None, "
                            "u.find_spec('jinja2') is not None)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["None", "None", "True", "True"]
    version = subprocess.run([str(fresh / "builder"), "--version"], capture_output=True,
                             text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("builder ")
    dist = subprocess.run([str(fresh / "python"), "-c",
                           "from importlib.metadata import version; print(version('builder-cli'))"],
                          capture_output=True, text=True, check=True)
    assert version.stdout.split()[1] == dist.stdout.strip()


def test_build_and_run_of_a_git_project(fresh, git_project):
    project, home = git_project
    done = run(fresh, home, "build", str(project), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout)
    assert info["mode"] == "reuse" and info["code_repository"] == "app"
    done = run(fresh, home, "run", str(project), "--network", "host")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["fresh", "1.16.0", info["commit"][:7]]


def test_without_the_github_extra_register_is_one_line_naming_the_install(fresh, tmp_path):
    home = tmp_path / "home"
    done = run(fresh, home, "code-repository", "register", "gh", "--type", "github",
               "--owner", "acme", "--repository", "app", "--token", "ghp_not_kept_4711")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [MISSING_GITHUB] and done.stdout == ""
    listing = run(fresh, home, "code-repository", "list", "--json")
    assert listing.returncode == 0 and json.loads(listing.stdout) == []
    assert "ghp_not_kept_4711" not in "".join(
        p.read_text(errors="replace") for p in home.rglob("*") if p.is_file())


def test_without_the_github_extra_a_container_start_is_one_line(fresh, tmp_path):
    spec = {"type": "github", "name": "gh", "config": {"owner": "acme", "repository": "app"}}
    done = run(fresh, tmp_path / "home", "entrypoint", "--", sys.executable, "-c", "print(1)",
               env={"BUILDER_CODE_REPOSITORY": json.dumps(spec), "BUILDER_COMMIT": "a" * 40,
                    "BUILDER_CODE_DIR": str(tmp_path / "code"),
                    "BUILDER_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [MISSING_GITHUB] and done.stdout == ""
    assert not (tmp_path / "code").exists()
