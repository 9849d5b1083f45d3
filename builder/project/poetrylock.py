"""poetry.lock: its freshness (Poetry's content-hash) and the exact pins it selects.

No Poetry is needed on the host:
- Freshness: Poetry stores a sha256 of the relevant parts of pyproject.toml in
  `[metadata] content-hash` (poetry/packages/locker.py, `Locker._get_content_hash`). The
  relevant parts are the dependency declarations, sources, extras and groups, not the name,
  version, description, packages or scripts: a version bump keeps the lock fresh, exactly as
  `poetry check --lock` says.
- Selection, lock-version 2.1 (Poetry >= 2.0): each package lists its `groups` and its
  `markers` (one string, or one per group); a package is in if one of the chosen groups has
  it and its marker holds for the target, with `extra` bound to the chosen extras (what
  poetry-plugin-export does).
- Older locks (2.0 and 1.x) have no groups or markers per package: the selection walks the
  dependency graph from pyproject.toml's declarations through `[package.dependencies]`.

Pins carry the lock's hashes, so the installer checks every file as `poetry install` does.
Markers are evaluated for the parent image's Python (`markers.marker_environment`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from builder.errors import UsageError
from builder.project.declared import (
    canonical,
    declared_requirements,
    poetry_requirement,
    requirement_name,
)

_LEGACY_KEYS = ["dependencies", "source", "extras", "dev-dependencies"]
_RELEVANT_KEYS = [*_LEGACY_KEYS, "group"]
_PROJECT_KEYS = ["requires-python", "dependencies", "optional-dependencies"]


def content_hash(pyproject: dict[str, Any], *, with_dependency_groups: bool = True) -> str:
    """Poetry 2.x's `_get_content_hash`; for a `[tool.poetry]`-only project it equals
    Poetry 1.x's, and without `[dependency-groups]` it is Poetry 2.0-2.2's."""
    project = pyproject.get("project") or {}
    groups = (pyproject.get("dependency-groups") or {}) if with_dependency_groups else {}
    poetry = (pyproject.get("tool") or {}).get("poetry") or {}
    relevant_project = {k: project[k] for k in _PROJECT_KEYS if project.get(k) is not None}
    relevant_poetry = {}
    for key in _RELEVANT_KEYS:
        data = poetry.get(key)
        if data is None and (key not in _LEGACY_KEYS or relevant_project or groups):
            continue
        relevant_poetry[key] = data
    content: dict[str, Any] = {}
    if relevant_project:
        content["project"] = relevant_project
    if groups:
        content["dependency-groups"] = groups
    if content:
        content["tool"] = {"poetry": relevant_poetry}
    else:
        content = relevant_poetry
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def is_fresh(pyproject: dict[str, Any], lock: dict[str, Any], first_line: str) -> bool:
    want = (lock.get("metadata") or {}).get("content-hash")
    if not want:
        return False
    if content_hash(pyproject) == want:
        return True
    # Poetry < 2.3 did not hash PEP 735 [dependency-groups] (Locker.is_fresh does the same).
    made_by = re.search(r"Poetry ([0-9][0-9.]*)", first_line)
    old = made_by is not None and _version_tuple(made_by.group(1)) < (2, 3)
    return old and content_hash(pyproject, with_dependency_groups=False) == want


def poetry_pins(directory: Path, env: dict[str, str], extras: tuple[str, ...] = (),
                groups: tuple[str, ...] = ()) -> list[str]:
    """`name==version --hash=...` lines for what `poetry install --only main,<groups>
    --extras ...` would install on the target, sorted by name."""
    from builder.project.toml import load_toml

    pyproject_path, lock_path = directory / "pyproject.toml", directory / "poetry.lock"
    pyproject = load_toml(pyproject_path)
    lock = load_toml(lock_path)
    first_line = lock_path.read_text(encoding="utf-8").split("\n", 1)[0]
    if not is_fresh(pyproject, lock, first_line):
        raise UsageError(f"{lock_path}: does not match pyproject.toml (its content-hash differs):"
                         " run `poetry lock`")
    _check_extras(pyproject, lock, pyproject_path, extras)
    lock_version = _version_tuple(str((lock.get("metadata") or {}).get("lock-version", "1.0")))
    packages = [p for p in lock.get("package") or [] if isinstance(p, dict)]
    if lock_version >= (2, 1):
        chosen = _select_by_groups(packages, lock_path, pyproject, env, extras, groups)
    else:
        chosen = _select_by_walk(packages, lock_path, pyproject, pyproject_path, env, extras,
                                 groups)
    hashes = _legacy_hashes(lock)
    lines = [_pin(p, hashes) for p in chosen.values()]
    lines = [line for line in lines if line]
    if any("--hash=" not in line for line in lines):  # pip checks all or none
        lines = [line.split(" --hash=")[0] for line in lines]
    return sorted(lines, key=requirement_name)


def _check_extras(pyproject: dict[str, Any], lock: dict[str, Any], path: Path,
                  extras: tuple[str, ...]) -> None:
    project = pyproject.get("project") or {}
    poetry = (pyproject.get("tool") or {}).get("poetry") or {}
    known = {canonical(e) for e in project.get("optional-dependencies") or {}}
    known |= {canonical(e) for e in poetry.get("extras") or {}}
    for extra in extras:
        if canonical(extra) not in known:
            raise UsageError(f"{path}: extra {extra!r} (builder.yaml key 'extras') is not "
                             f"declared (it has: {', '.join(sorted(known)) or 'none'})")


def _select_by_groups(packages: list[dict[str, Any]], lock_path: Path,
                      pyproject: dict[str, Any], env: dict[str, str], extras: tuple[str, ...],
                      groups: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    present = {g for p in packages for g in p.get("groups") or []}
    declared = set(((pyproject.get("tool") or {}).get("poetry") or {}).get("group") or {})
    declared |= set(pyproject.get("dependency-groups") or {})
    for group in groups:
        if group not in present and group not in declared:
            raise UsageError(f"{lock_path}: dependency group {group!r} (builder.yaml key "
                             f"'groups') is not in the lock (it has: "
                             f"{', '.join(sorted(present)) or 'none'})")
    wanted = {"main", *groups}
    chosen: dict[str, dict[str, Any]] = {}
    for package in packages:
        selected = [g for g in package.get("groups") or [] if g in wanted]
        if not selected:
            continue
        markers = package.get("markers")
        if isinstance(markers, dict):
            alternatives = [markers.get(g) for g in selected]
        else:
            alternatives = [markers] * len(selected)
        if any(_holds(marker, env, extras) for marker in alternatives):
            chosen[canonical(str(package["name"]))] = package
    return chosen


def _select_by_walk(packages: list[dict[str, Any]], lock_path: Path, pyproject: dict[str, Any],
                    pyproject_path: Path, env: dict[str, str], extras: tuple[str, ...],
                    groups: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    from packaging.requirements import Requirement

    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in packages:
        by_name.setdefault(canonical(str(package["name"])), []).append(package)
    roots = declared_requirements(pyproject, pyproject_path, extras,
                                  tuple(g for g in groups if g != "main"))
    todo = [(Requirement(line), True) for line in roots]
    chosen: dict[str, dict[str, Any]] = {}
    chosen_extras: dict[str, set[str]] = {}
    while todo:
        requirement, is_root = todo.pop()
        if requirement.marker is not None and not _holds(
                str(requirement.marker), env, extras if is_root else ()):
            continue
        name = canonical(requirement.name)
        candidates = [p for p in by_name.get(name, [])
                      if requirement.specifier.contains(str(p["version"]), prereleases=True)]
        if len(candidates) != 1:
            raise UsageError(f"{lock_path}: {len(candidates)} locked packages match "
                             f"{requirement}: lock it again with Poetry 2 (lock-version 2.1)")
        package = candidates[0]
        new_extras = set(requirement.extras) - chosen_extras.get(name, set())
        if name in chosen and not new_extras:
            continue
        chosen_extras.setdefault(name, set()).update(requirement.extras)
        chosen[name] = package
        active = {requirement_name(item)
                  for extra in chosen_extras[name]
                  for item in (package.get("extras") or {}).get(extra, [])}
        for dependency, value in (package.get("dependencies") or {}).items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and item.get("optional") \
                        and canonical(dependency) not in active:
                    continue
                try:
                    lines = poetry_requirement(dependency, item)
                except ValueError as exc:
                    raise UsageError(f"{lock_path}: {package['name']}: {exc}") from None
                todo += [(Requirement(line), False) for line in lines]
    return chosen


def _holds(marker: str | None, env: dict[str, str], extras: tuple[str, ...]) -> bool:
    from packaging.markers import Marker

    if not marker or marker == "*":
        return True
    parsed = Marker(marker)
    return any(parsed.evaluate({**env, "extra": extra}) for extra in (extras or ("",)))


def _legacy_hashes(lock: dict[str, Any]) -> dict[str, list[str]]:
    """lock-version 1.x keeps the files' hashes in `[metadata.files]`."""
    files = (lock.get("metadata") or {}).get("files") or {}
    return {canonical(name): [f["hash"] for f in entries if isinstance(f, dict) and "hash" in f]
            for name, entries in files.items() if isinstance(entries, list)}


def _pin(package: dict[str, Any], legacy: dict[str, list[str]]) -> str:
    name = str(package["name"])
    source = package.get("source") or {}
    kind = source.get("type")
    if kind in ("directory", "file"):
        return ""  # project code (a path dependency), not an installable requirement
    if kind == "git":
        ref = source.get("resolved_reference") or source.get("reference")
        sub = f"#subdirectory={source['subdirectory']}" if source.get("subdirectory") else ""
        return f"{name} @ git+{source['url']}@{ref}{sub}"
    if kind == "url":
        return f"{name} @ {source['url']}"
    hashes = [f["hash"] for f in package.get("files") or [] if isinstance(f, dict) and "hash" in f]
    hashes = sorted(set(hashes or legacy.get(canonical(name), [])))
    return " ".join([f"{canonical(name)}=={package['version']}",
                     *(f"--hash={h}" for h in hashes)])


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])
