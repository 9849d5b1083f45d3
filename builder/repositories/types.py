"""The repository types: their register options, validation, and turning records into objects."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from builder.errors import RepositoryConfigError
from builder.repositories.base import BaseCodeRepository
from builder.repositories.extras import require_extra
from builder.repositories.urls import has_control_character
from builder.state.store import RepositoryRecord

TYPES = ("github", "gitlab", "git", "custom")
_SOURCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
_GITHUB_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_GITLAB_PATH = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
_USERNAME = re.compile(r"^[^:@/\s]+$")


class Option(NamedTuple):
    name: str
    required: bool
    help: str


OPTIONS: dict[str, tuple[Option, ...]] = {
    "github": (
        Option("owner", True, "the user or organisation that owns the repository"),
        Option("repository", True, "the repository name"),
        Option("url", False, "web URL of the GitHub instance (default https://github.com)"),
        Option("api_url", False, "REST API URL (default https://api.github.com; "
                                 "https://api.NAME.ghe.com for NAME.ghe.com; else URL/api/v3)"),
        Option("token", False, "a token, or a {{secret.key}} reference"),
    ),
    "gitlab": (
        Option("group", True, "the group path, with subgroups as a/b"),
        Option("project", True, "the project path"),
        Option("url", False, "web URL of the GitLab instance (default https://gitlab.com)"),
        Option("token", False, "a token, or a {{secret.key}} reference"),
    ),
    "git": (
        Option("url", True, "the clone URL: https, ssh, git://, file:// or a local path"),
        Option("username", False, "user name for http(s) authentication"),
        Option("token", False, "a token or password, or a {{secret.key}} reference"),
    ),
    "custom": (
        Option("source", True, "module.Class of a BaseCodeRepository subclass"),
        Option("token", False, "a token, or a {{secret.key}} reference"),
    ),
}


def describe_options(type_name: str) -> str:
    return " ".join(f"--{_flag(o.name)}" + ("" if o.required else "?") for o in OPTIONS[type_name])


def _flag(key: str) -> str:
    return key.replace("_", "-")


def validate_options(type_name: str, options: Mapping[str, str], *, cwd: Path) -> dict[str, str]:
    """Check one type's register options; return the config (token included, still literal)."""
    if type_name not in OPTIONS:
        raise RepositoryConfigError(
            f"--type {type_name!r} is unknown (choose from {', '.join(TYPES)})"
        )
    require_extra(type_name)
    known = {o.name for o in OPTIONS[type_name]}
    config: dict[str, str] = {}
    for key, value in options.items():
        key = key.replace("-", "_")
        if type_name != "custom" and key not in known:
            raise RepositoryConfigError(
                f"--{_flag(key)} is not an option of --type {type_name} "
                f"(options: {describe_options(type_name)})"
            )
        if not _OPTION_KEY.match(key):
            raise RepositoryConfigError(f"--{key}: option names use letters, digits, '-' and '_'")
        if value is None or value == "":
            raise RepositoryConfigError(f"--{key} needs a value")
        if has_control_character(value):
            raise RepositoryConfigError(
                f"--{_flag(key)} contains a control character (a newline, a tab, ...)"
            )
        config[key] = value
    for option in OPTIONS[type_name]:
        if option.required and option.name not in config:
            raise RepositoryConfigError(
                f"--type {type_name} needs --{_flag(option.name)} ({option.help})"
            )
    _check_values(type_name, config, cwd)
    return config


