"""The installer interface: shell steps that install from files handed into the build.

The classic builder cannot mount a cache into a RUN step, so the install steps of the base
image run in containers of their own (builder.images.install_step): the host's download cache
is mounted at `InstallPaths.cache` (the installer's tools are kept there too), the requirement
list and builder's wheels are copied in under `InstallPaths.staging` (and removed before the
container is committed, so they never reach a layer). An installer renders shell lines.
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
        """Where the host hands in the installer's tools, when they are not in the cache."""
        return f"{self.staging}/tools"

    @property
    def helper(self) -> str:
        """builder.images.site_packages, handed in: what the requirements step installed."""
        return f"{self.staging}/site_packages.py"

    @property
    def cached_tools(self) -> str:
        """Where the steps run the installer's tools from: kept in the download cache."""
        return f"{self.cache}/tools"


class Installer(ABC):
    name: ClassVar[str]

    def tool_requirements(self) -> tuple[str, ...]:
        """Wheels (from the index, for the parent's platform) the installer itself needs."""
        return ()

    def tool_names(self) -> tuple[str, ...]:
        """The installer's own executables (with their version in the name), run from
        `InstallPaths.cached_tools`."""
        return ()

    def tools(self, wheelhouse: Path) -> dict[str, Path]:
        """The files of `tool_names` on the host: name -> file."""
        return {}

    @abstractmethod
    def install_requirements(self, requirements_file: str, paths: InstallPaths) -> list[str]:
        """Shell lines installing a requirements file into the parent's Python, using the
        download cache at `paths.cache`."""

    def update_requirements(self, requirements_file: str, paths: InstallPaths) -> list[str]:
        """Shell lines that bring the requirements installed on the previous base to the
        requirements file, as a fresh install of it would have them
        (builder.images.increment), with `paths.helper`'s `plan` and `finish`; [] when this
        installer cannot (every base is then built fresh)."""
        return []

    @abstractmethod
    def install_builder(self, home: str, requirements: Sequence[str],
                        paths: InstallPaths) -> list[str]:
        """Shell lines making a virtual environment at `home` holding `requirements`, from
        the wheels at `paths.wheelhouse` only (no index, and no cache mounted)."""
