"""The container entrypoint: put the code at the commit in the code dir, then exec the command.

It reads only the container contract's environment (DESIGN "Container contract"), so it
works the same inside a container, in CI, and in tests:

- BUILDER_CODE_DIR        where the code lives (default /app/code)
- BUILDER_COMMIT          the commit to run; empty or unset means bake mode (code is in the image)
- BUILDER_CODE_REPOSITORY {"type", "name", "config"} without secrets
- BUILDER_SUBDIRECTORY    the project's path inside the repository
- BUILDER_TOKEN_FILE      a file holding the token (or BUILDER_TOKEN, if the user asks for it)
- BUILDER_CACHE_DIR       the download cache (a volume when one is mounted)
- BUILDER_VERIFY_DOWNLOAD "1" to compare the download with the commit's tree listing
- BUILDER_PROJECT_DIR     set by the base image when it installs the project: where the
                          project's install is written after the download (reuse mode)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.container.warm import (
    cache_key,
    contract_subdirectory,
    copy_tree,
    exec_command,
    is_commit_hash,
)
from builder.errors import BuilderError, CodeDirError, UsageError, from_os_error
from builder.state.atomic import (
    RANDOM_PART,
    STAGING_SUFFIX,
    clear_stale,
    held_directory,
    remove_tree,
    staged_directory,
)
from builder.state.secrets import remember

if TYPE_CHECKING:
    from builder.code.download import CachedTree

DEFAULT_CODE_DIR = "/app/code"
DEFAULT_CACHE_DIR = "/var/cache/builder"


@dataclass(frozen=True)
class Contract:
    code_dir: Path
    commit: str | None
    repository: dict[str, Any] | None
    subdirectory: str
    cache_dir: Path
    token: str | None
    verify: bool
    project_dir: Path | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Contract:
        commit = environ.get("BUILDER_COMMIT", "").strip() or None
        repository = None
        if commit:
            raw = environ.get("BUILDER_CODE_REPOSITORY", "")
            try:
                repository = json.loads(raw)
            except json.JSONDecodeError:
                raise UsageError("BUILDER_CODE_REPOSITORY is not valid JSON") from None
            if not isinstance(repository, dict) or not {"type", "name"} <= set(repository):
                raise UsageError(
                    'BUILDER_CODE_REPOSITORY must be {"type": ..., "name": ..., "config": {...}}'
                )
            if not is_commit_hash(commit):
                raise UsageError(f"BUILDER_COMMIT {commit!r} is not a commit hash")
        subdirectory = contract_subdirectory(environ)
        if subdirectory is None:
            raise UsageError(
                f"BUILDER_SUBDIRECTORY {environ['BUILDER_SUBDIRECTORY']!r} must be a relative path"
            )
        code_dir = Path(environ.get("BUILDER_CODE_DIR") or DEFAULT_CODE_DIR)
        cache_dir = Path(environ.get("BUILDER_CACHE_DIR") or _default_cache_dir())
        if commit:
            _check_code_dir(code_dir, cache_dir)
        return cls(
            code_dir=code_dir,
            commit=commit,
            repository=repository,
            subdirectory=subdirectory,
            cache_dir=cache_dir,
            token=_read_token(environ) if commit else None,
            verify=environ.get("BUILDER_VERIFY_DOWNLOAD", "") in ("1", "true", "yes"),
            project_dir=Path(environ["BUILDER_PROJECT_DIR"])
            if environ.get("BUILDER_PROJECT_DIR") else None,
        )

    @property
    def cache_key(self) -> str:
        """The cache entry of this commit's tree."""
        return self._key(commit=self.commit)

    @property
    def lineage_key(self) -> str:
        """The repository and subdirectory, whatever the commit: names the newest entry."""
        return self._key(commit=None)

    def _key(self, *, commit: str | None) -> str:
        assert self.repository is not None
        return cache_key(self.repository, commit, self.subdirectory)


def prepare(contract: Contract, log: Any = None) -> Path:
    """Make the code dir hold the files to run; return it."""
    if contract.commit is None:
        if not contract.code_dir.is_dir():
            raise BuilderError(
                f"code dir {contract.code_dir} does not exist (bake mode, no commit given)"
            )
        return contract.code_dir
    refuse_foreign_code_dir(contract.code_dir)  # before any download: fail fast
    cached = ensure_cached(contract, log)
    install_private_copy(cached, contract.code_dir)
    if contract.project_dir is not None:
        install_project(cached, contract.code_dir, contract.project_dir)
    return contract.code_dir


