"""Helpers of the image tests: builder.yaml text, `builder build --json`, containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.gitworld import GitWorld, Result

BUILD_TIMEOUT = 900


def yaml(name: str, *, registry: str | None = None, extra: str = "") -> str:
    text = f"name: {name}\nrequirements: [requirements.txt]\n"
    if registry:
        text += f"registry: {registry}\n"
    return text + extra


def build(world: GitWorld, path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return world.builder("build", str(path), "--json", *args, env=env, timeout=BUILD_TIMEOUT)


def built(world: GitWorld, path: Path, *args: str) -> dict[str, Any]:
    result = build(world, path, *args)
    assert result.code == 0, result.stderr[-3000:]
    return result.json()


def run_in(docker_client, image: str, *command: str, entrypoint: bool = True) -> str:
    kwargs: dict[str, Any] = {} if entrypoint else {"entrypoint": []}
    output = docker_client.containers.run(image, list(command), remove=True, **kwargs)
    return output.decode().strip()


def register_git(world: GitWorld, name: str, bare: Path, *extra: str) -> None:
    result = world.builder("code-repository", "register", name, "--type", "git",
                           "--url", str(bare), *extra)
    assert result.code == 0, result.stderr


def layers(docker_client, ref: str) -> list[str]:
    return docker_client.api.inspect_image(ref)["RootFS"]["Layers"]
