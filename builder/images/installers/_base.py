"""The installer interface: shell steps that install from files handed into the build.

The classic builder cannot mount a cache into a RUN step, so the install step of the base
image runs in a container of its own (builder.images.install_step): the host's download cache
is mounted at `InstallPaths.cache`, the requirement list, builder's wheels and the installer's
tools are copied in under `InstallPaths.staging` (and removed before the container is
committed, so they never reach a layer). An installer renders the shell lines of that step.
Everything it renders is part of the base image's checksum, so it must not depend on the host.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class InstallPaths:
    """Where things are inside the install container."""

    staging: str = "/opt/builder-install"  # handed in by the host, removed after the install
    cache: str = "/var/cache/builder-install"  # the host's download cache (a bind mount)

    @property
    def requirements_dir(self) -> str:
        return f"{self.staging}/requirements"

    @property
    def wheelhouse(self) -> str:
        return f"{self.staging}/wheelhouse"

    @property
    def tools(self) -> str:
        return f"{self.staging}/tools"


class Installer(ABC):
    name: ClassVar[str]

    def tool_requirements(self) -> tuple[str, ...]:
        """Wheels (from the index, for the parent's platform) the installer itself needs."""
        return ()

    def tools(self, wheelhouse: Path) -> dict[str, Path]:
        """Files to hand into `InstallPaths.tools`: name -> file on the host."""
        return {}

    @abstractmethod
    def install_requirements(self, requirements_file: str, paths: InstallPaths) -> list[str]:
        """Shell lines installing a requirements file into the parent's Python, using the
        download cache at `paths.cache`."""

    @abstractmethod
    def install_builder(self, home: str, requirements: Sequence[str],
                        paths: InstallPaths) -> list[str]:
        """Shell lines making a virtual environment at `home` holding `requirements`, from
        the wheels at `paths.wheelhouse` only (no index, and no cache mounted)."""