def install_project(cached: Path, code_dir: Path, project_dir: Path) -> None:
    """Write the project's install for the code in code_dir (README "Project formats").

    What pyproject.toml says is kept beside the cached tree, so a warm start needs no TOML."""
    from builder.project import install

    known, project = install.read_sidecar(str(cached))
    if not known:
        from builder.project.metadata import describe
        from builder.state.atomic import atomic_write_text

        project = describe(code_dir)
        with contextlib.suppress(OSError):
            atomic_write_text(Path(install.sidecar_path(str(cached))),
                              install.sidecar_text(project))
    if project is not None:
        try:
            install.write(project, str(code_dir), str(project_dir))
        except OSError as exc:
            raise BuilderError(f"cannot write the project's install into {project_dir}: "
                               f"{exc.strerror or exc}") from None


def ensure_cached(contract: Contract, log: Any = None) -> Path:
    """The commit's tree in the cache, downloading it once even with concurrent starters.

    An entry is used only if it is a real directory; with verification on, only if it still
    matches the seal written with it (see `builder.container.cache`).
    """
    from builder.container import cache

    cached = cache.entry(contract.cache_dir, contract.cache_key)
    if cached is not None and not contract.verify:
        return cached
    with cache.locked(contract.cache_dir, contract.cache_key):
        cached = cache.entry(contract.cache_dir, contract.cache_key)
        if cached is not None:
            cache.check_seal(cached)
            return cached
        cache.clear_leftovers(contract.cache_dir)
        from builder.code.download import download
        from builder.repositories.extras import require_extra

        require_extra(str(contract.repository["type"]))  # type: ignore[index]
        repository = _instantiate(contract)
        if hasattr(repository, "download_cache"):  # it keeps objects between commits there
            repository.download_cache = contract.cache_dir
        if log:
            log(
                f"downloading {contract.repository['name']}@{(contract.commit or '')[:12]}"  # type: ignore[index]
                + (f" ({contract.subdirectory})" if contract.subdirectory else "")
            )
        target = contract.cache_dir / contract.cache_key
        download(
            repository,
            contract.commit or "",
            target,
            contract.subdirectory or None,
            verify=contract.verify,
            base=_newest_entry(contract),
            log=log,
        )
        cache.seal(target)
        _remember_newest(contract)
    return target


