"""Dependencies as pyproject.toml declares them, for a project without a lock.

- PEP 621: `[project] dependencies`, plus the chosen `[project.optional-dependencies]`
  (a self-reference such as `app[a,b]` inside an extra is expanded, not installed);
- PEP 735: `[dependency-groups]`, with `{include-group = ...}` (never the project itself);
- Poetry's own tables: `[tool.poetry.dependencies]` (Poetry's constraints turned into
  PEP 440 specifiers), `[tool.poetry.extras]`, `[tool.poetry.group.<g>.dependencies]`, and the
  legacy `[tool.poetry.dev-dependencies]` as group `dev`.

Only what the user chose is included: no extras or groups by default (dev groups are off).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from builder.errors import UsageError


def canonical(name: str) -> str:
    """PEP 503 / PEP 685 normalized name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    """The normalized project name a requirement line starts with."""
    return canonical(re.split(r"[\s=@;\[(<>!~]", line.strip(), maxsplit=1)[0])


def declared_requirements(data: dict[str, Any], path: Path, extras: tuple[str, ...] = (),
                          groups: tuple[str, ...] = ()) -> list[str]:
    """The declared requirement strings (PEP 508), in declaration order."""
    from packaging.requirements import InvalidRequirement, Requirement

    project = data.get("project") if isinstance(data.get("project"), dict) else None
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    out: list[str] = []
    if project is not None and (project.get("dependencies") or "dependencies" not in poetry):
        dynamic = project.get("dynamic") or []
        if "dependencies" in dynamic or (extras and "optional-dependencies" in dynamic):
            raise UsageError(f"{path}: key 'project.dynamic': the dependencies are dynamic: "
                             "lock them (`uv lock`) or list requirement files in builder.yaml")
        out += _strings(project.get("dependencies", []), path, "project.dependencies")
        out += _project_extras(project, path, extras, ())
    else:
        out += _poetry_main(poetry, path, extras)
    for group in groups:
        out += _group(data, poetry, path, group)
    for line in out:
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise UsageError(f"{path}: requirement {line!r} is not valid: {exc}") from None
    return list(dict.fromkeys(out))


def _project_extras(project: dict[str, Any], path: Path, extras: tuple[str, ...],
                    seen: tuple[str, ...]) -> list[str]:
    from packaging.requirements import Requirement

    table = project.get("optional-dependencies") or {}
    if not isinstance(table, dict):
        raise UsageError(f"{path}: key 'project.optional-dependencies': expected a table")
    by_name = {canonical(k): v for k, v in table.items()}
    own = canonical(str(project.get("name", "")))
    out: list[str] = []
    for extra in extras:
        key = canonical(extra)
        if key not in by_name:
            known = ", ".join(sorted(table)) or "none"
            raise UsageError(f"{path}: extra {extra!r} (builder.yaml key 'extras') is not in "
                             f"[project.optional-dependencies] (it has: {known})")
        if key in seen:
            continue
        for line in _strings(by_name[key], path, f"project.optional-dependencies.{extra}"):
            requirement = Requirement(line)
            if canonical(requirement.name) == own:
                out += _project_extras(project, path, tuple(sorted(requirement.extras)),
                                       (*seen, key))
            else:
                out.append(line)
    return out


def _group(data: dict[str, Any], poetry: dict[str, Any], path: Path, group: str,
           seen: tuple[str, ...] = ()) -> list[str]:
    groups = data.get("dependency-groups") or {}
    by_name = {canonical(k): v for k, v in groups.items()} if isinstance(groups, dict) else {}
    key = canonical(group)
    if key in seen:
        raise UsageError(f"{path}: dependency group {group!r} includes itself")
    if key in by_name:
        out: list[str] = []
        items = by_name[key]
        if not isinstance(items, list):
            raise UsageError(f"{path}: key 'dependency-groups.{group}': expected a list")
        for item in items:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and set(item) == {"include-group"}:
                out += _group(data, poetry, path, str(item["include-group"]), (*seen, key))
            else:
                raise UsageError(f"{path}: key 'dependency-groups.{group}': {item!r} is "
                                 "neither a requirement nor {include-group = ...}")
        return out
    poetry_groups = poetry.get("group") or {}
    if group in poetry_groups:
        return _poetry_table(poetry_groups[group].get("dependencies") or {}, path,
                             f"tool.poetry.group.{group}.dependencies")
    if group == "dev" and "dev-dependencies" in poetry:
        return _poetry_table(poetry["dev-dependencies"], path, "tool.poetry.dev-dependencies")
    known = sorted({*groups, *poetry_groups}) if isinstance(groups, dict) else sorted(poetry_groups)
    raise UsageError(f"{path}: dependency group {group!r} (builder.yaml key 'groups') is not "
                     f"declared (it has: {', '.join(known) or 'none'})")


