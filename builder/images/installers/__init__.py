"""What installs the project's requirements (and builder's own environment) in the base image.

One module per installer, as pipx does with its backends: `_base.Installer` is the interface,
`uv.py` (the default) and `pip.py` implement it, and `installer: uv | pip` in builder.yaml
chooses one.
"""

from __future__ import annotations

from builder.images.installers._base import Installer, InstallPaths
from builder.images.installers.pip import PipInstaller
from builder.images.installers.uv import UvInstaller

INSTALLERS: dict[str, type[Installer]] = {"uv": UvInstaller, "pip": PipInstaller}
DEFAULT = "uv"

__all__ = ["DEFAULT", "INSTALLERS", "InstallPaths", "Installer", "get_installer"]


def get_installer(name: str) -> Installer:
    return INSTALLERS[name]()