def _newest_entry(contract: Contract) -> CachedTree | None:
    """The newest cached tree of the same repository and subdirectory, to update from."""
    from builder.code.download import CachedTree

    try:
        record = json.loads((contract.cache_dir / f"{contract.lineage_key}.newest").read_text())
        commit, key = str(record["commit"]), str(record["entry"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(key) != 32 or not all(c in "0123456789abcdef" for c in key):
        return None
    return CachedTree(commit, contract.cache_dir / key)  # `download` checks it is there


def _remember_newest(contract: Contract) -> None:
    from builder.state.atomic import atomic_write_text

    record = {"commit": contract.commit, "entry": contract.cache_key}
    with contextlib.suppress(OSError):
        atomic_write_text(contract.cache_dir / f"{contract.lineage_key}.newest",
                          json.dumps(record))


def install_private_copy(source: Path, code_dir: Path) -> None:
    """Copy the cached tree into the code dir; the cache stays untouched by the run.

    Only a code dir that builder made (marked, see `builder.container.codedir`) or an empty
    one is filled or replaced; anything else stops the start with nothing changed. A mount
    point (the tmpfs `builder run` gives the container, a volume) cannot be renamed over, so
    the tree is copied straight into it; anywhere else it is staged beside the code dir and
    renamed into place. The program runs only after the whole tree is there.
    """
    from builder.container import codedir

    parent = code_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        guard = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise from_os_error(exc, f"cannot prepare the code dir {code_dir}",
                            "set BUILDER_CODE_DIR to a path builder can create") from None
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one starter at a time per code dir's parent
        state = refuse_foreign_code_dir(code_dir)
        leftover = re.compile(rf"^\.{re.escape(code_dir.name)}\.{RANDOM_PART}"
                              rf"({re.escape(STAGING_SUFFIX)}|{re.escape(_OLD_SUFFIX)})$")
        clear_stale(parent, lambda name: leftover.match(name) is not None)
        if state != codedir.ABSENT and os.path.ismount(code_dir):
            codedir.mark(str(code_dir))
            for name in os.listdir(code_dir):  # builder's own earlier tree
                remove_tree(code_dir / name)
            copy_tree(str(source), str(code_dir))
            return
        _replace(source, code_dir, state)
    finally:
        os.close(guard)


_OLD_SUFFIX = ".old"


def refuse_foreign_code_dir(code_dir: Path) -> str:
    """The code dir's state (see `codedir.state`); a `CodeDirError` if builder may not
    touch it."""
    from builder.container import codedir

    try:
        state = codedir.state(str(code_dir))
    except OSError as exc:
        raise from_os_error(exc, f"cannot read the code dir {code_dir}") from None
    if state == codedir.FOREIGN:
        raise CodeDirError(
            f"code dir {code_dir} (BUILDER_CODE_DIR) already holds files that builder did "
            "not put there; nothing was changed: mount an empty volume (or none) there, "
            "or set BUILDER_CODE_DIR to a new or empty directory"
        )
    return state


def _replace(source: Path, code_dir: Path, state: str) -> None:
    """Stage a copy beside `code_dir` and rename it into place (`state`: absent, empty or
    ours)."""
    from builder.container import codedir

    with staged_directory(code_dir) as staging:
        copy_tree(str(source), str(staging))
        codedir.mark(str(staging))
        if state == codedir.EMPTY:
            os.rmdir(code_dir)  # fails, changing nothing, if anything appeared in it
        elif state == codedir.OURS:
            with held_directory(code_dir.parent, f".{code_dir.name}.", _OLD_SUFFIX) as old:
                try:
                    os.rename(code_dir, old / "tree")
                except OSError:
                    # overlayfs cannot move a directory of a lower image layer (EXDEV)
                    remove_tree(code_dir)


def _instantiate(contract: Contract) -> Any:
    from builder.repositories.types import instantiate
    from builder.state.store import RepositoryRecord

    spec = contract.repository or {}
    config = dict(spec.get("config") or {})
    record = RepositoryRecord(
        id=str(spec.get("id", "")),
        name=str(spec["name"]),
        type=str(spec["type"]),
        config=config,
        token=contract.token,
    )
    return instantiate(record, project_dir=Path.cwd())


def _check_code_dir(code_dir: Path, cache_dir: Path) -> None:
    """The code dir is replaced at each start: it must be a directory of its own."""
    where = f"BUILDER_CODE_DIR {str(code_dir)!r}"
    if not code_dir.is_absolute():
        raise UsageError(f"{where} must be an absolute path")
    normal = Path(os.path.normpath(code_dir))
    if normal.parent == normal:
        raise UsageError(f"{where} is the root directory: set it to a directory of its own, "
                         f"such as {DEFAULT_CODE_DIR}")
    cache = Path(os.path.normpath(cache_dir.absolute()))
    if normal == cache or normal in cache.parents or cache in normal.parents:
        raise UsageError(f"{where} and BUILDER_CACHE_DIR {str(cache_dir)!r} overlap: give "
                         "each a directory of its own")


def _read_token(environ: Mapping[str, str]) -> str | None:
    from builder.state import coredump

    coredump.disable()  # before the token is in memory
    path = environ.get("BUILDER_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BuilderError(
                f"BUILDER_TOKEN_FILE {path}: cannot be read: {exc.strerror}"
            ) from None
    else:
        token = environ.get("BUILDER_TOKEN", "").strip()
    if token:
        remember(token)
    return token or None


def _default_cache_dir() -> str:
    if os.access(os.path.dirname(DEFAULT_CACHE_DIR), os.W_OK):
        return DEFAULT_CACHE_DIR
    import platformdirs

    return platformdirs.user_cache_dir("builder", appauthor=False)


def run(command: list[str], environ: Mapping[str, str] | None = None) -> None:
    """Prepare the code dir and exec the command; returns only by raising."""
    import sys

    env = os.environ if environ is None else environ

    def log(line: str) -> None:
        from builder.state.secrets import redact

        sys.stderr.write(redact(f"builder: {line}") + "\n")
        sys.stderr.flush()

    contract = Contract.from_environment(env)
    exec_command(command, str(prepare(contract, log=log)), env)
