"""`builder build` on the real engine and registry: reuse, bake, lookups, errors, secrets.

Every test uses its own image name (`builder-test-<hex>`) and removes its local images.
Builder's wheelhouse and the parent probe are cached for the whole session, and the
engine's layer cache makes every base build after the first a matter of seconds.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.gitworld import GIT_IDENTITY, git
from tests.integration.images.support import (
    BUILD_TIMEOUT,
    build,
    built,
    layers,
    register_git,
    run_in,
    yaml,
)

pytestmark = pytest.mark.docker

MAIN_V1 = "import six\nprint('version one', six.__version__)\n"
MAIN_V2 = "import six\nprint('version two', six.__version__)\n"


def test_no_reuse_forces_a_bake_and_a_build(world, names, docker_client):
    name = names()
    bare = world.bare("app")
    project = world.project("work", remote=bare, files={
        "builder.yaml": yaml(name), "requirements.txt": "six\n", "main.py": MAIN_V1,
    })
    register_git(world, "app", bare)
    reuse = built(world, project)
    assert reuse["mode"] == "reuse"
    forced = built(world, project, "--no-reuse")
    assert forced["mode"] == "bake" and "--no-reuse was given" in forced["reasons"]
    tree, code = forced["built"]
    assert ":tree-" in tree and code == forced["image"]
    assert forced["base_image"] == reuse["base_image"]
    first_layers = layers(docker_client, forced["image"])
    first_id = docker_client.images.get(code).id
    assert built(world, project, "--no-reuse")["built"] == [forced["image"]]
    # Built again from scratch, the same tree gives the same layers and the same image.
    assert layers(docker_client, forced["image"]) == first_layers
    assert docker_client.images.get(code).id == first_id
    assert built(world, project)["built"] == []
    assert run_in(docker_client, forced["image"], "python", "main.py").startswith("version one")


def test_projects_outside_git_and_in_subdirectories_bake_their_own_files(world, names,
                                                                       docker_client):
    plain = world.root / "plain"
    plain.mkdir()
    (plain / "builder.yaml").write_text(yaml(names()))
    (plain / "requirements.txt").write_text("six\n")
    (plain / "main.py").write_text(MAIN_V1)
    (plain / ".dockerignore").write_text("secret.txt\n")
    (plain / "secret.txt").write_text("do not ship\n")
    result = built(world, plain)
    assert result["mode"] == "bake" and result["commit"] is None
    listing = run_in(docker_client, result["image"], "ls", "-A", entrypoint=False).split()
    assert sorted(listing) == [".dockerignore", "builder.yaml", "main.py", "requirements.txt"]

    project = world.project("mono", files={
        "builder.yaml": yaml(names()), "requirements.txt": "six\n", "main.py": MAIN_V1,
        "../other/elsewhere.py": "x = 1\n",
    }, subdirectory="services/app")
    sub = built(world, project)
    assert sub["subdirectory"] == "services/app"
    listing = run_in(docker_client, sub["image"], "ls", "-A", entrypoint=False).split()
    assert sorted(listing) == ["builder.yaml", "main.py", "requirements.txt"]
    assert run_in(docker_client, sub["image"], "python", "main.py").startswith("version one")


def test_no_secret_in_any_layer_label_or_env(world, names, docker_client, tmp_path):
    token = f"tok-{uuid.uuid4().hex}"
    bare = world.bare("app")
    project = world.project("work", remote=bare, files={
        "builder.yaml": yaml(names()), "requirements.txt": "six\n", "main.py": MAIN_V1,
    })
    register_git(world, "app", bare, "--token", token)
    reuse = build(world, project)
    assert reuse.code == 0, reuse.stderr
    (project / "main.py").write_text(MAIN_V2)
    bake = build(world, project)
    assert bake.code == 0, bake.stderr
    for result in (reuse, bake):
        assert token not in result.stdout + result.stderr
    images = {reuse.json()["image"], bake.json()["image"]}
    assert len(images) == 2
    for ref in images:
        assert token not in json.dumps(docker_client.api.inspect_image(ref))
        assert token not in json.dumps(docker_client.api.history(ref))
        archive = tmp_path / "image.tar"
        with open(archive, "wb") as handle:
            for chunk in docker_client.images.get(ref).save(named=True):
                handle.write(chunk)
        grep = subprocess.run(["grep", "-a", "-c", token, str(archive)], capture_output=True,
                              text=True, check=False)
        assert grep.stdout.strip() == "0", f"{ref} holds the token"
        archive.unlink()


def test_two_concurrent_builds_build_each_image_once(world, names):
    project = world.project("work", files={
        "builder.yaml": yaml(names()), "requirements.txt": "six\n",
        "main.py": f"print('{uuid.uuid4().hex}')\n",
    })
    env = {**os.environ, "BUILDER_HOME": str(world.home), **GIT_IDENTITY}
    command = [sys.executable, "-m", "builder", "build", str(project), "--json"]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=BUILD_TIMEOUT) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    results = [json.loads(stdout) for stdout, _ in outputs]
    assert results[0]["image"] == results[1]["image"]
    everything = results[0]["built"] + results[1]["built"]
    tree = next(ref for ref in everything if ":tree-" in ref)
    assert sorted(everything) == sorted([results[0]["base_image"], tree, results[0]["image"]])


def test_moving_the_parent_tag_changes_the_checksum(world, names, docker_client, parent_image):
    parent = f"{names()}:1"
    docker_client.images.get(parent_image).tag(parent)
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(f"name: {names()}\nparent_image: {parent}\n")
    (project / "main.py").write_text("print('hi')\n")
    first = built(world, project)
    assert built(world, project)["built"] == []
    moved = io.BytesIO(f"FROM {parent_image}\nLABEL builder-test=moved\n".encode())
    docker_client.images.build(fileobj=moved, tag=parent, rm=True)
    second = built(world, project)
    assert second["checksum"] != first["checksum"]
    assert second["built"] == [second["base_image"], second["image"]]
    labels = docker_client.images.get(second["base_image"]).labels
    assert labels["builder-test"] == "moved"


# ---- errors: one clear line (plus the failing step's output) and DESIGN's exit code ---------

def test_missing_requirements_file_is_bad_input(world, names):
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(f"name: {names()}\nrequirements: [missing.txt]\n")
    result = build(world, project)
    assert result.code == 2 and result.stdout == ""
    assert "missing.txt" in result.stderr and "Traceback" not in result.stderr


def test_unknown_parent_image_is_bad_input(world, names, registry):
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(
        f"name: {names()}\nparent_image: {registry}/builder-test-no-such-parent:1\n")
    result = build(world, project)
    assert result.code == 2, result.stderr
    assert "parent_image" in result.stderr and "no-such-parent" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_failing_install_shows_the_step_and_its_last_lines(world, names, docker_client,
                                                            installer):
    project = world.root / "p"
    project.mkdir()
    name = names()
    (project / "builder.yaml").write_text(yaml(name, extra=f"installer: {installer}\n"))
    (project / "requirements.txt").write_text("builder-test-no-such-package-4711==0.0.1\n")
    result = build(world, project)
    assert result.code == 1 and result.stdout == ""
    error = result.stderr[result.stderr.index("builder: error:"):]
    assert "failed at 'the install step': exit code 1" in error
    assert "builder-test-no-such-package-4711" in error
    assert "last lines of output" in error and "Traceback" not in error
    # the install container is gone, whatever happened in it
    steps = docker_client.containers.list(all=True, filters={"label": "org.builder.role"})
    assert not [c for c in steps if c.labels.get("org.builder.image", "").startswith(name)]


def test_engine_down_is_an_operation_failure(world, names):
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(f"name: {names()}\n")
    result = build(world, project, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.code == 1 and result.stdout == ""
    assert "cannot reach the Docker engine at unix:///nonexistent/docker.sock" in result.stderr
    assert "make engine" in result.stderr and "Traceback" not in result.stderr


def test_push_without_registry_is_bad_input(world, names):
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(f"name: {names()}\n")
    result = build(world, project, "--push")
    assert result.code == 2 and "registry" in result.stderr


def test_registry_environment_overrides_the_setting(world, names, registry, docker_client):
    name = names()
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(yaml(name, registry="registry.invalid:5000"))
    (project / "requirements.txt").write_text("six\n")
    (project / "main.py").write_text(MAIN_V1)
    git(project, "init", "-q")
    result = build(world, project, "--push", env={"BUILDER_REGISTRY": registry})
    assert result.code == 0, result.stderr[-3000:]
    data = result.json()
    assert data["image"].startswith(f"{registry}/{name}:code-")
    assert sorted(data["pushed"]) == sorted([data["base_image"], data["image"]])


# Last: it removes its images, which also drops their layers from the engine's build cache.
def test_reuse_bake_and_registry_round_trip(world, names, docker_client, registry):
    name = names()
    bare = world.bare("app")
    project = world.project("work", remote=bare, files={
        "builder.yaml": yaml(name, registry=registry),
        "requirements.txt": "six\n",
        "main.py": MAIN_V1,
    })
    register_git(world, "app", bare)

    # A clean, pushed project reuses the base image; --push puts it in the registry.
    first = built(world, project, "--push")
    assert first["mode"] == "reuse", first["reasons"]
    base = first["base_image"]
    assert base == f"{registry}/{name}:base-{first['checksum'][:16]}"
    assert first["image"] == base and first["built"] == [base] and first["pushed"] == [base]
    assert first["code_repository"] == "app" and len(first["commit"]) == 40
    labels = docker_client.images.get(base).labels
    assert labels["org.builder.checksum"] == first["checksum"]
    assert labels["org.builder.commit"] == first["commit"]
    assert labels["org.builder.repository"] == "app"
    assert labels["org.builder.dirty"] == "false"
    assert labels["org.builder.version"].startswith("0.")
    # The base image holds no code, and git (the git type's need) is in it.
    assert run_in(docker_client, base, "ls", "-A", "/app/code", entrypoint=False) == ""
    assert run_in(docker_client, base, "git", "--version", entrypoint=False).startswith("git")

    # A second build builds nothing, and so does one after touching every file.
    second = built(world, project)
    assert (second["mode"], second["built"], second["pushed"]) == ("reuse", [], [])
    assert second["checksum"] == first["checksum"]
    for path in project.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (1_000_000_000, 1_000_000_000))
    touched = built(world, project)
    assert (touched["mode"], touched["built"], touched["image"]) == ("reuse", [], base)

    # A dirty change bakes a thin code layer on the unchanged base.
    (project / "main.py").write_text(MAIN_V2)
    dirty = built(world, project, "--push")
    assert dirty["mode"] == "bake" and dirty["dirty_files"] == ["main.py"]
    assert dirty["base_image"] == base and dirty["checksum"] == first["checksum"]
    code = dirty["image"]
    tree = f"{registry}/{name}:tree-"
    assert code.startswith(f"{registry}/{name}:code-")
    assert dirty["built"][0].startswith(tree) and dirty["built"][1:] == [code]
    assert dirty["pushed"] == dirty["built"]
    # Two layers on the base: the commit's tree, and the one changed file.
    assert layers(docker_client, code)[:-1] == layers(docker_client, dirty["built"][0])
    assert layers(docker_client, code)[:-2] == layers(docker_client, base)
    code_labels = docker_client.images.get(code).labels
    assert code_labels["org.builder.dirty"] == "true"
    assert code_labels["org.builder.checksum"] == first["checksum"]
    # The same dirty tree again builds nothing; the baked image runs the dirty code.
    again = built(world, project)
    assert (again["built"], again["image"]) == ([], code)
    assert run_in(docker_client, code, "python", "main.py").startswith("version two")

    # A second machine: no local images; both come back from the registry, nothing is built.
    docker_client.images.remove(code, force=True)
    docker_client.images.remove(base, force=True)
    back = built(world, project)
    assert (back["built"], back["image"], back["base_image"]) == ([], code, base)
    docker_client.images.get(code)
    assert run_in(docker_client, code, "python", "main.py").startswith("version two")

    # Changing one requirement rebuilds the base (and the code layer on it).
    (project / "requirements.txt").write_text("six==1.16.0\n")
    changed = built(world, project)
    assert changed["checksum"] != first["checksum"]
    assert changed["built"][::2] == [changed["base_image"], changed["image"]]
    assert ":tree-" in changed["built"][1]
    assert run_in(docker_client, changed["image"], "python", "main.py") == "version two 1.16.0"


def test_one_changed_requirement_is_named_and_downloaded_alone(world, names, docker_client):
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(yaml(names()))
    (project / "requirements.txt").write_text("six==1.16.0\nidna==3.7\n")
    first = build(world, project)
    assert first.json()["base_changes"] == []
    assert "Prepared 2 packages" in first.stderr  # uv's summary: both downloaded
    assert world.status(project)["base_changes"] == []

    (project / "requirements.txt").write_text("# pinned\nsix==1.16.0\nidna==3.6\n")
    change = {"input": "requirements", "added": ["idna==3.6"], "removed": ["idna==3.7"]}
    assert world.status(project)["base_changes"] == [change]
    text = world.builder("status", str(project))
    assert "base changes  - requirements: + idna==3.6, - idna==3.7" in text.stdout

    second = build(world, project)
    info = second.json()
    assert info["base_changes"] == [change] and info["base_image"] in info["built"]
    assert "base image inputs changed: requirements: + idna==3.6, - idna==3.7" in second.stderr
    assert "Prepared 1 package " in second.stderr  # the download cache had six
    assert run_in(docker_client, info["image"], "python", "-c",
                  "import idna, six; print(idna.__version__, six.__version__)") == "3.6 1.16.0"
    # the record follows the last build; the cache belongs to the user who ran builder
    assert world.status(project)["base_changes"] == []
    downloads = world.home / "downloads"
    assert (downloads / "uv").is_dir()
    assert {p.stat().st_uid for p in downloads.rglob("*")} == {os.getuid()}


def test_pip_installer_builds_the_same_kind_of_base(world, names, docker_client):
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(yaml(names(), extra="installer: pip\n"))
    (project / "requirements.txt").write_text("six==1.16.0\n")
    (project / "main.py").write_text(MAIN_V1)
    info = built(world, project)
    assert run_in(docker_client, info["image"], "python", "main.py") == "version one 1.16.0"
    config = docker_client.api.inspect_image(info["base_image"])["Config"]
    assert config["Entrypoint"] == ["/opt/builder/bin/builder", "entrypoint", "--"]
    assert config["WorkingDir"] == "/app/code" and not config["Cmd"]
    # nothing handed to the install step is left in the image
    assert run_in(docker_client, info["base_image"], "sh", "-c",
                  "ls /opt; test ! -e /opt/builder-install && echo clean",
                  entrypoint=False).split() == ["builder", "clean"]


def test_a_remote_engine_gets_the_installer_handed_in_and_keeps_it(world, names, docker_client,
                                                                   monkeypatch):
    """With a remote engine the host cannot put uv into the engine host's cache: the step
    gets it handed in and keeps it there. Here the engine is local, so that cache is ours."""
    from builder.images.build import build_project
    from builder.images.engine import Engine
    from builder.images.installers.uv import UV_TOOL

    monkeypatch.setenv("BUILDER_HOME", str(world.home))
    monkeypatch.setattr(Engine, "is_local", lambda self: False)
    project = world.root / "p"
    project.mkdir()
    (project / "builder.yaml").write_text(yaml(names()))
    (project / "requirements.txt").write_text("six==1.16.0\n")
    result = build_project(project)
    kept = world.home / "downloads" / "tools" / UV_TOOL
    assert kept.is_file() and os.access(kept, os.X_OK)
    assert run_in(docker_client, result.base_image, "python", "-c",
                  "import six; print(six.__version__)") == "1.16.0"
