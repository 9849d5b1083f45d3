"""pip: the parent image's own `python3 -m pip`, with pip's cache on the host.

For requirements that only pip resolves the way the user expects (README, "Installers").
The parent needs pip, and `python3 -m venv` (Debian: python3-venv) for builder's environment.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from builder.images.installers._base import Installer, InstallPaths

# Quiet about running as root and about pip's own version; an externally managed Python
# (Debian's, PEP 668) is the image's only Python, so it is installed into anyway. Older pips
# ignore variables they do not know.
PIP_ENV = ("PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "
           "PIP_BREAK_SYSTEM_PACKAGES=1")


class PipInstaller(Installer):
    name = "pip"

    def install_requirements(self, requirements_file: str, paths: InstallPaths) -> list[str]:
        return [f"{PIP_ENV} python3 -m pip install --cache-dir {paths.cache}/pip "
                f"-r {requirements_file}"]

    def install_builder(self, home: str, requirements: Sequence[str],
                        paths: InstallPaths) -> list[str]:
        wanted = " ".join(shlex.quote(r) for r in requirements)
        return [f"python3 -m venv {home}",
                f"{PIP_ENV} {home}/bin/python -m pip install --no-cache-dir --no-index "
                f"--find-links {paths.wheelhouse} {wanted}"]
