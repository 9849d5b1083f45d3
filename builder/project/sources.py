"""Where a project's dependencies come from: builder.yaml's choice, or the detection.

Detection, first match wins:
1. `requirements:` in builder.yaml (the user chose the files);
2. `uv.lock` (with its pyproject.toml);
3. `poetry.lock` (with its pyproject.toml);
4. `requirements.txt`;
5. pyproject.toml that declares dependencies (PEP 621 `[project]`, or Poetry's
   `[tool.poetry.dependencies]`), or reads them from files (setuptools' dynamic `file`);
6. nothing.

`dependencies:` in builder.yaml names the source instead. A lock is exact; requirement
files are what they say; pyproject.toml without a lock is declared, not resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from builder.errors import UsageError
from builder.state.settings import DEFAULT_REQUIREMENTS, Settings

PYPROJECT = "pyproject.toml"
UV_LOCK = "uv.lock"
POETRY_LOCK = "poetry.lock"


class DependencySource(NamedTuple):
    kind: str  # "uv.lock", "poetry.lock", "pyproject.toml", "requirements" or "none"
    files: tuple[str, ...]  # what it reads, relative to the project directory
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    detected: bool = True  # False when builder.yaml named it

    @property
    def requirement_files(self) -> tuple[str, ...]:
        """Requirement files installed as they are (with their -r/-c references)."""
        if self.kind == "requirements":
            return self.files
        return self.files[1:] if self.kind == PYPROJECT else ()

    @property
    def exact(self) -> bool:
        """A lock pins every package; other sources let the installer resolve."""
        return self.kind in (UV_LOCK, POETRY_LOCK)

    def describe(self) -> str:
        parts = [self.kind if self.kind != "requirements" else ", ".join(self.files)]
        if self.kind == PYPROJECT and self.files != (PYPROJECT,):
            parts[0] = f"pyproject.toml (dynamic: {', '.join(self.files[1:])})"
        details = []
        if self.extras:
            details.append(f"extras: {', '.join(self.extras)}")
        if self.groups:
            details.append(f"groups: {', '.join(self.groups)}")
        details.append("locked" if self.exact else "not locked" if self.kind != "none" else "")
        details.append("detected" if self.detected else "set in builder.yaml")
        return f"{parts[0]} ({'; '.join(d for d in details if d)})"

    def to_json(self) -> dict[str, Any]:
        return {"source": self.kind, "files": list(self.files), "extras": list(self.extras),
                "groups": list(self.groups), "locked": self.exact}


def detect_source(settings: Settings) -> DependencySource:
    """The source builder.yaml names, or the one detected; checks what it needs exists."""
    directory = settings.project_dir
    chosen = settings.dependencies
    detected = chosen == "auto"
    if detected:
        chosen = _detect(settings)
    if chosen == "requirements":
        files = settings.requirements
        if not files and not detected:
            files = (DEFAULT_REQUIREMENTS,)
            if not (directory / DEFAULT_REQUIREMENTS).is_file():
                raise UsageError(f"{settings.file}: key 'dependencies': requirements, but "
                                 f"{DEFAULT_REQUIREMENTS} is not in {directory}")
        source = DependencySource("requirements", files, detected=detected)
    elif chosen in (UV_LOCK, POETRY_LOCK):
        for name in (chosen, PYPROJECT):
            if not (directory / name).is_file():
                raise UsageError(f"{settings.file}: key 'dependencies': {chosen}, but {name} "
                                 f"is not in {directory}")
        source = DependencySource(chosen, (PYPROJECT, chosen), settings.extras, settings.groups,
                                  detected)
    elif chosen == PYPROJECT:
        if not (directory / PYPROJECT).is_file():
            raise UsageError(f"{settings.file}: key 'dependencies': pyproject.toml, but "
                             f"{PYPROJECT} is not in {directory}")
        files = _dynamic_files(directory)
        source = DependencySource(PYPROJECT, (PYPROJECT, *files), settings.extras,
                                  settings.groups, detected)
    else:
        source = DependencySource("none", (), detected=detected)
    for key, values in (("extras", source.extras), ("groups", source.groups)):
        wanted = settings.extras if key == "extras" else settings.groups
        if wanted and not values:
            raise UsageError(f"{settings.file}: key {key!r}: the dependencies come from "
                             f"{source.kind} (set `dependencies:`), which has no {key}")
    if source.kind == PYPROJECT and len(source.files) > 1 and (source.extras or source.groups):
        raise UsageError(f"{settings.file}: key 'extras': the dependencies are read from "
                         f"{', '.join(source.files[1:])}, which have no extras or groups")
    return source


def _detect(settings: Settings) -> str:
    directory = settings.project_dir
    if settings.requirements_given:
        return "requirements"
    for lock in (UV_LOCK, POETRY_LOCK):
        if (directory / lock).is_file():
            if not (directory / PYPROJECT).is_file():
                raise UsageError(f"{directory / lock}: there is no pyproject.toml beside it")
            return lock
    if settings.requirements:
        return "requirements"
    if (directory / PYPROJECT).is_file() and declares_dependencies(directory / PYPROJECT):
        return PYPROJECT
    return "none"


def declares_dependencies(path: Path) -> bool:
    from builder.project.toml import load_toml, table

    data = load_toml(path)
    project = table(data, "project", path)
    poetry = table(data, "tool.poetry", path)
    if project.get("dependencies") or "dependencies" in (project.get("dynamic") or []):
        return True
    return any(name != "python" for name in table(data, "tool.poetry.dependencies", path)) \
        or bool(poetry.get("group") or data.get("dependency-groups"))


def _dynamic_files(directory: Path) -> tuple[str, ...]:
    """setuptools' `dynamic.dependencies = {file = [...]}`: requirement files it reads."""
    from builder.project.toml import load_toml, table

    path = directory / PYPROJECT
    data = load_toml(path)
    project = table(data, "project", path)
    if "dependencies" not in (project.get("dynamic") or []):
        return ()
    dynamic = table(data, "tool.setuptools.dynamic", path).get("dependencies")
    files = dynamic.get("file") if isinstance(dynamic, dict) else None
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise UsageError(
            f"{path}: key 'project.dynamic': the dependencies are dynamic, and only a build "
            "could tell them: lock them (`uv lock`, `poetry lock`) or list requirement files "
            "in builder.yaml (`requirements:`)")
    for name in files:
        if Path(name).is_absolute() or ".." in Path(name).parts or \
                not (directory / name).is_file():
            raise UsageError(f"{path}: key 'tool.setuptools.dynamic.dependencies': file "
                             f"{name!r} not found in {directory}")
    return tuple(files)
