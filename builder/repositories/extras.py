"""The optional extras of builder-cli: which repository type needs which, and the one-line
error, with the exact install command, when one is missing.

The default install (`pip install builder-cli`) does the main job; PyGithub and python-gitlab
are extras, like ZenML's integrations. The base image installs the extra that the registered
type needs (builder.images.inputs.TYPE_EXTRAS), so inside a container the error only shows
when the image was made without it.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import NamedTuple

from builder.errors import UsageError

DISTRIBUTION = "builder-cli"


class Extra(NamedTuple):
    name: str  # the extra of builder-cli
    module: str  # what the code imports
    project: str  # the package on the index


EXTRAS = {
    "github": Extra("github", "github", "PyGithub"),
    "gitlab": Extra("gitlab", "gitlab", "python-gitlab"),
}


class MissingExtraError(UsageError):
    """A repository type's client library is not installed (exit code 2)."""


def install_command(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require_extra(type_name: str) -> None:
    """Raise MissingExtraError, naming the install command, if type_name's extra is missing."""
    extra = EXTRAS.get(type_name)
    if extra is None or find_spec(extra.module) is not None:
        return
    raise MissingExtraError(
        f"code repository type {type_name!r} needs {extra.project}, which is not installed: "
        f"{install_command(extra.name)}"
    )
