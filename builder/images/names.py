"""Image references: `[<registry>/]<name>:base-<checksum[:16]>`, `...:tree-<key[:16]>` and
`...:code-<key[:16]>`."""

from __future__ import annotations

import os
import re

from builder.errors import UsageError
from builder.state.settings import Settings

TAG_DIGITS = 16
LABEL_PREFIX = "org.builder."  # of the labels on builder's images
REGISTRY_ENV = "BUILDER_REGISTRY"
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.\-]+(?::[0-9]+)?(?:/[a-z0-9._\-/]+)?$")


def registry_for(settings: Settings, environ: dict[str, str] | None = None) -> str | None:
    """`BUILDER_REGISTRY` if set (empty means none), else builder.yaml's `registry`."""
    env = os.environ if environ is None else environ
    if REGISTRY_ENV in env:
        value = env[REGISTRY_ENV].strip().rstrip("/")
        if not value:
            return None
        if "://" in value or not _REGISTRY_RE.match(value):
            raise UsageError(f"{REGISTRY_ENV}={value!r} is not a registry host "
                             "(e.g. localhost:5000)")
        return value
    return settings.registry


def repository(name: str, registry: str | None) -> str:
    return f"{registry}/{name}" if registry else name


def base_ref(name: str, registry: str | None, checksum: str) -> str:
    return f"{repository(name, registry)}:base-{checksum[:TAG_DIGITS]}"


def code_ref(name: str, registry: str | None, key: str) -> str:
    return f"{repository(name, registry)}:code-{key[:TAG_DIGITS]}"


def tree_ref(name: str, registry: str | None, key: str) -> str:
    """A commit's tree on a base image: the layer that uncommitted iterations share."""
    return f"{repository(name, registry)}:tree-{key[:TAG_DIGITS]}"


def split_ref(ref: str) -> tuple[str, str]:
    """`host:5000/name:tag` -> (`host:5000/name`, `tag`); `name@sha256:...` -> (`name`,
    `sha256:...`), which the engine's pull takes as the tag."""
    if "@" in ref:
        name, _, digest = ref.partition("@")
        return split_ref(name)[0], digest
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repo, tag
