"""The project itself, read from pyproject.toml without its build backend.

`describe` gives what an install of the project would record: its name and version, its
entry points (console scripts first), its declared requirements, and its import roots:
the directories that hold its packages (`src` for a src layout, `` for the project
directory itself). The roots follow each backend's own configuration:

- Poetry: `tool.poetry.packages` `from`;
- hatchling: `tool.hatch.build.targets.wheel` `packages` (their parent directories) or
  `sources` (a list, or a mapping to "");
- setuptools: `tool.setuptools` `package-dir = {"" = ...}`, `packages.find.where`, the
  project directory for listed `packages` or `py-modules`;
- flit_core: `src/` when it holds the module, else the project directory;
- pdm-backend: `tool.pdm.build.package-dir`;
- otherwise, and when the configuration says nothing: `src` when it holds the import
  package (or when the project directory does not), else the project directory.

It runs on the host (bake mode, and to check a project before it is run) and in the
container (reuse mode, once per commit), so it needs nothing but the standard library.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath
from typing import Any

from builder.errors import UsageError
from builder.project.toml import load_toml

PYPROJECT = "pyproject.toml"
UNKNOWN_VERSION = "0+unknown"
# Backends whose packages are compiled: their import packages are not in the source tree.
COMPILED_BACKENDS = {"maturin": "maturin", "scikit_build_core.build": "scikit-build-core",
                     "mesonpy": "meson-python", "pymsbuild": "pymsbuild",
                     "enscons.api": "enscons", "sipbuild.api": "sip"}
# hatch's default version pattern (hatchling/version/source/regex.py).
_VERSION_RE = re.compile(
    r"""(?im)^(?:__version__|VERSION)\s*(?::\s*str\s*)?=\s*["']v?(?P<v>[^"']+)["']""")
_REFERENCE_RE = re.compile(r"^[A-Za-z_][\w.]*(\s*:\s*[A-Za-z_][\w.]*)?(\s*\[[^\]]*\])?$")


def describe(directory: Path) -> dict[str, Any] | None:
    """The project in `directory` as plain data (JSON), or None when pyproject.toml names no
    project (no file, or a file with only tool settings)."""
    path = directory / PYPROJECT
    if not path.is_file():
        return None
    data = load_toml(path)
    project = _table(data.get("project", {}), path, "project")
    tool = _table(data.get("tool", {}), path, "tool")
    poetry = _table(tool.get("poetry", {}), path, "tool.poetry")
    name = project.get("name") or poetry.get("name")
    if name is None:
        return None
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9]([\w.\-]*[A-Za-z0-9])?$", name):
        raise UsageError(f"{path}: key 'project.name': {name!r} is not a project name")
    build = _table(data.get("build-system", {}), path, "build-system")
    backend = str(build.get("build-backend") or "setuptools.build_meta:__legacy__")
    if backend in COMPILED_BACKENDS:
        raise UsageError(
            f"{path}: key 'build-system.build-backend': {backend!r} builds compiled code, which "
            "builder cannot install from the source files; set `install_project: false` in "
            "builder.yaml to run without installing the project")
    roots = import_roots(directory, data, name, backend, path)
    info: dict[str, Any] = {
        "name": name,
        "version": _version(directory, data, name, roots, path),
        "summary": " ".join(str(project.get("description") or poetry.get("description")
                                or "").split()),
        "requires_python": str(project.get("requires-python") or ""),
        "requires_dist": _requires(project, path),
        "roots": roots,
        "entry_points": _entry_points(project, poetry, path),
    }
    return info


def import_roots(directory: Path, data: dict[str, Any], name: str, backend: str,
                 path: Path) -> list[str]:
    tool = data.get("tool") or {}
    module = re.sub(r"[-.]+", "_", name).lower()
    roots: list[str] = []
    poetry = tool.get("poetry") or {}
    if backend.startswith("poetry") or "packages" in poetry:
        for entry in poetry.get("packages") or []:
            if not isinstance(entry, dict) or "include" not in entry:
                raise UsageError(f"{path}: key 'tool.poetry.packages': expected tables with "
                                 "`include`")
            if entry.get("to"):
                raise _rename(path, "tool.poetry.packages", f"`to = {entry['to']!r}`")
            roots.append(str(entry.get("from") or ""))
    elif backend.startswith("hatchling"):
        wheel = ((tool.get("hatch") or {}).get("build") or {}).get("targets", {}).get(
            "wheel") or {}
        sources = wheel.get("sources")
        if isinstance(sources, dict):
            for source, prefix in sources.items():
                if prefix:
                    raise _rename(path, "tool.hatch.build.targets.wheel.sources",
                                  f"{source!r} = {prefix!r}")
                roots.append(source)
        elif isinstance(sources, list):
            roots += [str(s) for s in sources]
        for package in wheel.get("packages") or []:
            roots.append(str(PurePosixPath(str(package)).parent))
    elif backend.startswith("setuptools"):
        setuptools = tool.get("setuptools") or {}
        package_dir = setuptools.get("package-dir") or {}
        if isinstance(package_dir, dict):
            if set(package_dir) - {""}:
                raise _rename(path, "tool.setuptools.package-dir",
                              ", ".join(f"{k!r} = {v!r}" for k, v in package_dir.items() if k))
            if "" in package_dir:
                roots.append(str(package_dir[""]))
        packages = setuptools.get("packages")
        if isinstance(packages, dict):
            where = ((packages.get("find") or packages.get("find-namespace") or {})
                     .get("where") or [])
            roots += [str(w) for w in where]
        elif not roots and (isinstance(packages, list) or "py-modules" in setuptools):
            roots.append("")  # listed packages or modules live in the project directory
    elif backend.startswith("flit_core"):
        flit_module = ((tool.get("flit") or {}).get("module") or {}).get("name")
        module = str(flit_module or module)
        src = directory / "src"
        roots.append("src" if (src / module).exists() or (src / f"{module}.py").exists() else "")
    elif backend.startswith("pdm"):
        package_dir = ((tool.get("pdm") or {}).get("build") or {}).get("package-dir")
        if package_dir is not None:
            roots.append(str(package_dir))
    if not roots:
        roots.append(_fallback_root(directory, module))
    out: list[str] = []
    for root in roots:
        clean = PurePosixPath(root.strip("/") or ".")
        if root.startswith("/") or ".." in clean.parts:
            raise UsageError(f"{path}: import root {root!r} is outside the project directory")
        text = "" if str(clean) == "." else str(clean)
        if text not in out:
            out.append(text)
    return out


def _fallback_root(directory: Path, module: str) -> str:
    src = directory / "src"
    if (src / module).exists() or (src / f"{module}.py").exists():
        return "src"
    here = (directory / module).exists() or (directory / f"{module}.py").exists()
    if not here and src.is_dir() and any(p.suffix == ".py" or (p / "__init__.py").exists()
                                         or p.is_dir() for p in src.iterdir()):
        return "src"
    return ""


def _rename(path: Path, key: str, what: str) -> UsageError:
    return UsageError(f"{path}: key {key!r}: {what} installs a package under another name, "
                      "which builder cannot do from the source files; set "
                      "`install_project: false` in builder.yaml, or lay the package out as it "
                      "is imported")


def _version(directory: Path, data: dict[str, Any], name: str, roots: list[str],
             path: Path) -> str:
    """The static version, else one a file holds (hatch, pdm, setuptools `file` or `attr`,
    flit's `__version__`); a version only a build can tell (from git tags) is unknown."""
    project = data.get("project") or {}
    tool = data.get("tool") or {}
    if "version" in project and "version" not in (project.get("dynamic") or []):
        return _string(project["version"], path, "project.version")
    poetry_version = (tool.get("poetry") or {}).get("version")
    if isinstance(poetry_version, str) and poetry_version:
        return poetry_version
    hatch = (tool.get("hatch") or {}).get("version") or {}
    pdm = (tool.get("pdm") or {}).get("version") or {}
    setuptools = ((tool.get("setuptools") or {}).get("dynamic") or {}).get("version") or {}
    if not isinstance(setuptools, dict):
        setuptools = {}
    version_file = setuptools.get("file")
    if isinstance(version_file, list) and version_file:
        version_file = version_file[0]
    if isinstance(version_file, str):
        text = (_read(directory / version_file) or "").strip()
        if text and "\n" not in text:
            return text
    for file in (hatch.get("path"), pdm.get("path") if pdm.get("source") == "file" else None):
        match = _VERSION_RE.search(_read(directory / file) or "") if isinstance(file, str) \
            else None
        if match:
            return match.group("v")
    attr = setuptools.get("attr")
    if isinstance(attr, str) and "." in attr:
        module, _, variable = attr.rpartition(".")
    else:  # flit and others: the package's __version__
        flit = ((tool.get("flit") or {}).get("module") or {}).get("name")
        module, variable = str(flit or re.sub(r"[-.]+", "_", name).lower()), "__version__"
    return _module_constant(directory, roots, module, variable) or UNKNOWN_VERSION


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _module_constant(directory: Path, roots: list[str], module: str, variable: str) -> str | None:
    """A string constant assigned at the top of a module, read without importing it."""
    relative = module.replace(".", "/")
    for root in roots:
        base = directory / root if root else directory
        for candidate in (base / relative / "__init__.py", base / f"{relative}.py"):
            text = _read(candidate)
            if text is None:
                continue
            try:
                tree = ast.parse(text)
            except SyntaxError:
                return None
            for node in tree.body:
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    targets, value = [node.target], node.value
                else:
                    continue
                if any(isinstance(t, ast.Name) and t.id == variable for t in targets) \
                        and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
            return None
    return None


def _requires(project: dict[str, Any], path: Path) -> list[str]:
    lines = [str(r) for r in project.get("dependencies") or [] if isinstance(r, str)]
    optional = project.get("optional-dependencies") or {}
    for extra, requirements in (optional.items() if isinstance(optional, dict) else []):
        for requirement in requirements if isinstance(requirements, list) else []:
            text, _, marker = str(requirement).partition(";")
            condition = f'extra == "{extra}"'
            if marker.strip():
                condition = f"({marker.strip()}) and {condition}"
            lines.append(f"{text.strip()}; {condition}")
    return lines


def _entry_points(project: dict[str, Any], poetry: dict[str, Any],
                  path: Path) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    for key, group in (("scripts", "console_scripts"), ("gui-scripts", "gui_scripts")):
        table = _table(project.get(key, {}), path, f"project.{key}")
        if table:
            groups[group] = {str(k): _reference(v, path, f"project.{key}.{k}", True)
                             for k, v in table.items()}
    for group, table in _table(project.get("entry-points", {}), path,
                               "project.entry-points").items():
        entries = _table(table, path, f"project.entry-points.{group}")
        groups[str(group)] = {str(k): _reference(v, path, f"project.entry-points.{group}.{k}",
                                                 False) for k, v in entries.items()}
    if "console_scripts" not in groups:
        scripts = {}
        for script, value in _table(poetry.get("scripts", {}), path,
                                    "tool.poetry.scripts").items():
            if isinstance(value, dict):
                if value.get("type", "console") != "console":
                    continue  # a file script is a file in the wheel's scripts, not a wrapper
                value = value.get("reference") or value.get("callable")
            scripts[str(script)] = _reference(value, path, f"tool.poetry.scripts.{script}", True)
        if scripts:
            groups["console_scripts"] = scripts
    for group, table in _table(poetry.get("plugins", {}), path, "tool.poetry.plugins").items():
        entries = _table(table, path, f"tool.poetry.plugins.{group}")
        groups.setdefault(str(group), {}).update(
            {str(k): _reference(v, path, f"tool.poetry.plugins.{group}.{k}", False)
             for k, v in entries.items()})
    return groups


def _reference(value: Any, path: Path, key: str, callable_: bool) -> str:
    text = " ".join(str(value).split()) if isinstance(value, str) else ""
    if not _REFERENCE_RE.match(text) or (callable_ and ":" not in text):
        raise UsageError(f"{path}: key {key!r}: {value!r} is not an entry point reference "
                         "such as `package.module:function`")
    return text


def _table(value: Any, path: Path, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{path}: key {key!r}: expected a table")
    return value


def _string(value: Any, path: Path, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{path}: key {key!r}: expected a string")
    return value
