"""The resolved dependency set: what the base image installs, as requirement lines.

For uv.lock, poetry.lock and pyproject.toml the set is one text that builder makes (sorted,
one requirement per line); it is the only dependency input of the base image and of its
checksum, never the bytes of pyproject.toml or of the lock. So a change elsewhere in
pyproject.toml (the version, the description) changes nothing, and a changed lock changes
the set. Requirement files are installed as they are (`requirement_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from builder.project.sources import POETRY_LOCK, PYPROJECT, UV_LOCK, DependencySource


class ResolvedSet(NamedTuple):
    source: DependencySource
    lines: tuple[str, ...]  # for a lock or pyproject.toml; empty for requirement files

    @property
    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


def marker_environment(implementation: str, version: str, machine: str,
                       system: str) -> dict[str, str]:
    """PEP 508's marker variables for an interpreter described by the parent image's probe."""
    major_minor = ".".join(version.split(".")[:2])
    return {
        "implementation_name": implementation,
        "implementation_version": version,
        "os_name": "nt" if system == "windows" else "posix",
        "platform_machine": machine,
        "platform_python_implementation": {"cpython": "CPython", "pypy": "PyPy"}.get(
            implementation, implementation),
        "platform_release": "",
        "platform_system": {"linux": "Linux", "darwin": "Darwin", "windows": "Windows"}.get(
            system, system),
        "platform_version": "",
        "python_full_version": version,
        "python_version": major_minor,
        "sys_platform": {"windows": "win32"}.get(system, system),
    }


def resolve(directory: Path, source: DependencySource, env: dict[str, str],
            cache: Path | None = None) -> ResolvedSet:
    """The set for `source`; `env` is the target's marker environment, `cache` where uv's
    exports are remembered."""
    if source.kind == UV_LOCK:
        from builder.project.uvlock import uv_pins

        lines = uv_pins(directory, source.extras, source.groups, cache)
    elif source.kind == POETRY_LOCK:
        from builder.project.poetrylock import poetry_pins

        lines = poetry_pins(directory, env, source.extras, source.groups)
    elif source.kind == PYPROJECT and not source.requirement_files:
        from builder.project.declared import declared_requirements
        from builder.project.toml import load_toml

        path = directory / PYPROJECT
        lines = sorted(declared_requirements(load_toml(path), path, source.extras,
                                             source.groups))
    else:
        lines = []
    return ResolvedSet(source, tuple(lines))
