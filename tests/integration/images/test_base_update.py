"""A base built on the project's previous base after a requirement change
(builder.images.increment), on the real engine and index: what it holds is what a fresh
base of the same lines holds, file for file, and every doubt builds a fresh base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builder.images import increment
from builder.images.installers.uv import UV_TOOL
from tests.gitworld import GitWorld
from tests.integration.images.support import (
    build,
    built,
    layers,
    run_in,
    yaml,
)

pytestmark = pytest.mark.docker

# The image's files: path, kind, mode, and the content's digest (of a .pyc: its flags and
# its code, not the source's mtime and size in its header). /proc, /sys and /dev are the
# container's own; /etc's three files are written by the engine for each container.
WALK = """
import hashlib, os, stat
skip = {"/proc", "/sys", "/dev", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}
for top, dirs, files in os.walk("/"):
    dirs[:] = sorted(d for d in dirs if os.path.join(top, d) not in skip)
    for name in sorted(dirs + files):
        path = os.path.join(top, name)
        if path in skip:
            continue
        info = os.lstat(path)
        detail = ""
        if stat.S_ISLNK(info.st_mode):
            detail = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            data = open(path, "rb").read()
            if name.endswith(".pyc"):
                data = data[4:8] + data[16:]
            detail = hashlib.sha256(data).hexdigest()
        print(oct(info.st_mode), path, detail)
"""
SIX_HASH = "sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"


def labels(docker_client, ref: str) -> dict[str, str]:
    return dict(docker_client.api.inspect_image(ref)["Config"]["Labels"])


def files(docker_client, ref: str) -> list[str]:
    return run_in(docker_client, ref, "python3", "-c", WALK, entrypoint=False).splitlines()


def project(world: GitWorld, name: str, requirements: str, *, extra: str = "") -> Path:
    path = world.root / name
    path.mkdir(exist_ok=True)
    (path / "builder.yaml").write_text(yaml(name, extra=extra))
    (path / "requirements.txt").write_text(requirements)
    return path


def step(docker_client, info: dict[str, Any]) -> str:
    return labels(docker_client, info["base_image"])[increment.INCREMENT]


def test_a_requirement_change_updates_the_previous_base_to_what_a_fresh_one_holds(
        world, names, docker_client):
    name = names()
    path = project(world, name, "six==1.16.0\nidna==3.7\nmarkdown-it-py==3.0.0\nmdurl==0.1.2\n")
    first = built(world, path)
    assert step(docker_client, first) == "0"
    # uv went into the download cache as a hard link to the wheelhouse's copy, not a copy
    kept = world.home / "downloads" / "tools" / UV_TOOL
    assert kept.stat().st_nlink > 1 and any(
        tool.stat().st_ino == kept.stat().st_ino
        for tool in (world.home / "wheelhouse").glob(f"*/.tools/{UV_TOOL}"))
    assert labels(docker_client, first["base_image"])[increment.INSTALLED] == \
        "idna==3.7 markdown-it-py==3.0.0 mdurl==0.1.2 six==1.16.0"

    # every line a pin: the lines are the new set, and uv pip check proves it complete
    (path / "requirements.txt").write_text(
        "six==1.15.0\nidna==3.7\nmarkdown-it-py==3.0.0\nmdurl==0.1.2\n")
    result = build(world, path)
    assert result.code == 0, result.stderr[-3000:]
    second = result.json()
    assert second["base_image"] in second["built"] and step(docker_client, second) == "1"
    assert f"updating the requirements of the previous base {first['base_image']}" \
        in result.stderr
    assert layers(docker_client, second["base_image"])[:-1] == \
        layers(docker_client, first["base_image"])
    history = docker_client.api.history(second["base_image"])
    assert history[0]["Comment"] == f"builder: requirements updated on {first['base_image']} (uv)"

    # a dropped line, a dependency no line names any more, a new line: uv's resolution
    lines = "six==1.15.0\nmarkdown-it-py==3.0.0\ntabulate==0.9.0\n"
    (path / "requirements.txt").write_text(lines)
    third = built(world, path)
    assert step(docker_client, third) == "2"
    assert len(layers(docker_client, third["base_image"])) == \
        len(layers(docker_client, first["base_image"])) + 2
    assert labels(docker_client, third["base_image"])[increment.INSTALLED] == \
        "markdown-it-py==3.0.0 mdurl==0.1.2 six==1.15.0 tabulate==0.9.0"
    assert run_in(docker_client, third["image"], "python", "-c",
                  "import six, markdown_it, tabulate; print(six.__version__)") == "1.15.0"

    # a fresh base of the same lines (another project) holds the same files, byte for byte
    fresh = built(world, project(world, names(), lines))
    assert fresh["checksum"] == third["checksum"] and step(docker_client, fresh) == "0"
    assert labels(docker_client, fresh["base_image"])[increment.INSTALLED] == \
        labels(docker_client, third["base_image"])[increment.INSTALLED]
    updated, made = files(docker_client, third["base_image"]), files(docker_client,
                                                                    fresh["base_image"])
    assert len(made) > 5000 and any("/mdurl/__pycache__/" in line for line in made)
    assert updated == made


def test_the_base_is_built_fresh_when_it_cannot_be_updated(world, names, docker_client):
    name = names()
    path = project(world, name, "six==1.16.0\nidna==3.7\n")
    assert step(docker_client, built(world, path)) == "0"

    # at most BUILDER_BASE_INCREMENTS updates follow a fresh base
    only_one = {"BUILDER_BASE_INCREMENTS": "1"}
    (path / "requirements.txt").write_text("six==1.16.0\nidna==3.6\n")
    assert step(docker_client, build(world, path, env=only_one).json()) == "1"
    (path / "requirements.txt").write_text("six==1.16.0\nidna==3.5\n")
    result = build(world, path, env=only_one)
    assert step(docker_client, result.json()) == "0"
    assert "is 1 steps from a fresh base (BUILDER_BASE_INCREMENTS=1)" in result.stderr

    # more than the requirement lines changed
    (path / "builder.yaml").write_text(yaml(name, extra="environment: {A: '1'}\n"))
    (path / "requirements.txt").write_text("six==1.16.0\nidna==3.4\n")
    result = build(world, path)
    assert step(docker_client, result.json()) == "0"
    assert "updating the requirements" not in result.stderr

    # the previous base is not in the engine any more
    docker_client.images.remove(result.json()["base_image"])
    (path / "requirements.txt").write_text("six==1.16.0\nidna==3.3\n")
    result = build(world, path)
    previous = result.json()
    assert step(docker_client, previous) == "0"
    assert "is not in the local engine" in result.stderr

    # the step itself declines (hash-checking mode), and the fresh base follows
    (path / "requirements.txt").write_text(f"six==1.16.0 --hash={SIX_HASH}\n")
    result = build(world, path)
    assert result.code == 0, result.stderr[-3000:]
    assert "not building on the previous base (hash-checking mode): building it fresh" \
        in result.stderr
    info = result.json()
    assert step(docker_client, info) == "0"
    assert not set(layers(docker_client, previous["base_image"])[-1:]) & \
        set(layers(docker_client, info["base_image"]))
    assert run_in(docker_client, info["image"], "python", "-c",
                  "import importlib.util as u; print(u.find_spec('idna'))") == "None"

    # a bad setting is bad input, before anything is built
    (path / "requirements.txt").write_text("six==1.16.0\nidna==3.7\n")
    result = build(world, path, env={"BUILDER_BASE_INCREMENTS": "many"})
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "builder: error: BUILDER_BASE_INCREMENTS='many' must be a whole number "
        "(0: always build a fresh base)"]
