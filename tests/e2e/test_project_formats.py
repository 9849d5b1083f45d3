"""Real Python projects run unchanged, in real containers, reuse and bake (README "Project
formats").

One fixture project of each shape (tests/fixtures/projects), pushed to the loopback git
server and registered: src layout + hatchling + uv.lock + a console script; flat layout +
setuptools + pyproject.toml dependencies; Poetry + poetry.lock; requirements.txt. In each,
the container imports a dependency, imports the project's package, runs its console script
and reads its version through importlib.metadata.

Then, on the uv project: a code-only commit needs no build, a version-only commit builds
nothing, a changed lock rebuilds the base once, and a lock that does not match is an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gitworld import GitWorld, Result, clone_served, git
from tests.infra.git_server import GitServer

pytestmark = pytest.mark.docker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"


@dataclass(frozen=True)
class Shape:
    fixture: str
    script: str  # its console script
    package: str  # its import package
    dist: str  # its distribution name
    version: str
    dependency: str  # a module its dependencies bring
    source: str  # the dependency source builder detects
    package_dir: str  # where the package is imported from, relative to the code dir


SHAPES = {shape.fixture: shape for shape in (
    Shape("uv_src", "uv-hello", "uv_app", "uv-app", "1.0.0", "idna", "uv.lock", "src/uv_app"),
    Shape("flat_setuptools", "flat-hello", "flat_app", "flat-app", "2.0.0", "six",
          "pyproject.toml", "flat_app"),
    Shape("poetry_app", "poetry-hello", "poetry_app", "poetry-app", "3.0.0", "attrs",
          "poetry.lock", "poetry_app"),
    Shape("requirements_app", "req-hello", "req_app", "req-app", "4.0.0", "six",
          "requirements", "req_app"),
)}


@dataclass
class Project:
    shape: Shape
    server: GitServer
    path: Path
    world: GitWorld  # its BUILDER_HOME and the `builder` command
    name: str

    def builder(self, *args: str) -> Result:
        return self.world.builder(*args, timeout=900)

    def build(self) -> dict[str, Any]:
        done = self.builder("build", str(self.path), "--json")
        assert done.code == 0, done.stderr
        return json.loads(done.stdout)

    def check(self) -> list[str]:
        """Run the console script, import a dependency and the package, read the version."""
        shape = self.shape
        program = (f"import {shape.dependency}, {shape.package}, importlib.metadata as m; "
                   f"print({shape.package}.__file__, m.version({json.dumps(shape.dist)}))")
        done = self.builder("run", str(self.path), "--network", "host", "--", "sh", "-c",
                            f"{shape.script} && python -c '{program}'")
        assert done.code == 0, done.stderr
        return done.stdout.split()

    def commit_and_push(self, message: str) -> None:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-qm", message)
        git(self.path, "push", "-q", "origin", "HEAD:main")

    def uv(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "uv", *args, "--project", str(self.path)],
                              capture_output=True, text=True, check=False, timeout=300,
                              env={**os.environ, "UV_NO_PROGRESS": "1"})
        assert done.returncode == 0, done.stderr


def fixture_files(shape: Shape, name: str) -> dict[str, str]:
    root = FIXTURES / shape.fixture
    files = {path.relative_to(root).as_posix(): path.read_text() for path in root.rglob("*")
             if path.is_file() and "__pycache__" not in path.parts}
    files["builder.yaml"] = files["builder.yaml"].replace(
        f"name: {shape.fixture.replace('_', '-')}", f"name: {name}")
    return files


def make_project(shape: Shape, base: Path) -> tuple[Project, GitServer]:
    server = GitServer(base / "repos", work_dir=base / "work")
    server.start()
    name = f"pf-{shape.fixture.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    path = clone_served(server, base, fixture_files(shape, name))
    project = Project(shape, server, path, GitWorld(base), name)
    done = project.builder("code-repository", "register", "app", "--type", "git", "--url",
                           f"{server.url}/team/app.git", "--token", server.token)
    assert done.code == 0, done.stderr
    return project, server


def remove_images(docker_client: Any, name: str) -> None:
    for image in docker_client.images.list(name=name):
        for tag in image.tags:
            docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module", params=sorted(SHAPES))
def project(request, tmp_path_factory, docker_client, parent_image) -> Iterator[Project]:
    shape = SHAPES[request.param]
    made, server = make_project(shape, tmp_path_factory.mktemp(f"pf-{shape.fixture}"))
    try:
        yield made
    finally:
        server.stop()
        remove_images(docker_client, made.name)


def expected(project: Project, version: str | None = None) -> list[str]:
    shape = project.shape
    return [*script_output(shape, version), f"/app/code/{shape.package_dir}/__init__.py",
            version or shape.version]


def script_output(shape: Shape, version: str | None) -> list[str]:
    words = {"uv-hello": ["xn--tda.example"], "flat-hello": ["six"], "poetry-hello": ["attrs"],
             "req-hello": ["six"]}[shape.script]
    return [shape.script, version or shape.version, *words]


def test_reuse_mode_runs_the_project_as_installed(project):
    info = project.build()
    assert info["mode"] == "reuse", info["reasons"]
    assert info["dependencies"]["source"] == project.shape.source
    assert info["project"]["name"] == project.shape.dist
    assert info["project"]["scripts"] == [project.shape.script]
    assert project.check() == expected(project)


def test_bake_mode_runs_the_project_as_installed(project):
    (project.path / "notes.txt").write_text("an untracked file makes the project dirty\n")
    try:
        info = project.build()
        assert info["mode"] == "bake" and info["image"].startswith(f"{project.name}:code-")
        assert project.check() == expected(project)
    finally:
        (project.path / "notes.txt").unlink()


def test_status_says_which_source_it_uses(project):
    done = project.builder("status", str(project.path))
    assert done.code == 0, done.stderr
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("dependencies")]
    source = "requirements.txt" if project.shape.source == "requirements" else project.shape.source
    assert row.split(None, 1)[1].startswith(f"{source} (")
    done = project.builder("status", str(project.path), "--json")
    assert json.loads(done.stdout)["dependencies"]["source"] == project.shape.source


# ---- what a commit rebuilds, on the uv project ---------------------------------------------

@pytest.fixture(scope="module")
def uv_project(tmp_path_factory, docker_client, parent_image) -> Iterator[Project]:
    made, server = make_project(SHAPES["uv_src"], tmp_path_factory.mktemp("pf-uv-commits"))
    try:
        yield made
    finally:
        server.stop()
        remove_images(docker_client, made.name)


def test_a_code_only_commit_needs_no_build(uv_project):
    first = uv_project.build()
    cli = uv_project.path / "src" / "uv_app" / "cli.py"
    cli.write_text(cli.read_text().replace('"uv-hello"', '"uv-hello-2"'))
    uv_project.commit_and_push("code only")
    info = uv_project.build()
    assert info["mode"] == "reuse" and info["built"] == []
    assert info["checksum"] == first["checksum"]
    assert uv_project.check()[:2] == ["uv-hello-2", "1.0.0"]


def test_a_version_only_commit_builds_nothing(uv_project):
    before = uv_project.build()
    uv_project.uv("version", "1.0.1")  # sets the version and relocks (one line of uv.lock)
    changed = git(uv_project.path, "diff", "--name-only").split("\n")
    assert changed == ["pyproject.toml", "uv.lock"]
    uv_project.commit_and_push("version 1.0.1")
    info = uv_project.build()
    assert info["mode"] == "reuse" and info["built"] == []
    assert info["checksum"] == before["checksum"]
    assert info["project"]["version"] == "1.0.1"
    output = uv_project.check()
    assert output[1] == "1.0.1" and output[-1] == "1.0.1"

    # baked, a version change builds the code layers only (the commit's tree and the
    # change), on the same base
    uv_project.uv("version", "1.0.2")
    try:
        info = uv_project.build()
        assert info["mode"] == "bake" and info["checksum"] == before["checksum"]
        tree, code = info["built"]
        assert ":tree-" in tree and code == info["image"]
        assert uv_project.check()[-1] == "1.0.2"
    finally:
        git(uv_project.path, "checkout", "--", "pyproject.toml", "uv.lock")


def test_a_lock_change_rebuilds_the_base_once(uv_project):
    before = uv_project.build()
    uv_project.uv("add", "attrs>=23")
    uv_project.commit_and_push("add attrs")
    info = uv_project.build()
    assert info["mode"] == "reuse" and info["checksum"] != before["checksum"]
    assert info["built"] == [info["base_image"]]
    assert uv_project.build()["built"] == []
    done = uv_project.builder("run", str(uv_project.path), "--network", "host", "--",
                              "python", "-c", "import attrs, uv_app; print(attrs.__name__)")
    assert done.code == 0 and done.stdout.split() == ["attrs"], done.stderr


def test_a_lock_that_does_not_match_pyproject_is_one_line(uv_project):
    pyproject = uv_project.path / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text(original.replace('"idna>=3"', '"idna>=3.1"'))
    try:
        done = uv_project.builder("build", str(uv_project.path))
    finally:
        pyproject.write_text(original)
    assert done.code == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"builder: error: {uv_project.path / 'uv.lock'}: does not match pyproject.toml: "
        "run `uv lock`")
