"""Pytest fixtures for the Docker engine, parent image and registry.

Loaded as a plugin from tests/conftest.py. The fixtures never skip: when a piece of the
infrastructure is missing they fail, naming the `make` target that provides it
(`make engine`, `make parent-image`, `make registry`; `make infra` does all three).

Facts the tests rely on (measured on the development machine, see tests/infra/*.sh):
- The engine is Debian's Docker 20.10 (API 1.41); docker-py negotiates the API version.
- Image builds reach PyPI on the default bridge network; containers that must reach the
  loopback test servers need ``network_mode="host"`` (see HOST_NETWORK).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import docker

PARENT_IMAGE = "python:3.11-slim"
REGISTRY = "127.0.0.1:5000"
# Network mode for builds/containers that must reach servers bound to 127.0.0.1 on the host.
HOST_NETWORK = "host"


def registry_answers(address: str = REGISTRY, timeout: float = 3.0) -> str | None:
    """Return None if ``http://<address>/v2/`` answers 200, else a short reason."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=timeout) as resp:
            if resp.status == 200:
                return None
            return f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except OSError as exc:
        return str(exc)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A docker-py client for the local engine (fails, naming `make engine`, if none answers)."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # docker.errors.DockerException, requests errors, ...
        pytest.fail(
            f"no Docker engine answers ({exc.__class__.__name__}: {exc}); run `make engine`",
            pytrace=False,
        )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def parent_image(docker_client: docker.DockerClient) -> str:
    """The parent image, "python:3.11-slim", present locally (else fails: `make parent-image`)."""
    import docker

    try:
        docker_client.images.get(PARENT_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {PARENT_IMAGE} is missing; run `make parent-image`", pytrace=False)
    return PARENT_IMAGE


@pytest.fixture(scope="session")
def registry(docker_client: docker.DockerClient) -> str:
    """The address of the test registry, "127.0.0.1:5000" (else fails: `make registry`)."""
    reason = registry_answers(REGISTRY)
    if reason is not None:
        pytest.fail(
            f"no registry answers at http://{REGISTRY}/v2/ ({reason}); run `make registry`",
            pytrace=False,
        )
    return REGISTRY
