"""End to end on a real single-node Docker Swarm: `builder run --target swarm`.

The module initialises a swarm (`docker swarm init --advertise-addr 127.0.0.1`) if the engine
is not in one, and leaves it at teardown only if it initialised it. A loopback git server
holds the project's repository; the service's task reaches it over the swarm's `host`
network. The tests run in file order on one story: usage errors, a clean pushed project, a
pushed change with no build, exit codes and streams, a dirty (baked) change, then the token's
path and visibility, secret reuse, and Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from builder.targets import token_secret_name
from builder.targets.swarm import NotSwarmManagerError, require_manager
from tests.gitworld import GIT_IDENTITY, clone_served, git
from tests.infra.docker_fixtures import REGISTRY
from tests.infra.git_server import GitServer
from tests.waiting import wait_for

pytestmark = pytest.mark.docker

NAME = "e2e-cluster"  # as in test_kubernetes_local: the other module pulls the base image
MAIN = 'import os\nprint("{marker}", os.environ.get("BUILDER_COMMIT", "baked")[:12])\n'
RUN_LABEL = "org.builder.run=1"
TOKEN_LABEL = "org.builder.token=1"


@dataclass
class Story:
    server: GitServer
    project: Path
    home: Path

    @property
    def token(self) -> str:
        return str(self.server.token)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "BUILDER_HOME": str(self.home), **GIT_IDENTITY, **extra}

    def builder(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "builder", *args],
            env=self.env(**extra),
            text=True,
            capture_output=True,
            timeout=600,
            check=False,
        )

    def swarm_args(self, *command: str) -> list[str]:
        extra = ["--", *command] if command else []
        return ["run", "--target", "swarm", str(self.project), "--network", "host", *extra]

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        done = self.builder(*self.swarm_args(*command))
        assert self.token not in done.stdout + done.stderr
        return done

    def commit_and_push(self, marker: str) -> str:
        (self.project / "main.py").write_text(MAIN.format(marker=marker))
        git(self.project, "commit", "-qam", marker)
        git(self.project, "push", "-q", "origin", "HEAD:main")
        return git(self.project, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def initial_swarm(docker_client) -> dict[str, Any]:
    """The engine's swarm state before this module touched it."""
    return dict(docker_client.info()["Swarm"])


@pytest.fixture(scope="module")
def story(tmp_path_factory, docker_client, parent_image, registry) -> Iterator[Story]:
    base = tmp_path_factory.mktemp("e2e-swarm")
    server = GitServer(base / "repos", work_dir=base / "work")
    server.start()
    try:
        project = clone_served(server, base, {
            "builder.yaml": f"name: {NAME}\nregistry: {REGISTRY}\ncommand: [python, main.py]\n",
            "main.py": MAIN.format(marker="v1"),
        })
        story = Story(server, project, base / "home")
        done = story.builder(
            "code-repository", "register", "app", "--type", "git",
            "--url", f"{server.url}/team/app.git", "--token", server.token,
        )
        assert done.returncode == 0, done.stderr
        yield story
    finally:
        server.stop()
        for image in docker_client.images.list(name=f"{REGISTRY}/{NAME}"):
            for tag in image.tags:
                docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def swarm(docker_client, initial_swarm) -> Iterator[None]:
    """A swarm manager for the module; left at teardown only if this fixture made it."""
    state = initial_swarm.get("LocalNodeState")
    initialised = False
    if state == "inactive":
        subprocess.run(
            ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1",
             "--listen-addr", "127.0.0.1:2377"],
            check=True, capture_output=True, timeout=120,
        )
        initialised = True
    elif not initial_swarm.get("ControlAvailable"):
        pytest.fail(f"the engine is in a swarm as a worker ({state}); run on a manager",
                    pytrace=False)
    try:
        yield
    finally:
        for service in docker_client.services.list(filters={"label": RUN_LABEL}):
            service.remove()
        leftovers = [s.name for s in docker_client.secrets.list(filters={"label": TOKEN_LABEL})]
        if initialised:
            subprocess.run(["docker", "swarm", "leave", "--force"], check=True,
                           capture_output=True, timeout=120)
            assert docker_client.info()["Swarm"]["LocalNodeState"] == "inactive"
        assert leftovers == [], "builder left token secrets behind"


