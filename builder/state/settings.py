"""builder.yaml -> typed settings. Every error names the file and the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from builder.errors import SettingsError

SETTINGS_FILE = "builder.yaml"
DEFAULT_PARENT_IMAGE = "python:3.11-slim"
DEFAULT_CODE_DIR = "/app/code"
DEFAULT_REQUIREMENTS = "requirements.txt"
INSTALLERS = ("uv", "pip")  # builder.images.installers
DEFAULT_INSTALLER = "uv"
# Where the dependencies come from (README "Project formats"); "auto" detects it.
DEPENDENCY_SOURCES = ("auto", "uv.lock", "poetry.lock", "pyproject.toml", "requirements", "none")

# Docker's grammar for a repository path component, lower case only.
_NAME_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_APT_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(?:[=:][A-Za-z0-9+.~:\-]+)?$")
_CODE_DIR_RE = re.compile(r"^(/[A-Za-z0-9._\-]+)+$")
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.\-]+(?::[0-9]+)?(?:/[a-z0-9._\-/]+)?$")


class Settings(NamedTuple):
    """The project's settings, as read from builder.yaml."""

    project_dir: Path
    name: str
    parent_image: str
    requirements: tuple[str, ...]
    apt_packages: tuple[str, ...]
    environment: dict[str, str]
    registry: str | None
    code_dir: str
    command: tuple[str, ...]
    verify_download: bool
    installer: str = DEFAULT_INSTALLER
    requirements_given: bool = False  # `requirements:` is in builder.yaml
    dependencies: str = "auto"  # one of DEPENDENCY_SOURCES
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    install_project: bool = True

    @property
    def file(self) -> Path:
        return self.project_dir / SETTINGS_FILE


def load_settings(project_dir: str | Path) -> Settings:
    """Read and validate `builder.yaml` in project_dir."""
    from builder.state import settings_cache

    directory = Path(project_dir).resolve()
    path = directory / SETTINGS_FILE
    if not directory.is_dir():
        raise SettingsError(f"{project_dir}: not a directory")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(
            f"{path}: not found (create it with at least `name: my-project`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot be read: {exc}") from None
    data = settings_cache.recall(text)
    if data is not None:
        return _parse(directory, path, data)
    data = _parse_yaml(path, text)
    settings = _parse(directory, path, data)
    settings_cache.remember(text, data)
    return settings


