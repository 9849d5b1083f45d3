"""End to end without a cluster: `builder run --target kubernetes --emit` for a real project.

The emitted manifests validate against the official Kubernetes schemas. Then the Job's
container spec runs with docker, as a kubelet would run it: the image, its entrypoint with
the Job's args, the Job's env, the token Secret as a read-only file at the mount path, and
the `emptyDir` cache as an empty temporary directory. It prints the code at the commit.
With `--node-cache`, the cache is a `hostPath`: a directory of the test's "node", which 8
containers started at once share, as the pods of a fan-out on one node do.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor, validate

from builder.targets import token_secret_name
from builder.targets.local import CACHE_MOUNT, TOKEN_MOUNT
from tests.gitworld import GIT_IDENTITY, clone_served, git
from tests.infra.docker_fixtures import HOST_NETWORK, REGISTRY
from tests.infra.git_server import GitServer

pytestmark = pytest.mark.docker

NAME = "e2e-cluster"  # as in test_swarm: the other module pulls the base image
MAIN = 'import os\nprint("{marker}", os.environ.get("BUILDER_COMMIT", "baked")[:12])\n'
VERSIONS = sorted({all_versions()[0], all_versions()[-1]})
HEX = set("0123456789abcdef")


@dataclass
class Story:
    server: GitServer
    project: Path
    home: Path

    @property
    def token(self) -> str:
        return str(self.server.token)

    def builder(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "builder", *args],
            env={**os.environ, "BUILDER_HOME": str(self.home), **GIT_IDENTITY},
            text=True,
            capture_output=True,
            timeout=600,
            check=False,
        )

    def emit(self, *args: str) -> tuple[list[dict[str, Any]], str]:
        done = self.builder("run", "--target", "kubernetes", "--emit", str(self.project), *args)
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc], done.stderr


@pytest.fixture(scope="module")
def story(tmp_path_factory, docker_client, parent_image, registry) -> Iterator[Story]:
    base = tmp_path_factory.mktemp("e2e-k8s")
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


def pod_binds(
    job: dict[str, Any], token: str, scratch: Path, node: Path | None = None
) -> tuple[dict[str, dict[str, str]], Path]:
    """The Job's volumes as docker binds, as a kubelet would mount them: an emptyDir is a new
    directory below `scratch`, a hostPath that path below `node` (the test's node)."""
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    binds: dict[str, dict[str, str]] = {}
    cache = scratch / "emptydir"
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            cache.mkdir()
            source = cache
        elif "hostPath" in volume and node is not None:
            assert volume["hostPath"]["type"] == "DirectoryOrCreate"
            cache = node / volume["hostPath"]["path"].lstrip("/")
            cache.mkdir(parents=True, exist_ok=True, mode=0o755)
            source = cache
        elif "secret" in volume:
            directory = scratch / "secret"
            directory.mkdir()
            for item in volume["secret"]["items"]:
                (directory / item["path"]).write_text(token)
                (directory / item["path"]).chmod(volume["secret"]["defaultMode"])
            source = directory / mount["subPath"] if mount.get("subPath") else directory
        else:
            raise AssertionError(f"unexpected volume {volume}")
        mode = "ro" if mount.get("readOnly") else "rw"
        binds[str(source)] = {"bind": mount["mountPath"], "mode": mode}
    return binds, cache


def run_job_locally(
    docker_client: Any, job: dict[str, Any], token: str, scratch: Path
) -> tuple[str, Path]:
    """Run the Job's only container with docker as a kubelet would; return stdout, cache dir."""
    [container] = job["spec"]["template"]["spec"]["containers"]
    binds, cache = pod_binds(job, token, scratch)
    output = docker_client.containers.run(
        container["image"],
        command=container.get("args"),
        entrypoint=container.get("command"),  # absent: the image's own entrypoint
        environment={item["name"]: item["value"] for item in container["env"]},
        volumes=binds,
        network_mode=HOST_NETWORK,  # the git server listens on 127.0.0.1 only
        remove=True,
        stdout=True,
        stderr=False,
    )
    return output.decode(), cache


def test_the_manifests_of_a_clean_pushed_project_validate(story):
    documents, said = story.emit("--include-secret")
    assert [doc["kind"] for doc in documents] == ["Secret", "Job"]
    secret, job = documents
    assert secret["metadata"]["name"] == token_secret_name(story.token)
    assert len(VERSIONS) >= 2
    for version in VERSIONS:
        for document in documents:
            assert validate(document, version, strict=True) == major_minor(version)
    head = git(story.project, "rev-parse", "HEAD")
    labels = job["metadata"]["labels"]
    assert labels["org.builder/commit"] == head
    image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith(f"{REGISTRY}/{NAME}:base-") and "@sha256:" in image
    assert labels["org.builder/checksum"] == image.split(":base-")[1][:16]
    assert story.token not in said


def test_without_include_secret_the_job_references_a_secret_the_user_creates(story):
    documents, said = story.emit()
    assert [doc["kind"] for doc in documents] == ["Job"]
    name = token_secret_name(story.token)
    assert f"kubectl create secret generic {name} --from-file=token=" in said
    assert story.token not in yaml.safe_dump_all(documents) and story.token not in said


def test_the_job_container_run_with_docker_prints_the_code_at_the_commit(
    story, docker_client, tmp_path
):
    documents, _ = story.emit()
    [job] = documents
    head = git(story.project, "rev-parse", "HEAD")
    env = {item["name"]: item["value"] for item in job["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["BUILDER_TOKEN_FILE"] == TOKEN_MOUNT and env["BUILDER_CACHE_DIR"] == CACHE_MOUNT
    output, cache = run_job_locally(docker_client, job, story.token, tmp_path)
    assert output.split() == ["v1", head[:12]]
    assert any(cache.iterdir()), "the code was not downloaded into the emptyDir cache"


def test_the_job_reads_the_token_from_the_mounted_secret(story, docker_client, tmp_path):
    program = (
        "import hashlib, os\n"
        "path = os.environ['BUILDER_TOKEN_FILE']\n"
        "print(path, hashlib.sha256(open(path, 'rb').read()).hexdigest())\n"
    )
    documents, _ = story.emit("--", "python", "-c", program)
    [job] = documents
    output, _ = run_job_locally(docker_client, job, story.token, tmp_path)
    assert output.split() == [TOKEN_MOUNT, hashlib.sha256(story.token.encode()).hexdigest()]


def test_a_node_cache_serves_a_fan_out_of_eight_pods_with_one_download(
    story, docker_client, tmp_path
):
    """8 pods of the same commit start at once on one node that shares its cache: one of them
    downloads (the server sees one download's requests), the others wait for it, all run."""
    documents, _ = story.emit("--node-cache", "/var/cache/builder")
    [job] = documents
    for version in VERSIONS:
        assert validate(job, version, strict=True) == major_minor(version)
    head = git(story.project, "rev-parse", "HEAD")
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}

    def start(scratch: Path, node: Path) -> str:
        scratch.mkdir(parents=True)
        binds, _ = pod_binds(job, story.token, scratch, node)
        return docker_client.containers.run(
            container["image"], command=container.get("args"), environment=env,
            volumes=binds, network_mode=HOST_NETWORK, remove=True, stdout=True, stderr=False,
        ).decode()

    story.server.reset_counts()  # one pod alone on its node: what one download asks
    assert start(tmp_path / "alone", tmp_path / "node-alone").split() == ["v1", head[:12]]
    one_download = story.server.request_count
    assert one_download >= 1

    story.server.reset_counts()
    outputs: dict[int, str] = {}
    failures: list[BaseException] = []
    barrier = threading.Barrier(8)

    def pod(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            outputs[index] = start(tmp_path / f"pod-{index}", tmp_path / "node")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=pod, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not failures, failures[0]
    assert sorted(outputs) == list(range(8))
    assert all(out.split() == ["v1", head[:12]] for out in outputs.values()), outputs
    assert story.server.request_count == one_download  # one download for all eight
    cache = tmp_path / "node" / "var" / "cache" / "builder"
    trees = [entry for entry in cache.iterdir()  # cache entries are named by a 32-hex key
             if entry.is_dir() and len(entry.name) == 32 and set(entry.name) <= HEX]
    assert len(trees) == 1
