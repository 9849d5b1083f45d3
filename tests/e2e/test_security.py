"""End to end, in real containers: what the entrypoint may replace, and what a killed
`builder run` leaves behind.

One project on a loopback git server, one base image. The container cases start that image
as `docker run` would, with the container contract's environment: a named volume holding a
user's files at the code dir (never touched), an empty named volume (filled, and replaced
on the next start), the image's own empty code dir, `BUILDER_CODE_DIR=/`. Then `builder run`
is killed with SIGKILL, and the next run removes its container and its token file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gitworld import GIT_IDENTITY, clone_served, git
from tests.infra.git_server import GitServer

pytestmark = pytest.mark.docker

NAME = "e2e-i20-security"
MAIN = 'print("{marker}")\n'
CACHE_MOUNT = "/var/cache/builder"
TOKEN_MOUNT = "/run/secrets/builder-token"


@dataclass
class Story:
    server: GitServer
    project: Path
    home: Path
    image: str
    token_file: Path
    spec: dict[str, Any]
    suffix: str

    def builder(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BUILDER_HOME": str(self.home), **GIT_IDENTITY}
        return subprocess.run([sys.executable, "-m", "builder", *args], env=env, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def commit_and_push(self, marker: str) -> str:
        (self.project / "main.py").write_text(MAIN.format(marker=marker))
        git(self.project, "commit", "-qam", marker)
        git(self.project, "push", "-q", "origin", "HEAD:main")
        return git(self.project, "rev-parse", "HEAD")

    def contract(self, commit: str, **extra: str) -> dict[str, str]:
        return {
            "BUILDER_COMMIT": commit,
            "BUILDER_SUBDIRECTORY": "",
            "BUILDER_CODE_REPOSITORY": json.dumps(self.spec, sort_keys=True),
            "BUILDER_CACHE_DIR": CACHE_MOUNT,
            "BUILDER_TOKEN_FILE": TOKEN_MOUNT,
            **extra,
        }

    def volume(self, what: str) -> str:
        return f"builder-i20-{what}-{self.suffix}"


@pytest.fixture(scope="module")
def story(tmp_path_factory, docker_client, parent_image) -> Iterator[Story]:
    base = tmp_path_factory.mktemp("e2e-security")
    server = GitServer(base / "repos", work_dir=base / "work")
    server.start()
    suffix = uuid.uuid4().hex[:8]
    try:
        project = clone_served(server, base, {
            "builder.yaml": f"name: {NAME}\ncommand: [python, main.py]\n",
            "main.py": MAIN.format(marker="v1"),
        })
        home = base / "home"
        token_file = base / "token"
        token_file.write_text(server.token)
        story = Story(server, project, home, "", token_file, {}, suffix)
        done = story.builder("code-repository", "register", "app", "--type", "git", "--url",
                             f"{server.url}/team/app.git", "--token", server.token)
        assert done.returncode == 0, done.stderr
        done = story.builder("build", str(project), "--json")
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        assert info["mode"] == "reuse", info
        from builder.repositories.types import public_spec
        from builder.state.store import Store

        record = Store(home).get_repository("app")
        assert record is not None
        story.image, story.spec = info["image"], public_spec(record)
        yield story
    finally:
        server.stop()
        for container in docker_client.containers.list(
                all=True, filters={"label": f"e2e-i20={suffix}"}):
            container.remove(force=True)
        for container in docker_client.containers.list(all=True,
                                                       filters={"label": "builder.run=1"}):
            if any(str(mount.get("Source", "")).startswith(str(base))
                   for mount in container.attrs.get("Mounts") or []):
                container.remove(force=True)  # a run of this module's that outlived it
        for volume in docker_client.volumes.list(filters={"name": "builder-i20-"}):
            if volume.name.endswith(suffix):
                volume.remove(force=True)
        for image in docker_client.images.list(name=NAME):
            for tag in image.tags:
                docker_client.images.remove(tag, force=True)


def run(docker_client, story: Story, environment: dict[str, str],
        volumes: dict[str, dict[str, str]], command: list[str] | None = None,
        ) -> tuple[int, str, str]:
    """Start the image as `docker run` would; (exit code, stdout, stderr)."""
    mounts = {str(story.token_file): {"bind": TOKEN_MOUNT, "mode": "ro"},
              story.volume("cache"): {"bind": CACHE_MOUNT, "mode": "rw"}, **volumes}
    container = docker_client.containers.create(
        story.image, command or ["python", "main.py"], environment=environment,
        volumes=mounts, network_mode="host", labels={"e2e-i20": story.suffix})
    try:
        container.start()
        code = int(container.wait(timeout=300)["StatusCode"])
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
        return code, out, err
    finally:
        container.remove(force=True)


def read_volume(docker_client, parent_image: str, volume: str, path: str) -> str:
    return docker_client.containers.run(
        parent_image, ["cat", f"/data/{path}"], volumes={volume: {"bind": "/data"}},
        remove=True).decode()


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err and "internal error" not in err, err
    return [line for line in err.splitlines() if line.startswith("builder: error: ")]


def test_a_volume_with_the_users_files_at_the_code_dir_is_never_touched(
        story, docker_client, parent_image):
    volume = story.volume("users")
    docker_client.containers.run(
        parent_image, ["sh", "-c", "echo precious > /data/results.csv"],
        volumes={volume: {"bind": "/data"}}, remove=True)
    commit = git(story.project, "rev-parse", "HEAD")
    code, out, err = run(docker_client, story, story.contract(commit),
                         {volume: {"bind": "/app/code", "mode": "rw"}})
    [line] = error_lines(err)
    assert code == 1 and "did not put there" in line, err
    assert out == ""  # the program never ran
    assert read_volume(docker_client, parent_image, volume, "results.csv") == "precious\n"


def test_an_empty_volume_is_filled_then_replaced_at_the_next_start(story, docker_client):
    volume = story.volume("empty")
    first = git(story.project, "rev-parse", "HEAD")
    code, out, err = run(docker_client, story, story.contract(first),
                         {volume: {"bind": "/app/code", "mode": "rw"}})
    assert code == 0 and out.strip() == "v1", err
    second = story.commit_and_push("v2")
    code, out, err = run(docker_client, story, story.contract(second),
                         {volume: {"bind": "/app/code", "mode": "rw"}})
    assert code == 0 and out.strip() == "v2", err


def test_the_images_own_code_dir_is_filled_and_a_restart_replaces_it(story, docker_client):
    commit = git(story.project, "rev-parse", "HEAD")
    container = docker_client.containers.create(
        story.image, ["python", "main.py"], environment=story.contract(commit),
        volumes={str(story.token_file): {"bind": TOKEN_MOUNT, "mode": "ro"},
                 story.volume("cache"): {"bind": CACHE_MOUNT, "mode": "rw"}},
        network_mode="host", labels={"e2e-i20": story.suffix})
    try:
        for _ in range(2):  # the second start finds the tree the first one left
            container.start()
            assert int(container.wait(timeout=300)["StatusCode"]) == 0, container.logs()
        outputs = container.logs(stdout=True, stderr=False).decode().split()
        assert outputs == [outputs[0]] * 2 and outputs[0].startswith("v"), outputs
    finally:
        container.remove(force=True)


def test_the_root_as_code_dir_is_a_usage_error(story, docker_client):
    commit = git(story.project, "rev-parse", "HEAD")
    code, out, err = run(docker_client, story, story.contract(commit, BUILDER_CODE_DIR="/"),
                         {}, command=["ls", "/etc/hostname"])
    [line] = error_lines(err)
    assert code == 2 and "root directory" in line, err
    assert out == ""


def test_a_killed_run_leaves_a_container_and_token_that_the_next_run_removes(
        story, docker_client):
    program = "import time; print('ready', flush=True); time.sleep(600)"
    env = {**os.environ, "BUILDER_HOME": str(story.home), **GIT_IDENTITY}
    process = subprocess.Popen(
        [sys.executable, "-m", "builder", "run", str(story.project), "--network", "host", "--",
         "python", "-u", "-c", program],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    owner = "org.builder.owner"
    left = [c for c in docker_client.containers.list(filters={"label": owner})
            if str(story.home) in c.labels.get(owner, "")]
    assert len(left) == 1, "the killed run's container keeps running"
    token_files = list((story.home / "run").glob("run-*/token"))
    assert len(token_files) == 1 and token_files[0].read_text() == story.server.token
    done = story.builder("run", str(story.project), "--network", "host", "--", "python", "-c",
                         "print('next')")
    assert done.returncode == 0 and done.stdout.strip() == "next", done.stderr
    assert "left running by a killed run" in done.stderr
    deadline = time.monotonic() + 60
    while docker_client.containers.list(all=True, filters={"id": left[0].id}):
        assert time.monotonic() < deadline, "the orphan container is still there"
        time.sleep(0.2)
    assert list((story.home / "run").glob("run-*")) == []
    assert story.server.token not in done.stdout + done.stderr
