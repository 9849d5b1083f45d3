"""End to end, in real containers: run records, and `builder runs rerun` of exactly that code.

One story in file order, on a project whose origin is a loopback git server with a token and
whose images go to the test registry: a reuse run and a baked run (listed with commits, dirty
files and digests), a rerun of the baked code after the working tree was reset, a rerun of the
reuse run's commit after the checkout moved on two commits, a pull by digest when the image is
gone locally, a clear error when it is gone everywhere, ten concurrent runs, a kill -9, and
the token nowhere in the records, labels, annotations or output.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder.runs.database import RunDatabase
from tests.gitworld import GIT_IDENTITY, clone_served, git
from tests.infra.docker_fixtures import REGISTRY
from tests.infra.git_server import GitServer

pytestmark = pytest.mark.docker

MAIN = 'import os\nprint("{marker}", os.environ.get("BUILDER_COMMIT", "baked")[:12])\n'
RUN_ID_LABEL = "org.builder.run-id"
CONCURRENT = 10
DEADLINE = 600


@dataclass
class Story:
    server: GitServer
    project: Path
    home: Path
    name: str
    ids: dict[str, str] = field(default_factory=dict)  # what each test left for the next
    seen: list[str] = field(default_factory=list)  # labels and output to search for the token

    @property
    def token(self) -> str:
        return str(self.server.token)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "BUILDER_HOME": str(self.home), **GIT_IDENTITY, **extra}

    def builder(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "builder", *args], env=self.env(**extra), text=True,
            capture_output=True, timeout=DEADLINE, check=False,
        )
        self.seen += [done.stdout, done.stderr]
        return done

    def run(self, *command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        tail = ["--", *command] if command else []
        return self.builder("run", str(self.project), "--push", "--network", "host", *tail,
                            **extra)

    def runs(self, *args: str) -> list[dict[str, Any]]:
        done = self.builder("runs", "list", "--json", *args)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def newest(self) -> dict[str, Any]:
        return self.runs("--limit", "1")[0]

    def commit_and_push(self, marker: str) -> str:
        (self.project / "main.py").write_text(MAIN.format(marker=marker))
        git(self.project, "commit", "-qam", marker)
        git(self.project, "push", "-q", "origin", "HEAD:main")
        return git(self.project, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def story(tmp_path_factory, docker_client, parent_image, registry) -> Iterator[Story]:
    base = tmp_path_factory.mktemp("e2e-runs")
    name = f"e2e-runs-{secrets.token_hex(3)}"
    server = GitServer(base / "repos", work_dir=base / "work")
    server.start()
    try:
        project = clone_served(server, base, {
            "builder.yaml": f"name: {name}\nregistry: {REGISTRY}\ncommand: [python, main.py]\n",
            "main.py": MAIN.format(marker="v1"),
        })
        story = Story(server, project, base / "home", name)
        done = story.builder("code-repository", "register", "app", "--type", "git",
                             "--url", f"{server.url}/team/app.git", "--token", server.token)
        assert done.returncode == 0, done.stderr
        yield story
    finally:
        server.stop()
        if (base / "home" / "runs").exists():  # containers a killed builder left behind
            with RunDatabase(base / "home") as database:
                ids = [record.id for record in database.runs()]
            for run_id in ids:
                for container in docker_client.containers.list(
                        all=True, filters={"label": f"{RUN_ID_LABEL}={run_id}"}):
                    container.remove(force=True)
        for repository in (f"{REGISTRY}/{name}", name):
            for image in docker_client.images.list(name=repository):
                docker_client.images.remove(image.id, force=True)


def test_a_reuse_run_and_a_baked_run_are_listed_with_commits_dirty_files_and_digests(story):
    head = git(story.project, "rev-parse", "HEAD")
    reuse = story.run()
    assert reuse.returncode == 0, reuse.stderr
    assert reuse.stdout.split() == ["v1", head[:12]]
    (story.project / "main.py").write_text(MAIN.format(marker="dirty-edit"))
    baked = story.run()
    assert baked.returncode == 0, baked.stderr
    assert baked.stdout.split() == ["dirty-edit", "baked"]

    newest, oldest = story.runs()
    assert (newest["mode"], oldest["mode"]) == ("bake", "reuse")
    for record in (newest, oldest):
        assert record["kind"] == "run" and record["target"] == "local"
        assert record["result"] == "exit 0" and record["commit"] == head
        assert record["image_id"].startswith("sha256:")
        assert record["image_digest"].startswith("sha256:")
        assert record["command"] == ["python", "main.py"] and record["network"] == "host"
        assert record["project_path"] == str(story.project) and record["project_name"] == story.name
    assert newest["dirty_files"] == ["main.py"] and len(newest["content_hash"]) == 64
    assert oldest["dirty_files"] == [] and oldest["code_repository"] == "app"
    assert oldest["repository_spec"]["config"] == {"url": f"{story.server.url}/team/app.git"}
    assert oldest["image"] == oldest["base_image"] and newest["image"] != newest["base_image"]

    table = story.builder("runs", "list", str(story.project)).stdout
    for record in (newest, oldest):
        line = next(row for row in table.splitlines() if row.startswith(record["short_id"]))
        assert head[:12] in line and record["image_digest"][7:19] in line
        assert ("main.py" in line) == (record is newest)
    story.ids.update(reuse=oldest["id"], bake=newest["id"], head=head)


def test_rerun_of_the_baked_run_prints_the_dirty_edit_after_the_tree_was_reset(story):
    git(story.project, "checkout", "--", "main.py")
    assert git(story.project, "status", "--porcelain") == ""
    done = story.builder("runs", "rerun", story.ids["bake"][:8])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["dirty-edit", "baked"]
    record = story.newest()
    assert record["rerun_of"] == story.ids["bake"] and record["result"] == "exit 0"
    assert record["dirty_files"] == ["main.py"] and record["mode"] == "bake"


def test_rerun_of_the_reuse_run_prints_the_old_code_after_the_checkout_moved_on(story):
    story.commit_and_push("v2")
    moved = story.commit_and_push("v3")
    assert git(story.project, "rev-parse", "HEAD~2") == story.ids["head"]
    now = story.run()
    assert now.returncode == 0 and now.stdout.split() == ["v3", moved[:12]], now.stderr
    done = story.builder("runs", "rerun", story.ids["reuse"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["v1", story.ids["head"][:12]]
    record = story.newest()
    assert record["rerun_of"] == story.ids["reuse"] and record["commit"] == story.ids["head"]
    other = story.builder("runs", "rerun", story.ids["reuse"], "--", "python", "-c",
                          "import sys; print(open('main.py').read().count('v1')); sys.exit(5)")
    assert other.returncode == 5 and other.stdout.strip() == "1", other.stderr
    assert story.newest()["result"] == "exit 5"


def test_a_rerun_pulls_the_image_by_digest_when_it_is_gone_locally(story, docker_client):
    record = next(r for r in story.runs("--limit", "0") if r["id"] == story.ids["bake"])
    docker_client.images.remove(record["image_id"], force=True)
    done = story.builder("runs", "rerun", story.ids["bake"])
    assert done.returncode == 0, done.stderr
    assert f"pulling {REGISTRY}/{story.name}@{record['image_digest']}" in done.stderr
    assert done.stdout.split() == ["dirty-edit", "baked"]
    assert docker_client.images.get(record["image_id"]).id == record["image_id"]


def test_an_image_gone_everywhere_is_a_clear_error_that_says_how_to_rebuild(story, docker_client):
    (story.project / "main.py").write_text(MAIN.format(marker="local-only"))
    try:
        done = story.builder("run", str(story.project), BUILDER_REGISTRY="")
    finally:
        git(story.project, "checkout", "--", "main.py")
    assert done.returncode == 0 and done.stdout.split() == ["local-only", "baked"], done.stderr
    record = story.newest()
    assert record["image_digest"] is None and record["image"].startswith(f"{story.name}:code-")
    docker_client.images.remove(record["image_id"], force=True)
    gone = story.builder("runs", "rerun", record["id"])
    assert gone.returncode == 1 and gone.stdout == ""
    lines = gone.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("builder: error: "), gone.stderr
    assert "is gone" in lines[0] and "never pushed" in lines[0]
    assert f"builder build {story.project}" in lines[0] and "main.py" in lines[0]
    assert story.newest()["id"] == record["id"]  # a rerun that cannot start is not a run


def test_ten_concurrent_runs_record_ten_runs(story):
    before = {record["id"] for record in story.runs("--limit", "0")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "builder", "run", str(story.project), "--network", "host",
             "--", "python", "-c", f"print('run', {index})"],
            env=story.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for index in range(CONCURRENT)
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=DEADLINE)
        assert process.returncode == 0, err
        outputs.append(out.strip())
    assert sorted(outputs) == sorted(f"run {index}" for index in range(CONCURRENT))
    new = [r for r in story.runs("--limit", "0") if r["id"] not in before]
    assert len(new) == CONCURRENT
    assert sorted(r["command"][-1] for r in new) == sorted(
        f"print('run', {index})" for index in range(CONCURRENT))
    assert {r["result"] for r in new} == {"exit 0"} and {r["mode"] for r in new} == {"reuse"}


def test_kill_9_of_a_run_leaves_a_record_that_says_so(story, docker_client):
    program = "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"
    process = subprocess.Popen(
        [sys.executable, "-m", "builder", "run", str(story.project), "--network", "host",
         "--", "python", "-u", "-c", program],
        env=story.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    container = None
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        running = story.newest()
        assert running["result"] == "still running" and running["ended_at"] is None
        (container,) = docker_client.containers.list(
            filters={"label": f"{RUN_ID_LABEL}={running['id']}"})
        story.seen.append(json.dumps(container.attrs["Config"]["Labels"]))
        assert "BUILDER_TOKEN_FILE=/run/secrets/builder-token" in container.attrs["Config"]["Env"]
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        if container is not None:
            container.remove(force=True)  # builder died before it could remove it
    killed = story.newest()
    assert killed["id"] == running["id"]
    assert killed["result"] == "killed" and killed["exit_code"] is None
    shown = story.builder("runs", "show", running["id"][:10]).stdout
    assert "killed" in shown and f"{RUN_ID_LABEL}={running['id']}" in shown


def test_the_token_never_appears_in_records_labels_annotations_or_output(story):
    done = story.builder("run", "--target", "kubernetes", "--emit", str(story.project))
    assert done.returncode == 0, done.stderr
    (job,) = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    emitted = story.newest()
    assert emitted["target"] == "kubernetes" and emitted["result"] == "emitted"
    assert job["metadata"]["annotations"]["org.builder/run-id"] == emitted["id"]
    assert emitted["image_digest"] and emitted["image_digest"] in job["spec"]["template"][
        "spec"]["containers"][0]["image"]

    records = story.runs("--limit", "0")
    assert len(records) >= 2 + 2 + 3 + CONCURRENT + 2 + 1
    for record in records:
        story.builder("runs", "show", record["id"])
        story.builder("runs", "show", record["id"], "--json")
    story.builder("runs", "list")
    token = story.token
    assert all(token not in text for text in story.seen)
    stored = [path for path in (story.home / "runs").rglob("*") if path.is_file()]
    assert any(path.name == "runs.db" for path in stored)
    for path in stored:
        assert token.encode() not in path.read_bytes(), path
    assert token in (story.home / "secrets.json").read_text()  # where it does belong