def _parse_yaml(path: Path, text: str) -> dict[Any, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SettingsError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping of keys, got {_kind(data)}")
    return data


def _parse(directory: Path, path: Path, data: dict[Any, Any]) -> Settings:
    known = {
        "name",
        "parent_image",
        "requirements",
        "apt_packages",
        "environment",
        "registry",
        "code_dir",
        "command",
        "verify_download",
        "installer",
        "dependencies",
        "extras",
        "groups",
        "install_project",
    }
    for key in data:
        if key not in known:
            raise SettingsError(
                f"{path}: unknown key {key!r} (known keys: {', '.join(sorted(known))})"
            )

    def err(key: str, message: str) -> SettingsError:
        return SettingsError(f"{path}: key {key!r}: {message}")

    if "name" not in data:
        raise err("name", "is required (the image repository name, e.g. `name: my-project`)")
    name = data["name"]
    if not isinstance(name, str):
        raise err("name", f"expected a string, got {_kind(name)}")
    if not _NAME_RE.match(name) or len(name) > 128:
        raise err(
            "name", f"{name!r} is not a valid image name (lower case letters, digits, . _ - /)"
        )

    parent_image = _string(data, "parent_image", DEFAULT_PARENT_IMAGE, err)
    if not parent_image or any(c.isspace() for c in parent_image):
        raise err("parent_image", f"{parent_image!r} is not an image reference")

    if "requirements" in data:
        requirements = _string_list(data, "requirements", err)
        for req in requirements:
            if Path(req).is_absolute() or ".." in Path(req).parts:
                raise err("requirements", f"{req!r} must be a path inside the project directory")
            if not (directory / req).is_file():
                raise err("requirements", f"file {req!r} not found in {directory}")
    else:
        requirements = (
            (DEFAULT_REQUIREMENTS,) if (directory / DEFAULT_REQUIREMENTS).is_file() else ()
        )

    apt_packages = _string_list(data, "apt_packages", err)
    for pkg in apt_packages:
        if not _APT_RE.match(pkg):
            raise err("apt_packages", f"{pkg!r} is not a Debian package name")

    environment: dict[str, str] = {}
    raw_env = data.get("environment") or {}
    if not isinstance(raw_env, dict):
        raise err("environment", f"expected a mapping, got {_kind(raw_env)}")
    for key, value in raw_env.items():
        if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
            raise err("environment", f"{key!r} is not a valid variable name")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif value is None:
            value = ""
        elif not isinstance(value, str):
            raise err("environment", f"value of {key!r} must be a string, got {_kind(value)}")
        if key.startswith("BUILDER_"):
            raise err("environment", f"{key!r}: BUILDER_* variables are reserved for builder")
        environment[key] = value

    registry = data.get("registry")
    if registry is not None:
        if not isinstance(registry, str):
            raise err(
                "registry", f"expected a string such as localhost:5000, got {_kind(registry)}"
            )
        registry = registry.strip().rstrip("/")
        if "://" in registry or not _REGISTRY_RE.match(registry):
            raise err("registry", f"{registry!r} is not a registry host (e.g. localhost:5000)")

    code_dir = _string(data, "code_dir", DEFAULT_CODE_DIR, err)
    if not code_dir.startswith("/") or code_dir.rstrip("/") == "":
        raise err("code_dir", f"{code_dir!r} must be an absolute path other than /")
    code_dir = code_dir.rstrip("/")
    if not _CODE_DIR_RE.match(code_dir) or ".." in code_dir.split("/"):
        raise err("code_dir", f"{code_dir!r} may hold only letters, digits and . _ - /")

    raw_command = data.get("command")
    command: tuple[str, ...]
    if raw_command is None:
        command = ()
    elif isinstance(raw_command, str):
        try:
            import shlex

            command = tuple(shlex.split(raw_command))
        except ValueError as exc:
            raise err("command", f"cannot be split into words: {exc}") from None
    else:
        command = _string_list(data, "command", err)

    verify = data.get("verify_download", False)
    if not isinstance(verify, bool):
        raise err("verify_download", f"expected true or false, got {_kind(verify)}")

    installer = _string(data, "installer", DEFAULT_INSTALLER, err)
    if installer not in INSTALLERS:
        raise err("installer", f"{installer!r} is not one of {', '.join(INSTALLERS)}")
    dependencies = _string(data, "dependencies", "auto", err)
    if dependencies not in DEPENDENCY_SOURCES:
        raise err("dependencies", f"{dependencies!r} is not one of {', '.join(DEPENDENCY_SOURCES)}")
    if "requirements" in data and dependencies not in ("auto", "requirements"):
        raise err("dependencies", f"{dependencies!r} contradicts `requirements:` (remove one)")
    extras = _string_list(data, "extras", err)
    groups = _string_list(data, "groups", err)
    install_project = data.get("install_project", True)
    if not isinstance(install_project, bool):
        raise err("install_project", f"expected true or false, got {_kind(install_project)}")

    return Settings(
        project_dir=directory,
        name=name,
        parent_image=parent_image,
        requirements=requirements,
        apt_packages=apt_packages,
        environment=environment,
        registry=registry,
        code_dir=code_dir,
        command=command,
        verify_download=verify,
        installer=installer,
        requirements_given="requirements" in data,
        dependencies=dependencies,
        extras=extras,
        groups=groups,
        install_project=install_project,
    )


def _string(data: dict[Any, Any], key: str, default: str, err: Any) -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise err(key, f"expected a string, got {_kind(value)}")
    return value


def _string_list(data: dict[Any, Any], key: str, err: Any) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        raise err(key, f"expected a list, e.g. [{value}]")
    if not isinstance(value, list):
        raise err(key, f"expected a list of strings, got {_kind(value)}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise err(key, f"expected a list of strings, found {_kind(item)} {item!r}")
    return tuple(value)


def _kind(value: object) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)