def _poetry_main(poetry: dict[str, Any], path: Path, extras: tuple[str, ...]) -> list[str]:
    table = dict(poetry.get("dependencies") or {})
    table.pop("python", None)
    declared = poetry.get("extras") or {}
    wanted: set[str] = set()
    for extra in extras:
        if extra not in declared:
            raise UsageError(f"{path}: extra {extra!r} (builder.yaml key 'extras') is not in "
                             f"[tool.poetry.extras] (it has: {', '.join(declared) or 'none'})")
        wanted |= {canonical(name) for name in declared[extra]}
    kept = {name: value for name, value in table.items()
            if not (isinstance(value, dict) and value.get("optional"))
            or canonical(name) in wanted}
    return _poetry_table(kept, path, "tool.poetry.dependencies")


def _poetry_table(table: dict[str, Any], path: Path, key: str) -> list[str]:
    out: list[str] = []
    for name, value in table.items():
        if name == "python":
            continue
        try:
            out += poetry_requirement(name, value)
        except ValueError as exc:
            raise UsageError(f"{path}: key '{key}.{name}': {exc}") from None
    return out


def poetry_requirement(name: str, value: Any) -> list[str]:
    """One Poetry dependency entry as PEP 508 strings (a list of constraints gives several).
    A path dependency is project code, not an installable requirement: none."""
    if isinstance(value, list):
        return [line for item in value for line in poetry_requirement(name, item)]
    if isinstance(value, str):
        value = {"version": value}
    if not isinstance(value, dict):
        raise ValueError(f"expected a constraint or a table, got {value!r}")
    if "path" in value:
        return []
    extras = f"[{','.join(value['extras'])}]" if value.get("extras") else ""
    markers = []
    if value.get("markers"):
        markers.append(f"({value['markers']})")
    if value.get("python"):
        markers.append(f"({python_marker(value['python'])})")
    if value.get("platform"):
        markers.append(f'sys_platform == "{value["platform"]}"')
    marker = f" ; {' and '.join(markers)}" if markers else ""
    if "git" in value:
        ref = value.get("rev") or value.get("tag") or value.get("branch")
        url = f"git+{value['git']}" + (f"@{ref}" if ref else "")
        if value.get("subdirectory"):
            url += f"#subdirectory={value['subdirectory']}"
        return [f"{name}{extras} @ {url}{marker}"]
    if "url" in value:
        return [f"{name}{extras} @ {value['url']}{marker}"]
    return [f"{name}{extras}{pep440(str(value.get('version', '*')))}{marker}"]


def pep440(constraint: str) -> str:
    """A Poetry constraint as a PEP 440 specifier: `^1.2` -> `>=1.2,<2`, `~1.2.3` ->
    `>=1.2.3,<1.3`, `1.2.3` -> `==1.2.3`, `>=1 <2` -> `>=1,<2`, `*` -> ``.
    (poetry-core's semantics: https://python-poetry.org/docs/dependency-specification/)"""
    text = constraint.strip()
    if text in ("", "*"):
        return ""
    if "||" in text or re.search(r"(?<![<>=!~])\|", text):
        raise ValueError(f"constraint {constraint!r}: `||` has no PEP 440 equivalent; lock the "
                         "project (`poetry lock`)")
    out = []
    for part in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", text):
        part = part.strip()
        if not part:
            continue
        if part.startswith("^") or (part.startswith("~") and not part.startswith("~=")):
            out.append(_caret_tilde(part[0], part[1:].strip()))
        elif part[0].isdigit():
            out.append("==" + part)
        elif part.startswith("=") and not part.startswith("=="):
            out.append("=" + part)
        else:
            out.append(part.replace(" ", ""))
    return ",".join(out)


def _caret_tilde(operator: str, version: str) -> str:
    match = re.match(r"\d+(?:\.\d+)*", version)
    if match is None:
        raise ValueError(f"constraint {operator}{version!r} is not a version")
    parts = [int(p) for p in match.group(0).split(".")]
    if operator == "^":
        index = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1)
        upper = parts[: index + 1]
    else:
        upper = parts[:2] if len(parts) > 1 else parts[:1]
    upper[-1] += 1
    return f">={version},<{'.'.join(map(str, upper))}"


def python_marker(constraint: str) -> str:
    from packaging.specifiers import SpecifierSet

    spec = pep440(constraint)
    return " and ".join(f'python_full_version {s.operator} "{s.version}"'
                        for s in SpecifierSet(spec)) if spec else 'python_version >= "0"'


def _strings(value: Any, path: Path, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{path}: key {key!r}: expected a list of requirement strings")
    return list(value)
