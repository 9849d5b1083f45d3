"""End to end, in real containers: `builder run` for the git, github and gitlab types.

Each type gets its loopback server (reached from containers over the host network), a
project clone whose origin is that server, and a registered repository. The tests run in
file order on that shared story: reuse, a pushed change, a warm start, a dirty bake, exit
codes and SIGTERM, a wrong token.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gitworld import GIT_IDENTITY, clone_served, git
from tests.infra.engine_proxy import EngineProxy
from tests.infra.git_server import GitServer
from tests.infra.github_server import GitHubServer
from tests.infra.gitlab_server import GitLabServer
from tests.infra.httpbase import LoopbackServer

pytestmark = pytest.mark.docker

MAIN = 'import os, sys\nprint("{marker}", os.environ.get("BUILDER_COMMIT", "baked")[:12])\n'


@dataclass
class Story:
    kind: str
    server: LoopbackServer
    project: Path
    home: Path
    name: str

    def builder(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BUILDER_HOME": str(self.home), **GIT_IDENTITY}
        return subprocess.run(
            [sys.executable, "-m", "builder", *args],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def build(self) -> dict[str, Any]:
        done = self.builder("build", str(self.project), "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        extra = ["--", *command] if command else []
        return self.builder("run", str(self.project), "--network", "host", *extra)

    def commit_and_push(self, marker: str) -> str:
        (self.project / "main.py").write_text(MAIN.format(marker=marker))
        git(self.project, "commit", "-qam", marker)
        git(self.project, "push", "-q", "origin", "HEAD:main")
        return git(self.project, "rev-parse", "HEAD")

    def register(self, token: str) -> None:
        self.builder("code-repository", "delete", "app")
        args = {
            "git": ["--type", "git", "--url", f"{self.server.url}/team/app.git"],
            "github": [
                "--type",
                "github",
                "--owner",
                "team",
                "--repository",
                "app",
                "--url",
                self.server.url,
            ],
            "gitlab": [
                "--type",
                "gitlab",
                "--group",
                "team",
                "--project",
                "app",
                "--url",
                self.server.url,
            ],
        }[self.kind]
        done = self.builder("code-repository", "register", "app", *args, "--token", token)
        assert done.returncode == 0, done.stderr


SERVERS = {"git": GitServer, "github": GitHubServer, "gitlab": GitLabServer}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def story(request, tmp_path_factory, docker_client, parent_image) -> Iterator[Story]:
    kind = request.param
    base = tmp_path_factory.mktemp(f"e2e-{kind}")
    server = SERVERS[kind](base / "repos", work_dir=base / "work")
    server.start()
    try:
        project = clone_served(server, base, {
            "builder.yaml": f"name: e2e-{kind}\ncommand: [python, main.py]\n",
            "main.py": MAIN.format(marker="v1"),
            "lib/helper.py": "X = 1\n",
        })
        story = Story(kind, server, project, base / "home", f"e2e-{kind}")
        story.register(server.token)
        yield story
    finally:
        server.stop()
        for image in docker_client.images.list(name=f"e2e-{kind}"):
            for tag in image.tags:
                docker_client.images.remove(tag, force=True)


def test_clean_pushed_project_reuses_and_runs_the_code_at_the_commit(story):
    info = story.build()
    head = git(story.project, "rev-parse", "HEAD")
    assert info["mode"] == "reuse" and info["commit"] == head
    assert info["image"] == info["base_image"]
    done = story.run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["v1", head[:12]]


def test_a_pushed_change_runs_with_no_build(story):
    head = story.commit_and_push("v2")
    info = story.build()
    assert info["mode"] == "reuse" and info["built"] == []
    done = story.run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["v2", head[:12]]
    assert "built nothing" in done.stderr
    if story.kind in ("github", "gitlab"):  # the cached v1 tree is brought to v2: one file
        assert "updated from" in done.stderr and "1 changed file fetched" in done.stderr


def test_a_warm_start_makes_no_request_to_the_server(story):
    story.server.reset_counts()
    story.build()
    decision_requests = story.server.request_count
    story.server.reset_counts()
    done = story.run()
    assert done.returncode == 0 and done.stdout.startswith("v2"), done.stderr
    # the run asks the remote what `build` asks it; the container itself asks nothing
    assert story.server.request_count == decision_requests


def test_a_warm_start_copies_the_cache_before_anything_else(story, docker_client):
    """The warm start copies and execs at once: it reads no token, as it downloads nothing
    (the full entrypoint would fail on the missing token file)."""
    from builder.repositories.types import public_spec
    from builder.state.store import Store

    info = story.build()
    record = Store(story.home).get_repository("app")
    assert record is not None and info["mode"] == "reuse"
    output = docker_client.containers.run(
        info["image"],
        ["python", "main.py"],
        environment={
            "BUILDER_COMMIT": info["commit"],
            "BUILDER_SUBDIRECTORY": info["subdirectory"],
            "BUILDER_CODE_REPOSITORY": json.dumps(public_spec(record), sort_keys=True),
            "BUILDER_CACHE_DIR": "/var/cache/builder",
            "BUILDER_TOKEN_FILE": "/run/secrets/absent",
        },
        volumes={"builder-cache": {"bind": "/var/cache/builder", "mode": "rw"}},
        tmpfs={"/app/code": "exec,mode=755"},
        network_mode="host",
        remove=True,
        stdout=True,
        stderr=True,
    )
    assert output.decode().split() == ["v2", info["commit"][:12]]


def test_a_reuse_run_asks_the_engine_eight_things_and_loads_no_docker_py(story, tmp_path):
    """The ping, the parent and base images, then create, attach, start, wait and remove:
    over the engine's socket, without docker-py, requests, the CLI framework or Jinja2."""
    assert story.run().returncode == 0  # builder.yaml is remembered: no YAML parser next
    code = (
        "import sys\n"
        "from builder.cli import main\n"
        "try:\n"
        f"    main(['run', {str(story.project)!r}, '--network', 'host', '--', 'true'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "names = ('docker', 'requests', 'urllib3', 'http.client', 'typer', 'click', 'jinja2',\n"
        "         'yaml', 'tarfile', 'zipfile')\n"
        "print('HEAVY=' + ','.join(sorted(m for m in names if m in sys.modules)),\n"
        "      file=sys.stderr)\n"
    )
    with EngineProxy(tmp_path / "engine.sock") as proxy:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
            env={**os.environ, "BUILDER_HOME": str(story.home), "DOCKER_HOST": proxy.address},
            check=False,
        )
        asked = proxy.requests
    assert done.returncode == 0, done.stderr
    assert done.stderr.rstrip().rpartition("HEAVY=")[2] == ""

    def shape(target: str) -> str:
        path = re.sub(r"^/v[0-9.]+", "", target.partition("?")[0])
        path = re.sub(r"/images/.+/json$", "/images/{ref}/json", path)
        return re.sub(r"/containers/[0-9a-f]{64}", "/containers/{id}", path)

    assert [(r.method, shape(r.target)) for r in asked] == [
        ("GET", "/_ping"),
        ("GET", "/images/{ref}/json"),  # the parent image: its id is in the checksum
        ("GET", "/images/{ref}/json"),  # the base image
        ("POST", "/containers/create"),
        ("POST", "/containers/{id}/attach"),
        ("POST", "/containers/{id}/start"),
        ("POST", "/containers/{id}/wait"),
        ("DELETE", "/containers/{id}"),
    ]


