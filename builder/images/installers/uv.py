"""uv: the default installer. A static binary from the uv wheel on the index, kept in the
download cache beside uv's own cache and run from there (it never reaches the image).

Differences from pip that matter to a requirements file are in README ("Installers").
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from builder.errors import BuilderError
from builder.images.installers._base import Installer, InstallPaths
from builder.state.atomic import atomic_write_bytes

UV_VERSION = "0.13.9"
UV_TOOL = f"uv-{UV_VERSION}"
# - UV_LINK_MODE=copy: the cache is another file system (a mount); uv would warn, then copy.
# - UV_SYSTEM_CERTS=1: trust what the image trusts (its CA store), as pip does, not only
#   uv's bundled roots.
# - UV_PYTHON_DOWNLOADS=never: the parent's Python is the one; never fetch another.
# - --compile-bytecode: pip writes .pyc files at install; uv does not unless asked.
UV_ENV = ("UV_CACHE_DIR={cache} UV_LINK_MODE=copy UV_SYSTEM_CERTS=1 UV_PYTHON_DOWNLOADS=never "
          "UV_NO_PROGRESS=1")
# uv does not read pip's settings: the parent's PIP_INDEX_URL, PIP_EXTRA_INDEX_URL and
# PIP_CERT (e.g. a company mirror and its CA) apply to uv too, unless the UV_ ones are set.
PIP_SETTINGS = (
    'if [ -n "${PIP_INDEX_URL:-}" ] && [ -z "${UV_INDEX_URL:-}${UV_DEFAULT_INDEX:-}" ]; '
    'then export UV_INDEX_URL="$PIP_INDEX_URL"; fi',
    'if [ -n "${PIP_EXTRA_INDEX_URL:-}" ] && [ -z "${UV_EXTRA_INDEX_URL:-}${UV_INDEX:-}" ]; '
    'then export UV_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL"; fi',
    'if [ -n "${PIP_CERT:-}" ] && [ -z "${SSL_CERT_FILE:-}" ]; '
    'then export SSL_CERT_FILE="$PIP_CERT"; fi',
)


class UvInstaller(Installer):
    name = "uv"

    def tool_requirements(self) -> tuple[str, ...]:
        return (f"uv=={UV_VERSION}",)

    def tool_names(self) -> tuple[str, ...]:
        return (UV_TOOL,)

    def tools(self, wheelhouse: Path) -> dict[str, Path]:
        return {UV_TOOL: uv_binary(wheelhouse)}

    def _uv(self, paths: InstallPaths, *, cache: bool = True) -> str:
        settings = UV_ENV.format(cache=paths.cache + "/uv")
        if not cache:  # builder's own wheels are at hand: a temporary cache, left behind
            settings = settings.replace(f"UV_CACHE_DIR={paths.cache}/uv", "UV_NO_CACHE=1")
        return f"{settings} {paths.cached_tools}/{UV_TOOL}"

    def install_requirements(self, requirements_file: str, paths: InstallPaths) -> list[str]:
        # --system: the parent's Python, found as `python3` on PATH; --break-system-packages:
        # Debian marks its Python externally managed (PEP 668) and uv refuses it otherwise.
        return [*PIP_SETTINGS,
                f"{self._uv(paths)} pip install --system --break-system-packages "
                f"--python python3 --compile-bytecode -r {requirements_file}"]

    def update_requirements(self, requirements_file: str, paths: InstallPaths) -> list[str]:
        # `plan` takes the requirement lines as the new set when each is `name==version`, and
        # `uv pip check` then proves they need nothing more; otherwise (exit 76) the new set
        # is uv's resolution of the lines, which a fresh install of them would install.
        target = "--system --break-system-packages --python python3"
        folder, helper, uv = paths.staging, paths.helper, self._uv(paths)
        return [*PIP_SETTINGS,
                "apply() {",
                f"  if [ -s {folder}/remove.txt ]; then "
                f"{uv} pip uninstall {target} -r {folder}/remove.txt; fi",
                f"  if grep -qv '^-' {folder}/install.txt; then "
                f"{uv} pip install {target} --no-deps -r {folder}/install.txt; fi",
                "}",
                f"planned=0; python3 -I {helper} plan {folder} || planned=$?",
                'if [ "$planned" = 0 ]; then',
                f"  apply; {uv} pip check {target.replace('--break-system-packages ', '')} "
                "|| planned=76",
                "fi",
                'if [ "$planned" = 76 ]; then',
                f"  {uv} pip compile --quiet --no-header --no-annotate --python python3 "
                f"-o {folder}/resolved.txt {requirements_file}",
                f"  planned=0; python3 -I {helper} plan {folder} || planned=$?",
                '  if [ "$planned" = 0 ]; then apply; fi',
                "fi",
                '[ "$planned" = 0 ] || exit "$planned"',
                f"python3 -I {helper} finish {folder}"]

    def install_builder(self, home: str, requirements: Sequence[str],
                        paths: InstallPaths) -> list[str]:
        # `uv venv` needs no ensurepip (Debian's python3-venv), and the environment gets no pip.
        wanted = " ".join(shlex.quote(r) for r in requirements)
        return [f"{self._uv(paths, cache=False)} venv --quiet --python python3 {home}",
                f"{self._uv(paths, cache=False)} pip install --quiet --python {home}/bin/python "
                f"--compile-bytecode --no-index --find-links {paths.wheelhouse} {wanted}"]


def uv_binary(wheelhouse: Path) -> Path:
    """The uv executable from the uv wheel in the wheelhouse, extracted once beside it."""
    target = wheelhouse / ".tools" / f"uv-{UV_VERSION}"
    if target.is_file():
        return target
    wheels = sorted(wheelhouse.glob(f"uv-{UV_VERSION}-*.whl"))
    if not wheels:
        raise BuilderError(f"the wheelhouse {wheelhouse} has no uv {UV_VERSION} wheel")
    member = f"uv-{UV_VERSION}.data/scripts/uv"
    import zipfile  # here: not on the path of every run

    try:
        with zipfile.ZipFile(wheels[0]) as archive:
            data = archive.read(member)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise BuilderError(f"{wheels[0].name}: cannot read {member}: {exc}") from None
    atomic_write_bytes(target, data, mode=0o755)
    return target
