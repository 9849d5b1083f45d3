"""Two CI runners share images through the registry: A builds and pushes, B pulls and runs.

Each runner has its own actions/checkout-style checkout (depth 1, detached, extraheader)
of the loopback GitHub server, its own job variables and its own BUILDER_HOME. Runner B's
home is always fresh, so B re-derives the wheelhouse and parent probe that the checksum
covers. Between the two, the project's images are removed from the engine: in the
two-runner test for good, layers and all, as on another machine (the registry is
127.0.0.1:5000, named by BUILDER_REGISTRY); the docker login test keeps the layers
(tests/e2e/ci_images.py) and uses a second registry that requires `docker login`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.cisim import actions_checkout, github_env, parse_github_output
from tests.e2e import ci_images
from tests.gitworld import GIT_IDENTITY, Result
from tests.infra.github_server import GitHubServer
from tests.infra.gitrepos import RepoHandle

pytestmark = pytest.mark.docker

REPO = "team/app"
MAIN = 'import os\nprint("{marker}", os.environ.get("BUILDER_COMMIT", "baked")[:12])\n'
TIMEOUT = 900


@dataclass
class Origin:
    server: GitHubServer
    handle: RepoHandle
    name: str  # the image name in builder.yaml
    cache: Path  # a wheelhouse and parent probes that some runners share (see `runner`)
    config: pytest.Config


@dataclass
class Runner:
    root: Path
    checkout: Path
    env: dict[str, str]

    def builder(self, *args: str) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "builder", *args],
            cwd=self.checkout,
            env={**os.environ, **GIT_IDENTITY, **self.env},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        assert_no_secret(self, result.stdout + result.stderr)
        return result

    def build(self, *args: str) -> dict[str, Any]:
        result = self.builder("build", "--json", *args)
        assert result.code == 0, result.stderr
        return result.json()

    def files(self) -> str:
        return "".join(p.read_text() for p in self.root.rglob("*") if p.is_file()
                       and ".git" not in p.parts and "home" not in p.parts)


def assert_no_secret(runner: Runner, text: str) -> None:
    for name in ("GITHUB_TOKEN", "REGISTRY_PASSWORD"):
        if runner.env.get(name):
            assert runner.env[name] not in text


@pytest.fixture(scope="module")
def origin(request, tmp_path_factory, docker_client, parent_image) -> Iterator[Origin]:
    base = tmp_path_factory.mktemp("ci-runners")
    server = GitHubServer(base / "repos", work_dir=base / "work")
    server.start()
    name = f"ci-runners-{uuid.uuid4().hex[:8]}"
    try:
        handle = server.create_repo(REPO)
        handle.commit({"builder.yaml": f"name: {name}\ncommand: [python, main.py]\n",
                       "main.py": MAIN.format(marker="v1")}, "v1")
        handle.push()
        yield Origin(server, handle, name, ci_images.shared_cache(tmp_path_factory),
                     request.config)
    finally:
        server.stop()
        ci_images.remove_project(docker_client, name, request.config)


def runner(origin: Origin, root: Path, registry: str, *, sha: str | None = None,
           ref: str | None = None, shared: bool = False, **extra: str) -> Runner:
    """A fresh runner: its own home and checkout, the job's variables, the repository
    registered with `--token {{env.GITHUB_TOKEN}}` (as a workflow would).

    `shared` runners reuse one wheelhouse (builder's wheel, byte for byte), so that the
    engine's layer cache serves their base builds; the others derive everything anew.
    """
    server = origin.server
    if shared:
        (root / "home").mkdir(parents=True)
        for sub in ("wheelhouse", "parents"):
            os.symlink(origin.cache / sub, root / "home" / sub)
    checkout = root / "work" / "app"
    checkout.parent.mkdir(parents=True)
    head = actions_checkout(server, REPO, checkout, sha=sha, ref=ref)
    env = {
        **github_env(server, REPO, head, root / "runner"),
        "BUILDER_HOME": str(root / "home"),
        "BUILDER_REGISTRY": registry,
        **extra,
    }
    made = Runner(root, checkout, env)
    done = made.builder("code-repository", "register", "app", "--type", "github",
                        "--owner", "team", "--repository", "app", "--url", server.url,
                        "--api-url", server.url, "--token", "{{env.GITHUB_TOKEN}}")
    assert done.code == 0, done.stderr
    return made


# ---------------------------------------------------------------------------- docker login


@pytest.fixture
def auth_registry(tmp_path: Path, docker_client) -> Iterator[tuple[str, str, str]]:
    """A second registry on loopback that requires a user and password (htpasswd, bcrypt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    user, password = "ci", f"pw-{uuid.uuid4().hex}"
    digest = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    assert digest.startswith("$2"), "libcrypt has no bcrypt"
    (tmp_path / "htpasswd").write_text(f"{user}:{digest}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    (tmp_path / "registry.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: '{address}', secret: {uuid.uuid4().hex}}}\n"
        f"auth: {{htpasswd: {{realm: builder-test, path: {tmp_path / 'htpasswd'}}}}}\n"
    )
    log = open(tmp_path / "registry.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(["docker-registry", "serve", str(tmp_path / "registry.yml")],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert process.poll() is None, (tmp_path / "registry.log").read_text()
            assert time.monotonic() < deadline, "the auth registry did not start"
            time.sleep(0.1)
        yield address, user, password
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def docker_login(config: Path, address: str, user: str, password: str) -> None:
    config.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["docker", "login", "-u", user, "--password-stdin", address],
                          input=password, text=True, capture_output=True, check=False,
                          env={**os.environ, "DOCKER_CONFIG": str(config)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads((config / "config.json").read_text())["auths"][address]


def test_registry_credentials_come_from_docker_login(
    origin, tmp_path, auth_registry, docker_client
):
    address, user, password = auth_registry
    sha = origin.handle.head
    secret = {"REGISTRY_PASSWORD": password}
    a = runner(origin, tmp_path / "a", address, sha=sha, shared=True,
               DOCKER_CONFIG=str(tmp_path / "a" / "docker"), **secret)
    (tmp_path / "a" / "docker").mkdir()
    refused = a.builder("build", "--push", "--json")
    assert refused.code == 1 and refused.stdout == ""
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("builder: error: ") and "Traceback" not in refused.stderr
    assert "no basic auth credentials" in last or "unauthorized" in last.lower(), last

    docker_login(tmp_path / "a" / "docker", address, user, password)
    info = a.build("--push")
    assert info["pushed"] == [info["base_image"]] and info["base_image"].startswith(address)

    ci_images.remove_project(docker_client, origin.name, origin.config, keep=True)
    b = runner(origin, tmp_path / "b", address, sha=sha, shared=True,
               DOCKER_CONFIG=str(tmp_path / "b" / "docker"), **secret)
    docker_login(tmp_path / "b" / "docker", address, user, password)
    result = b.builder("build", "--json")
    assert result.code == 0, result.stderr
    again = result.json()
    assert again["built"] == [] and again["image"] == info["image"], result.stderr
    assert f"pulled from {address}" in result.stderr
    ci_images.remove_project(docker_client, origin.name, origin.config, keep=True)


# ---------------------------------------------------------------------------- two runners


def test_runner_b_pulls_what_runner_a_pushed_and_runs_the_commit(
    origin, tmp_path, registry, docker_client
):
    sha = origin.handle.head
    a = runner(origin, tmp_path / "a", registry, sha=sha, shared=True)
    info = a.build("--push")
    base = f"{registry}/{origin.name}:base-{info['checksum'][:16]}"
    assert info["mode"] == "reuse" and info["commit"] == sha, info
    assert info["image"] == info["base_image"] == base
    assert info["built"] == [base] and info["pushed"] == [base]
    outputs = parse_github_output(Path(a.env["GITHUB_OUTPUT"]).read_text())
    assert outputs["image"] == base and outputs["checksum"] == info["checksum"]
    assert outputs["mode"] == "reuse" and outputs["commit"] == sha
    assert "### builder: reuse" in Path(a.env["GITHUB_STEP_SUMMARY"]).read_text()

    # Runner B is another machine: the image is gone from the engine, layers and all.
    image_id = docker_client.api.inspect_image(base)["Id"]
    assert ci_images.remove_project(docker_client, origin.name, origin.config) == [base]
    ci_images.drop_kept(docker_client)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.api.inspect_image(image_id)
    b = runner(origin, tmp_path / "b", registry, sha=sha)
    result = b.builder("build", "--json")
    assert result.code == 0, result.stderr
    again = result.json()
    assert again["built"] == [] and again["checksum"] == info["checksum"], result.stderr
    assert again["image"] == base
    assert f"pulled from {registry}" in result.stderr
    done = b.builder("run", "--network", "host")
    assert done.code == 0, done.stderr
    assert done.stdout.split() == ["v1", sha[:12]]
    assert "built nothing" in done.stderr
    for each in (a, b):
        assert_no_secret(each, each.files())


def test_a_merge_commit_is_baked_pushed_and_pulled_as_a_code_image(
    origin, tmp_path, registry, docker_client
):
    handle = origin.handle
    handle.commit({"main.py": MAIN.format(marker="merged")}, "feature", branch="feature")
    handle.push("feature")
    handle.git("checkout", "-q", "main")
    handle.commit({"notes.txt": "main moved on\n"}, "main moves on")
    handle.push()
    handle.git("checkout", "-q", "--detach")
    handle.git("merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
    merge = handle.head
    handle.git("push", "-q", "origin", f"{merge}:refs/pull/1/merge")
    handle.git("checkout", "-q", "main")

    pr = {"GITHUB_REF": "refs/pull/1/merge", "GITHUB_HEAD_REF": "feature",
          "GITHUB_BASE_REF": "main"}
    a = runner(origin, tmp_path / "a", registry, ref="refs/pull/1/merge", **pr)
    info = a.build("--push")
    assert info["mode"] == "bake" and info["commit"] == merge, info
    assert any("merge commit" in reason for reason in info["reasons"])
    code = info["image"]
    assert code.startswith(f"{registry}/{origin.name}:code-") and code in info["pushed"]
    outputs = parse_github_output(Path(a.env["GITHUB_OUTPUT"]).read_text())
    assert outputs["mode"] == "bake" and outputs["image"] == code
    assert outputs["builder_commit"] == "" and outputs["builder_code_repository"] == ""

    assert code in ci_images.remove_project(docker_client, origin.name, origin.config)
    b = runner(origin, tmp_path / "b", registry, ref="refs/pull/1/merge", **pr)
    result = b.builder("build", "--json")
    assert result.code == 0, result.stderr
    again = result.json()
    assert again["built"] == [] and again["image"] == code, result.stderr
    done = b.builder("run", "--network", "host")
    assert done.code == 0, done.stderr
    assert done.stdout.split() == ["merged", "baked"]