def _check_values(type_name: str, config: dict[str, str], cwd: Path) -> None:
    from builder.repositories.urls import clone_url_problem, parse_remote_url, web_url_problem

    for key in ("url", "api_url"):
        if key in config and type_name in ("github", "gitlab"):
            problem = web_url_problem(config[key])
            if problem:
                raise RepositoryConfigError(f"--{_flag(key)} {_shown(config[key])} {problem}")
            config[key] = config[key].rstrip("/")
    if type_name == "github":
        for key in ("owner", "repository"):
            if not _GITHUB_NAME.match(config[key]) or not _is_path_segment(config[key]):
                raise RepositoryConfigError(f"--{key} {config[key]!r} is not a GitHub name")
    elif type_name == "gitlab":
        config["group"] = config["group"].strip("/")
        for key in ("group", "project"):
            if not _GITLAB_PATH.match(config[key]) or not all(
                    _is_path_segment(part) for part in config[key].split("/")):
                raise RepositoryConfigError(f"--{key} {config[key]!r} is not a GitLab path")
        if "/" in config["project"]:
            raise RepositoryConfigError(
                "--project takes the project's own path; put subgroups in --group"
            )
    elif type_name == "git":
        url = config["url"]
        problem = clone_url_problem(url)
        if problem:
            raise RepositoryConfigError(f"--url {_shown(url)} {problem}")
        parsed = parse_remote_url(url, base_dir=str(cwd))
        if parsed is None:
            raise RepositoryConfigError(f"--url {_shown(url)} is not a git URL")
        if parsed.is_local and "://" not in url:
            config["url"] = str(Path(cwd, url).resolve()) if not Path(url).is_absolute() else url
        if "username" in config and not _USERNAME.match(config["username"]):
            raise RepositoryConfigError(
                f"--username {config['username']!r} must not contain ':', '@', '/' or spaces"
            )
    elif type_name == "custom":
        if not _SOURCE.match(config["source"]):
            raise RepositoryConfigError(f"--source {config['source']!r} must be module.Class")
        load_custom_class(config["source"], cwd)


def _is_path_segment(name: str) -> bool:
    """Not `.` or `..` (which leave the owner's or group's namespace) and not an option."""
    return name.strip(".") != "" and not name.startswith("-")


def _shown(value: str) -> str:
    """A URL as an error may show it: without credentials, on one line."""
    from builder.repositories.urls import strip_credentials
    from builder.state.secrets import redact

    return repr(redact(strip_credentials(value)))[:300]


def load_custom_class(source: str, project_dir: Path | None = None) -> type[BaseCodeRepository]:
    """Import `module.Class`, from the project directory first, then installed packages."""
    module_name, _, class_name = source.rpartition(".")
    added = False
    if project_dir is not None and str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
        added = True
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise RepositoryConfigError(
            f"--source {source!r}: cannot import module {module_name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    finally:
        if added:
            sys.path.remove(str(project_dir))
    cls = getattr(module, class_name, None)
    if cls is None:
        raise RepositoryConfigError(
            f"--source {source!r}: module {module_name!r} has no {class_name!r}"
        )
    import inspect

    if not (inspect.isclass(cls) and issubclass(cls, BaseCodeRepository)):
        raise RepositoryConfigError(
            f"--source {source!r} is not a subclass of builder.repositories.BaseCodeRepository"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise RepositoryConfigError(f"--source {source!r} does not implement: {missing}")
    return cls


def repository_class(
    record: RepositoryRecord, project_dir: Path | None = None
) -> type[BaseCodeRepository]:
    if record.type == "github":
        from builder.repositories.github import GitHubCodeRepository

        return GitHubCodeRepository
    if record.type == "gitlab":
        from builder.repositories.gitlab import GitLabCodeRepository

        return GitLabCodeRepository
    if record.type == "git":
        from builder.repositories.git import GitCodeRepository

        return GitCodeRepository
    if record.type == "custom":
        return load_custom_class(record.config["source"], project_dir)
    raise RepositoryConfigError(f"code repository {record.name!r} has unknown type {record.type!r}")


def instantiate(record: RepositoryRecord, project_dir: Path | None = None) -> BaseCodeRepository:
    """Build the repository object; the token stays a reference until it is read."""
    config: dict[str, Any] = dict(record.config)
    if record.token:
        config["token"] = record.token
    cls = repository_class(record, project_dir)
    if record.type == "custom":
        config.pop("source", None)
    return cls(record.id, record.name, config)


def public_spec(record: RepositoryRecord) -> dict[str, Any]:
    """The container contract's BUILDER_CODE_REPOSITORY: the register options, no secrets."""
    return {"type": record.type, "name": record.name, "config": dict(record.config)}
