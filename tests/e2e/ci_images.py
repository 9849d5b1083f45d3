"""Local images of the simulated CI runners, and the test session's build cache.

A runner that "runs elsewhere" must not find the project's images in the local engine, so
the tests remove every tag of them. The classic builder's layer cache lives only as long
as the built images do, though, and each of these tests would rebuild the same base image
(about 30 s of pip install). So where a test does not depend on the layers being gone, the
images are first tagged `KEEP:<random>` (keeping their layers and build cache) and the
next base build with the session's shared wheelhouse (byte-identical wheels) is served
from the cache. `drop_kept` removes those tags, and it runs at the end of the session.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest

KEEP = "builder-ci-test-cache"


def shared_cache(factory: pytest.TempPathFactory) -> Path:
    """A wheelhouse and parent probes that the session's runners may share."""
    root = factory.getbasetemp() / "ci-shared-cache"
    for sub in ("wheelhouse", "parents"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def project_tags(client: Any, name: str) -> list[str]:
    # The low-level listing: no per-image request that another test's cleanup could race.
    return [tag for image in client.api.images() for tag in image.get("RepoTags") or []
            if f"/{name}:" in tag or tag.startswith(f"{name}:")]


def remove_project(client: Any, name: str, config: pytest.Config, *,
                   keep: bool = False) -> list[str]:
    """Remove every local tag of the project's images; `keep` first tags them under KEEP."""
    tags = project_tags(client, name)
    if keep and not getattr(config, "_builder_ci_keep", False):
        config._builder_ci_keep = True  # type: ignore[attr-defined]
        config.add_cleanup(drop_kept)
    for tag in tags:
        if keep:
            client.api.tag(tag, KEEP, uuid.uuid4().hex[:12])
        with contextlib.suppress(Exception):
            client.api.remove_image(tag, force=True)
    assert project_tags(client, name) == []
    return tags


def drop_kept(client: Any = None) -> None:
    """Remove the KEEP tags (at the end of the session, with a client of its own)."""
    import docker

    own = client is None
    with contextlib.suppress(Exception):
        client = client or docker.from_env()
        for tag in project_tags(client, KEEP):
            with contextlib.suppress(Exception):
                client.api.remove_image(tag, force=True)
        if own:
            client.close()