def test_a_dirty_change_is_baked_and_runs(story):
    (story.project / "main.py").write_text(MAIN.format(marker="dirty"))
    try:
        info = story.build()
        assert info["mode"] == "bake" and info["dirty_files"] == ["main.py"]
        assert info["image"].startswith(f"{story.name}:code-")
        done = story.run()
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["dirty", "baked"]
        assert story.build()["built"] == []
    finally:
        git(story.project, "checkout", "--", "main.py")


def test_the_exit_code_reaches_the_caller(story):
    done = story.run("python", "-c", "import sys; print('bye'); sys.exit(7)")
    assert done.returncode == 7
    assert done.stdout.strip() == "bye"


def test_sigterm_reaches_the_program_and_no_token_is_visible(story, docker_client):
    program = (
        "import signal, sys\n"
        "def term(*_):\n"
        "    print('got SIGTERM', flush=True); sys.exit(42)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "print('ready', flush=True)\n"
        "while True: signal.pause()\n"
    )
    env = {**os.environ, "BUILDER_HOME": str(story.home)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "builder",
            "run",
            str(story.project),
            "--network",
            "host",
            "--",
            "python",
            "-u",
            "-c",
            program,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    label = ""
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        # this run's container, by the run record's label (other builders share the engine)
        label = f"org.builder.run-id={newest_run_id(story)}"
        running = docker_client.containers.list(filters={"label": label})
        assert len(running) == 1
        attrs = json.dumps(running[0].attrs)
        assert story.server.token not in attrs
        assert "BUILDER_TOKEN_FILE" in attrs
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            if label:  # builder cannot remove what it ran any more: the test does
                for container in docker_client.containers.list(all=True,
                                                               filters={"label": label}):
                    container.remove(force=True)
    assert "got SIGTERM" in out
    assert process.returncode == 42, err
    assert docker_client.containers.list(all=True, filters={"label": label}) == []


def newest_run_id(story: Story) -> str:
    from builder.runs.database import RunDatabase

    with RunDatabase(story.home) as database:
        return database.runs(limit=1)[0].id


def test_a_wrong_token_fails_the_container_clearly(story):
    head = story.commit_and_push("v3")  # a commit that is not in the cache yet
    wrong = "wrong-token-0123456789"
    story.register(wrong)
    try:
        done = story.run()
    finally:
        story.register(story.server.token)
    assert done.returncode != 0
    assert "v3" not in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("builder: error:"), done.stderr
    assert "Traceback" not in done.stderr
    assert wrong not in done.stderr and story.server.token not in done.stderr
    assert head  # the commit was pushed; only the token was wrong
