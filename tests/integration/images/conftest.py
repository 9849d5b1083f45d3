"""Fixtures of the image tests: a shared wheelhouse, unique image names, a git world."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gitworld import GitWorld


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheelhouse and parent probes, shared by every test's BUILDER_HOME."""
    root = tmp_path_factory.mktemp("builder-cache")
    (root / "wheelhouse").mkdir()
    (root / "parents").mkdir()
    return root


@pytest.fixture
def names(docker_client) -> Iterator[Callable[[], str]]:
    """Unique image names; every local image with one of them is removed afterwards."""
    made: list[str] = []

    def new() -> str:
        name = f"builder-test-{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield new
    for name in made:
        for reference in (f"{name}:*", f"*/{name}:*"):
            for image in docker_client.images.list(filters={"reference": reference}):
                for tag in image.tags:
                    if name in tag:
                        with contextlib.suppress(Exception):  # already gone
                            docker_client.images.remove(tag, force=True)


@pytest.fixture
def world(tmp_path: Path, shared_cache: Path, parent_image: str) -> GitWorld:
    result = GitWorld(tmp_path)
    result.home.mkdir()
    for sub in ("wheelhouse", "parents"):
        os.symlink(shared_cache / sub, result.home / sub)
    return result