def stop(process: subprocess.Popen[str]) -> None:
    """End a `builder run` the test started, as a user would (Ctrl-C), so that even a failed
    test leaves no service and no secret behind; SIGKILL only if that does not work."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def builder_services(docker_client) -> list[Any]:
    return list(docker_client.services.list(filters={"label": RUN_LABEL}))


def token_secrets(docker_client) -> list[Any]:
    return list(docker_client.secrets.list(filters={"label": TOKEN_LABEL}))


# ---- before the swarm exists --------------------------------------------------------------


def test_the_swarm_target_needs_a_registry(story):
    done = story.builder(*story.swarm_args(), BUILDER_REGISTRY="")
    assert done.returncode == 2
    assert "registry:" in done.stderr and "BUILDER_REGISTRY" in done.stderr
    assert "Traceback" not in done.stderr


def test_kubernetes_without_emit_is_a_usage_error(story):
    done = story.builder("run", "--target", "kubernetes", str(story.project))
    assert done.returncode == 2
    assert "--emit" in done.stderr and "kubectl apply -f -" in done.stderr


def test_an_engine_that_is_not_a_manager_is_a_clear_error(story, initial_swarm):
    class Engine:
        def __init__(self, swarm: dict[str, Any]) -> None:
            self.swarm = swarm

        def info(self) -> dict[str, Any]:
            return {"Swarm": self.swarm}

    with pytest.raises(NotSwarmManagerError, match="docker swarm init"):
        require_manager(Engine({"LocalNodeState": "inactive"}))
    with pytest.raises(NotSwarmManagerError, match="worker"):
        require_manager(Engine({"LocalNodeState": "active", "ControlAvailable": False}))
    require_manager(Engine({"LocalNodeState": "active", "ControlAvailable": True}))
    if initial_swarm.get("LocalNodeState") == "inactive":  # the real engine, before init
        done = story.run()
        assert done.returncode == 1
        assert "not a swarm manager" in done.stderr and "docker swarm init" in done.stderr
        assert "Traceback" not in done.stderr


# ---- on the swarm --------------------------------------------------------------------------


def test_a_clean_pushed_project_runs_as_a_service_at_the_commit(story, swarm, docker_client):
    head = git(story.project, "rev-parse", "HEAD")
    done = story.run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["v1", head[:12]]
    assert "reuse:" in done.stderr and "service builder-e2e-cluster-" in done.stderr
    assert builder_services(docker_client) == []
    assert token_secrets(docker_client) == []


def test_a_pushed_change_runs_with_no_build(story, swarm):
    head = story.commit_and_push("v2")
    done = story.run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["v2", head[:12]]
    assert "built nothing" in done.stderr


def test_exit_code_and_streams_reach_the_caller(story, swarm):
    program = (
        "import sys\n"
        "print('to stdout')\n"
        "print('to stderr', file=sys.stderr)\n"
        "for i in range(300): print('line', i)\n"
        "sys.exit(7)\n"
    )
    done = story.run("python", "-c", program)
    assert done.returncode == 7, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "to stdout"
    assert lines[1:] == [f"line {i}" for i in range(300)]  # all of it, once, in order
    assert "to stderr" in done.stderr and "to stderr" not in done.stdout


def test_a_dirty_change_is_baked_pushed_and_run(story, swarm):
    (story.project / "main.py").write_text(MAIN.format(marker="dirty"))
    try:
        done = story.run()
    finally:
        git(story.project, "checkout", "--", "main.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["dirty", "baked"]
    assert f"bake: {REGISTRY}/{NAME}:code-" in done.stderr


def test_the_token_is_a_secret_file_that_no_inspect_shows_and_ctrl_c_removes_the_service(
    story, swarm, docker_client
):
    program = (
        "import hashlib, os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
        "path = os.environ['BUILDER_TOKEN_FILE']\n"
        "print(path, hashlib.sha256(open(path, 'rb').read()).hexdigest(), flush=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "builder", *story.swarm_args("python", "-u", "-c", program)],
        env=story.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        digest = hashlib.sha256(story.token.encode()).hexdigest()
        assert process.stdout.readline().split() == ["/run/secrets/builder-token", digest]
        assert process.stdout.readline().strip() == "ready"

        services = builder_services(docker_client)
        assert len(services) == 1
        running = json.loads(story.builder("runs", "list", "--json", "--limit", "1").stdout)[0]
        assert running["target"] == "swarm" and running["result"] == "still running"
        assert running["image_digest"] and running["image_digest"] in services[0].attrs[
            "Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        assert services[0].attrs["Spec"]["Labels"]["org.builder.run-id"] == running["id"]
        service_json = subprocess.run(
            ["docker", "service", "inspect", services[0].id],
            capture_output=True, text=True, check=True,
        ).stdout
        assert story.token not in service_json
        spec = json.loads(service_json)[0]["Spec"]["TaskTemplate"]["ContainerSpec"]
        assert "BUILDER_TOKEN_FILE=/run/secrets/builder-token" in spec["Env"]
        [reference] = spec["Secrets"]
        assert reference["SecretName"] == token_secret_name(story.token)
        assert reference["File"]["Name"] == "builder-token"

        # The program runs before Swarm reports its task as running: wait for the report.
        task = wait_for(lambda: next((t for t in services[0].tasks()
                                      if t["Status"]["State"] == "running"), None),
                        "Swarm to report the task running")
        container_id = task["Status"]["ContainerStatus"]["ContainerID"]
        container_json = subprocess.run(
            ["docker", "inspect", container_id], capture_output=True, text=True, check=True
        ).stdout
        assert story.token not in container_json
        assert "BUILDER_TOKEN_FILE" in container_json

        [secret] = token_secrets(docker_client)
        assert secret.name == token_secret_name(story.token)
        assert story.token not in json.dumps(secret.attrs)

        # A second run while the first is running reuses the secret, which stays in use.
        done = story.run("python", "-c", "print('second')")
        assert done.returncode == 0 and done.stdout.strip() == "second", done.stderr
        assert [s.id for s in token_secrets(docker_client)] == [secret.id]

        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        stop(process)
    assert process.returncode == 130, err
    assert "removing service" in err
    shown = json.loads(story.builder("runs", "show", running["id"], "--json").stdout)
    assert shown["result"] == "exit 130" and story.token not in json.dumps(shown)
    assert story.token not in out + err
    assert builder_services(docker_client) == []
    assert token_secrets(docker_client) == []  # nothing uses it any more
    deadline = time.monotonic() + 30
    while docker_client.containers.list(all=True, filters={"id": container_id}):
        assert time.monotonic() < deadline, "the task's container outlived its service"
        time.sleep(0.5)


def test_a_killed_run_leaves_a_service_and_secret_that_the_next_run_removes(
    story, swarm, docker_client
):
    program = "import time; print('ready', flush=True); time.sleep(600)"
    process = subprocess.Popen(
        [sys.executable, "-m", "builder", *story.swarm_args("python", "-u", "-c", program)],
        env=story.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGKILL)  # no chance to remove anything
        process.wait(timeout=60)
    finally:
        stop(process)
    assert len(builder_services(docker_client)) == 1
    assert [s.name for s in token_secrets(docker_client)] == [token_secret_name(story.token)]
    done = story.run("python", "-c", "print('next')")
    assert done.returncode == 0 and done.stdout.strip() == "next", done.stderr
    assert "left behind by a killed run" in done.stderr
    assert builder_services(docker_client) == []
    assert token_secrets(docker_client) == []
