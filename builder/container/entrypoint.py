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
import json
import os
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
    is_empty_mount,
)
from builder.errors import BuilderError, UsageError
from builder.state.atomic import remove_tree, staged_directory
from builder.state.locks import file_lock
from builder.state.secrets import remember

if TYPE_CHECKING:
    from collections.abc import Callable

    from builder.code.download import CachedTree, Mirror

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
        return cls(
            code_dir=Path(environ.get("BUILDER_CODE_DIR") or DEFAULT_CODE_DIR),
            commit=commit,
            repository=repository,
            subdirectory=subdirectory,
            cache_dir=Path(environ.get("BUILDER_CACHE_DIR") or _default_cache_dir()),
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
    cached = contract.cache_dir / contract.cache_key
    if not cached.is_dir():
        # A cold start: the download fills the code dir in the same pass as the cache.
        _install(contract.code_dir, lambda target: _download_into(contract, target, log))
    else:
        install_private_copy(ensure_cached(contract, log), contract.code_dir)
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


def _download_into(contract: Contract, target: Path, log: Any) -> None:
    """Put the commit's tree in the cache and in the empty directory `target`: written from
    the download itself when it is one archive, else copied from the cache."""
    from builder.code.download import Mirror, clear_directory

    mirror = Mirror(target)
    cached = ensure_cached(contract, log, mirror=mirror)
    if not mirror.complete:  # another starter downloaded it, or it was not one archive
        clear_directory(target)
        copy_tree(str(cached), str(target))


def ensure_cached(contract: Contract, log: Any = None, mirror: Mirror | None = None) -> Path:
    """The commit's tree in the cache, downloading it once even with concurrent starters.
    A download fills `mirror` too when it can (see `builder.code.download.Mirror`)."""
    cached = contract.cache_dir / contract.cache_key
    if cached.is_dir():
        return cached
    with file_lock(contract.cache_dir / f".{contract.cache_key}.lock"):
        if cached.is_dir():
            return cached
        from builder.code.download import download

        repository = _instantiate(contract)
        if log:
            log(
                f"downloading {contract.repository['name']}@{(contract.commit or '')[:12]}"  # type: ignore[index]
                + (f" ({contract.subdirectory})" if contract.subdirectory else "")
            )
        download(
            repository,
            contract.commit or "",
            cached,
            contract.subdirectory or None,
            verify=contract.verify,
            base=_newest_entry(contract),
            log=log,
            mirror=mirror,
        )
        _remember_newest(contract)
    return cached


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
    """Copy the cached tree into the code dir atomically; the cache stays untouched by the run."""
    _install(code_dir, lambda target: copy_tree(str(source), str(target)))


def _install(code_dir: Path, fill: Callable[[Path], None]) -> None:
    """Have `fill` write the tree into an empty directory that becomes the code dir.

    A mount point (the tmpfs `builder run` gives the container) cannot be renamed over; it is
    private to this container and empty, so the tree goes straight into it, and a failure
    leaves it empty again.
    """
    if is_empty_mount(code_dir):
        try:
            fill(code_dir)
        except BaseException:
            from builder.code.download import clear_directory

            clear_directory(code_dir)
            raise
        return
    previous = None
    with staged_directory(code_dir) as staging:
        fill(staging)
        if code_dir.exists() or code_dir.is_symlink():
            previous = code_dir.with_name(f".{code_dir.name}.old-{os.getpid()}")
            try:
                os.rename(code_dir, previous)
            except OSError:
                # overlayfs cannot rename a directory from a lower image layer (EXDEV)
                remove_tree(code_dir)
                previous = None
    if previous is not None:
        remove_tree(previous)


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


def _read_token(environ: Mapping[str, str]) -> str | None:
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
